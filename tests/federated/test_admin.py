"""The ledger and the releases in the admin: visible to the trial's people, read-only for all."""

import pytest

from federated.client.app import app as device_app
from federated.grid import InProcessGrid
from federated.models import PrivacyBudget, TelemetryRelease
from federated.window import telemetry_window_run
from tests.analytics.test_admin import staff
from tests.federated.conftest import enrol_devices, telemetry_trial
from trials.models import TrialMember
from trials.services import member_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def released(trial, tmp_path):
    grid = InProcessGrid(
        device_app, [d.node_config for d in enrol_devices(trial, tmp_path, per_arm=2)]
    )
    return telemetry_window_run(grid=grid, trial=trial, window_index=0)


def test_an_analyst_reads_the_budget_gauge_and_the_noisy_release(client, trial, released):
    analyst = staff("ana", "Analysts")
    member_add(trial=trial, user=analyst, role=TrialMember.Role.ANALYST)
    client.force_login(analyst)
    budget = PrivacyBudget.objects.get(trial=trial)
    page = client.get(f"/admin/federated/privacybudget/{budget.pk}/change/").content.decode()
    assert "20.0% of the budget spent" in page  # 0.01 of 0.05 ρ
    assert "ε = " in page and "δ = 1e-07" in page
    page = client.get(f"/admin/federated/telemetryrelease/{released.pk}/change/").content.decode()
    assert "95% noise interval" in page and "late_night_days" in page
    assert client.post(f"/admin/federated/privacybudget/{budget.pk}/delete/").status_code == 403


def test_other_trials_people_see_nothing(client, trial, released):
    other = telemetry_trial("other")
    analyst = staff("ana", "Analysts")
    member_add(trial=other, user=analyst, role=TrialMember.Role.ANALYST)
    client.force_login(analyst)
    budget = PrivacyBudget.objects.get(trial=trial)
    assert client.get(f"/admin/federated/privacybudget/{budget.pk}/change/").status_code == 403
    listing = client.get("/admin/federated/telemetryrelease/").content.decode()
    assert TelemetryRelease.objects.count() == 1 and "0 telemetry releases" in listing
