"""The device's own record of assistant use, kept in a small SQLite file on the device.

Nothing here leaves the device: the ClientApp asks :meth:`EventLog.window_vector` for one bounded
vector of whole numbers per release window and sends only that. Times are stored in UTC; days
and "late night" are judged in the device's local time zone.

Stdlib only (sqlite3, zoneinfo), so the SDK adds no dependency to an assistant app.
"""

import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

LATE_NIGHT_ENDS = time(5, 0)  # use between midnight and 5 a.m. local time is "late night"
# A window's ratings leave as "rating.<question>" (the mean, in hundredths, 0 without a rating)
# and "rated.<question>" (1 if the user answered the question in the window), as
# trials.telemetry.RatingQuestion names them; the answers themselves never leave.
RATING_MEAN, RATED = "rating.", "rated."
RATING_HUNDREDTHS = 100

_SCHEMA = """
create table if not exists session (started_at text not null, ended_at text not null);
create table if not exists conversation (at text not null);
create table if not exists decision (at text not null, own integer not null);
create table if not exists rating (at text not null, question text not null,
                                   value integer not null);
create table if not exists consent (scope text primary key, granted integer not null,
                                    changed_at text not null);
"""


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Give times with a time zone (aware datetimes).")
    return moment.astimezone(UTC).isoformat()


