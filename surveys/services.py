"""Writes to surveys/."""

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from surveys.models import Instrument, Response, Score, Wave
from surveys.registry import shipped_definitions
from surveys.scoring import score, validate_answers
from trials.models import ConsentScope, Participant, Trial


@transaction.atomic
def instruments_sync() -> list[Instrument]:
    """Create or update the shipped instruments from their data files."""
    return [
        Instrument.objects.update_or_create(
            code=code, defaults={"name": definition["name"], "definition": definition}
        )[0]
        for code, definition in shipped_definitions().items()
    ]


@transaction.atomic
def wave_create(
    *,
    trial: Trial,
    index: int,
    day_offset: int,
    instrument_codes: Iterable[str],
    window_days: int = 7,
) -> Wave:
    wave = Wave.objects.create(
        trial=trial, index=index, day_offset=day_offset, window_days=window_days
    )
    instruments = list(Instrument.objects.filter(code__in=list(instrument_codes)))
    wave.instruments.set(instruments)
    return wave


def answers_errors(wave: Wave, answers: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """Item code → message for every invalid or missing answer of ``wave``."""
    errors: dict[str, str] = {}
    for instrument in wave.instruments.all():
        errors.update(validate_answers(instrument.definition, answers.get(instrument.code, {})))
    return errors


def response_submit(
    *,
    participant: Participant,
    wave: Wave,
    answers: Mapping[str, Mapping[str, int]],
    submitted_at: datetime | None = None,
) -> Response:
    """Store one wave's answers with their scores; a repeated submission returns the first one.

    Validation happens before anything is written; the response and its scores are one
    transaction, so a failure leaves nothing behind.
    """
    if participant.withdrawn_at is not None:
        raise ValidationError("This participant has withdrawn.")
    if not participant.consents.filter(
        scope=ConsentScope.SURVEYS, revoked_at__isnull=True
    ).exists():
        raise ValidationError("There is no active consent to surveys.")
    errors = answers_errors(wave, answers)
    if errors:
        raise ValidationError(errors)
    instruments = list(wave.instruments.all())
    try:
        with transaction.atomic():
            response = Response.objects.create(
                participant=participant,
                wave=wave,
                answers={i.code: dict(answers[i.code]) for i in instruments},
                submitted_at=submitted_at or timezone.now(),
            )
            Score.objects.bulk_create(
                Score(
                    response=response,
                    instrument=instrument,
                    dimension=instrument.definition["dimension"],
                    value=score(instrument.definition, answers[instrument.code]),
                )
                for instrument in instruments
            )
    except IntegrityError:
        # A double submission (two clicks, a retried request): keep the first.
        return Response.objects.get(participant=participant, wave=wave)
    return response


def participant_responses_erase(sender, *, participant: Participant, **kwargs) -> None:
    """Answers ``trials.signals.participant_erased``: a participant's answers and scores go."""
    Response.objects.filter(participant=participant).delete()
