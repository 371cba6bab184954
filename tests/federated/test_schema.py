"""The server's re-clamping of device replies (federated.schema)."""

import math

import pytest

from federated.schema import clamp_reply
from trials.telemetry import TelemetrySection

pytestmark = pytest.mark.unit

SECTION = TelemetrySection.model_validate(
    {
        "window_days": 7,
        "rho_total": 0.5,
        "rho_per_window": 0.0125,
        "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
    }
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"minutes": 30, "sessions": 2}, {"minutes": 30, "sessions": 2}),
        ({"minutes": 10**18, "sessions": 2}, {"minutes": 4200, "sessions": 2}),
        ({"minutes": -50, "sessions": -1}, {"minutes": 0, "sessions": 0}),
        ({"minutes": 30.0, "sessions": 2.6}, {"minutes": 30, "sessions": 3}),
        ({"minutes": math.nan, "sessions": 2}, None),
        ({"minutes": math.inf, "sessions": 2}, None),
        ({"minutes": "30", "sessions": 2}, None),
        ({"minutes": [30], "sessions": 2}, None),
        ({"minutes": True, "sessions": 2}, None),
        ({"minutes": None, "sessions": 2}, None),
        ({"minutes": 30}, None),
        ({}, None),
        ("minutes=30", None),
        (None, None),
    ],
)
def test_replies_are_reclamped_or_discarded_whole(reply, expected):
    assert clamp_reply(reply, SECTION) == expected
