"""Wave schedules: when a wave is open for a participant, and whether a schedule is sound."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from surveys.models import Instrument, Wave


def wave_window(wave: Wave, enrolled_at: datetime) -> tuple[datetime, datetime]:
    """When ``wave`` opens and closes for someone enrolled at ``enrolled_at``."""
    opens = enrolled_at + timedelta(days=wave.day_offset)
    return opens, opens + timedelta(days=wave.window_days)


def schedule_errors(waves: Iterable[tuple[Wave, Sequence[Instrument]]]) -> list[str]:
    """Every problem with a schedule of waves (each with its instruments), as sentences.

    - Indices are unique and baseline is index 0 on day 0's side of the others.
    - A wave's window closes before the next wave opens, so one link means one survey.
    - Reminders fall inside the window.
    - An instrument asked again is asked no sooner than its recall window: WHO-5 asks about the
      last two weeks, so answering it weekly would count the same days twice.
    """
    ordered = sorted(waves, key=lambda pair: (pair[0].day_offset, pair[0].index))
    errors: list[str] = []
    indices = [wave.index for wave, _ in ordered]
    if len(set(indices)) != len(indices):
        errors.append("Two waves have the same number.")
    if indices != sorted(indices):
        errors.append("Waves must be numbered in the order they open.")
    for wave, instruments in ordered:
        if not instruments:
            errors.append(f"Wave {wave.index} asks no questionnaire.")
        if wave.window_days < 1:
            errors.append(f"Wave {wave.index}: the window must be at least one day.")
        late = [day for day in wave.reminder_days if not 0 < day < wave.window_days]
        if late:
            errors.append(
                f"Wave {wave.index}: reminders must fall inside its {wave.window_days}-day window."
            )
    for (before, _), (after, _) in zip(ordered, ordered[1:], strict=False):
        if before.day_offset + before.window_days > after.day_offset:
            errors.append(
                f"Wave {before.index} is still open when wave {after.index} opens "
                f"(day {before.day_offset + before.window_days} > day {after.day_offset})."
            )
    last_asked: dict[str, Wave] = {}
    for wave, instruments in ordered:
        for instrument in instruments:
            recall = instrument.definition.recall_window_days
            previous = last_asked.get(instrument.code)
            if previous is not None and wave.day_offset - previous.day_offset < recall:
                errors.append(
                    f"{instrument.name} asks about the last {recall} days: wave {wave.index} "
                    f"comes {wave.day_offset - previous.day_offset} days after wave "
                    f"{previous.index}."
                )
            last_asked[instrument.code] = wave
    return errors
