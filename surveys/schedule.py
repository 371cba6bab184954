"""Wave schedules: when a wave is open for a participant, and whether a schedule is sound."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings

from surveys.models import Instrument, Wave

# A year of days: a daily series longer than that is a mistake, not a design.
MAX_REPEAT_DAYS = 366


def wave_time_zone(wave: Wave) -> ZoneInfo:
    """The zone of a wave's times of day: its own, else the site's."""
    return ZoneInfo(wave.time_zone or settings.TIME_ZONE)


def wave_window(wave: Wave, enrolled_at: datetime) -> tuple[datetime, datetime]:
    """When ``wave`` opens and closes for someone enrolled at ``enrolled_at``.

    A wave with a time of day opens on the calendar day ``day_offset`` days after the day of
    enrolment (in the wave's time zone) at ``daily_opens_at`` and closes that day at
    ``daily_closes_at``, so a daily wave's link answers only its own day's window.
    """
    if wave.daily_opens_at is None or wave.daily_closes_at is None:
        opens = enrolled_at + timedelta(days=wave.day_offset)
        return opens, opens + timedelta(days=wave.window_days)
    zone = wave_time_zone(wave)
    day = enrolled_at.astimezone(zone).date() + timedelta(days=wave.day_offset)
    return (
        datetime.combine(day, wave.daily_opens_at, tzinfo=zone),
        datetime.combine(day, wave.daily_closes_at, tzinfo=zone),
    )


def daily_errors(wave: Wave) -> list[str]:
    """What is wrong with a wave's daily settings (repeat, time of day, time zone)."""
    errors: list[str] = []
    name = f"Wave {wave.index}"
    timed = wave.daily_opens_at is not None or wave.daily_closes_at is not None
    if not 1 <= wave.repeat_days <= MAX_REPEAT_DAYS:
        errors.append(f"{name}: it repeats on 1 to {MAX_REPEAT_DAYS} days (1 means once).")
    if (wave.repeat_days > 1 or timed) and wave.window_days != 1:
        # One occurrence a day: a day's window ends before the next day's opens.
        errors.append(f"{name}: a daily wave or one with a time of day has a one-day window.")
    if timed and (wave.daily_opens_at is None or wave.daily_closes_at is None):
        errors.append(f"{name}: give both the time it opens and the time it closes.")
    elif timed and wave.daily_opens_at >= wave.daily_closes_at:
        errors.append(f"{name}: the time it opens must come before the time it closes.")
    if wave.time_zone and wave.time_zone not in available_timezones():
        errors.append(f"{name}: {wave.time_zone} is not a time zone (e.g. Europe/Berlin).")
    return errors


def daily_occurrences(wave: Wave) -> list[Wave]:
    """The waves of the second and later days of a daily wave, not yet saved: numbered and
    timed on from ``wave``, with its window and time of day."""
    return [
        Wave(
            trial=wave.trial,
            index=wave.index + day,
            day_offset=wave.day_offset + day,
            window_days=wave.window_days,
            reminder_days=list(wave.reminder_days),
            one_page=wave.one_page,
            daily_opens_at=wave.daily_opens_at,
            daily_closes_at=wave.daily_closes_at,
            time_zone=wave.time_zone,
            series=wave,
        )
        for day in range(1, wave.repeat_days)
    ]


def schedule_errors(waves: Iterable[tuple[Wave, Sequence[Instrument]]]) -> list[str]:
    """Every problem with a schedule of waves (each with its instruments), as sentences.

    - Daily settings are sound (:func:`daily_errors`); a daily wave's later days are checked as
      the waves they become (:func:`daily_occurrences`).
    - Indices are unique and baseline is index 0 on day 0's side of the others.
    - A wave's window closes before the next wave opens, so one link means one survey.
    - Reminders fall inside the window.
    - An instrument asked again is asked no sooner than its recall window: WHO-5 asks about the
      last two weeks, so answering it weekly would count the same days twice.
    """
    waves = list(waves)
    errors: list[str] = []
    expanded = list(waves)
    for wave, instruments in waves:
        errors += daily_errors(wave)
        if wave.series_id is None and wave.repeat_days > 1 and not errors:
            expanded += [(day, instruments) for day in daily_occurrences(wave)]
    ordered = sorted(expanded, key=lambda pair: (pair[0].day_offset, pair[0].index))
    indices = [wave.index for wave, _ in ordered]
    if len(set(indices)) != len(indices):
        errors.append("Two waves have the same number.")
        errors += [
            f"Wave {wave.index} is asked on {wave.repeat_days} days, which take the numbers "
            f"{wave.index} to {wave.index + wave.repeat_days - 1}."
            for wave, _ in waves
            if wave.series_id is None and wave.repeat_days > 1
        ]
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
