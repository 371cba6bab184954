"""Beat's sweep: which ended windows are due, as far as the budget pays; nothing without a
SuperLink. (The release task itself runs against a real SuperLink in test_deployment.py.)"""

import pytest

from federated.client.app import app as device_app
from federated.grid import InProcessGrid
from federated.selectors import telemetry_windows_due
from federated.tasks import telemetry_windows_sweep
from federated.window import telemetry_window_run
from tests.federated.conftest import TELEMETRY, enrol_devices, enrol_with_device, telemetry_trial

pytestmark = pytest.mark.django_db


def test_ended_unreleased_windows_are_due(trial, tmp_path):
    assert telemetry_windows_due() == []  # nobody enrolled: no windows
    # The first participant enrolled 30 days ago; with 7-day windows, windows 0–3 have ended.
    grid = InProcessGrid(
        device_app, [d.node_config for d in enrol_devices(trial, tmp_path, per_arm=2)]
    )
    assert telemetry_windows_due() == [(trial.pk, n) for n in range(4)]
    telemetry_window_run(grid=grid, trial=trial, window_index=1)
    assert telemetry_windows_due() == [(trial.pk, n) for n in (0, 2, 3)]


def test_only_the_windows_the_budget_can_pay_are_due(db, tmp_path):
    poor = telemetry_trial("poor", TELEMETRY | {"rho_total": 0.02})
    enrol_with_device(poor, 0, tmp_path)
    assert telemetry_windows_due() == [(poor.pk, 0), (poor.pk, 1)]


def test_without_a_superlink_the_sweep_leaves_windows_waiting(trial, settings):
    settings.FLOWER_SUPERLINK = ""
    assert telemetry_windows_sweep() == []
