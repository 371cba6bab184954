"""Reads for analyses: pseudonymous scores only, never contact details."""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
from django.contrib.postgres.aggregates import StringAgg
from django.db import connection
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    Expression,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Q,
    QuerySet,
    StdDev,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Collate, Concat

from federated.schema import COUNT
from federated.selectors import telemetry_schema_in_force

if TYPE_CHECKING:  # pandas loads with the frames, not with the admin pages that count CONSORT
    import pandas as pd
from stats.divergence import ReleasedMean
from surveys.models import Instrument, Response, Score, Wave
from surveys.scoring import keyed_values
from trials.models import Participant, Trial
from trials.plan import ParticipantVariable

SCORE_COLUMNS = [
    "participant",
    "arm",
    "community",
    "wave",
    "instrument",
    "outcome",
    "dimension",
    "score",
]


def trial_scores_frame(trial: Trial) -> pd.DataFrame:
    """One row per participant × wave × score (``outcome`` is the score's code), in a stable
    order; ``community`` is the participant's community slug or empty. Analyses never call
    this (they read per-participant aggregates); the tests compare those with it."""
    import pandas as pd

    rows = (
        Score.objects.filter(response__participant__trial=trial)
        .values_list(
            "response__participant_id",
            "response__participant__allocation__arm__slug",
            "response__participant__community__slug",
            "response__wave__index",
            "instrument__code",
            "code",
            "dimension",
            "value",
        )
        .order_by("response__participant_id", "response__wave__index", "code")
    )
    frame = pd.DataFrame.from_records(list(rows), columns=SCORE_COLUMNS)
    frame["community"] = frame["community"].fillna("")
    return frame


# The arm each score's participant was allocated to; scores of participants never allocated are
# left out of every analysis (analytics.analysis drops them from the frame too).
_ARM = "response__participant__allocation__arm__slug"
_PARTICIPANT = "response__participant_id"
_WAVE = "response__wave__index"
# Rows fetched per round trip when a query's result is read in chunks.
_CHUNK = 20_000


def _allocated_scores(trial: Trial) -> QuerySet[Score]:
    return Score.objects.filter(response__participant__trial=trial, **{f"{_ARM}__isnull": False})


@dataclass(frozen=True)
class GrowthStatistics:
    """One score's per-participant sufficient statistics for the growth model, in the layout of
    :func:`stats.reml_growth.participant_statistics`: row ``p`` of ``statistics`` holds
    :data:`stats.reml_growth.STATISTICS` of ``participants[p]``, allocated to ``arms[p]``.
    Participants are sorted as Python sorts their ids (``numpy.unique`` codes them so)."""

    participants: np.ndarray
    arms: np.ndarray
    statistics: np.ndarray


def _byte_order(field: str) -> Collate | F:
    """``field`` ordered by its bytes, which is Python's order of the strings, whatever the
    database's locale: PostgreSQL's "C" collation; SQLite (the demo) has no collation of that
    name and compares bytes by default."""
    return Collate(field, "C") if connection.vendor == "postgresql" else F(field)


def wave_occasions(trial: Trial) -> dict[str, dict[int, int]]:
    """Instrument code → wave index → the wave's occasion for that instrument: how many of the
    trial's earlier waves ask it (0 = the first wave that asks it, normally the baseline).

    This is the time axis of every growth model. A daily series is numbered on after the waves
    before it (surveys.models.Wave.repeat_days), so an instrument asked weekly around a daily
    series has wave indices such as 0, 29, 30, 31; counted in its own occasions, it was asked
    at 0, 1, 2, 3, and its growth is per occasion on which it is asked. Where every wave asks
    every instrument, the occasion is the wave's index."""
    indices = list(trial.waves.order_by("index").values_list("index", flat=True))
    asked: dict[str, list[int]] = {}
    for code, index in (
        Wave.instruments.through.objects.filter(wave__trial=trial)
        .values_list("instrument__code", "wave__index")
        .order_by("wave__index")
    ):
        asked.setdefault(code, []).append(index)
    return {
        code: {index: bisect_left(waves, index) for index in indices}
        for code, waves in asked.items()
    }


