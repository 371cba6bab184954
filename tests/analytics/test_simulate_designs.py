"""Factorial trials, moderators and covariates simulated with known truth: the mixed model's
contrasts (stats.growth.mixedlm_growth_adjusted with a plan's FactorialDesign weights) find
them within their intervals."""

import itertools

import numpy as np
import pytest

from analytics.simulate import DIMENSIONS, factorial_cell_effects, simulate_scores
from stats.growth import mixedlm_growth_adjusted
from stats.reml_growth import participant_statistics
from trials.plan import FactorialDesign

pytestmark = pytest.mark.unit

# Intervals at 99.9%: with about ten estimates per seed, a miss is a bug rather than bad luck.
ALPHA = 0.001
LEVELS = (3, 3)
MAIN_EFFECTS = (2.0, 1.5)
INTERACTION = 1.0
DESIGN = FactorialDesign.model_validate(
    {
        "factors": [
            {"name": "mode", "levels": ["text", "voice", "video"]},
            {"name": "kind", "levels": ["open", "personal", "task"]},
        ],
        "cells": {
            f"c{i}{j}": {
                "mode": ["text", "voice", "video"][i],
                "kind": ["open", "personal", "task"][j],
            }
            for i, j in itertools.product(range(3), range(3))
        },
        "contrasts": [
            {"kind": "main_effect", "factor": "mode"},
            {"kind": "main_effect", "factor": "kind"},
            {"kind": "interaction", "factors": ["mode", "kind"]},
        ],
    }
)
ARMS = tuple(DESIGN.cells)  # itertools.product order, the order of factorial_cell_effects


def _statistics(simulated, n: int) -> np.ndarray:
    frame = simulated.scores[simulated.scores.dimension == "mental_wellbeing"]
    return participant_statistics(
        frame["participant"].to_numpy(), frame["wave"].to_numpy(), frame["score"].to_numpy(), n
    )


def test_the_cell_effects_give_the_main_effects_and_interaction_asked_for():
    effects = dict(
        zip(ARMS, factorial_cell_effects(LEVELS, MAIN_EFFECTS, INTERACTION), strict=True)
    )
    mode, kind, interaction = (DESIGN.weighted_contrasts(c) for c in DESIGN.contrasts)

    def truth(row):
        return sum(w * effects[arm] for arm, w in row.weights.items())

    # A main effect averages the interaction over the other factor's three levels: 2 of 3 cells.
    assert [truth(row) for row in mode] == pytest.approx([2.0 + INTERACTION * 2 / 3] * 2)
    assert [truth(row) for row in kind] == pytest.approx([1.5 + INTERACTION * 2 / 3] * 2)
    assert [truth(row) for row in interaction] == pytest.approx([INTERACTION] * 4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_three_by_three_trial_recovers_its_main_effects_and_interaction(seed):
    n = 1350  # 150 per cell
    effects = factorial_cell_effects(LEVELS, MAIN_EFFECTS, INTERACTION)
    arm = np.random.default_rng(seed).permutation(np.arange(n) % 9)
    simulated = simulate_scores(
        n_participants=n,
        n_waves=4,
        effect=0.0,
        seed=seed,
        arm=arm,
        arm_effects=effects,
        dimensions=DIMENSIONS[:1],
        clip=False,
    )
    model = mixedlm_growth_adjusted(arm, _statistics(simulated, n), ARMS, alpha=ALPHA)
    truth = dict(zip(ARMS, simulated.arm_effects, strict=True))
    for contrast in DESIGN.contrasts:
        rows = DESIGN.weighted_contrasts(contrast)
        for row in rows:
            estimate = model.contrast(row.weights, row.label)
            expected = sum(w * truth[a] for a, w in row.weights.items())
            assert estimate.ci_low <= expected <= estimate.ci_high, (row.label, estimate)
        # The main effects are about ten SEs from zero, so their joint tests reject (the
        # interaction, two SEs a contrast, is not powered for that here).
        if contrast.kind == "main_effect":
            test = model.joint_test([row.weights for row in rows], contrast.title)
            assert test.p_value < ALPHA


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_a_moderator_effect_is_recovered(seed):
    n = 1200
    rng = np.random.default_rng(100 + seed)
    arm = rng.permutation(np.arange(n) % 2)
    language = rng.random(n) < 0.4  # the moderator: 1 for the language, 0 for the other
    simulated = simulate_scores(
        n_participants=n,
        n_waves=4,
        effect=0.5,
        seed=seed,
        arm=arm,
        moderator=language.astype(float),
        moderator_effect=1.2,
        dimensions=DIMENSIONS[:1],
        clip=False,
    )
    statistics = _statistics(simulated, n)
    languages = np.where(language, "de", "en")
    moderated = mixedlm_growth_adjusted(
        arm, statistics, ("a", "b"), moderators={"language": languages}, alpha=ALPHA
    )
    (effect,) = moderated.moderator_effects
    assert effect.label == "b × language=de"
    assert effect.ci_low <= simulated.moderator_effect <= effect.ci_high


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_a_prognostic_covariate_buys_precision_and_keeps_the_contrast(seed):
    n = 1200
    rng = np.random.default_rng(200 + seed)
    arm = rng.permutation(np.arange(n) % 2)
    # A baseline value that predicts growth in both arms: 2 points a wave per SD, beside a
    # between-person SD of growth of 1.5.
    prognostic = rng.standard_normal(n)
    simulated = simulate_scores(
        n_participants=n,
        n_waves=4,
        effect=0.5,
        seed=seed,
        arm=arm,
        covariate=prognostic,
        covariate_effect=2.0,
        dimensions=DIMENSIONS[:1],
        clip=False,
    )
    statistics = _statistics(simulated, n)
    plain = mixedlm_growth_adjusted(arm, statistics, ("a", "b"), alpha=ALPHA).arm_contrasts[0]
    adjusted, noise = (
        mixedlm_growth_adjusted(
            arm, statistics, ("a", "b"), covariates={"x": values}, alpha=ALPHA
        ).arm_contrasts[0]
        for values in (prognostic, rng.standard_normal(n))
    )
    # Per participant the growth estimate's variance is 1.5² + 2² + 8²/5 (four waves, residual
    # SD 8) unadjusted and 1.5² + 8²/5 adjusted: SE² shrinks to about 0.79. Noise as a
    # covariate costs a fraction of a degree of freedom.
    assert (adjusted.std_error / plain.std_error) ** 2 < 0.9
    assert noise.std_error == pytest.approx(plain.std_error, rel=0.02)
    for contrast in (plain, adjusted):
        assert contrast.ci_low <= simulated.true_effects["mental_wellbeing"] <= contrast.ci_high


def test_arm_effects_are_checked():
    with pytest.raises(ValueError, match="one effect per arm"):
        simulate_scores(n_participants=8, n_waves=2, effect=0, seed=1, n_arms=3, arm_effects=(0, 1))
    with pytest.raises(ValueError, match="one moderator value per participant"):
        simulate_scores(n_participants=8, n_waves=2, effect=0, seed=1, moderator_effect=1.0)
    with pytest.raises(ValueError, match="one covariate value per participant"):
        simulate_scores(n_participants=8, n_waves=2, effect=0, seed=1, covariate_effect=1.0)
