"""The telemetry schema: which bounded integer metrics a device reports per release window.

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

Metric codes come from :data:`METRICS`, the registry of what the client SDK knows how to compute;
a plan may narrow a metric's bounds (tighter bounds mean less noise for the same privacy) but not
invent a metric the device cannot compute. Bounds are whole numbers *per window*.

Pure: no Django imports.
"""

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDefinition:
    code: str
    label: str
    unit: str
    description: str
    # A generous default upper bound for one day; a window's default is this × window_days.
    upper_per_day: int


# What the client SDK computes from its local event log (federated/client/eventlog.py).
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

COUNT = "count"  # the released quantity that counts reporting participants per arm
# Without a plan's own minimum, no arm's release ever rests on one participant's telemetry; a
# plan raises it where the window's noise would swamp a handful of replies.
DEFAULT_MIN_REPLIES_PER_ARM = 2


@dataclass(frozen=True)
class MetricSpec:
    code: str
    label: str
    unit: str
    lower: int
    upper: int


@dataclass(frozen=True)
class TelemetrySchema:
    window_days: int
    rho_total: float
    rho_per_window: float
    delta: float
    metrics: tuple[MetricSpec, ...]
    min_replies_per_arm: int = DEFAULT_MIN_REPLIES_PER_ARM

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(m.code for m in self.metrics)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def telemetry_errors(section: Any) -> list[str]:
    """Everything wrong with a plan's ``telemetry`` section, as messages a coordinator can fix."""
    if not isinstance(section, dict):
        return ["Telemetry: the section must be a JSON object."]
    errors = []
    days = section.get("window_days")
    if not (_whole(days) and 1 <= days <= 366):
        errors.append("Telemetry: window_days must be a whole number of days from 1 to 366.")
    for key in ("rho_total", "rho_per_window"):
        if not _positive_number(section.get(key)):
            errors.append(f"Telemetry: {key} must be a positive number (zCDP ρ).")
    if not errors and section["rho_per_window"] > section["rho_total"]:
        errors.append("Telemetry: rho_per_window cannot exceed rho_total.")
    delta = section.get("delta", 1e-7)
    if not (_positive_number(delta) and delta < 1):
        errors.append("Telemetry: delta must lie strictly between 0 and 1.")
    minimum = section.get("min_replies_per_arm", DEFAULT_MIN_REPLIES_PER_ARM)
    if not (_whole(minimum) and minimum >= 1):
        errors.append("Telemetry: min_replies_per_arm must be a whole number of at least 1.")
    metrics = section.get("metrics")
    if not (isinstance(metrics, list) and metrics):
        return errors + ["Telemetry: list at least one metric."]
    seen = set()
    for number, metric in enumerate(metrics, start=1):
        code = metric.get("code") if isinstance(metric, dict) else None
        if code not in METRICS:
            errors.append(
                f"Telemetry metric {number}: choose a code from {', '.join(sorted(METRICS))}."
            )
            continue
        if code in seen:
            errors.append(f"Telemetry metric {number}: {code} is listed twice.")
        seen.add(code)
        default_upper = METRICS[code].upper_per_day * (days if _whole(days) else 1)
        lower, upper = metric.get("lower", 0), metric.get("upper", default_upper)
        if not (_whole(lower) and _whole(upper) and 0 <= lower < upper):
            errors.append(
                f"Telemetry metric {code}: bounds must be whole numbers with 0 ≤ lower < upper."
            )
    return errors


def telemetry_schema(section: dict[str, Any]) -> TelemetrySchema:
    """The schema a plan's (valid) ``telemetry`` section declares, defaults filled in."""
    errors = telemetry_errors(section)
    if errors:
        raise ValueError(" ".join(errors))
    days = section["window_days"]
    metrics = []
    for metric in section["metrics"]:
        definition = METRICS[metric["code"]]
        metrics.append(
            MetricSpec(
                code=definition.code,
                label=definition.label,
                unit=definition.unit,
                lower=metric.get("lower", 0),
                upper=metric.get("upper", definition.upper_per_day * days),
            )
        )
    return TelemetrySchema(
        window_days=days,
        rho_total=float(section["rho_total"]),
        rho_per_window=float(section["rho_per_window"]),
        delta=float(section.get("delta", 1e-7)),
        metrics=tuple(metrics),
        min_replies_per_arm=section.get("min_replies_per_arm", DEFAULT_MIN_REPLIES_PER_ARM),
    )


def clamp_reply(values: Any, schema: TelemetrySchema) -> dict[str, int] | None:
    """A device's reported vector, re-clamped to the schema's bounds; None to discard the reply.

    The server never trusts the device's own clamping. A reply is discarded whole when any metric
    is missing or not a finite number (so one participant never contributes a partial vector);
    whole-valued floats are accepted, other floats are rounded, and every value is clamped.
    """
    if not hasattr(values, "get"):
        return None
    clamped = {}
    for metric in schema.metrics:
        value = values.get(metric.code)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        clamped[metric.code] = min(max(round(value), metric.lower), metric.upper)
    return clamped