def _occasion(trial: Trial) -> Expression:
    """Each score's occasion (:func:`wave_occasions`) as an SQL expression over score rows: a
    CASE on the score's instrument and wave for the waves whose occasion is not their index,
    so the mapping is applied in the database and is the plain index where they agree."""
    instruments = dict(Instrument.objects.values_list("code", "pk"))
    cases = []
    for code, occasions in sorted(wave_occasions(trial).items()):
        moved = {index: occasion for index, occasion in occasions.items() if index != occasion}
        if moved:
            cases.append(
                When(
                    Q(instrument_id=instruments[code]) & Q(**{f"{_WAVE}__in": sorted(moved)}),
                    then=Case(
                        *(When(**{_WAVE: i}, then=Value(o)) for i, o in sorted(moved.items())),
                        output_field=IntegerField(),
                    ),
                )
            )
    if not cases:
        return F(_WAVE)
    return Case(*cases, default=F(_WAVE), output_field=IntegerField())


def occasion_of(trial: Trial, instrument: str, wave: int) -> int:
    """The occasion (:func:`wave_occasions`) of wave index ``wave`` for ``instrument``: the
    number of growth steps from its first occasion to that wave."""
    return wave_occasions(trial).get(instrument, {}).get(wave, wave)


def _six_sums(t: Expression) -> dict[str, Expression]:
    """:data:`stats.reml_growth.STATISTICS` of the grouped score rows at time ``t``."""
    y = F("value")
    return {
        "n": Count("pk"),
        "sum_t": Sum(t),
        "sum_tt": Sum(t * t),
        "sum_y": Sum(y),
        "sum_ty": Sum(t * y, output_field=FloatField()),
        "sum_yy": Sum(y * y),
    }


def growth_statistics(
    trial: Trial, score_code: str, *, last_wave: int | None = None
) -> GrowthStatistics:
    """:math:`(n, \\sum t, \\sum t^2, \\sum y, \\sum ty, \\sum y^2)` over the occasions
    :math:`t` (:func:`wave_occasions`; 0 = baseline) at which each allocated participant has the
    score ``score_code`` (value :math:`y`), up to wave index ``last_wave``: one GROUP BY in
    PostgreSQL, so only a row per participant leaves the database however many waves and
    scores they have."""
    scores = _allocated_scores(trial).filter(code=score_code)
    if last_wave is not None:
        scores = scores.filter(**{f"{_WAVE}__lte": last_wave})
    keys, statistics = _chunked(
        scores.values_list(_PARTICIPANT, _ARM)
        .annotate(**_six_sums(_occasion(trial)))
        .order_by(_byte_order(_PARTICIPANT)),
        keys=2,
    )
    return GrowthStatistics(
        participants=np.array(keys[0], dtype=object),
        arms=np.array(keys[1], dtype=object),
        statistics=statistics.reshape(len(keys[0]), 6),
    )


def _chunked(rows: QuerySet, *, keys: int) -> tuple[list[list], np.ndarray]:
    """An aggregate query's rows read from a server-side cursor in chunks: the first ``keys``
    columns as lists, the others as one float array, so a million rows never exist as a
    million Python tuples at once."""
    columns: list[list] = [[] for _ in range(keys)]
    blocks = []
    iterator = rows.iterator(chunk_size=_CHUNK)
    while chunk := list(islice(iterator, _CHUNK)):
        for column, values in zip(columns, zip(*chunk, strict=True), strict=False):
            column.extend(values)
        blocks.append(np.array([row[keys:] for row in chunk], dtype=float))
    width = len(rows.query.values_select) + len(rows.query.annotation_select) - keys
    return columns, np.concatenate(blocks) if blocks else np.zeros((0, width))


@dataclass(frozen=True)
class OutcomesStatistics:
    """Several scores' per-participant sufficient statistics, as
    ``stats.bayes_growth.growth_data_from_statistics`` takes them: ``statistics[p, d]`` holds
    :data:`stats.reml_growth.STATISTICS` of ``participants[p]`` on ``codes[d]`` (zeros where
    they have none), who is in ``arms[p]`` and community ``communities[p]`` ("" for none);
    ``baseline_moments[d]`` = (count, mean, SD with ddof 1) of the score at occasion 0 (NaN
    where undefined); ``last_occasion`` is the latest occasion with a score."""

    codes: tuple[str, ...]
    participants: np.ndarray
    arms: np.ndarray
    communities: np.ndarray
    statistics: np.ndarray
    baseline_moments: np.ndarray
    last_occasion: int


