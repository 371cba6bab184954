"""Beat's sweep: which ended windows and dose releases are due, as far as the budget pays;
nothing without a SuperLink. (The release tasks themselves run against a real SuperLink in
test_deployment.py.)"""

import pytest

from federated.client.app import app as device_app
from federated.dose import dose_release_run
from federated.grid import InProcessGrid
from federated.selectors import dose_releases_due, telemetry_windows_due
from federated.tasks import telemetry_windows_sweep
from federated.window import telemetry_window_run
from tests.federated.conftest import (
    DOSE_TELEMETRY,
    TELEMETRY,
    enrol_devices,
    enrol_with_device,
    record_change,
    telemetry_trial,
)
from trials.models import Trial
from trials.services import trial_transition

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


def test_a_dose_release_is_due_once_the_trial_is_closed_and_until_it_is_released(db, tmp_path):
    dosed = telemetry_trial("dosed", DOSE_TELEMETRY)
    telemetry_trial("undosed")
    devices = enrol_devices(dosed, tmp_path, per_arm=2)
    for number, device in enumerate(devices):
        record_change(device.participant, baseline=50.0, follow_up=50.0 + number)
    assert dose_releases_due() == []  # still enrolling: follow-up answers are still to come
    for state in (Trial.State.FOLLOW_UP, Trial.State.CLOSED):
        trial_transition(trial=dosed, to=state)
    assert dose_releases_due() == [dosed.pk]
    dose_release_run(grid=InProcessGrid(device_app, [d.node_config for d in devices]), trial=dosed)
    assert dose_releases_due() == []
