"""Writes for safety/: adverse events reported by participants, recorded by coordinators and
assessed by them (docs/architecture.md, "Safety"). Each writes its audit event in the same
transaction; the event names the participant's pseudonym, the category, severity and
seriousness, never the free text (it may hold personal details) nor the arm (blinded roles
receive it through the notifications app). After every new or assessed event, once it is
committed, the plan's harm boundaries are checked (``safety.harms``)."""

import re
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from safety.harms import harm_boundaries_check
from safety.models import AdverseEvent
from trials.locks import trial_lock
from trials.models import Participant, Trial, TrialEvent
from trials.services import event_record

# What a participant may write; a report is a few sentences, not a document.
MAX_DESCRIPTION_CHARS = 4000
# The report form's idempotency key (``surveys.harm_reports``): 32 hex characters.
REPORT_KEY = re.compile(r"[0-9a-f]{32}")


def _check_choice(value: str, choices: type, what: str) -> None:
    if value not in choices.values:
        raise ValidationError(
            {what: f"Choose one of: {', '.join(choices.values)} (got {value!r})."}
        )


def _check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValidationError({"description": f"Write at most {MAX_DESCRIPTION_CHARS} characters."})


def _check_dates(onset_date: date | None, resolved_date: date | None) -> None:
    if onset_date and resolved_date and resolved_date < onset_date:
        raise ValidationError({"resolved_date": "The resolution is before the onset."})


def _check_harms_after_commit(trial: Trial, adverse_event: AdverseEvent) -> None:
    # Robust: the event is stored whatever the check does; a check that fails is logged by
    # Django, and the next event or finished analysis checks every boundary again.
    transaction.on_commit(
        lambda: harm_boundaries_check(trial=trial, trigger=f"adverse_event:{adverse_event.pk}"),
        robust=True,
    )


def adverse_event_reported(participant: Participant, report_key: str) -> AdverseEvent | None:
    """The participant's report sent with the form whose idempotency key is ``report_key``, if
    it was sent."""
    event = (
        TrialEvent.objects.filter(
            trial_id=participant.trial_id,
            kind=TrialEvent.Kind.ADVERSE_EVENT_REPORTED,
            detail__report_key=report_key,
            detail__participant=participant.pk,
        )
        .only("detail")
        .first()
    )
    if event is None:
        return None
    return AdverseEvent.objects.filter(pk=event.detail["adverse_event"]).first()


@transaction.atomic
def adverse_event_report(
    *,
    participant: Participant,
    category: str,
    severity: str,
    report_key: str,
    description: str = "",
    wave_index: int | None = None,
) -> AdverseEvent:
    """A participant's own report of something that went wrong (``source=participant``), with
    its ADVERSE_EVENT_REPORTED event. ``report_key`` is the form's idempotency key: sending the
    same form twice (a double click, a reload) returns the first report and writes nothing.
    Seriousness, relatedness and the rest wait for a coordinator's assessment."""
    _check_choice(category, AdverseEvent.Category, "category")
    _check_choice(severity, AdverseEvent.Severity, "severity")
    _check_description(description)
    if not REPORT_KEY.fullmatch(report_key or ""):
        raise ValidationError("The form is incomplete: please open it again.")
    # Two submissions of one form queue here; the second finds the first's event.
    trial_lock(participant.trial)
    earlier = adverse_event_reported(participant, report_key)
    if earlier is not None:
        return earlier
    adverse_event = AdverseEvent.objects.create(
        trial=participant.trial,
        participant=participant,
        source=AdverseEvent.Source.PARTICIPANT,
        category=category,
        severity=severity,
        description=description.strip(),
        wave_index=wave_index,
        reported_at=timezone.now(),
    )
    event_record(
        trial=participant.trial,
        kind=TrialEvent.Kind.ADVERSE_EVENT_REPORTED,
        adverse_event=adverse_event.pk,
        participant=participant.pk,
        category=category,
        severity=severity,
        wave=wave_index,
        report_key=report_key,
    )
    _check_harms_after_commit(participant.trial, adverse_event)
    return adverse_event


