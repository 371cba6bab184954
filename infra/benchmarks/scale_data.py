"""A large synthetic trial written straight into PostgreSQL with ``COPY``, for the analysis
scaling benchmark (``bench_analysis_scale``).

The trial itself (arms, waves, the frozen and approved plan, the consent document) comes from
``analytics.seeding.synthetic_trial_open``, as every synthetic trial's does; its waves then ask
three more shipped instruments, so each response carries five scores: WHO-5 (the plan's
primary outcome), SWLS (its secondary), the Flourishing Scale, GAD-7 and PHQ-9 (exploratory).
The cohort (participants, their allocations and consents, their responses with item answers
as ``Response.answers`` stores them, and the responses' scores) is generated in numpy and
streamed to PostgreSQL's ``COPY`` a chunk of participants at a time, bypassing the ORM and the
survey service, which at a million participants would take days.

The data follow ``analytics.simulate``'s growth model: per person and score a level and a
growth per wave, the treatment arm growing ``EFFECT_SHARE`` of the score's range per wave faster
than control (the arms drifting apart symmetrically about the middle of the range), and normal
noise. After baseline a participant skips each wave at random with probability ``SKIP`` and
drops out for good with a constant hazard, so that ``DROPOUT`` of them have left before the final
wave (both completely at random, so the growth models' estimates are unbiased). The spreads
are small enough that hardly any score meets the ends of its range by the final wave: clipping
would shrink the observed difference away from the truth the benchmark checks the estimate
against. Item answers are drawn around the person's level and then moved one point at a time
until their total is the score, as ``analytics.simulate.answers_for_score`` does for one
response (:func:`answers_for_totals` does it for many at once).

Index builds are deferred: the big tables' constraints and indexes are dropped before the
load and created again after it, with PostgreSQL's own definitions of them
(:func:`indexes_deferred`), which builds each index in one sort instead of row by row.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from analytics.simulate import ITEM_NOISE_SHARE

SLUG = "scale"
WAVES = 20
# The plan's two instruments (analytics.seeding) and three more, each scored as one sum of all
# its items, so every response has five scores.
INSTRUMENTS = ("who5", "swls", "flourishing_scale", "gad7", "phq9")
PRIMARY = "who5"
# Per wave after baseline: the chance of skipping it, and (over the whole trial) the share of
# participants who have dropped out before the final wave.
SKIP = 0.15
DROPOUT = 0.2
# The true growth difference per wave (treatment − control), as a share of each score's range.
EFFECT_SHARE = 0.005
# Between-person SD of the level, of the growth per wave, and the residual SD, as shares of the
# score's range: at the final wave a score's SD is about 0.11 of the range and its arm's mean
# within 0.05 of the middle, so under 1 in 10,000 scores is clipped at either end.
LEVEL_SHARE = 0.08
SLOPE_SHARE = 0.003
NOISE_SHARE = 0.05
# Participants generated and written per chunk: bounds the loader's memory.
CHUNK = 20_000
# The tables the load fills in bulk, whose indexes and constraints are built after it.
BULK_TABLES = (
    "trials_participant",
    "trials_allocation",
    "trials_consentgrant",
    "surveys_response",
    "surveys_score",
)


@dataclass(frozen=True)
class ScoreModel:
    """One instrument's single sum score: its items, answer range and multiplier, and the
    growth model's parameters on its scale."""

    instrument: str
    instrument_id: int
    code: str
    dimension: str
    items: tuple[str, ...]
    reverse: tuple[bool, ...]
    low: int
    high: int
    multiplier: float

    @property
    def score_low(self) -> float:
        return self.low * len(self.items) * self.multiplier

    @property
    def score_high(self) -> float:
        return self.high * len(self.items) * self.multiplier

    @property
    def span(self) -> float:
        return self.score_high - self.score_low

    @property
    def effect(self) -> float:
        """The true growth difference per wave, treatment − control, in score points."""
        return EFFECT_SHARE * self.span


@dataclass
class LoadReport:
    """What a load wrote and how long each part took (seconds)."""

    slug: str
    participants: int
    responses: int = 0
    scores: int = 0
    truth: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    database_bytes: int = 0


