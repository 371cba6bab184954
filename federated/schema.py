"""What the server does with a device's telemetry reply, given the plan's telemetry section.

The section itself (metrics, bounds, privacy budget) is part of the frozen plan and is declared in
``trials.telemetry``; this module holds the server's side of the contract with the device.

Pure: no Django imports.
"""

import math
from typing import Any

from trials.telemetry import TelemetrySection

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
    for metric in schema.metrics:
        value = values.get(metric.code)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        clamped[metric.code] = min(max(round(value), metric.lower), metric.upper)
    return clamped
