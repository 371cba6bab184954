"""A release window end to end on an in-process grid: Flower's own messages, ServerApp and
ClientApp, real device event logs, PostgreSQL. Only noisy aggregates may come out."""

import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone
from flwr.app import ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from federated.client.app import app as device_app
from federated.grid import InProcessGrid
from federated.mechanism import release_plan
from federated.models import PrivacyBudget, PrivacyCharge, ReleasedAggregate, TelemetryRelease
from federated.schema import COUNT
from federated.selectors import (
    telemetry_release_rows,
    telemetry_schema_in_force,
    telemetry_windows_due,
    window_bounds,
)
from federated.services import PrivacyBudgetExhausted
from federated.window import (
    QUERY_ROUNDS,
    WindowNotReady,
    _query,
    telemetry_window_run,
    vectors_by_arm,
)
from tests.federated.conftest import (
    TELEMETRY,
    enrol_devices,
    enrol_with_device,
    telemetry_trial,
    use_in_window,
)
from trials.models import ConsentScope, TrialEvent
from trials.services import assignment_token, consent_revoke

pytestmark = pytest.mark.django_db


def scripted_client(replies: dict[str, object]) -> ClientApp:
    """Devices that answer with whatever ``replies`` holds for their token: honest or hostile."""
    app = ClientApp()

    @app.query()
    def answer(message, context):
        token = context.node_config["participant-token"]
        content = RecordDict({"identity": ConfigRecord({"participant-token": token})})
        reply = replies[token]
        if reply is not None:
            content["telemetry"] = MetricRecord(reply)
        return Message(content, reply_to=message)

    return app


def test_device_vectors_reach_the_release_only_as_noisy_per_arm_aggregates(trial, tmp_path):
    devices = [enrol_with_device(trial, n, tmp_path) for n in range(6)]
    for number, device in enumerate(devices):
        use_in_window(device, trial, minutes=30 + number, sessions=2)
    release = telemetry_window_run(
        grid=InProcessGrid(device_app, [d.node_config for d in devices]),
        trial=trial,
        window_index=0,
    )
    _, schema = telemetry_schema_in_force(trial)
    assert (release.window_start, release.window_end) == window_bounds(trial, schema, 0)
    values = ReleasedAggregate.objects.filter(release=release)
    assert {(v.arm.slug, v.quantity) for v in values} == {
        (arm, q) for arm in ("a", "b") for q in (COUNT, "minutes", "sessions", "late_night_days")
    }
    charge = release.charge
    assert charge.status == PrivacyCharge.Status.RELEASED
    assert charge.nano_rho == release_plan(schema).nano_rho
    assert set(charge.measurements) == {COUNT, "minutes", "sessions", "late_night_days"}
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == charge.nano_rho
    rows = telemetry_release_rows(trial)
    assert {r.statistic for r in rows} >= {"count", "sum"}
    assert all(r.ci_low < r.estimate < r.ci_high for r in rows)
    assert trial.events.filter(kind="telemetry_released").count() == 1


def test_a_window_runs_once_its_retry_changes_nothing(trial, tmp_path):
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    grid = InProcessGrid(device_app, [d.node_config for d in devices])
    first = telemetry_window_run(grid=grid, trial=trial, window_index=0)
    values = list(ReleasedAggregate.objects.values_list("value", flat=True).order_by("pk"))
    again = telemetry_window_run(grid=grid, trial=trial, window_index=0)
    assert again.pk == first.pk
    assert list(ReleasedAggregate.objects.values_list("value", flat=True).order_by("pk")) == values
    assert PrivacyCharge.objects.count() == 1
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == first.charge.nano_rho


def test_an_unfinished_window_is_not_released(trial, tmp_path):
    grid = InProcessGrid(device_app, [enrol_with_device(trial, 0, tmp_path).node_config])
    with pytest.raises(ValueError, match="once it has ended"):
        telemetry_window_run(grid=grid, trial=trial, window_index=10)
    assert not PrivacyCharge.objects.exists()


def test_a_run_killed_after_reserving_reuses_its_reservation_and_pays_once(trial, tmp_path):
    devices = enrol_devices(trial, tmp_path, per_arm=2)

    class Crash(Exception):
        pass

    class DyingGrid(InProcessGrid):
        def send_and_receive(self, messages, *, timeout=None):
            super().send_and_receive(messages, timeout=timeout)
            raise Crash  # the ServerApp dies holding the replies

    with pytest.raises(Crash):
        telemetry_window_run(
            grid=DyingGrid(device_app, [d.node_config for d in devices]),
            trial=trial,
            window_index=0,
        )
    assert not TelemetryRelease.objects.exists() and not ReleasedAggregate.objects.exists()
    charge = PrivacyCharge.objects.get()
    assert charge.status == PrivacyCharge.Status.RESERVED
    spent = PrivacyBudget.objects.get(trial=trial).spent_nano_rho
    assert spent == charge.nano_rho  # reserved before any device was asked, and kept

    release = telemetry_window_run(
        grid=InProcessGrid(device_app, [d.node_config for d in devices]),
        trial=trial,
        window_index=0,
    )
    assert release.charge.pk == charge.pk
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == spent