class EventLog:
    """Append-only usage events and the user's telemetry consent, in one SQLite file."""

    def __init__(self, path: str | Path, *, timezone: str = "UTC") -> None:
        self.path = Path(path)
        self.zone = ZoneInfo(timezone)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    # --- what the assistant app records ---------------------------------------------------

    def record_session(self, started_at: datetime, ended_at: datetime) -> None:
        if ended_at < started_at:
            raise ValueError("A session cannot end before it starts.")
        with self._connect() as db:
            db.execute("insert into session values (?, ?)", (_utc(started_at), _utc(ended_at)))

    def record_conversation(self, at: datetime) -> None:
        with self._connect() as db:
            db.execute("insert into conversation values (?)", (_utc(at),))

    def record_decision(self, at: datetime, *, own: bool) -> None:
        """A decision the user consulted the assistant on; ``own`` when they decided otherwise
        than (or without) its suggestion."""
        with self._connect() as db:
            db.execute("insert into decision values (?, ?)", (_utc(at), int(own)))

    def record_rating(self, at: datetime, *, question: str, value: int) -> None:
        """The user's answer to a rating question about one conversation (e.g. "did this
        conversation help you think for yourself?"), a whole number on the question's scale."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("A rating is a whole number on the question's scale.")
        with self._connect() as db:
            db.execute("insert into rating values (?, ?, ?)", (_utc(at), question, value))

    def set_telemetry_consent(self, granted: bool, *, at: datetime | None = None) -> None:
        """Mirror the participant's telemetry consent (granted or revoked on the platform)."""
        with self._connect() as db:
            db.execute(
                "insert or replace into consent values ('telemetry', ?, ?)",
                (int(granted), _utc(at or datetime.now(UTC))),
            )

    @property
    def telemetry_consented(self) -> bool:
        with self._connect() as db:
            row = db.execute("select granted from consent where scope = 'telemetry'").fetchone()
        return bool(row and row[0])

    def prune(self, before: date) -> None:
        """Forget events older than ``before`` (local day): the log stays small."""
        cutoff = _utc(datetime.combine(before, time(), self.zone))
        with self._connect() as db:
            db.execute("delete from session where ended_at < ?", (cutoff,))
            db.execute("delete from conversation where at < ?", (cutoff,))
            db.execute("delete from decision where at < ?", (cutoff,))
            db.execute("delete from rating where at < ?", (cutoff,))

    # --- what the ClientApp sends ---------------------------------------------------------

    def window_totals(self, start: date, end: date) -> dict[str, int]:
        """Every metric the SDK knows, over the local days ``start`` ≤ day < ``end``."""
        lo = datetime.combine(start, time(), self.zone).astimezone(UTC)
        hi = datetime.combine(end, time(), self.zone).astimezone(UTC)
        with self._connect() as db:
            sessions = [
                (datetime.fromisoformat(a), datetime.fromisoformat(b))
                for a, b in db.execute(
                    "select started_at, ended_at from session where started_at < ? and "
                    "ended_at > ?",
                    (hi.isoformat(), lo.isoformat()),
                )
            ]
            conversations = db.execute(
                "select count(*) from conversation where at >= ? and at < ?",
                (lo.isoformat(), hi.isoformat()),
            ).fetchone()[0]
            decisions, own = db.execute(
                "select count(*), coalesce(sum(own), 0) from decision where at >= ? and at < ?",
                (lo.isoformat(), hi.isoformat()),
            ).fetchone()
        seconds = sum((min(b, hi) - max(a, lo)).total_seconds() for a, b in sessions)
        return {
            "sessions": sum(lo <= a < hi for a, _ in sessions),
            "minutes": int(seconds // 60),
            "conversations": conversations,
            "decisions": decisions,
            "own_decisions": own,
            "late_night_days": len(self._late_night_days(sessions, start, end)),
        }

    def _late_night_days(
        self, sessions: list[tuple[datetime, datetime]], start: date, end: date
    ) -> set[date]:
        days = set()
        for a, b in sessions:
            a, b = a.astimezone(self.zone), b.astimezone(self.zone)
            day = a.date()
            while day <= b.date():
                night_start = datetime.combine(day, time(), self.zone)
                night_end = datetime.combine(day, LATE_NIGHT_ENDS, self.zone)
                if start <= day < end and a < night_end and b > night_start:
                    days.add(day)
                day += timedelta(days=1)
        return days

    def window_ratings(self, start: date, end: date, question: str) -> dict[str, int]:
        """One rating question over the local days ``start`` ≤ day < ``end``: the mean of the
        user's answers in hundredths (rounded; 0 without an answer) and whether there was one."""
        lo = datetime.combine(start, time(), self.zone).astimezone(UTC)
        hi = datetime.combine(end, time(), self.zone).astimezone(UTC)
        with self._connect() as db:
            mean = db.execute(
                "select avg(value) from rating where question = ? and at >= ? and at < ?",
                (question, lo.isoformat(), hi.isoformat()),
            ).fetchone()[0]
        return {
            RATING_MEAN + question: 0 if mean is None else round(mean * RATING_HUNDREDTHS),
            RATED + question: int(mean is not None),
        }

    def window_vector(
        self, start: date, end: date, bounds: dict[str, tuple[int, int]]
    ) -> dict[str, int]:
        """The metrics and ratings the server asks for, clamped to their bounds on the device."""
        totals = self.window_totals(start, end)
        questions = {
            code.removeprefix(prefix)
            for code in bounds
            for prefix in (RATING_MEAN, RATED)
            if code.startswith(prefix)
        }
        for question in sorted(questions):
            totals |= self.window_ratings(start, end, question)
        unknown = set(bounds) - set(totals)
        if unknown:
            raise ValueError(f"This SDK cannot compute {', '.join(sorted(unknown))}.")
        return {code: min(max(totals[code], lo), hi) for code, (lo, hi) in bounds.items()}

    def dose_vector(
        self, start: date, end: date, *, metric: str, upper: int, centre: int, change: int
    ) -> dict[str, int]:
        """What the device returns for the dose release: ``metric``'s total over the local
        days ``start`` ≤ day < ``end``, clipped to [0, ``upper``] and less ``centre``, the
        outcome change the server sent (whole steps) and their products. The change is the
        participant's own, sent to this device alone; the server checks every product."""
        totals = self.window_totals(start, end)
        if metric not in totals:
            raise ValueError(f"This SDK cannot compute {metric}.")
        return dose_products(totals[metric], upper=upper, centre=centre, change=change)


def dose_products(usage: int, *, upper: int, centre: int, change: int) -> dict[str, int]:
    """The dose vector of a usage total and a change (whole steps): usage clipped to
    [0, ``upper``] less ``centre``, the change, and their products."""
    centred = min(max(usage, 0), upper) - centre
    return {
        "usage": centred,
        "change": change,
        "usage_change": centred * change,
        "usage_squared": centred * centred,
        "change_squared": change * change,
    }
