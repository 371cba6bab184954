import math

import pytest

from federated.schema import (
    DEFAULT_MIN_REPLIES_PER_ARM,
    METRICS,
    clamp_reply,
    telemetry_errors,
    telemetry_schema,
)

pytestmark = pytest.mark.unit

SECTION = {
    "window_days": 7,
    "rho_total": 0.5,
    "rho_per_window": 0.0125,
    "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
}


def test_schema_fills_registry_labels_and_default_bounds_per_window():
    schema = telemetry_schema(SECTION)
    minutes, sessions = schema.metrics
    assert (minutes.lower, minutes.upper, minutes.unit) == (0, 4200, "minutes")
    assert sessions.upper == METRICS["sessions"].upper_per_day * 7
    assert schema.delta == 1e-7 and schema.codes == ("minutes", "sessions")
    assert schema.min_replies_per_arm == DEFAULT_MIN_REPLIES_PER_ARM == 2
    assert telemetry_schema(SECTION | {"min_replies_per_arm": 25}).min_replies_per_arm == 25


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window_days": 0}, "window_days"),
        ({"window_days": 2.5}, "window_days"),
        ({"rho_total": -1}, "rho_total"),
        ({"rho_per_window": math.nan}, "rho_per_window"),
        ({"rho_per_window": 1.0}, "cannot exceed"),
        ({"delta": 1.0}, "delta"),
        ({"metrics": []}, "at least one metric"),
        ({"metrics": [{"code": "keystrokes"}]}, "choose a code"),
        ({"metrics": [{"code": "minutes"}, {"code": "minutes"}]}, "listed twice"),
        ({"metrics": [{"code": "minutes", "lower": 10, "upper": 5}]}, "bounds"),
        ({"metrics": [{"code": "minutes", "upper": 1e3}]}, "bounds"),
        ({"metrics": [{"code": "minutes", "lower": 10}]}, None),
        ({"min_replies_per_arm": 0}, "min_replies_per_arm"),
        ({"min_replies_per_arm": 2.5}, "min_replies_per_arm"),
        ({"min_replies_per_arm": True}, "min_replies_per_arm"),
        ({"min_replies_per_arm": 1}, None),
    ],
)
def test_errors_say_what_to_fix(change, message):
    errors = telemetry_errors(SECTION | change)
    if message is None:
        assert errors == []
    else:
        assert any(message in error for error in errors), errors
        with pytest.raises(ValueError, match=message):
            telemetry_schema(SECTION | change)


def test_a_plan_with_a_bad_telemetry_section_cannot_be_frozen():
    from tests.trials.factories import valid_plan
    from trials.plan import plan_errors

    plan = valid_plan(telemetry=SECTION | {"metrics": [{"code": "keystrokes"}]})
    errors = plan_errors(plan, arm_slugs=["a", "b"], dimensions={"mental_wellbeing"})
    assert any("Telemetry metric 1" in error for error in errors)


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
    assert clamp_reply(reply, telemetry_schema(SECTION)) == expected
