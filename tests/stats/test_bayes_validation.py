"""The Bayesian growth model checked against an independent implementation (statsmodels'
MixedLM) and by simulation with known truth."""

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import statsmodels.formula.api as smf

from analytics.simulate import DIMENSIONS, simulate_scores
from stats.bayes_growth import growth_data_from_frame, growth_fit

pytestmark = pytest.mark.unit


def _named_arms(frame):
    return frame.assign(arm=np.where(frame.arm == 0, "control", "treatment"))


def test_posterior_agrees_with_reml_mixedlm_within_a_fifth_of_its_standard_error():
    simulated = simulate_scores(
        n_participants=800,
        n_waves=6,
        effect=0.8,
        seed=21,
        dropout=0.2,
        missing="mar",
        dimensions=DIMENSIONS[:2],
        clip=False,
    )
    frame = _named_arms(simulated.scores)
    fit = growth_fit(growth_data_from_frame(frame, control="control"), seed=5)
    assert fit.reportable, fit.gates.reasons
    for effect in fit.effects:
        rows = frame[frame.dimension == effect.dimension]
        reml = smf.mixedlm(
            "score ~ wave * C(arm, Treatment('control'))",
            rows,
            groups=rows["participant"],
            re_formula="~wave",
        ).fit(reml=True, method=["lbfgs"])
        name = "wave:C(arm, Treatment('control'))[T.treatment]"
        posterior = effect.growth_difference_per_wave
        # With 800 participants and weak priors the posterior mean and SD should match the REML
        # estimate and its standard error (Bernstein–von Mises); 0.2 SE is the bar.
        assert abs(posterior.mean - reml.params[name]) < 0.2 * reml.bse[name]
        assert posterior.sd == pytest.approx(reml.bse[name], rel=0.15)


# Coverage study: every simulated trial has three arms (two contrasts with control), two
# independent dimensions and a known growth difference per wave; half the trials have no effect
# at all, which also measures the type-I error of "the 95% interval excludes 0". The fits run in
# two processes (the sampler is single-threaded at this size).
COVERAGE_TRIALS = 150


def _coverage_trial(seed: int) -> tuple[float, list[tuple[float, float]], bool, tuple[str, ...]]:
    effect = 0.0 if seed % 2 else 1.5
    simulated = simulate_scores(
        n_participants=120,
        n_waves=4,
        effect=effect,
        seed=1000 + seed,
        dropout=0.2,
        missing="mar",
        dimensions=DIMENSIONS[:2],
        clip=False,
        n_arms=3,
    )
    frame = simulated.scores.assign(arm=simulated.scores.arm.map({0: "a", 1: "b", 2: "c"}))
    # Fewer draws than the production default (2 chains × 500 after 300 warm-up, instead of
    # 4 × 1000 after 1000), so that 150 fits fit in a test run: the gates still apply, and a fit
    # that misses them is extended as in production.
    fit = growth_fit(
        growth_data_from_frame(frame, control="a"), seed=seed, chains=2, warmup=300, draws=500
    )
    intervals = [
        (e.growth_difference_per_wave.ci_low, e.growth_difference_per_wave.ci_high)
        for e in fit.effects
    ]
    return effect, intervals, fit.reportable, fit.gates.reasons


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(
    not os.environ.get("FLOURISH_COVERAGE_STUDY"),
    reason="The 150-trial coverage study takes longer than the suite's budget allows: run it "
    "with FLOURISH_COVERAGE_STUDY=1 make test-slow PYTEST_ARGS='-k intervals_cover'.",
)
def test_95_percent_intervals_cover_the_truth_93_to_97_percent_of_the_time(artifacts_dir):
    context = multiprocessing.get_context("spawn")  # JAX does not survive fork
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        trials = list(pool.map(_coverage_trial, range(COVERAGE_TRIALS)))
    covered, false_positives = [], []
    for effect, intervals, reportable, reasons in trials:
        assert reportable, reasons
        for low, high in intervals:
            covered.append(low <= effect <= high)
            if effect == 0:
                false_positives.append(not low <= 0 <= high)
    coverage = np.mean(covered)
    (artifacts_dir / "coverage-study.json").write_text(
        json.dumps(
            {
                "trials": COVERAGE_TRIALS,
                "intervals": len(covered),
                "coverage": coverage,
                "null_intervals": len(false_positives),
                "false_positives": sum(false_positives),
            }
        )
    )
    # 600 intervals: the Monte Carlo SE of a true 95% coverage is 0.9 points, so the issue's
    # band [93, 97] is ±2.2 SE.
    assert 0.93 <= coverage <= 0.97, f"coverage {coverage:.3f}"
    # 300 null intervals at a nominal 5%: the binomial 99.9% range is 4–29 rejections.
    assert 4 <= sum(false_positives) <= 29, f"{sum(false_positives)} false positives"
