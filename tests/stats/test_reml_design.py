"""Exact REML with participant-level design rows (stats.reml_growth.reml_design_fit): arms,
covariates and arm × moderator products on both level and growth, against lme4 and lmerTest
(contrasts and joint F tests), statsmodels MixedLM, the simulated truth and its own gradient."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

from stats.reml_growth import (
    _state,
    group_totals,
    participant_statistics,
    reml_design_fit,
    reml_growth_fit,
)

pytestmark = pytest.mark.unit

# lme4 and lmerTest on moderated_panel(seed=3): see the file's "r_call" for how it was made.
GOLDEN = json.loads((Path(__file__).parent / "lme4_design_golden.json").read_text())
COLUMNS = ("a0", "a1", "a2", "x", "a1_x", "a2_x")
# The simulated truth: level 50 + 0.5k + x, growth 0.3 + 0.1k + 0.05x, plus 0.2x in arm 1 and
# −0.1x in arm 2 (k the arm, x a standard normal baseline moderator).
TRUE_GROWTH = {"a0": 0.3, "a1": 0.4, "a2": 0.5, "x": 0.05, "a1_x": 0.2, "a2_x": -0.1}


def moderated_panel(seed: int, participants: int = 500, waves: int = 5):
    """Long data (participant, wave, score and the design columns) with skipped waves and
    drop-out, each participant's design row (arm indicators, the centred moderator x and the
    arm × x products) and the columns' names."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 3, participants)
    x = rng.standard_normal(participants)
    covariance = np.array([[16.0, -0.72], [-0.72, 0.36]])  # SDs 4 and 0.6, correlation −0.3
    effects = rng.standard_normal((participants, 2)) @ np.linalg.cholesky(covariance).T
    growth = 0.3 + 0.1 * arm + 0.05 * x + np.select([arm == 1, arm == 2], [0.2 * x, -0.1 * x], 0)
    t = np.arange(waves, dtype=float)
    mean = (50 + 0.5 * arm + x + effects[:, 0])[:, None] + (growth + effects[:, 1])[:, None] * t
    score = mean + 2.0 * rng.standard_normal((participants, waves))
    skipped = rng.random((participants, waves)) < 0.15
    skipped[:, 0] = False
    person, wave = np.nonzero(~skipped)
    centred = x - x.mean()
    indicators = np.eye(3)[arm]
    rows = np.column_stack(
        [indicators, centred, indicators[:, 1] * centred, indicators[:, 2] * centred]
    )
    frame = pd.DataFrame({"participant": person, "wave": wave, "score": score[person, wave]})
    for j, name in enumerate(COLUMNS):
        frame[name] = rows[person, j]
    return frame, rows, COLUMNS


def _fit(seed: int = 3, **options):
    frame, rows, columns = moderated_panel(seed, **options)
    statistics = participant_statistics(
        frame["participant"].to_numpy(),
        frame["wave"].to_numpy(),
        frame["score"].to_numpy(),
        len(rows),
    )
    return frame, rows, statistics, reml_design_fit(rows, statistics, columns)


def _weights(named: dict[str, float]) -> np.ndarray:
    return np.array([named.get(column, 0.0) for column in COLUMNS])


def test_agrees_with_lme4_and_lmertest_on_estimates_contrasts_and_joint_tests():
    _, _, _, fit = _fit()
    order = [GOLDEN["names"].index(name) for name in fit.names]
    assert fit.converged
    assert fit.fixed_effects == pytest.approx(np.array(GOLDEN["fixed_effects"])[order], rel=1e-6)
    assert np.sqrt(np.diag(fit.covariance)) == pytest.approx(
        np.array(GOLDEN["std_errors"])[order], rel=1e-6
    )
    assert fit.reml_criterion == pytest.approx(GOLDEN["reml_criterion"], rel=1e-10)
    assert fit.sigma == pytest.approx(GOLDEN["sigma"], rel=1e-6)
    for golden in GOLDEN["contrasts"]:
        contrast = fit.contrast(_weights(golden["weights"]))
        assert contrast.estimate == pytest.approx(golden["estimate"], rel=1e-6)
        assert contrast.std_error == pytest.approx(golden["std_error"], rel=1e-6)
        # lmerTest differentiates numerically (numDeriv's Richardson extrapolation), we
        # analytically with a central-difference Hessian: the df agreed to 1e-7.
        assert contrast.df == pytest.approx(golden["df"], rel=1e-6)
    for golden in GOLDEN["joint_tests"]:
        test = fit.joint_test(np.array([_weights(row) for row in golden["weights"]]))
        assert test.df_numerator == golden["df_numerator"]
        assert test.f_statistic == pytest.approx(golden["f_statistic"], rel=1e-6)
        assert test.df_denominator == pytest.approx(golden["df_denominator"], rel=1e-6)
        assert test.p_value == pytest.approx(golden["p_value"], rel=1e-6)