def score_models() -> list[ScoreModel]:
    """The five scores, from the instruments as stored (``instruments_sync`` loads them)."""
    from surveys.models import Instrument

    stored = {i.code: i for i in Instrument.objects.filter(code__in=INSTRUMENTS)}
    models = []
    for code in INSTRUMENTS:
        definition = stored[code].definition
        (score,) = definition.scores
        if score.rule != "sum" or score.items is not None:
            raise ValueError(f"{code} is not scored as one sum of all its items.")
        models.append(
            ScoreModel(
                instrument=code,
                instrument_id=stored[code].pk,
                code=score.code,
                dimension=score.dimension,
                items=tuple(definition.item_codes),
                reverse=tuple(bool(item.reverse) for item in definition.items),
                low=definition.scale.min,
                high=definition.scale.max,
                multiplier=float(score.multiplier),
            )
        )
    return models


def answers_for_totals(
    totals: np.ndarray, n_items: int, low: int, high: int, rng: np.random.Generator
) -> np.ndarray:
    """Item values (rows × ``n_items``, before reverse keying) whose row sums are ``totals``.

    The rule of ``analytics.simulate.answers_for_score``, for many rows at once: each item is
    the row's mean item value plus noise of SD ``ITEM_NOISE_SHARE`` × the scale's range,
    rounded to the scale; then, while a row's sum differs from its total, the item that can
    still move that way and whose draw most wants to is moved one point."""
    totals = np.asarray(totals, dtype=np.int64)
    if np.any(totals < low * n_items) or np.any(totals > high * n_items):
        raise ValueError("A total lies outside what the items can sum to.")
    drawn = totals[:, None] / n_items + rng.normal(
        0.0, ITEM_NOISE_SHARE * (high - low), (len(totals), n_items)
    )
    values = np.clip(np.round(drawn), low, high).astype(np.int8)
    gap = totals - values.sum(axis=1, dtype=np.int64)
    rows = np.flatnonzero(gap)
    # Only the rows still off their total are worked on, each pass moving one item of each.
    current, wanted, left = values[rows], drawn[rows], gap[rows]
    while rows.size:
        step = np.sign(left)
        movable = np.where(step[:, None] > 0, current < high, current > low)
        pull = np.where(movable, (wanted - current) * step[:, None], -np.inf)
        current[np.arange(rows.size), np.argmax(pull, axis=1)] += step.astype(np.int8)
        left -= step
        values[rows] = current
        still = left != 0
        rows, current, wanted, left = rows[still], current[still], wanted[still], left[still]
    return values


# Fixed-width text rows: every column of a chunk is a block of bytes per row, so a chunk's COPY
# text is a template row repeated and the variable bytes written into it by numpy, with no
# Python loop over rows.

# "0000" to "9999": integers are written four digits at a time.
_FOUR_DIGITS = np.array([f"{i:04d}" for i in range(10_000)], "S4").view(np.uint8).reshape(-1, 4)


