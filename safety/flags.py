"""Flags on participants who need a coordinator's attention (docs/architecture.md, "Safety"):
an answer an instrument declares a safety item (raised by surveys.services.response_submit), and
a reliable deterioration on a primary outcome (raised after each analysis run by
analytics.safety_checks). A flag and its audit event name the participant's pseudonym, never the
arm, so coordinators and blinded bodies can act on it; the notifications app alerts the
coordinators from the event (trials.audit.register_event_listener).

Each flag is raised once per ``source_key`` (the response and item, or the run and outcome), so
a repeated submission or a re-delivered run raises nothing twice.
"""

from collections.abc import Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from safety.models import SafetyFlag
from trials.models import Participant, Trial, TrialEvent
from trials.services import event_record


def safety_answer_key(response_id: int, instrument: str, item: str) -> str:
    return f"response:{response_id}:{instrument}:{item}"


@transaction.atomic
def safety_answers_flag(
    *,
    participant: Participant,
    response_id: int,
    wave_index: int,
    triggered: Mapping[str, Mapping[str, int]],
) -> list[SafetyFlag]:
    """Raise a flag, with its ``SAFETY_ANSWER_FLAGGED`` event, for each triggering answer of one
    response (instrument code → item code → answer); the flags raised now."""
    raised = []
    now = timezone.now()
    for instrument, items in triggered.items():
        for item, answer in items.items():
            flag, created = SafetyFlag.objects.get_or_create(
                participant=participant,
                kind=SafetyFlag.Kind.SAFETY_ANSWER,
                source_key=safety_answer_key(response_id, instrument, item),
                defaults={
                    "trial_id": participant.trial_id,
                    "raised_at": now,
                    "detail": {
                        "instrument": instrument,
                        "item": item,
                        "answer": answer,
                        "wave": wave_index,
                    },
                },
            )
            if created:
                event_record(
                    trial=participant.trial,
                    kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED,
                    participant=participant.pk,
                    instrument=instrument,
                    item=item,
                    wave=wave_index,
                    flag=flag.pk,
                )
                raised.append(flag)
    return raised


def deterioration_key(run_id: int, outcome: str) -> str:
    return f"run:{run_id}:{outcome}"


@transaction.atomic
def deterioration_flags_raise(
    *, trial: Trial, run_id: int, deteriorated: Mapping[str, Mapping[str, dict]]
) -> list[SafetyFlag]:
    """Flag every participant with a reliable deterioration found by analysis run ``run_id``
    (outcome code → participant id → what was found: waves, scores, RCI), and write one
    ``DETERIORATION_FLAGGED`` event for the run with the count of new flags when there are
    any. The flags raised now (none for a run already flagged)."""
    raised = []
    now = timezone.now()
    for outcome, found in deteriorated.items():
        for participant_id, detail in found.items():
            flag, created = SafetyFlag.objects.get_or_create(
                participant_id=participant_id,
                kind=SafetyFlag.Kind.DETERIORATION,
                source_key=deterioration_key(run_id, outcome),
                defaults={"trial": trial, "raised_at": now, "detail": {**detail, "run": run_id}},
            )
            if created:
                raised.append(flag)
    if raised:
        event_record(
            trial=trial,
            kind=TrialEvent.Kind.DETERIORATION_FLAGGED,
            run=run_id,
            participants=len({flag.participant_id for flag in raised}),
            flags=len(raised),
            outcomes=sorted({outcome for outcome, found in deteriorated.items() if found}),
        )
    return raised


@transaction.atomic
def safety_flag_acknowledge(*, flag: SafetyFlag, actor: AbstractBaseUser, note: str) -> SafetyFlag:
    """A coordinator has seen the flag and says what they did; a flag is acknowledged once."""
    flag = SafetyFlag.objects.select_for_update().get(pk=flag.pk)
    if flag.acknowledged_at is not None:
        raise ValidationError("This flag has already been acknowledged.")
    if not note.strip():
        raise ValidationError("Say what you did about it.")
    flag.acknowledged_at = timezone.now()
    flag.acknowledged_by = actor
    flag.note = note.strip()
    flag.save(update_fields=["acknowledged_at", "acknowledged_by", "note"])
    # The chain keeps that a coordinator acted on the flag; not the note, which may hold
    # personal details.
    event_record(
        trial=flag.trial,
        kind=TrialEvent.Kind.SAFETY_FLAG_ACKNOWLEDGED,
        actor=actor,
        flag=flag.pk,
        flag_kind=flag.kind,
        participant=flag.participant_id,
    )
    return flag


def safety_answer_given(*, participant: Participant, response_id: int) -> bool:
    """Whether the response raised a safety-answer flag (the done page then shows the trial's
    support page)."""
    return SafetyFlag.objects.filter(
        participant=participant,
        kind=SafetyFlag.Kind.SAFETY_ANSWER,
        source_key__startswith=f"response:{response_id}:",
    ).exists()