def outcomes_statistics(
    trial: Trial, codes: tuple[str, ...], *, last_wave: int
) -> OutcomesStatistics:
    """:class:`OutcomesStatistics` of the scores ``codes`` of allocated participants up to wave
    index ``last_wave``, with :func:`growth_statistics`' time: one GROUP BY per participant and
    score, and one per score for the baseline moments, so a row per participant and score
    leaves the database."""
    t = _occasion(trial)
    scores = (
        _allocated_scores(trial)
        .filter(code__in=codes, **{f"{_WAVE}__lte": last_wave})
        .annotate(occasion=t)
    )
    (participant, arm, community, code), sums = _chunked(
        scores.values_list(_PARTICIPANT, _ARM, "response__participant__community__slug", "code")
        .annotate(**_six_sums(F("occasion")), last=Max("occasion"))
        .order_by(_byte_order(_PARTICIPANT)),
        keys=4,
    )
    # Rows come sorted by participant, so a participant's rows are consecutive.
    ids = np.array(participant, dtype=object)
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    starts = np.flatnonzero(first)
    position = {name: d for d, name in enumerate(codes)}
    statistics = np.zeros((len(starts), len(codes), 6))
    statistics[np.cumsum(first) - 1, [position[name] for name in code]] = sums[:, :6]
    moments = np.full((len(codes), 3), np.nan)
    moments[:, 0] = 0
    for name, n, mean, sd in (
        scores.filter(occasion=0)
        .values_list("code")
        .annotate(n=Count("pk"), mean=Avg("value"), sd=StdDev("value", sample=True))
    ):
        moments[position[name]] = n, mean, np.nan if sd is None else sd
    return OutcomesStatistics(
        codes=tuple(codes),
        participants=ids[starts],
        arms=np.array(arm, dtype=object)[starts],
        communities=np.array([c or "" for c in community], dtype=object)[starts],
        statistics=statistics,
        baseline_moments=moments,
        last_occasion=int(sums[:, 6].max()) if len(sums) else 0,
    )


@dataclass(frozen=True)
class AncovaRows:
    """Each allocated participant with the score at both waves: their arm, their baseline
    (wave 0) and their outcome-wave value, in participants' byte order."""

    participants: np.ndarray
    arms: np.ndarray
    baseline: np.ndarray
    outcome: np.ndarray


def ancova_rows(trial: Trial, score_code: str, outcome_wave: int) -> AncovaRows:
    """:class:`AncovaRows` for ``score_code`` at wave index ``outcome_wave``: one GROUP BY per
    participant in PostgreSQL over their two scores, so one row per participant leaves it."""
    rows = list(
        _allocated_scores(trial)
        .filter(code=score_code, **{f"{_WAVE}__in": [0, outcome_wave]})
        .values_list(_PARTICIPANT, _ARM)
        .annotate(
            baseline=Avg(Case(When(Q(**{_WAVE: 0}), then=F("value")))),
            outcome=Avg(Case(When(Q(**{_WAVE: outcome_wave}), then=F("value")))),
        )
        .filter(baseline__isnull=False, outcome__isnull=False)
        .order_by(_byte_order(_PARTICIPANT))
    )
    return AncovaRows(
        participants=np.array([row[0] for row in rows], dtype=object),
        arms=np.array([row[1] for row in rows], dtype=object),
        baseline=np.array([row[2] for row in rows], dtype=float),
        outcome=np.array([row[3] for row in rows], dtype=float),
    )


@dataclass(frozen=True)
class ScoreKind:
    """A score the trial's allocated participants have: its instrument, code and dimension."""

    instrument: str
    code: str
    dimension: str


def score_kinds(trial: Trial) -> tuple[list[ScoreKind], int | None]:
    """The distinct scores of allocated participants, by code, and the latest wave index with
    one (None without scores): two aggregate queries."""
    scores = _allocated_scores(trial)
    kinds = [
        ScoreKind(*row)
        for row in scores.values_list("instrument__code", "code", "dimension")
        .distinct()
        .order_by(_byte_order("code"), _byte_order("instrument__code"), "dimension")
    ]
    return kinds, scores.aggregate(last=Max(_WAVE))["last"]


def analysed_score_rows(trial: Trial) -> int:
    """How many score rows of allocated participants there are (the rows the models see)."""
    return _allocated_scores(trial).count()


class _Sha256(Func):
    """PostgreSQL's built-in SHA-256 of a text, in hex (Django's SHA256 needs pgcrypto)."""

    template = "encode(sha256(convert_to(%(expressions)s, 'UTF8')), 'hex')"
    output_field = CharField()


