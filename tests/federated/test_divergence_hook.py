"""DP telemetry as the engagement signal of the divergence guardrail: the released mean's
interval is calibrated (simulation with known truth through the real OpenDP mechanism), and an
analysis run reads the latest release."""

import numpy as np
import pytest

from analytics.results import Results
from analytics.seeding import synthetic_telemetry_release
from analytics.services import analysis_run_create, analysis_run_execute
from federated.mechanism import release, release_plan
from federated.models import TelemetryRelease
from federated.schema import COUNT
from stats.divergence import ReleasedMean, released_mean_difference
from trials.telemetry import TelemetrySection

UPPER = 1200
SCHEMA = TelemetrySection.model_validate(
    {
        "window_days": 7,
        "rho_total": 100.0,
        "rho_per_window": 0.05,
        "metrics": [{"code": "minutes", "upper": UPPER}],
    }
)


def _population(mean: float, size: int, rng) -> np.ndarray:
    return np.minimum(rng.gamma(2.0, mean / 2.0, size).astype(int), UPPER)


@pytest.mark.slow
def test_the_released_mean_difference_covers_the_truth_at_least_95_percent():
    rng = np.random.default_rng(11)
    # The estimand: the difference of the two arms' population means of the clamped values.
    truth = _population(360, 2_000_000, rng).mean() - _population(300, 2_000_000, rng).mean()
    plan = release_plan(SCHEMA)
    estimates, covered = [], 0
    repetitions = 400
    for _ in range(repetitions):
        arms = {"b": _population(360, 150, rng), "a": _population(300, 150, rng)}
        noisy = release(
            plan,
            {arm: [{"minutes": int(v)} for v in values] for arm, values in arms.items()},
            reserved_nano_rho=plan.nano_rho,
        )
        means = {
            arm: ReleasedMean(
                noisy_sum=q["minutes"].value,
                sum_noise_scale=q["minutes"].scale,
                noisy_count=q[COUNT].value,
                count_noise_scale=q[COUNT].scale,
                lower=0,
                upper=UPPER,
            )
            for arm, q in noisy.items()
        }
        estimate, std_error = released_mean_difference(means["b"], means["a"])
        estimates.append(estimate)
        covered += abs(estimate - truth) <= 1.959964 * std_error
    # Conservative by construction (Popoviciu's bound on the sampling variance): at least 95%,
    # allowing the binomial 99.9% lower range for 400 repetitions.
    assert covered / repetitions >= 0.92
    spread = np.std(estimates)
    assert abs(np.mean(estimates) - truth) < 4 * spread / np.sqrt(repetitions)


@pytest.mark.django_db
def test_an_analysis_reads_the_latest_telemetry_release_into_the_divergence(small_trial):
    released = synthetic_telemetry_release(trial=small_trial, minutes_effect=120, seed=3)
    assert released == TelemetryRelease.objects.filter(trial=small_trial).count() >= 1
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    results = Results.model_validate(run.results)
    sources = [row.engagement_source for row in results.divergence]
    assert any(source.startswith("DP telemetry: mean minutes") for source in sources), sources
    latest = TelemetryRelease.objects.filter(trial=small_trial).order_by("-window_index")[0]
    assert any(f"window {latest.window_index}" in source for source in sources)
