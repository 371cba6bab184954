"""Per-interaction ratings: kept in the device's event log, reported per window as the
participant's mean rating and whether they rated, and released only as per-arm DP sums, from
which the dashboards read a mean rating per arm."""

from datetime import UTC, datetime, timedelta

import pytest

from federated.client.app import app as device_app
from federated.client.eventlog import EventLog
from federated.grid import InProcessGrid
from federated.models import ReleasedAggregate
from federated.schema import clamp_reply
from federated.selectors import telemetry_release_rows, telemetry_schema_in_force, window_bounds
from federated.window import telemetry_window_run
from tests.federated.conftest import DOSE_TELEMETRY, RATING, enrol_devices, telemetry_trial
from trials.telemetry import TelemetrySection

QUESTION = RATING["code"]


@pytest.mark.unit
def test_the_device_reports_the_mean_of_its_ratings_in_the_window_and_whether_it_rated(tmp_path):
    log = EventLog(tmp_path / "device.sqlite3")
    day = datetime(2026, 3, 2, 12, tzinfo=UTC)
    for value in (4, 5, 5):
        log.record_rating(day, question=QUESTION, value=value)
    log.record_rating(day + timedelta(days=8), question=QUESTION, value=1)  # next window
    log.record_rating(day, question="other", value=1)
    start, end = day.date(), day.date() + timedelta(days=7)
    assert log.window_ratings(start, end, QUESTION) == {
        f"rating.{QUESTION}": 467,  # 4.666… in hundredths
        f"rated.{QUESTION}": 1,
    }
    assert log.window_ratings(end, end + timedelta(days=7), "never_asked") == {
        "rating.never_asked": 0,
        "rated.never_asked": 0,
    }
    bounds = {"minutes": (0, 600), f"rating.{QUESTION}": (0, 500), f"rated.{QUESTION}": (0, 1)}
    assert log.window_vector(start, end, bounds) == {
        "minutes": 0,
        f"rating.{QUESTION}": 467,
        f"rated.{QUESTION}": 1,
    }
    with pytest.raises(ValueError, match="whole number"):
        log.record_rating(day, question=QUESTION, value=4.5)
    log.prune(before=end)
    assert log.window_ratings(start, end, QUESTION)[f"rated.{QUESTION}"] == 0


@pytest.mark.unit
def test_the_server_reclamps_ratings_and_drops_a_reply_without_them():
    section = TelemetrySection.model_validate(DOSE_TELEMETRY)
    honest = {"minutes": 30, "sessions": 2, "late_night_days": 0}
    rated = {f"rating.{QUESTION}": 900, f"rated.{QUESTION}": 3}
    assert clamp_reply(honest | rated, section) == honest | {
        f"rating.{QUESTION}": 500,
        f"rated.{QUESTION}": 1,
    }
    assert clamp_reply(honest, section) is None
    with pytest.raises(ValueError, match="lowest < highest"):
        TelemetrySection.model_validate(
            DOSE_TELEMETRY | {"ratings": [RATING | {"lowest": 5, "highest": 5}]}
        )
    with pytest.raises(ValueError, match="each rating question is listed once"):
        TelemetrySection.model_validate(DOSE_TELEMETRY | {"ratings": [RATING, RATING]})


@pytest.mark.django_db
def test_ratings_leave_only_as_per_arm_dp_sums_and_read_as_a_mean_rating_per_arm(tmp_path):
    # A budget that makes the noise small next to a handful of raters, so the mean is read.
    telemetry = DOSE_TELEMETRY | {"rho_total": 1000.0, "rho_per_window": 1000.0}
    trial = telemetry_trial("ratings", telemetry)
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    _, schema = telemetry_schema_in_force(trial)
    start, _ = window_bounds(trial, schema, 0)
    noon = datetime(start.year, start.month, start.day, 12, tzinfo=UTC)
    own_means: dict[str, list[float]] = {"a": [], "b": []}
    for number, device in enumerate(devices):
        answers = [1 + number % 5, 5]
        for value in answers:
            device.log.record_rating(noon, question=QUESTION, value=value)
        own_means[device.participant.allocation.arm.slug].append(sum(answers) / 2)
    release = telemetry_window_run(
        grid=InProcessGrid(device_app, [d.node_config for d in devices]),
        trial=trial,
        window_index=0,
    )
    quantities = set(
        ReleasedAggregate.objects.filter(release=release).values_list("quantity", flat=True)
    )
    assert {f"rating.{QUESTION}", f"rated.{QUESTION}"} <= quantities
    means = {
        r.arm: r
        for r in telemetry_release_rows(trial)
        if r.metric == f"rating.{QUESTION}" and r.statistic == "mean"
    }
    assert set(means) == {"a", "b"}
    for arm, row in means.items():
        assert row.label == RATING["question"] and row.unit == "rating (1–5)"
        truth = sum(own_means[arm]) / len(own_means[arm])
        assert abs(row.estimate - truth) < 6 * row.std_error
