"""Reads from surveys/."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from surveys.models import Response, ResponseDraft, Wave
from surveys.schedule import wave_window
from trials.models import Participant


class WaveState(StrEnum):
    NOT_YET_OPEN = "not_yet_open"
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


@dataclass(frozen=True)
class SurveyStatus:
    state: WaveState
    opens: datetime
    closes: datetime
    draft: ResponseDraft | None


def survey_status(participant: Participant, wave: Wave, now: datetime) -> SurveyStatus:
    """Where ``participant`` stands with ``wave`` at ``now``."""
    opens, closes = wave_window(wave, participant.enrolled_at)
    draft = None
    if Response.objects.filter(participant=participant, wave=wave).exists():
        state = WaveState.ANSWERED
    elif now < opens:
        state = WaveState.NOT_YET_OPEN
    elif now >= closes:
        state = WaveState.CLOSED
    else:
        state = WaveState.OPEN
        draft = ResponseDraft.objects.filter(participant=participant, wave=wave).first()
    return SurveyStatus(state=state, opens=opens, closes=closes, draft=draft)


def wave_open_for(participant: Participant, now: datetime) -> Wave | None:
    """The earliest wave whose window is open now and that the participant has not answered."""
    answered = participant.responses.values_list("wave_id", flat=True)
    for wave in participant.trial.waves.exclude(pk__in=answered).order_by("index"):
        opens, closes = wave_window(wave, participant.enrolled_at)
        if opens <= now < closes:
            return wave
    return None
