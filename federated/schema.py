"""What the server does with a device's telemetry reply, given the plan's telemetry section.

The section itself (metrics, bounds, privacy budget) is part of the frozen plan and is declared in
``trials.telemetry``; this module holds the server's side of the contract with the device.

Pure: no Django imports.
"""

import math
from typing import TYPE_CHECKING, Any

from trials.telemetry import DoseSection, TelemetrySection

if TYPE_CHECKING:
    from trials.models import Trial
    from trials.plan import Plan

COUNT = "count"  # the released quantity that counts reporting participants per arm


def clamp_reply(values: Any, schema: TelemetrySection) -> dict[str, int] | None:
    """A device's reported vector, re-clamped to the schema's bounds; None to discard the reply.

    The server never trusts the device's own clamping. A reply is discarded whole when any metric
    is missing or not a finite number (so one participant never contributes a partial vector);
    whole-valued floats are accepted, other floats are rounded, and every value is clamped.
    """
    if not hasattr(values, "get"):
        return None
    clamped = {}
    for quantity, lower, upper in schema.window_quantities():
        value = _number(values.get(quantity))
        if value is None:
            return None
        clamped[quantity] = min(max(round(value), lower), upper)
    return clamped


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


# --- the dose release (federated.dose) --------------------------------------------------------

# What a device returns for the dose: its centred usage u, the change c it was sent (in steps),
# and the products the slope needs (docs/architecture.md, "Federated telemetry").
USAGE, CHANGE, USAGE_CHANGE, USAGE_SQUARED, CHANGE_SQUARED = (
    "usage",
    "change",
    "usage_change",
    "usage_squared",
    "change_squared",
)
DOSE_PRODUCTS = (USAGE, CHANGE, USAGE_CHANGE, USAGE_SQUARED, CHANGE_SQUARED)


def usage_centre(dose: DoseSection) -> int:
    """Usage is reported centred on the middle of its clip range, which halves the sensitivity
    of its products (a slope does not change when usage is shifted)."""
    return dose.usage_upper // 2


def dose_bounds(dose: DoseSection) -> dict[str, tuple[int, int]]:
    """Each dose quantity's clip bounds: whole numbers, the change in steps."""
    centre, steps = usage_centre(dose), dose.change_steps
    usage_low, usage_high = -centre, dose.usage_upper - centre
    reach = max(-usage_low, usage_high)
    return {
        USAGE: (usage_low, usage_high),
        CHANGE: (-steps, steps),
        USAGE_CHANGE: (-reach * steps, reach * steps),
        USAGE_SQUARED: (0, reach * reach),
        CHANGE_SQUARED: (0, steps * steps),
    }


def change_in_steps(change: float, dose: DoseSection) -> int:
    """The outcome change as the device receives it: whole steps, clipped to the bound."""
    steps = dose.change_steps
    return min(max(round(change / dose.change_step), -steps), steps)


def dose_products(usage: int, change_steps: int, dose: DoseSection) -> dict[str, int]:
    """The dose vector of one participant: usage clipped and centred, and its products."""
    centred = min(max(usage, 0), dose.usage_upper) - usage_centre(dose)
    return {
        USAGE: centred,
        CHANGE: change_steps,
        USAGE_CHANGE: centred * change_steps,
        USAGE_SQUARED: centred * centred,
        CHANGE_SQUARED: change_steps * change_steps,
    }


def clamp_dose_reply(values: Any, dose: DoseSection, sent_change: int) -> dict[str, int] | None:
    """A device's dose vector as the server uses it, or None to discard it.

    The server knows the change it sent, so it keeps only replies that carry that change and
    whose products are those of their clipped usage: it recomputes them from the usage and
    discards a reply that disagrees, rather than trusting a device's products."""
    if not hasattr(values, "get"):
        return None
    reported = {quantity: _number(values.get(quantity)) for quantity in DOSE_PRODUCTS}
    if any(value is None or value != round(value) for value in reported.values()):
        return None
    usage = int(reported[USAGE]) + usage_centre(dose)
    expected = dose_products(usage, sent_change, dose)
    if {quantity: int(value) for quantity, value in reported.items()} != expected:
        return None
    return expected


def dose_plan_errors(trial: "Trial", plan: "Plan") -> list[str]:
    """A freeze check: the dose's outcome must be one of the plan's outcomes (same instrument
    and wave, and the same score where the outcome names one), so its change is a pre-registered
    outcome's."""
    dose = plan.telemetry.dose if plan.telemetry else None
    if dose is None:
        return []
    wanted = dose.outcome
    for _, outcome in plan.outcomes:
        if (outcome.instrument, outcome.wave) == (wanted.instrument, wanted.wave) and (
            outcome.score in (None, wanted.score)
        ):
            return []
    named = ", ".join(f"{o.instrument} wave {o.wave}" for _, o in plan.outcomes) or "none"
    return [
        f"telemetry → dose → outcome: {wanted.instrument} score {wanted.score} at wave "
        f"{wanted.wave} is not an outcome of this plan (outcomes: {named})."
    ]
