"""What an oversight body's pages share, wherever they are (the admin's decision page,
trials.admin; the body's own page, dashboards.oversight): the plan under review as a document,
what changed since the version each body approved last, and carrying out a body's decision
through the services."""

import difflib
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from trials.forms import OversightDecisionForm
from trials.models import OversightBody, PreRegistration, Trial
from trials.registry_export import export_arguments, preregistration_markdown
from trials.selectors import preregistration_current, preregistration_last_approved
from trials.services import (
    approval_record,
    preregistration_changes_request,
    suspension_lift,
    trial_suspend,
)

Decision = OversightDecisionForm


@dataclass(frozen=True)
class Comparison:
    """What changed for bodies since the version they approved last (None: they approved none
    of this trial's versions)."""

    bodies: str
    previous: PreRegistration | None
    diff: list[tuple[str, str]]


def plan_document(prereg: PreRegistration) -> str:
    """The frozen version as the Markdown document the registry receives."""
    return preregistration_markdown(**export_arguments(prereg))


def _plan_sections(prereg: PreRegistration) -> list[str]:
    """The version's OSF sections as Markdown lines, without the provenance table (its
    version, time and hashes differ between any two versions)."""
    fields = export_arguments(prereg) | {"audit_chain_head": None}
    lines = preregistration_markdown(**fields).splitlines()
    return lines[next(n for n, line in enumerate(lines) if line.startswith("## ")) :]


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    return {"@": "hunk", "+": "added", "-": "removed"}.get(line[:1], "same")


def plan_comparisons(current: PreRegistration, bodies: QuerySet[OversightBody]) -> list[Comparison]:
    """For ``bodies``, grouped by the version each approved last: the difference between that
    version's sections and ``current``'s."""
    by_previous: dict[PreRegistration | None, list[str]] = {}
    for body in bodies.order_by("name"):
        previous = preregistration_last_approved(current.trial, body)
        by_previous.setdefault(previous, []).append(body.name)
    comparisons = []
    for previous, names in by_previous.items():
        diff = []
        if previous is not None and previous != current:
            lines = difflib.unified_diff(
                _plan_sections(previous),
                _plan_sections(current),
                f"version {previous.version}",
                f"version {current.version}",
                lineterm="",
            )
            diff = [(_diff_kind(line), line) for line in lines]
        comparisons.append(Comparison(", ".join(names), previous, diff))
    return comparisons


def oversight_decide(
    *, trial: Trial, body: OversightBody, decision: str, note: str, actor: AbstractBaseUser
) -> str:
    """Carry out a body's decision (one of ``OversightDecisionForm``'s) through its service;
    what happened, in a sentence. The services check that ``actor`` acts for ``body``."""
    if decision == Decision.SUSPEND:
        trial_suspend(trial=trial, body=body, reason=note, actor=actor)
        return f"{body.name} suspended the trial."
    if decision == Decision.LIFT:
        suspension_lift(trial=trial, body=body, rationale=note, actor=actor)
        trial.refresh_from_db()
        return f"{body.name} lifted its suspension; the trial is now {trial.get_state_display()}."
    current = preregistration_current(trial)
    if current is None:
        raise ValidationError("There is no frozen plan to approve.")
    if decision == Decision.APPROVE:
        approval_record(body=body, preregistration=current, actor=actor, note=note)
        return f"{body.name} approved plan version {current.version}."
    preregistration_changes_request(body=body, preregistration=current, actor=actor, note=note)
    return f"{body.name} asked for changes to plan version {current.version}."