def test_agrees_with_statsmodels_and_finds_the_simulated_truth():
    frame, rows, _, fit = _fit(seed=11, participants=1500)
    exog = np.column_stack(
        [
            frame[list(COLUMNS)].to_numpy(),
            frame[list(COLUMNS)].to_numpy() * frame[["wave"]].to_numpy(),
        ]
    )
    reference = MixedLM(
        frame["score"].to_numpy(),
        exog,
        groups=frame["participant"].to_numpy(),
        exog_re=np.column_stack([np.ones(len(frame)), frame["wave"]]),
    ).fit(reml=True, method=["lbfgs", "bfgs"])
    std_errors = np.sqrt(np.diag(fit.covariance))
    # statsmodels stops once its gradient is below 1e-5 per observation: a hundredth of an SE
    # is far more than the gaps seen and far less than a wrong model.
    assert np.all(np.abs(fit.fixed_effects - reference.fe_params) < 0.01 * std_errors)
    assert std_errors == pytest.approx(reference.bse_fe, rel=1e-3)
    assert fit.sigma**2 == pytest.approx(reference.scale, rel=1e-4)
    for column, truth in TRUE_GROWTH.items():
        j = fit.names.index(f"wave:{column}")
        assert abs(fit.fixed_effects[j] - truth) < 4 * std_errors[j], column


def test_the_arm_fit_is_the_design_fit_with_arm_indicators():
    _, rows, statistics, _ = _fit()
    arm = rows[:, :3].argmax(axis=1)
    fit = reml_growth_fit(arm, statistics, ("a0", "a1", "a2"))
    for k, contrast in enumerate(fit.contrasts, start=1):
        direct = fit.design.contrast(np.eye(3)[k] - np.eye(3)[0])
        assert (contrast.estimate, contrast.std_error, contrast.df) == pytest.approx(
            (direct.estimate, direct.std_error, direct.df), rel=1e-12
        )
    # One row of a joint test is the contrast's t test squared, with the same df.
    single = fit.design.joint_test(np.eye(3)[1] - np.eye(3)[0])
    first = fit.contrasts[0]
    assert single.f_statistic == pytest.approx((first.estimate / first.std_error) ** 2)
    assert single.df_denominator == pytest.approx(first.df)
    # F depends on the hypothesis, not on how its rows are written; the approximate df do,
    # a little (the rotated rows' own df differ), as lmerTest's.
    a = fit.design.joint_test(np.array([[-1.0, 1, 0], [-1.0, 0, 1]]))
    b = fit.design.joint_test(np.array([[-1.0, 1, 0], [0.0, -1, 1]]))
    assert a.f_statistic == pytest.approx(b.f_statistic, rel=1e-10)
    assert a.df_denominator == pytest.approx(b.df_denominator, rel=1e-4)


@pytest.mark.parametrize("theta", [(1.0, 0.0, 1.0), (0.3, -0.2, 0.05)])
def test_the_gradient_and_the_df_gradient_are_derivatives(theta):
    _, rows, statistics, fit = _fit()
    totals = group_totals(rows, statistics)
    observations = statistics[:, 0].sum()
    point = np.array(theta)
    analytic = _state(point, totals, observations).gradient
    numeric = []
    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6
        up = _state(point + step, totals, observations).deviance
        down = _state(point - step, totals, observations).deviance
        numeric.append((up - down) / 2e-6)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-4)
    # The df's ingredient: the gradient of σ²ℓᵀC(θ)⁻¹ℓ in θ at the fit, against differences.
    vector = np.concatenate([np.zeros(6), _weights({"a1_x": 1.0, "a2_x": -1.0})])
    _, gradient = fit._gradient(vector)

    def variance(at: np.ndarray) -> float:
        precision = _state(at, totals, observations).precision
        return fit.sigma**2 * vector @ np.linalg.solve(precision, vector)

    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6
        difference = (variance(fit.theta + step) - variance(fit.theta - step)) / 2e-6
        assert gradient[j] == pytest.approx(difference, rel=1e-5, abs=1e-10)


def test_bad_designs_are_refused_with_the_reason():
    _, rows, statistics, _ = _fit()
    with pytest.raises(ValueError, match="span the constant"):
        reml_design_fit(rows[:, 3:], statistics, COLUMNS[3:])
    collinear = np.column_stack([rows, rows[:, 3]])
    with pytest.raises(ValueError, match="not identified"):
        reml_design_fit(collinear, statistics, (*COLUMNS, "copy"))
    with pytest.raises(ValueError, match="must agree"):
        reml_design_fit(rows, statistics, COLUMNS[:-1])
