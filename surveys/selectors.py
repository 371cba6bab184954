"""Reads from surveys/."""

from datetime import datetime, timedelta

from surveys.models import Wave
from trials.models import Participant


def wave_open_for(participant: Participant, now: datetime) -> Wave | None:
    """The earliest wave whose window is open now and that the participant has not answered."""
    answered = participant.responses.values_list("wave_id", flat=True)
    for wave in participant.trial.waves.exclude(pk__in=answered).order_by("index"):
        opens = participant.enrolled_at + timedelta(days=wave.day_offset)
        if opens <= now < opens + timedelta(days=wave.window_days):
            return wave
    return None