def _digits(values: np.ndarray, width: int | None = None) -> np.ndarray:
    """Non-negative integers as zero-padded ASCII digits, one row of ``width`` bytes each
    (default: as many as the largest needs)."""
    values = np.asarray(values, dtype=np.int64)
    largest = int(values.max()) if values.size else 0
    if width is None:
        width = len(str(largest))
    if values.size and (values.min() < 0 or largest >= 10**width):
        raise ValueError(f"A value does not fit {width} digits.")
    groups = -(-width // 4)
    pieces = [_FOUR_DIGITS[(values // 10 ** (4 * g)) % 10_000] for g in range(groups - 1, -1, -1)]
    return np.concatenate(pieces, axis=1)[:, 4 * groups - width :]


def _timestamps(seconds: np.ndarray) -> np.ndarray:
    """Unix times as ``YYYY-MM-DDTHH:MM:SS+00``, one row of bytes each."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype("S19")
    zone = np.broadcast_to(np.frombuffer(b"+00", np.uint8), (len(seconds), 3))
    return np.concatenate([text.view(np.uint8).reshape(-1, 19), zone], axis=1)


Column = np.ndarray | bytes | list


def _rows(n: int, columns: list[Column]) -> np.ndarray:
    """COPY text of ``n`` rows (an array of its bytes, handed to ``COPY`` without a copy into
    a ``bytes``): the columns joined by tabs, each row ended by a newline. A
    column is a block of bytes per row, a constant for every row, or a list of those written
    one after the other."""
    parts: list[np.ndarray | bytes] = []
    for position, column in enumerate(columns):
        if position:
            parts.append(b"\t")
        parts += column if isinstance(column, list) else [column]
    parts.append(b"\n")
    width = sum(len(p) if isinstance(p, bytes) else p.shape[1] for p in parts)
    template = np.empty(width, np.uint8)
    places = []
    at = 0
    for part in parts:
        size = len(part) if isinstance(part, bytes) else part.shape[1]
        if isinstance(part, bytes):
            template[at : at + size] = np.frombuffer(part, np.uint8)
        else:
            places.append((at, part))
        at += size
    out = np.empty((n, width), np.uint8)
    out[:] = template
    for at, part in places:
        out[:, at : at + part.shape[1]] = part
    return out


def _answers_json(models: list[ScoreModel], values: list[np.ndarray]) -> list:
    """``Response.answers`` as JSON text, a column for :func:`_rows`: each instrument's answers
    by item code (``{"who5": {"who5_1": 3, …}, …}``); one-digit answers get a space before
    them where another item's can have two, so that every row has the same width."""
    parts: list[np.ndarray | bytes] = []
    text = b"{"
    for position, (model, answers) in enumerate(zip(models, values, strict=True)):
        text += (b", " if position else b"") + f'"{model.instrument}": {{'.encode()
        width = len(str(model.high))
        for item, code in enumerate(model.items):
            text += (b", " if item else b"") + f'"{code}": '.encode()
            parts += [text, _spaced(answers[:, item], width)]
            text = b""
        text += b"}"
    parts.append(text + b"}")
    return parts


def _spaced(values: np.ndarray, width: int) -> np.ndarray:
    """Integers as ASCII, right-aligned in ``width`` bytes with spaces before them."""
    if width == 1:
        return (np.asarray(values) + ord("0")).astype(np.uint8)[:, None]
    digits = _digits(values, width).copy()
    lead = np.cumprod(digits[:, :-1] == ord("0"), axis=1).astype(bool)
    digits[:, :-1][lead] = ord(" ")
    return digits


def _chunks(participants: int) -> Iterator[range]:
    for start in range(0, participants, CHUNK):
        yield range(start, min(start + CHUNK, participants))


def participant_code(number: int) -> str:
    """The participant's id: fixed width, so the COPY rows are; ordered as the numbers are."""
    return f"s{number:09d}"


@dataclass(frozen=True)
class _Ids:
    trial: int
    community: int
    document: int
    arms: tuple[int, int]
    waves: tuple[int, ...]
    start: int  # enrolment opens, Unix seconds


@dataclass(frozen=True)
class Cohort:
    """One chunk of the cohort: who they are, their arm, and their observed scores."""

    numbers: np.ndarray
    arm: np.ndarray  # 0 control, 1 treatment
    enrolled: np.ndarray  # Unix seconds
    observed: np.ndarray  # participants × waves, bool
    totals: list[np.ndarray]  # per score: participants × waves, the sum of the items


def simulate_chunk(numbers: range, models: list[ScoreModel], seed: int, start: int = 0) -> Cohort:
    """The chunk's participants, from a random stream of their chunk's own (so a chunk is the
    same whatever the chunks before it), arms balanced within the chunk."""
    rng = np.random.default_rng([seed, numbers.start])
    n = len(numbers)
    arm = rng.permutation(np.arange(n) % 2)
    waves = np.arange(WAVES, dtype=float)
    hazard = 1 - (1 - DROPOUT) ** (1 / (WAVES - 1))
    # The wave after which each participant leaves (WAVES: never), then the waves skipped.
    leaves = np.where(rng.random((n, WAVES - 1)) < hazard, np.arange(1, WAVES), WAVES).min(axis=1)
    observed = (waves[None, :] < leaves[:, None]) & (
        (waves[None, :] == 0) | (rng.random((n, WAVES)) >= SKIP)
    )
    totals = []
    for model in models:
        middle = (model.score_low + model.score_high) / 2
        level = rng.normal(middle, LEVEL_SHARE * model.span, n)
        slope = rng.normal(0.0, SLOPE_SHARE * model.span, n) + model.effect * (arm - 0.5)
        score = level[:, None] + slope[:, None] * waves[None, :]
        score += rng.normal(0.0, NOISE_SHARE * model.span, score.shape)
        score = np.clip(score, model.score_low, model.score_high)
        k = len(model.items)
        totals.append(
            np.clip(np.round(score / model.multiplier), model.low * k, model.high * k).astype(
                np.int64
            )
        )
    enrolled = start + rng.integers(0, 72 * 3600, n)
    return Cohort(np.asarray(numbers), arm, enrolled, observed, totals)


def _copy(cursor, table: str, columns: str, text: np.ndarray) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(memoryview(text.reshape(-1)))


def _load_chunk(
    cursor, cohort: Cohort, models: list[ScoreModel], ids: _Ids, first_response: int, seed: int
) -> tuple[int, int]:
    """COPY one chunk; the responses and scores written."""
    n = len(cohort.numbers)
    codes = np.concatenate(
        [np.full((n, 1), ord("s"), np.uint8), _digits(cohort.numbers, 9)], axis=1
    )
    enrolled = _timestamps(cohort.enrolled)
    _copy(
        cursor,
        "trials_participant",
        "id, trial_id, community_id, locale, enrolled_at, withdrawal_reason",
        _rows(n, [codes, str(ids.trial).encode(), str(ids.community).encode(), b"en", enrolled,
                  b""]),
    )  # fmt: skip
    arm_ids = np.array(ids.arms)[cohort.arm]
    _copy(
        cursor,
        "trials_allocation",
        "participant_id, arm_id, allocated_at",
        _rows(n, [codes, _digits(arm_ids), enrolled]),
    )
    for offset, scope in enumerate((b"surveys", b"telemetry")):
        grant_ids = 2 * cohort.numbers + offset + 1
        _copy(
            cursor,
            "trials_consentgrant",
            "id, participant_id, document_id, scope, granted_at",
            _rows(n, [_digits(grant_ids), codes, str(ids.document).encode(), scope, enrolled]),
        )
    person, wave = np.nonzero(cohort.observed)
    count = len(person)
    response_ids = first_response + np.arange(count)
    rng = np.random.default_rng([seed + 2, int(cohort.numbers[0])])
    answers = []
    for model, totals in zip(models, cohort.totals, strict=True):
        values = answers_for_totals(
            totals[person, wave], len(model.items), model.low, model.high, rng
        )
        mirrored = np.array(model.reverse)
        values[:, mirrored] = model.low + model.high - values[:, mirrored]
        answers.append(values)
    submitted = cohort.enrolled[person] + wave * 14 * 86400 + rng.integers(3600, 96 * 3600, count)
    languages = ("{" + ", ".join(f'"{m.instrument}": "en"' for m in models) + "}").encode()
    _copy(
        cursor,
        "surveys_response",
        "id, participant_id, wave_id, answers, languages, timings, quality, flagged, submitted_at",
        _rows(count, [_digits(response_ids), codes[person],
                      _digits(np.array(ids.waves)[wave]), _answers_json(models, answers),
                      languages, b"{}", b"{}", b"f", _timestamps(submitted)]),
    )  # fmt: skip
    for position, (model, totals) in enumerate(zip(models, cohort.totals, strict=True)):
        values = (totals[person, wave] * model.multiplier).astype(np.int64)
        if not np.array_equal(values, totals[person, wave] * model.multiplier):
            raise ValueError(f"{model.code}'s scores are not whole numbers.")
        _copy(
            cursor,
            "surveys_score",
            "id, response_id, instrument_id, code, dimension, value",
            _rows(count, [_digits(response_ids * len(models) + position),
                          _digits(response_ids), str(model.instrument_id).encode(),
                          model.code.encode(), model.dimension.encode(),
                          _digits(values)]),
        )  # fmt: skip
    return count, count * len(models)


@contextmanager
def indexes_deferred(cursor, tables: tuple[str, ...]) -> Iterator[None]:
    """Drop the tables' indexes and constraints (and the foreign keys that point at them from
    elsewhere) for the block, and create them again after it from PostgreSQL's own definitions
    (``pg_get_constraintdef``, ``pg_indexes``): keys and unique constraints, then the other
    indexes, then the foreign keys, which check every row once on the way back."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE conrelid = ANY(%s::regclass[]) "
        "OR (contype = 'f' AND confrelid = ANY(%s::regclass[])) ORDER BY conname",
        [list(tables), list(tables)],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname) "
        "ORDER BY i.indexname",
        [list(tables)],
    )
    indexes = cursor.fetchall()
    order = {"f": 0, "u": 1, "p": 2}
    for table, name, kind, _ in sorted(constraints, key=lambda c: order.get(c[2], 3)):
        if kind in order:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    yield
    # Each index is built by one sort of the whole table: give it memory to sort in, for this
    # session only (the server's default, 64 MB, spills a large table's sort to disk).
    cursor.execute("SET maintenance_work_mem = '1GB'")
    for table, name, kind, definition in constraints:
        if kind in ("p", "u"):
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)
    for table, name, kind, definition in constraints:
        if kind == "f":
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def trial_load(
    *,
    participants: int,
    seed: int = 1,
    defer_indexes: bool = True,
    log: Callable[[str], None] = print,
) -> LoadReport:
    """Open the trial (``analytics.seeding``) and COPY its cohort into the current database
    (Django's connection, configured and migrated); what was written and how long it took.
    ``defer_indexes`` builds the big tables' indexes after the load (:func:`indexes_deferred`),
    which needs the tables' owner; without it the indexes are kept up row by row."""
    from django.db import connection

    from analytics.seeding import WAVE_SPACING_DAYS, synthetic_trial_open
    from surveys.models import Instrument
    from trials.models import Community

    report = LoadReport(slug=SLUG, participants=participants)
    started = time.perf_counter()
    trial = synthetic_trial_open(
        slug=SLUG, participants=participants, waves=WAVES, effect=0.0, seed=seed
    )
    extra = Instrument.objects.filter(code__in=INSTRUMENTS[2:])
    waves = list(trial.waves.order_by("index"))
    for wave in waves:
        wave.instruments.add(*extra)
    models = score_models()
    report.truth = {m.code: m.effect for m in models}
    begin = datetime.now(UTC) - timedelta(days=WAVE_SPACING_DAYS * WAVES + 7)
    ids = _Ids(
        trial=trial.pk,
        community=Community.objects.get(slug="general").pk,
        document=trial.consent_documents.get(version=1).pk,
        arms=tuple(trial.arms.order_by("-is_control", "slug").values_list("pk", flat=True)),
        waves=tuple(w.pk for w in waves),
        start=int(begin.timestamp()),
    )
    report.seconds["trial"] = time.perf_counter() - started
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection under Django's
    with raw.cursor() as cursor:
        for table in ("surveys_response", "surveys_score", "trials_consentgrant"):
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
            if cursor.fetchone()[0]:
                raise RuntimeError(f"{table} is not empty: load into a database of its own.")
        started = time.perf_counter()
        deferred = indexes_deferred(cursor, BULK_TABLES) if defer_indexes else nullcontext()
        with deferred:
            report.seconds["drop indexes"] = time.perf_counter() - started
            started = time.perf_counter()
            generate = 0.0
            for numbers in _chunks(participants):
                begun = time.perf_counter()
                cohort = simulate_chunk(numbers, models, seed, ids.start)
                generate += time.perf_counter() - begun
                responses, scores = _load_chunk(
                    cursor, cohort, models, ids, report.responses + 1, seed
                )
                report.responses += responses
                report.scores += scores
                if numbers.stop % (10 * CHUNK) == 0 or numbers.stop == participants:
                    elapsed = time.perf_counter() - started
                    log(
                        f"[scale load] {numbers.stop:,} participants, {report.responses:,} "
                        f"responses, {report.scores:,} scores in {elapsed:.0f} s"
                    )
            report.seconds["copy"] = time.perf_counter() - started
            report.seconds["generate (within copy)"] = generate
            started = time.perf_counter()
        report.seconds["indexes and constraints"] = time.perf_counter() - started
        started = time.perf_counter()
        for table, column in (("surveys_response", "id"), ("surveys_score", "id"),
                              ("trials_consentgrant", "id")):  # fmt: skip
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT max({column}) FROM {table}))"
            )
        for table in BULK_TABLES:
            cursor.execute(f"ANALYZE {table}")
        report.seconds["analyze"] = time.perf_counter() - started
        cursor.execute("SELECT pg_database_size(current_database())")
        report.database_bytes = cursor.fetchone()[0]
    return report
