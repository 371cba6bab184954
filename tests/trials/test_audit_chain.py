"""The audit trail is a hash chain: deleting, reordering or editing any event, and deleting,
editing or inserting any approval, deviation or ledger charge, is found by verify_audit_chain
even when the database owner did it with the triggers switched off."""

import os

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from federated.models import PrivacyBudget, PrivacyCharge
from federated.services import privacy_charge_reserve
from tests.federated.conftest import TELEMETRY
from tests.trials.factories import enrolling_trial
from trials.audit import GENESIS, audit_chain_verify
from trials.models import Approval, ProtocolDeviation, TrialEvent
from trials.services import deviation_record, participant_enrol
from trials.telemetry import TelemetrySection

CHAINED_TABLES = [
    "trials_trialevent",
    "trials_approval",
    "trials_protocoldeviation",
    "federated_privacycharge",
]


def as_owner_with_triggers_off(*statements: str) -> None:
    """What a database owner can do: switch the record's triggers off and rewrite it."""
    url = os.environ.get("DATABASE_OWNER_URL") or os.environ["DATABASE_URL"]
    conninfo = psycopg.conninfo.conninfo_to_dict(url) | {"dbname": connection.settings_dict["NAME"]}
    with psycopg.connect(**conninfo) as conn:
        # Django's foreign keys are deferred; ALTER TABLE refuses while their checks are pending.
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in CHAINED_TABLES:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)
        for table in CHAINED_TABLES:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def problems(trial) -> list[str]:
    return audit_chain_verify(trial).problems


@pytest.fixture
def trial(transactional_db):
    trial = enrolling_trial(plan=None)
    participant_enrol(
        trial=trial,
        email="p@example.org",
        consent_document=trial.consent_documents.get(),
        scopes=["surveys"],
    )
    deviation_record(trial=trial, description="Wave 2 went out a day late.")
    privacy_charge_reserve(
        trial=trial,
        schema=TelemetrySection.model_validate(TELEMETRY),
        key="w0",
        nano_rho=1000,
        measurements={},
    )
    return trial


def event_at(trial, sequence: int) -> TrialEvent:
    return TrialEvent.objects.get(trial=trial, sequence=sequence)


def test_an_untouched_chain_verifies_and_links_every_event_and_record(trial, capsys):
    report = audit_chain_verify(trial)
    assert report.intact, report.problems
    events = list(TrialEvent.objects.filter(trial=trial).order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].previous_hash == GENESIS
    assert all(b.previous_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert (report.head_sequence, report.head_hash) == (events[-1].sequence, events[-1].hash)
    recorded = {e.hash for e in events if "record" in e.detail}
    for model in (Approval, ProtocolDeviation, PrivacyCharge):
        rows = model.objects.all()
        assert rows and all(row.chain_hash in recorded for row in rows)
    call_command("verify_audit_chain", trial.slug)
    assert f"intact, {len(events)} events" in capsys.readouterr().out


def test_a_deleted_event_is_found_and_shown_on_the_trial_page(trial, admin_client):
    page = f"/admin/trials/trial/{trial.pk}/change/"
    assert "intact (" in admin_client.get(page).content.decode()
    middle = event_at(trial, 3)
    as_owner_with_triggers_off(f"DELETE FROM trials_trialevent WHERE id = {middle.pk}")
    found = problems(trial)
    assert any("Event 3 is missing" in p for p in found), found
    with pytest.raises(CommandError, match="BROKEN"):
        call_command("verify_audit_chain", trial.slug)
    assert "BROKEN: Event 3 is missing" in admin_client.get(page).content.decode()


def test_an_edited_event_is_found(trial):
    event = event_at(trial, 2)
    as_owner_with_triggers_off(
        f"""UPDATE trials_trialevent SET detail = '{{"note": "nothing happened"}}'
        WHERE id = {event.pk}"""
    )
    assert any(f"Event 2 ({event.kind}) was changed" in p for p in problems(trial))


def test_reordered_events_are_found(trial):
    first, second = event_at(trial, 2), event_at(trial, 3)
    as_owner_with_triggers_off(
        f"UPDATE trials_trialevent SET sequence = 1000 WHERE id = {first.pk}",
        f"UPDATE trials_trialevent SET sequence = 2 WHERE id = {second.pk}",
        f"UPDATE trials_trialevent SET sequence = 3 WHERE id = {first.pk}",
    )
    found = problems(trial)
    assert any("does not follow the event before it" in p for p in found), found


def test_a_deleted_approval_an_edited_deviation_and_an_inserted_charge_are_found(trial):
    approval = Approval.objects.filter(preregistration__trial=trial).first()
    deviation = ProtocolDeviation.objects.get(trial=trial)
    budget = PrivacyBudget.objects.get(trial=trial)
    as_owner_with_triggers_off(
        f"DELETE FROM trials_approval WHERE id = {approval.pk}",
        f"UPDATE trials_protocoldeviation SET description = 'On time.' WHERE id = {deviation.pk}",
        "INSERT INTO federated_privacycharge (budget_id, key, nano_rho, status, measurements, "
        f"d_in, reserved_at, chain_hash) VALUES ({budget.pk}, 'forged', 1, 'reserved', '{{}}', "
        "1, now(), '')",
    )
    found = problems(trial)
    assert any(f"approval {approval.pk} recorded by event" in p for p in found), found
    assert any(f"protocol deviation {deviation.pk} differs" in p for p in found), found
    assert any("has no audit event" in p and "privacy charge" in p for p in found), found
