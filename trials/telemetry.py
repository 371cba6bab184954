"""The plan's telemetry section: which bounded integer metrics a device reports per release window.

A trial declares its telemetry in the pre-registration's ``telemetry`` section, so the schema is
versioned and frozen with the plan (its version and SHA-256 are the plan's)::

    "telemetry": {
        "window_days": 7,
        "rho_total": 0.5,          # the trial's whole zCDP budget, never refunded or reset
        "rho_per_window": 0.0125,  # spent by each release window
        "delta": 1e-7,             # for reporting the (ε, δ) equivalent only
        "min_replies_per_arm": 2,  # a window waits until every arm has this many usable replies
        "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
        "ratings": [{"code": "think_for_myself",
                     "question": "Did this conversation help you think for yourself?"}],
        "dose": {"outcome": {"instrument": "who5", "score": "who5", "wave": 2},
                 "usage_metric": "minutes", "usage_days": 28, "usage_upper": 2400,
                 "change_bound": 40, "change_step": 0.5, "rho": 0.05}
    }

Metric codes come from :data:`METRICS`, the registry of what the client SDK knows how to compute
(``federated/client/eventlog.py``); a plan may narrow a metric's bounds (tighter bounds mean less
noise for the same privacy) but not invent a metric the device cannot compute. Bounds are whole
numbers *per window*; a metric without an upper bound gets its daily default × ``window_days``.

``ratings`` are questions the assistant app asks after a conversation (e.g. "did this
conversation help you think for yourself?"). The answers stay in the device's event log; each
window the device reports only its participant's mean rating (in hundredths) and whether they
rated at all, and the server releases per-arm DP sums of both, so a mean rating per arm is all
that ever leaves the platform (docs/architecture.md, "Federated telemetry").

``dose`` relates each participant's usage to their own outcome change without the usage leaving
the device: the server sends the change (the outcome's score at ``outcome.wave`` minus its
baseline) only to that participant's device, which returns clipped products, and per-arm DP sums
of them give an exploratory, non-causal usage-outcome slope (``federated.dose``).

The federated app reads this section (``federated.selectors.telemetry_schema_in_force``); it lives
here, with the plan, because the plan is frozen and validated in this app.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from trials.documents import Document

if TYPE_CHECKING:
    from trials.models import Trial


@dataclass(frozen=True)
class MetricDefinition:
    code: str
    label: str
    unit: str
    description: str
    # A generous default upper bound for one day; a window's default is this × window_days.
    upper_per_day: int


METRICS: dict[str, MetricDefinition] = {
    m.code: m
    for m in [
        MetricDefinition(
            "sessions", "Sessions", "sessions", "Sessions with the assistant started.", 20
        ),
        MetricDefinition(
            "minutes", "Time with the assistant", "minutes", "Whole minutes of use.", 600
        ),
        MetricDefinition(
            "conversations", "Conversations", "conversations", "Conversations held.", 50
        ),
        MetricDefinition(
            "own_decisions",
            "Decisions the user made",
            "decisions",
            "Decisions taken against or without the assistant's suggestion.",
            50,
        ),
        MetricDefinition(
            "decisions",
            "Decisions asked about",
            "decisions",
            "Decisions the user consulted the assistant on (the denominator of own_decisions).",
            50,
        ),
        MetricDefinition(
            "late_night_days",
            "Late-night days",
            "days",
            "Days with any use between midnight and 5 a.m. local time.",
            1,
        ),
    ]
}

# The codes above, as the type the plan's metric entries must have (so the schema lists them).
MetricCode = Literal[tuple(METRICS)]  # type: ignore[valid-type]

# Without a plan's own minimum, no arm's release ever rests on one participant's telemetry; a
# plan raises it where the window's noise would swamp a handful of replies.
DEFAULT_MIN_REPLIES_PER_ARM = 2
DEFAULT_DELTA = 1e-7


class TelemetryMetric(Document):
    code: MetricCode
    lower: int = Field(default=0, ge=0)
    upper: int = Field(gt=0)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.lower >= self.upper:
            raise ValueError(f"{self.code}: the bounds need 0 ≤ lower < upper")
        return self

    @property
    def label(self) -> str:
        return METRICS[self.code].label

    @property
    def unit(self) -> str:
        return METRICS[self.code].unit


# A device reports a participant's mean rating in hundredths of a scale point, a whole number,
# as the quantity RATING_MEAN + the question's code, and whether they rated as RATED + the code
# (the SDK's federated/client/eventlog.py computes them under the same names).
RATING_HUNDREDTHS = 100
RATING_MEAN, RATED = "rating.", "rated."


class RatingQuestion(Document):
    """A question the assistant app asks about one conversation, answered on a whole-number
    scale from ``lowest`` to ``highest``."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Names the question.")
    question: str = Field(min_length=1, description="As the app asks it.")
    lowest: int = Field(default=1, ge=0)
    highest: int = Field(default=5, le=100)

    @model_validator(mode="after")
    def _scale_ordered(self) -> Self:
        if self.lowest >= self.highest:
            raise ValueError(f"{self.code}: the scale needs lowest < highest")
        return self

    @property
    def mean_quantity(self) -> str:
        """The released sum of the participants' mean ratings, in hundredths."""
        return RATING_MEAN + self.code

    @property
    def rated_quantity(self) -> str:
        """The released count of participants who rated at least once in the window."""
        return RATED + self.code