def scores_digest(trial: Trial) -> str | None:
    """SHA-256 of every score row of the trial (participant, arm, community, wave, instrument,
    code, dimension, value) in a stable order, None without any: the data snapshot an analysis
    run records. Any changed, added or removed score changes it.

    On PostgreSQL each participant's rows are joined into one text and hashed there (SHA-256),
    so only a digest per participant leaves the database and is chained here, in participants'
    byte order; a float is written as PostgreSQL's shortest exact text. Elsewhere (the SQLite
    demo) the rows themselves stream from the cursor into the hash. Memory stays flat either
    way."""
    scores = Score.objects.filter(response__participant__trial=trial)
    people = (_PARTICIPANT, _ARM, "response__participant__community__slug")
    digest = hashlib.sha256()
    empty = True
    if connection.vendor == "postgresql":
        tab = Value("\t")
        line = Concat(
            Cast(_WAVE, CharField()),
            tab,
            "instrument__code",
            tab,
            "code",
            tab,
            "dimension",
            tab,
            Cast("value", CharField()),
            output_field=CharField(),
        )
        rows = (
            scores.values_list(*people)
            .annotate(
                rows=_Sha256(StringAgg(line, Value("\n"), order_by=(_WAVE, _byte_order("code"))))
            )
            .order_by(_byte_order(_PARTICIPANT))
        )
    else:
        rows = scores.values_list(
            *people, _WAVE, "instrument__code", "code", "dimension", "value"
        ).order_by(_byte_order(_PARTICIPANT), _WAVE, _byte_order("code"))
    for row in rows.iterator(chunk_size=_CHUNK):
        # repr keeps every float's exact value; a tab and a newline never occur in an id or code.
        digest.update(("\t".join(map(repr, row)) + "\n").encode())
        empty = False
    return None if empty else digest.hexdigest()


def baseline_variables(
    trial: Trial, variables: list[ParticipantVariable], participants: np.ndarray
) -> dict[str, np.ndarray]:
    """Each variable's value (by its name) for each of ``participants`` (ids, in that order):
    a baseline score as a float (its value at wave 0, NaN where there is none), a community's
    slug or a language code as text ("" where there is none). One query per variable, a row
    per participant."""
    ids = list(participants)
    values: dict[str, np.ndarray] = {}
    for variable in variables:
        if variable.kind == "baseline_score":
            found = dict(
                _allocated_scores(trial)
                .filter(code=variable.score, **{_WAVE: 0})
                .values_list(_PARTICIPANT, "value")
            )
            values[variable.name] = np.array([found.get(p, np.nan) for p in ids], dtype=float)
        else:
            field = "community__slug" if variable.kind == "community" else "locale"
            found = dict(
                Participant.objects.filter(trial=trial, allocation__isnull=False).values_list(
                    "pk", field
                )
            )
            values[variable.name] = np.array([found.get(p) or "" for p in ids], dtype=object)
    return values


@dataclass(frozen=True)
class TrajectoryCell:
    """One score's observed values in one arm at one wave: how many, their mean and their
    sample standard deviation (None for a single value)."""

    outcome: str
    arm: str
    wave: int
    n: int
    mean: float
    std: float | None


def score_trajectories(trial: Trial) -> list[TrajectoryCell]:
    """Every score's count, mean and SD per arm and wave, sorted by outcome, arm and wave:
    aggregated by PostgreSQL, so no score row leaves the database."""
    cells = (
        _allocated_scores(trial)
        .values_list("code", _ARM, _WAVE)
        .annotate(n=Count("pk"), mean=Avg("value"), std=StdDev("value", sample=True))
        .order_by(_byte_order("code"), _byte_order(_ARM), _WAVE)
    )
    return [TrajectoryCell(*cell) for cell in cells]


def responded_per_wave(trial: Trial) -> dict[int, dict[str, int]]:
    """Wave → arm → allocated participants with a score at that wave, for every wave after the
    baseline (the attrition checks' counts), counted by PostgreSQL."""
    responded: dict[int, dict[str, int]] = {}
    counts = (
        _allocated_scores(trial)
        .filter(**{f"{_WAVE}__gt": 0})
        .values_list(_WAVE, _ARM)
        .annotate(n=Count(_PARTICIPANT, distinct=True))
        .order_by(_WAVE, _byte_order(_ARM))
    )
    for wave, arm, n in counts:
        responded.setdefault(wave, {})[arm] = n
    return responded


