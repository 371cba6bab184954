"""``simulate_trial --dose-slope``: the plan declares a dose release, simulated devices run it
through the real release, and the released slope's interval holds the simulated one."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from federated.models import DoseRelease, PrivacyBudget
from federated.selectors import POOLED, dose_slopes
from trials.models import Trial
from trials.selectors import preregistration_current

pytestmark = pytest.mark.django_db

SLOPE = 0.03  # WHO-5 points per minute of use over the trial


@pytest.mark.slow
def test_a_simulated_usage_outcome_slope_is_released_and_recovered():
    """Enough participants that the privacy noise leaves an interval narrow enough to tell the
    simulated slope from none."""
    out = StringIO()
    call_command(
        "simulate_trial",
        slug="dose",
        participants=300,
        waves=3,
        dose_slope=SLOPE,
        seed=5,
        stdout=out,
    )
    trial = Trial.objects.get(slug="dose")
    dose = preregistration_current(trial).plan.telemetry.dose
    assert (dose.outcome.score, dose.outcome.wave, dose.usage_metric) == ("who5", 2, "minutes")
    release = DoseRelease.objects.get(trial=trial)
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho > 0
    assert release.values.exists()
    pooled = next(s for s in dose_slopes(trial) if s.arm == POOLED)
    assert pooled.ci_low < SLOPE < pooled.ci_high
    assert pooled.ci_high - pooled.ci_low < 2 * SLOPE  # tells a slope of this size from none
    assert f"{pooled.slope:.4g} points per minute" in out.getvalue()
    assert "simulated 0.03" in out.getvalue()


def test_a_slope_steeper_than_the_changes_allow_is_refused_with_why():
    with pytest.raises(CommandError, match="needs the change to vary more than"):
        call_command("simulate_trial", slug="steep", participants=40, waves=2, dose_slope=5.0)
