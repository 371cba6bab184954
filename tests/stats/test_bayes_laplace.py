"""The Laplace path of the Bayesian growth model (``stats.bayes_growth._laplace``), which large
trials with intermittent waves take: against the exact REML fit of the same data, and against
NUTS on the same data and model."""

import numpy as np
import pytest
import statsmodels.formula.api as smf

from analytics.simulate import DIMENSIONS, simulate_scores
from stats.bayes_growth import growth_data_from_frame, growth_fit

pytestmark = pytest.mark.unit


def _frame(participants: int, seed: int):
    """Two arms, six waves, MAR drop-out, and each wave after baseline skipped with
    probability 0.15 by participants who come back: many wave patterns."""
    simulated = simulate_scores(
        n_participants=participants,
        n_waves=6,
        effect=0.8,
        seed=seed,
        dropout=0.2,
        missing="mar",
        dimensions=DIMENSIONS[:2],
        clip=False,
    )
    frame = simulated.scores.assign(arm=np.where(simulated.scores.arm == 0, "control", "treatment"))
    skipped = np.random.default_rng(seed).random(len(frame)) < 0.15
    return frame[(frame.wave == 0) | ~skipped]


def test_the_laplace_posterior_agrees_with_reml_within_a_fifth_of_its_standard_error():
    frame = _frame(800, seed=21)
    fit = growth_fit(growth_data_from_frame(frame, control="control"), seed=5, laplace_groups=0)
    assert fit.method == "laplace" and fit.reportable, fit.gates.reasons
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
        # The bar the NUTS fit meets on the same kind of data (test_bayes_validation).
        assert abs(posterior.mean - reml.params[name]) < 0.2 * reml.bse[name]
        assert posterior.sd == pytest.approx(reml.bse[name], rel=0.15)


def test_a_fit_takes_the_laplace_path_only_above_its_number_of_groups():
    data = growth_data_from_frame(_frame(120, seed=3), control="control")
    assert growth_fit(data, seed=1, laplace_groups=10_000, draws=200, warmup=200).method == "nuts"
    assert growth_fit(data, seed=1, laplace_groups=1).method == "laplace"


@pytest.mark.slow
def test_the_laplace_and_nuts_posteriors_of_the_same_data_agree():
    """Same data, same model: the effects' means within a tenth of a posterior SD and their SDs
    within 10% (NUTS's own Monte Carlo error on an SD with its ESS is a few per cent)."""
    data = growth_data_from_frame(_frame(1_500, seed=8), control="control")
    laplace = growth_fit(data, seed=2, laplace_groups=0)
    nuts = growth_fit(data, seed=2)
    assert (laplace.method, nuts.method) == ("laplace", "nuts")
    assert laplace.reportable and nuts.reportable
    for approximate, sampled in zip(laplace.effects, nuts.effects, strict=True):
        a, b = approximate.growth_difference_per_wave, sampled.growth_difference_per_wave
        assert abs(a.mean - b.mean) < 0.1 * b.sd
        assert a.sd == pytest.approx(b.sd, rel=0.1)