def test_without_budget_no_device_is_asked_and_nothing_is_released(trial, tmp_path):
    asked = []

    class CountingGrid(InProcessGrid):
        def send_and_receive(self, messages, *, timeout=None):
            asked.append(1)
            return super().send_and_receive(messages, timeout=timeout)

    grid = CountingGrid(
        device_app, [d.node_config for d in enrol_devices(trial, tmp_path, per_arm=2)]
    )
    for window in range(4):  # 0.05 ρ buys five windows of 0.01
        telemetry_window_run(grid=grid, trial=trial, window_index=window)
    budget = PrivacyBudget.objects.get(trial=trial)
    budget_left = budget.total_nano_rho - budget.spent_nano_rho
    assert budget_left < release_plan(telemetry_schema_in_force(trial)[1]).nano_rho * 2
    asked.clear()
    with pytest.raises(PrivacyBudgetExhausted):
        for window in range(4, 6):
            with _ended(window):
                telemetry_window_run(grid=grid, trial=trial, window_index=window)
    assert TelemetryRelease.objects.count() == 5 and len(asked) == 1


def _ended(window: int):
    """Pretend enough time has passed for ``window`` to have ended."""
    later = timezone.now() + timedelta(days=7 * (window + 1))
    return mock.patch("federated.window.timezone.now", return_value=later)


class OnlyGrid(InProcessGrid):
    """The devices of ``arms`` only: the others are offline."""

    def __init__(self, devices, arms):
        super().__init__(
            device_app,
            [d.node_config for d in devices if d.participant.allocation.arm.slug in arms],
        )


def test_a_window_short_of_replies_waits_and_is_released_later_under_the_same_reservation(
    trial, tmp_path
):
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    with mock.patch("federated.window.release") as draw_noise:
        with pytest.raises(WindowNotReady, match="arm\\(s\\) b have fewer than 2"):
            telemetry_window_run(grid=OnlyGrid(devices, {"a"}), trial=trial, window_index=0)
    draw_noise.assert_not_called()
    assert not TelemetryRelease.objects.exists()
    charge = PrivacyCharge.objects.get()
    assert charge.status == PrivacyCharge.Status.RESERVED
    spent = PrivacyBudget.objects.get(trial=trial).spent_nano_rho
    assert spent == charge.nano_rho
    assert (trial.pk, 0) in telemetry_windows_due()  # beat's sweep asks again
    waiting = TrialEvent.objects.get(trial=trial, kind="telemetry_window_waiting")
    # Which arm waits, never how many replied: exact counts are what the release protects.
    assert waiting.detail == {
        "key": charge.key,
        "window_index": 0,
        "arms": ["b"],
        "min_replies_per_arm": 2,
    }

    release = telemetry_window_run(grid=OnlyGrid(devices, {"a", "b"}), trial=trial, window_index=0)
    assert release.charge.pk == charge.pk and PrivacyCharge.objects.count() == 1
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == spent  # paid once


def test_the_plans_minimum_decides(db, tmp_path):
    strict = telemetry_trial("strict", TELEMETRY | {"min_replies_per_arm": 3})
    devices = enrol_devices(strict, tmp_path, per_arm=2)
    by_arm = {}
    for device in devices:
        by_arm.setdefault(device.participant.allocation.arm.slug, []).append(device)
    two_each = [d for arm in by_arm.values() for d in arm[:2]]
    grid = InProcessGrid(device_app, [d.node_config for d in two_each])
    with pytest.raises(WindowNotReady, match="fewer than 3"):
        telemetry_window_run(grid=grid, trial=strict, window_index=0)
    assert not TelemetryRelease.objects.exists()


class FailingGrid(InProcessGrid):
    """Devices whose ClientApp fails the first ``failures[node]`` times it is asked: Flower
    then answers for them with an error reply."""

    def __init__(self, configs, failures):
        super().__init__(device_app, configs)
        self.failures, self.asked = failures, []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.asked.append(sorted(m.metadata.dst_node_id for m in messages))
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            if self.failures.get(node, 0) > 0:
                self.failures[node] -= 1
                replies.append(Message(Error(code=1, reason="ClientApp crashed"), reply_to=message))
            else:
                replies.extend(super().send_and_receive([message], timeout=timeout))
        return replies