class DoseOutcome(Document):
    """The score whose change from baseline (wave 0) to ``wave`` a device receives."""

    instrument: str = Field(min_length=1)
    score: str = Field(min_length=1)
    wave: int = Field(ge=1, description="The follow-up wave's index (0 is baseline).")


class DoseSection(Document):
    """The usage-outcome slope under DP: its outcome, its usage metric and their clip bounds.

    Usage ``u`` is the metric's total over the first ``usage_days`` days after the participant
    enrolled, clipped to [0, ``usage_upper``]; the change ``c`` is clipped to
    ±``change_bound`` and sent in whole steps of ``change_step`` score points. The release costs
    ``rho`` of the trial's budget, charged in the ledger like a window."""

    outcome: DoseOutcome
    usage_metric: MetricCode
    usage_days: int = Field(ge=1, le=366)
    usage_upper: int = Field(gt=0)
    change_bound: float = Field(gt=0, allow_inf_nan=False)
    change_step: float = Field(gt=0, allow_inf_nan=False)
    rho: float = Field(gt=0, allow_inf_nan=False, description="ρ spent by the dose release.")

    @model_validator(mode="after")
    def _steps(self) -> Self:
        steps = self.change_bound / self.change_step
        if not 1 <= steps <= 1_000_000:
            raise ValueError("change_bound must be between 1 and a million change_steps")
        return self

    @property
    def change_steps(self) -> int:
        """The clip bound of the change in whole steps: the device sees ``c`` in [-C, C]."""
        return int(self.change_bound // self.change_step)


class TelemetrySection(Document):
    window_days: int = Field(ge=1, le=366, description="Days per release window.")
    rho_total: float = Field(gt=0, allow_inf_nan=False, description="The whole zCDP budget ρ.")
    rho_per_window: float = Field(gt=0, allow_inf_nan=False, description="ρ spent per window.")
    delta: float = Field(
        default=DEFAULT_DELTA, gt=0, lt=1, description="For the (ε, δ) equivalent only."
    )
    min_replies_per_arm: int = Field(default=DEFAULT_MIN_REPLIES_PER_ARM, ge=1)
    metrics: list[TelemetryMetric] = Field(min_length=1)
    ratings: list[RatingQuestion] = []
    dose: DoseSection | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_upper_bounds(cls, data: Any) -> Any:
        """A metric without ``upper`` gets its daily default × the window's days."""
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), list | tuple):
            return data
        days = data.get("window_days")
        days = days if isinstance(days, int) and not isinstance(days, bool) else 1
        metrics = []
        for metric in data["metrics"]:
            if isinstance(metric, dict) and "upper" not in metric and metric.get("code") in METRICS:
                metric = metric | {"upper": METRICS[metric["code"]].upper_per_day * days}
            metrics.append(metric)
        return data | {"metrics": metrics}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.rho_per_window > self.rho_total:
            raise ValueError("rho_per_window cannot exceed rho_total")
        codes = [m.code for m in self.metrics]
        twice = sorted({c for c in codes if codes.count(c) > 1})
        if twice:
            raise ValueError(f"each metric is listed once ({', '.join(twice)} twice)")
        questions = [r.code for r in self.ratings]
        twice = sorted({c for c in questions if questions.count(c) > 1})
        if twice:
            raise ValueError(f"each rating question is listed once ({', '.join(twice)} twice)")
        if self.dose is not None and self.dose.rho > self.rho_total:
            raise ValueError("dose.rho cannot exceed rho_total")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(m.code for m in self.metrics)

    def window_quantities(self) -> list[tuple[str, int, int]]:
        """``(quantity, lower, upper)`` of every value a device reports per window: the
        metrics, then each rating question's mean (hundredths; 0 without a rating) and whether
        the participant rated (0 or 1)."""
        quantities = [(m.code, m.lower, m.upper) for m in self.metrics]
        for rating in self.ratings:
            quantities.append((rating.mean_quantity, 0, rating.highest * RATING_HUNDREDTHS))
            quantities.append((rating.rated_quantity, 0, 1))
        return quantities


# --- the outcome change a dose release sends to each device ----------------------------------

# participant ids → their change (score at the dose wave minus baseline); only participants with
# both scores appear. The surveys app registers the reader (it owns the scores; the federated app,
# which asks, may not import it: docs/architecture.md, "The layers").
OutcomeChangeReader = Callable[["Trial", DoseOutcome, Iterable[str]], dict[str, float]]
_outcome_change_readers: list[OutcomeChangeReader] = []


def register_outcome_change_reader(reader: OutcomeChangeReader) -> None:
    """Set the function that reads participants' outcome changes (one app's ``ready()``)."""
    if reader not in _outcome_change_readers:
        _outcome_change_readers.append(reader)


def outcome_changes(
    trial: "Trial", outcome: DoseOutcome, participant_ids: Iterable[str]
) -> dict[str, float]:
    """Each named participant's change on ``outcome``, where both scores exist."""
    if len(_outcome_change_readers) != 1:
        raise RuntimeError(
            f"{len(_outcome_change_readers)} outcome change readers are registered; the "
            "surveys app registers exactly one in its ready()."
        )
    return _outcome_change_readers[0](trial, outcome, participant_ids)
