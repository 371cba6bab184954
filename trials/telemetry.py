"""The plan's telemetry section: which bounded integer metrics a device reports per release window.

A trial declares its telemetry in the pre-registration's ``telemetry`` section, so the schema is
versioned and frozen with the plan (its version and SHA-256 are the plan's)::

    "telemetry": {
        "window_days": 7,
        "rho_total": 0.5,          # the trial's whole zCDP budget, never refunded or reset
        "rho_per_window": 0.0125,  # spent by each release window
        "delta": 1e-7,             # for reporting the (ε, δ) equivalent only
        "min_replies_per_arm": 2,  # a window waits until every arm has this many usable replies
        "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}]
    }

Metric codes come from :data:`METRICS`, the registry of what the client SDK knows how to compute
(``federated/client/eventlog.py``); a plan may narrow a metric's bounds (tighter bounds mean less
noise for the same privacy) but not invent a metric the device cannot compute. Bounds are whole
numbers *per window*; a metric without an upper bound gets its daily default × ``window_days``.

The federated app reads this section (``federated.selectors.telemetry_schema_in_force``); it lives
here, with the plan, because the plan is frozen and validated in this app.
"""

from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from trials.documents import Document


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


class TelemetrySection(Document):
    window_days: int = Field(ge=1, le=366, description="Days per release window.")
    rho_total: float = Field(gt=0, allow_inf_nan=False, description="The whole zCDP budget ρ.")
    rho_per_window: float = Field(gt=0, allow_inf_nan=False, description="ρ spent per window.")
    delta: float = Field(
        default=DEFAULT_DELTA, gt=0, lt=1, description="For the (ε, δ) equivalent only."
    )
    min_replies_per_arm: int = Field(default=DEFAULT_MIN_REPLIES_PER_ARM, ge=1)
    metrics: list[TelemetryMetric] = Field(min_length=1)

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
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(m.code for m in self.metrics)
