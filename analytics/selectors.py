"""Reads for analyses: pseudonymous scores only, never contact details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from django.db import connection
from django.db.models import Avg, Count, F, FloatField, QuerySet, StdDev, Sum
from django.db.models.functions import Collate

from federated.schema import COUNT
from federated.selectors import telemetry_schema_in_force

if TYPE_CHECKING:  # pandas loads with the frames, not with the admin pages that count CONSORT
    import pandas as pd
from stats.divergence import ReleasedMean
from surveys.models import Instrument, Response, Score
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
    order; ``community`` is the participant's community slug or empty."""
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


def growth_statistics(
    trial: Trial, score_code: str, *, last_wave: int | None = None
) -> GrowthStatistics:
    """:math:`(n, \\sum t, \\sum t^2, \\sum y, \\sum ty, \\sum y^2)` over the waves
    :math:`t` (the wave's index, 0 = baseline) at which each allocated participant has the score
    ``score_code`` (value :math:`y`), up to ``last_wave``: one GROUP BY in PostgreSQL, so only a
    row per participant leaves the database however many waves and scores they have."""
    t, y = F(_WAVE), F("value")
    scores = _allocated_scores(trial).filter(code=score_code)
    if last_wave is not None:
        scores = scores.filter(**{f"{_WAVE}__lte": last_wave})
    rows = list(
        scores.values_list(_PARTICIPANT, _ARM)
        .annotate(
            n=Count("pk"),
            sum_t=Sum(t),
            sum_tt=Sum(t * t),
            sum_y=Sum(y),
            sum_ty=Sum(t * y, output_field=FloatField()),
            sum_yy=Sum(y * y),
        )
        .order_by(_byte_order(_PARTICIPANT))
    )
    return GrowthStatistics(
        participants=np.array([row[0] for row in rows], dtype=object),
        arms=np.array([row[1] for row in rows], dtype=object),
        statistics=np.array([row[2:] for row in rows], dtype=float).reshape(len(rows), 6),
    )


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
