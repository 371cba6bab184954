"""The Bayesian growth model checked against an independent implementation (statsmodels'
MixedLM) and by simulation with known truth."""

import numpy as np
import pytest
import statsmodels.formula.api as smf

from analytics.simulate import DIMENSIONS, simulate_scores
from analytics.stats.bayes_growth import growth_data_from_frame, growth_fit

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