def test_a_device_whose_clientapp_failed_is_asked_again(trial, tmp_path):
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    grid = FailingGrid([d.node_config for d in devices], {1: 1, 2: 1})
    assert telemetry_window_run(grid=grid, trial=trial, window_index=0) is not None
    assert grid.asked == [list(range(1, len(devices) + 1)), [1, 2]]


def test_a_device_that_keeps_failing_is_asked_a_bounded_number_of_times(trial, tmp_path):
    devices = enrol_devices(trial, tmp_path, per_arm=3)  # its arm keeps the minimum without it
    grid = FailingGrid([d.node_config for d in devices], {1: 10})
    assert telemetry_window_run(grid=grid, trial=trial, window_index=0) is not None
    assert sum(1 in asked for asked in grid.asked) == QUERY_ROUNDS


def test_hostile_and_ineligible_replies_never_count(trial, tmp_path):
    honest = [enrol_with_device(trial, n, tmp_path) for n in range(4)]
    revoked = enrol_with_device(trial, 10, tmp_path)
    consent_revoke(participant=revoked.participant, scope=ConsentScope.TELEMETRY)
    never = enrol_with_device(trial, 11, tmp_path, scopes=[ConsentScope.SURVEYS])
    replies = {
        d.node_config["participant-token"]: {"minutes": 60, "sessions": 3, "late_night_days": 1}
        for d in honest
    }
    hostile = {
        "huge": {"minutes": 10**15, "sessions": 10**9, "late_night_days": 10**6},
        "negative": {"minutes": -(10**9), "sessions": -5, "late_night_days": -1},
        "nan": {"minutes": float("nan"), "sessions": 1, "late_night_days": 0},
        "missing": {"minutes": 5},
        "wrong type": {"minutes": [1, 2, 3], "sessions": 1, "late_night_days": 0},
        "no telemetry": None,
    }
    configs = [d.node_config for d in honest]
    # Hostile replies come from real, consenting participants' devices.
    for values in hostile.values():
        device = enrol_with_device(trial, 20 + len(configs), tmp_path)
        token = device.node_config["participant-token"]
        replies[token] = values
        configs.append(device.node_config)
    for ineligible in (revoked, never):
        replies[ineligible.node_config["participant-token"]] = {
            "minutes": 60,
            "sessions": 3,
            "late_night_days": 1,
        }
        configs.append(ineligible.node_config)
    forged = "forged-token"
    replies[forged] = {"minutes": 60, "sessions": 3, "late_night_days": 1}
    configs.append({"participant-token": forged})
    replies[assignment_token(honest[0].participant)] = replies[
        honest[0].node_config["participant-token"]
    ]
    configs.append(honest[0].node_config)  # the same participant's second device

    grid = InProcessGrid(scripted_client(replies), configs)
    _, schema = telemetry_schema_in_force(trial)
    window = window_bounds(trial, schema, 0)
    answers = grid.send_and_receive([_query(n, schema, window) for n in grid.get_node_ids()])
    by_arm = vectors_by_arm(answers, trial, schema)
    used = [v for vectors in by_arm.values() for v in vectors]
    bounds = {m.code: (m.lower, m.upper) for m in schema.metrics}
    # Honest four, plus the huge and negative replies clamped; NaN, missing, wrong types, no
    # telemetry, revoked or absent consent, forged tokens and duplicates are dropped.
    assert len(used) == 6
    assert sorted(v["sessions"] for v in used) == [0, 3, 3, 3, 3, 100]
    for vector in used:
        assert all(bounds[k][0] <= value <= bounds[k][1] for k, value in vector.items())


def test_raw_replies_appear_in_no_table_and_no_log(trial, tmp_path, caplog, capfd):
    devices = [enrol_with_device(trial, n, tmp_path) for n in range(8)]
    # Distinctive raw values inside the bounds, so clamping cannot hide them.
    raw = {
        d.node_config["participant-token"]: {
            "minutes": 734_219 + 1_117 * n,
            "sessions": 61 + n,
            "late_night_days": 3,
        }
        for n, d in enumerate(devices)
    }
    caplog.set_level(logging.DEBUG)
    telemetry_window_run(
        grid=InProcessGrid(scripted_client(raw), [d.node_config for d in devices]),
        trial=trial,
        window_index=0,
    )
    secrets = {str(v["minutes"]) for v in raw.values()}
    secrets |= {str(sum(v["minutes"] for v in raw.values()))}  # nor the exact sum
    dump = _database_text()
    logged = caplog.text + "".join(capfd.readouterr())
    for secret in secrets:
        assert secret not in dump
        assert secret not in logged
    files = "".join(
        p.read_bytes().decode(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.name.startswith("device-")
    )
    assert all(secret not in files for secret in secrets)


def _database_text() -> str:
    """Every column of every row of every table the project's apps own, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            cursor.execute(f'select * from "{table}"')  # noqa: S608 - table names from Django
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)
