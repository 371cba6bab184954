"""Audit events are of an enumerated kind (TrialEvent.Kind): every writer names a member, the
chain refuses anything else, and the values, which the events' hashes cover, stay as they are."""

import ast
from pathlib import Path

import pytest

from tests.trials.factories import draft_trial
from trials.audit import audit_append, audit_chain_verify
from trials.models import TrialEvent

ROOT = Path(__file__).resolve().parents[2]
APPS = ["trials", "surveys", "analytics", "federated", "dashboards", "config", "infra"]
WRITERS = {"_event", "event_record", "audit_append"}
# Kinds that events in existing databases carry: their hashes cover these strings, so none of
# them may be renamed or removed (new kinds may be added).
HASHED_KINDS = {
    "trial_created",
    "trial_described",
    "member_added",
    "state_changed",
    "arm_created",
    "arm_changed",
    "arm_amended",
    "preregistration_draft_saved",
    "preregistration_frozen",
    "deviation_recorded",
    "oversight_assigned",
    "approval_recorded",
    "participant_enrolled",
    "participant_withdrew",
    "consent_granted",
    "consent_revoked",
    "analysis_run_started",
    "analysis_run_requeued",
    "analysis_run_finished",
    "analysis_run_failed",
    "privacy_budget_reserved",
    "privacy_budget_refused",
    "telemetry_released",
    "telemetry_window_waiting",
    "access_refused",
    "edit_refused",
    "arm_integrity_failure",
    "record_chained",
}


def _kind_arguments():
    """(place, expression) of the kind argument of every call that writes an audit event."""
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name not in WRITERS:
                    continue
                place = f"{path.relative_to(ROOT)}:{node.lineno}"
                kinds = [k.value for k in node.keywords if k.arg == "kind"]
                if name == "_event" and len(node.args) > 1:
                    kinds.append(node.args[1])
                assert kinds, f"{place}: {name}() without a kind"
                yield place, kinds[0]


def test_every_writer_names_a_member_of_the_enumeration():
    found = 0
    for place, kind in _kind_arguments():
        found += 1
        if isinstance(kind, ast.Name):
            continue  # a helper passing its own kind parameter on
        text = ast.unparse(kind)
        assert text.startswith("TrialEvent.Kind."), f"{place}: kind={text} is not a TrialEvent.Kind"
        assert text.removeprefix("TrialEvent.Kind.") in TrialEvent.Kind.names, place
    assert found > 30


def test_the_values_the_hashes_cover_never_change():
    assert HASHED_KINDS <= set(TrialEvent.Kind.values)
    assert len(set(TrialEvent.Kind.values)) == len(TrialEvent.Kind.values)


@pytest.mark.django_db
def test_the_chain_refuses_a_kind_that_is_not_enumerated():
    trial = draft_trial()
    before = trial.events.count()
    with pytest.raises(ValueError, match="not a kind of audit event"):
        audit_append(trial=trial, kind="something_new")
    assert trial.events.count() == before
    event = audit_append(trial=trial, kind=TrialEvent.Kind.ACCESS_REFUSED)
    assert event.kind == "access_refused" and type(event.kind) is str
    assert audit_chain_verify(trial).intact