def trial_item_frame(trial: Trial, instrument: Instrument) -> pd.DataFrame:
    """One row per participant × wave × answered item of ``instrument``, reverse-keyed items
    mirrored so that a higher value always means more of what the instrument measures."""
    import pandas as pd

    rows = []
    for participant, arm, wave, answers in (
        Response.objects.filter(participant__trial=trial, scores__instrument=instrument)
        .distinct()
        .values_list(
            "participant_id", "participant__allocation__arm__slug", "wave__index", "answers"
        )
        .order_by("participant_id", "wave__index")
    ):
        keyed = keyed_values(instrument.definition, answers.get(instrument.code, {}))
        rows += [(participant, arm, wave, item, value) for item, value in keyed.items()]
    return pd.DataFrame.from_records(rows, columns=["participant", "arm", "wave", "item", "value"])


def allocated_per_arm(trial: Trial) -> dict[str, int]:
    """Participants randomised to each arm (every arm, empty ones included)."""
    counts = dict(
        Participant.objects.filter(trial=trial, allocation__isnull=False)
        .values_list("allocation__arm__slug")
        .annotate(n=Count("pk"))
    )
    return {slug: counts.get(slug, 0) for slug in trial.arms.values_list("slug", flat=True)}


def consort_counts(trial: Trial) -> dict:
    """The CONSORT flow from the records: assessed, eligible, consented, then per arm allocated,
    followed up (answered the final wave), analysed (baseline and final wave: the primary
    ANCOVA's complete cases) and withdrawn with reasons."""
    screenings = trial.screenings.all()
    participants = Participant.objects.filter(trial=trial)
    waves = list(trial.waves.order_by("index").values_list("index", flat=True))
    final = waves[-1] if waves else None
    arms = []
    for arm in trial.arms.order_by("-is_control", "slug"):
        allocated = participants.filter(allocation__arm=arm)
        followed = allocated.filter(responses__wave__index=final).distinct()
        analysed = followed.filter(pk__in=allocated.filter(responses__wave__index=0).values("pk"))
        reasons: dict[str, int] = {}
        for reason, n in (
            allocated.filter(withdrawn_at__isnull=False)
            .values_list("withdrawal_reason")
            .annotate(n=Count("pk"))
            .order_by("withdrawal_reason")
        ):
            key = reason or "no reason given"
            reasons[key] = reasons.get(key, 0) + n
        arms.append(
            {
                "slug": arm.slug,
                "name": arm.name,
                "allocated": allocated.count(),
                "followed_up": followed.count() if final is not None else 0,
                "analysed": analysed.count() if final is not None else 0,
                "withdrawn": sum(reasons.values()),
                "withdrawal_reasons": reasons,
            }
        )
    return {
        "assessed": screenings.count(),
        "eligible": screenings.filter(eligible=True).count(),
        "excluded": screenings.filter(eligible=False).count(),
        "excluded_reasons": {
            row["exclusion_reason"]: row["n"]
            for row in screenings.filter(eligible=False)
            .values("exclusion_reason")
            .annotate(n=Count("pk"))
        },
        "consented": participants.count(),
        "final_wave": final,
        "arms": arms,
    }


# The telemetry metric read as engagement, in order of preference.
ENGAGEMENT_METRICS = ["minutes", "sessions", "conversations"]


@dataclass(frozen=True)
class EngagementRelease:
    """The latest DP telemetry window's release of an engagement metric, per arm."""

    metric: str
    """The metric's code (one of ``ENGAGEMENT_METRICS``)."""
    unit: str
    window_index: int
    arms: dict[str, ReleasedMean]


def telemetry_engagement_releases(trial: Trial) -> EngagementRelease | None:
    """The latest DP telemetry release of an engagement metric, per arm, as
    :class:`~stats.divergence.ReleasedMean` inputs; None without one.

    Only the noisy aggregates the federated app stored are read (never a device's values)."""
    in_force = telemetry_schema_in_force(trial)
    if in_force is None:
        return None
    _, schema = in_force
    metric = next((m for m in schema.metrics if m.code in ENGAGEMENT_METRICS), None)
    release = trial.telemetry_releases.order_by("-window_index").first()
    if metric is None or release is None:
        return None
    values = {
        (v.arm.slug, v.quantity): v
        for v in release.values.select_related("arm").filter(quantity__in=[COUNT, metric.code])
    }
    arms = {slug for slug, _ in values}
    return EngagementRelease(
        metric=metric.code,
        unit=metric.unit,
        window_index=release.window_index,
        arms={
            arm: ReleasedMean(
                noisy_sum=values[arm, metric.code].value,
                sum_noise_scale=values[arm, metric.code].noise_scale,
                noisy_count=values[arm, COUNT].value,
                count_noise_scale=values[arm, COUNT].noise_scale,
                lower=metric.lower,
                upper=metric.upper,
            )
            for arm in sorted(arms)
        },
    )