def _assessment_detail(adverse_event: AdverseEvent) -> dict:
    return {
        "adverse_event": adverse_event.pk,
        "participant": adverse_event.participant_id,
        "category": adverse_event.category,
        "severity": adverse_event.severity,
        "serious": adverse_event.serious,
        "relatedness": adverse_event.relatedness,
        "expected": adverse_event.expected,
        "outcome": adverse_event.outcome,
    }


@transaction.atomic
def adverse_event_record(
    *,
    actor: AbstractBaseUser,
    trial: Trial,
    participant: Participant,
    category: str,
    severity: str,
    serious: bool,
    relatedness: str = AdverseEvent.Relatedness.NOT_ASSESSED,
    expected: bool | None = None,
    outcome: str = AdverseEvent.Outcome.UNKNOWN,
    onset_date: date | None = None,
    resolved_date: date | None = None,
    description: str = "",
) -> AdverseEvent:
    """An adverse event a coordinator learnt of and records (``source=coordinator``), assessed
    as it is recorded, with its ADVERSE_EVENT_RECORDED event; ``serious`` in the event lets the
    notifications app tell every body and coordinator at once."""
    if participant.trial_id != trial.pk:
        raise ValidationError({"participant": "That participant is not in this trial."})
    _check_choice(category, AdverseEvent.Category, "category")
    _check_choice(severity, AdverseEvent.Severity, "severity")
    _check_choice(relatedness, AdverseEvent.Relatedness, "relatedness")
    _check_choice(outcome, AdverseEvent.Outcome, "outcome")
    _check_description(description)
    _check_dates(onset_date, resolved_date)
    now = timezone.now()
    adverse_event = AdverseEvent.objects.create(
        trial=trial,
        participant=participant,
        source=AdverseEvent.Source.COORDINATOR,
        category=category,
        severity=severity,
        description=description.strip(),
        serious=serious,
        relatedness=relatedness,
        expected=expected,
        outcome=outcome,
        onset_date=onset_date,
        resolved_date=resolved_date,
        reported_at=now,
        recorded_by=actor,
        assessed_at=now,
        assessed_by=actor,
    )
    event_record(
        trial=trial,
        kind=TrialEvent.Kind.ADVERSE_EVENT_RECORDED,
        actor=actor,
        newly_serious=serious,
        **_assessment_detail(adverse_event),
    )
    _check_harms_after_commit(trial, adverse_event)
    return adverse_event


@transaction.atomic
def adverse_event_assess(
    *,
    actor: AbstractBaseUser,
    adverse_event: AdverseEvent,
    serious: bool,
    relatedness: str,
    expected: bool | None,
    outcome: str,
    onset_date: date | None = None,
    resolved_date: date | None = None,
) -> AdverseEvent:
    """A coordinator's assessment of an adverse event (a participant's report, or a later look
    at a recorded one), with its ADVERSE_EVENT_ASSESSED event. The category, severity and text
    stay as reported. ``newly_serious`` in the event says whether this assessment is the one
    that made it serious, so a reassessment does not announce the same serious event again."""
    _check_choice(relatedness, AdverseEvent.Relatedness, "relatedness")
    _check_choice(outcome, AdverseEvent.Outcome, "outcome")
    _check_dates(onset_date, resolved_date)
    adverse_event = AdverseEvent.objects.select_for_update().get(pk=adverse_event.pk)
    was_serious = adverse_event.serious is True
    adverse_event.serious = serious
    adverse_event.relatedness = relatedness
    adverse_event.expected = expected
    adverse_event.outcome = outcome
    adverse_event.onset_date = onset_date
    adverse_event.resolved_date = resolved_date
    adverse_event.assessed_at = timezone.now()
    adverse_event.assessed_by = actor
    adverse_event.save()
    event_record(
        trial=adverse_event.trial,
        kind=TrialEvent.Kind.ADVERSE_EVENT_ASSESSED,
        actor=actor,
        newly_serious=serious and not was_serious,
        **_assessment_detail(adverse_event),
    )
    _check_harms_after_commit(adverse_event.trial, adverse_event)
    return adverse_event
