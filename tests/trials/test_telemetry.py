"""The plan's telemetry section (trials.telemetry)."""

import math

import pytest

from trials.documents import error_messages
from trials.telemetry import DEFAULT_MIN_REPLIES_PER_ARM, METRICS, TelemetrySection

pytestmark = pytest.mark.unit

SECTION = {
    "window_days": 7,
    "rho_total": 0.5,
    "rho_per_window": 0.0125,
    "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
}


def test_section_fills_registry_labels_and_default_bounds_per_window():
    section = TelemetrySection.model_validate(SECTION)
    minutes, sessions = section.metrics
    assert (minutes.lower, minutes.upper, minutes.unit) == (0, 4200, "minutes")
    assert sessions.upper == METRICS["sessions"].upper_per_day * 7
    assert section.delta == 1e-7 and section.codes == ("minutes", "sessions")
    assert section.min_replies_per_arm == DEFAULT_MIN_REPLIES_PER_ARM == 2
    more = TelemetrySection.model_validate(SECTION | {"min_replies_per_arm": 25})
    assert more.min_replies_per_arm == 25
    # What is stored is the section with every default written out, and it reads back equal.
    stored = section.model_dump(mode="json")
    assert stored["metrics"][1] == {"code": "sessions", "lower": 0, "upper": 140}
    assert TelemetrySection.model_validate(stored) == section


def test_metric_codes_in_the_published_schema_are_the_registry():
    schema = TelemetrySection.model_json_schema()
    codes = schema["$defs"]["TelemetryMetric"]["properties"]["code"]["enum"]
    assert codes == list(METRICS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window_days": 0}, "window_days: Input should be greater than or equal to 1"),
        ({"window_days": 2.5}, "window_days: Input should be a valid integer"),
        ({"rho_total": -1}, "rho_total"),
        ({"rho_per_window": math.nan}, "rho_per_window"),
        ({"rho_per_window": 1.0}, "cannot exceed"),
        ({"delta": 1.0}, "delta"),
        ({"metrics": []}, "metrics: List should have at least 1 item"),
        ({"metrics": [{"code": "keystrokes"}]}, "'sessions', 'minutes'"),
        ({"metrics": [{"code": "minutes"}, {"code": "minutes"}]}, "minutes twice"),
        ({"metrics": [{"code": "minutes", "lower": 10, "upper": 5}]}, "bounds"),
        ({"metrics": [{"code": "minutes", "upper": 1e3}]}, "metrics → 1 → upper"),
        ({"metrics": [{"code": "minutes", "lower": 10}]}, None),
        ({"min_replies_per_arm": 0}, "min_replies_per_arm"),
        ({"min_replies_per_arm": 2.5}, "min_replies_per_arm"),
        ({"min_replies_per_arm": True}, "min_replies_per_arm"),
        ({"min_replies_per_arm": 1}, None),
        ({"windows": 3}, "windows: not a known field"),
    ],
)
def test_errors_say_what_to_fix(change, message):
    if message is None:
        TelemetrySection.model_validate(SECTION | change)
        return
    with pytest.raises(ValueError) as error:
        TelemetrySection.model_validate(SECTION | change)
    errors = error_messages(error.value)
    assert any(message in line for line in errors), errors


def test_a_plan_with_a_bad_telemetry_section_is_refused_with_the_place_named():
    from tests.trials.factories import valid_plan
    from trials.plan import PlanError, plan_parse

    with pytest.raises(PlanError) as error:
        plan_parse(valid_plan(telemetry=SECTION | {"metrics": [{"code": "keystrokes"}]}))
    assert any(m.startswith("telemetry → metrics → 1 → code") for m in error.value.messages)
