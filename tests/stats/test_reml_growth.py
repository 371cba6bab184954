"""Exact REML of the growth model (stats.reml_growth) against lme4's golden numbers, statsmodels
MixedLM, the truth of simulated data, and its own gradient."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.benchmarks.growth_panel import arm_names, growth_panel
from stats.reml_growth import (
    STEP_TOLERANCE,
    GroupTotals,
    _criterion,
    _state,
    arm_rows,
    group_totals,
    participant_statistics,
    reml_growth_fit,
)
from tests.stats.mixedlm_reference import statsmodels_reml

pytestmark = pytest.mark.unit

GOLDEN = json.loads((Path(__file__).parent / "lme4_golden.json").read_text())
# Required agreement with lme4, relative: estimates, standard errors, θ, σ and the random-effect
# covariance (θ and the covariance also absolutely, for the boundary fit's zero). Both sides stop
# closer to the optimum (lme4 with its relative tolerances switched off, see
# infra/benchmarks/lme4_golden.R): the differences seen were at most 2e-7.
AGREEMENT = 1e-6


def _statistics(frame: pd.DataFrame, names: tuple[str, ...]):
    """Each participant's arm code and six statistics."""
    participant, people = pd.factorize(frame["participant"])
    statistics = participant_statistics(
        participant, frame["wave"].to_numpy(), frame["score"].to_numpy(), len(people)
    )
    arm = np.empty(len(people), dtype=int)
    arm[participant] = pd.Categorical(frame["arm"], categories=names).codes
    return arm, statistics


def _fit(frame: pd.DataFrame, names: tuple[str, ...], **options):
    return reml_growth_fit(*_statistics(frame, names), names, **options)


def _lme4_name(name: str) -> str:
    """lme4's name of a patsy coefficient: ``wave:arm[T.arm1]`` is ``wave:armarm1``."""
    return {"Intercept": "(Intercept)"}.get(name, name.replace("[T.", "").replace("]", ""))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_agrees_with_lme4_to_a_millionth(name):
    golden = GOLDEN[name]
    panel = golden["panel"]
    frame = growth_panel(panel["participants"], panel["waves"], panel["arms"], panel["seed"])
    # The same data as lme4 was given: if numpy's generator ever changed, this says so first.
    assert len(frame) == golden["observations"]
    assert frame["score"].sum() == pytest.approx(golden["score_sum"], rel=1e-13)
    fit = _fit(frame, arm_names(panel["arms"]))
    assert fit.converged and fit.newton_step < STEP_TOLERANCE
    # lme4 stops at θ₃ ≈ 1e-7 on the boundary, where we reach 1e-17: compare θ absolutely too.
    assert fit.boundary == (name == "boundary")
    order = [golden["names"].index(_lme4_name(n)) for n in fit.names]
    assert fit.fixed_effects == pytest.approx(
        np.array(golden["fixed_effects"])[order], rel=AGREEMENT
    )
    std_errors = np.sqrt(np.diag(fit.covariance))
    assert std_errors == pytest.approx(np.array(golden["std_errors"])[order], rel=AGREEMENT)
    assert fit.theta == pytest.approx(golden["theta"], rel=AGREEMENT, abs=1e-6)
    assert fit.sigma == pytest.approx(golden["sigma"], rel=AGREEMENT)
    assert fit.random_covariance == pytest.approx(
        np.array(golden["random_covariance"]), rel=AGREEMENT, abs=1e-9
    )
    assert fit.reml_criterion == pytest.approx(golden["reml_criterion"], rel=1e-12)
    # Satterthwaite's df of each wave × arm contrast, as lmerTest computes them on lme4's fit.
    for contrast in fit.contrasts:
        df = golden["df"][golden["names"].index(f"wave:arm{contrast.arm}")]
        assert contrast.df == pytest.approx(df, rel=1e-6)
        coefficient = fit.names.index(f"wave:arm[T.{contrast.arm}]")
        assert contrast.estimate == pytest.approx(fit.fixed_effects[coefficient], rel=1e-12)


def test_agrees_with_statsmodels_and_finds_the_simulated_truth():
    # 2,000 participants over 6 waves, three arms, waves skipped and drop-out: the generator's
    # truth is a level of 50 + 0.5k and growth of 0.3 + 0.1k a wave in arm k, Ψ with SDs 4 and
    # 0.6 and correlation −0.3, σ = 2 (infra/benchmarks/growth_panel.py).
    frame = growth_panel(2000, 6, 3, seed=7)
    names = arm_names(3)
    fit = _fit(frame, names)
    reference = statsmodels_reml(frame, "control")
    std_errors = np.sqrt(np.diag(fit.covariance))
    for i, name in enumerate(fit.names):
        # statsmodels stops once its gradient is below 1e-5 per observation: a hundredth of an
        # SE is far more than the gaps seen (below 2e-5 SE) and far less than a wrong model.
        assert abs(fit.fixed_effects[i] - reference.params[name]) < 0.01 * std_errors[i]
        assert std_errors[i] == pytest.approx(reference.bse[name], rel=1e-3)
    assert fit.sigma**2 == pytest.approx(reference.scale, rel=1e-4)
    assert fit.random_covariance == pytest.approx(np.asarray(reference.cov_re), rel=1e-3)
    truth = {"Intercept": 50.0, "wave": 0.3}
    for k, arm in enumerate(names[1:], start=1):
        truth |= {f"arm[T.{arm}]": 0.5 * k, f"wave:arm[T.{arm}]": 0.1 * k}
    for i, name in enumerate(fit.names):
        assert abs(fit.fixed_effects[i] - truth[name]) < 4 * std_errors[i], name
    sds = np.sqrt(np.diag(fit.random_covariance))
    assert sds == pytest.approx([4.0, 0.6], rel=0.1)
    assert fit.sigma == pytest.approx(2.0, rel=0.05)
    # The contrasts are the wave × arm coefficients with their SEs.
    for contrast in fit.contrasts:
        i = fit.names.index(f"wave:arm[T.{contrast.arm}]")
        assert (contrast.estimate, contrast.std_error) == pytest.approx(
            (fit.fixed_effects[i], std_errors[i]), rel=1e-12
        )


@pytest.mark.parametrize("theta", [(1.0, 0.0, 1.0), (0.3, -0.2, 0.05), (-0.7, 0.4, -0.2)])
def test_the_gradient_is_the_derivative_of_the_criterion(theta):
    names = arm_names(3)
    arm, statistics = _statistics(growth_panel(300, 6, 3, seed=3), names)
    totals = group_totals(arm_rows(arm, 3), statistics)
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


def test_where_rounding_breaks_x_w_x_the_criterion_is_infinite_not_an_error():
    # On a 20-wave panel of tens of thousands of participants the optimiser's line search
    # stepped to θ near (-5e3, -4e4, -1e5), where X'W⁻¹X was no longer positive definite in
    # floating point and the fit raised; an infinite criterion there makes the search back off.
    # Here the same condition, X'W⁻¹X = 0, is made by design rows that are all zero.
    names = arm_names(2)
    arm, statistics = _statistics(growth_panel(200, 6, 2, seed=4), names)
    totals = group_totals(arm_rows(arm, 2), statistics)
    observations = statistics[:, 0].sum()
    theta = np.array([1.0, 0.0, 1.0])
    state = _state(theta, totals, observations)
    assert _criterion(theta, totals, observations)[0] == state.deviance
    broken = totals._replace(sum_ww=np.zeros_like(totals.sum_ww))
    with pytest.raises(np.linalg.LinAlgError):
        _state(theta, broken, observations)
    deviance, gradient = _criterion(theta, broken, observations)
    assert deviance == np.inf and np.isnan(gradient).all()


def test_pooling_participants_that_share_a_design_is_exact():
    # Every participant their own group against the pooled groups: the same criterion and
    # gradient to rounding, with many fewer groups.
    names = arm_names(2)
    arm, statistics = _statistics(growth_panel(1000, 8, 2, seed=5), names)
    rows = arm_rows(arm, 2)
    pooled = group_totals(rows, statistics)
    n, t, tt = statistics[:, 0], statistics[:, 1], statistics[:, 2]
    u = statistics[:, 3:5]
    single = GroupTotals(
        count=np.ones(len(arm)),
        design=np.stack([np.stack([n, t], -1), np.stack([t, tt], -1)], -2),
        sum_ww=rows[:, :, None] * rows[:, None, :],
        sum_uw=u[:, :, None] * rows[:, None, :],
        sum_uu=u[:, :, None] * u[:, None, :],
        sum_yy=statistics[:, 5],
    )
    assert len(pooled.count) < len(single.count) / 4
    observations = n.sum()
    for theta in ((1.0, 0.0, 1.0), (2.0, -0.1, 0.3)):
        a = _state(np.array(theta), pooled, observations)
        b = _state(np.array(theta), single, observations)
        assert a.deviance == pytest.approx(b.deviance, rel=1e-12)
        assert a.gradient == pytest.approx(b.gradient, rel=1e-8, abs=1e-8)
        assert a.beta == pytest.approx(b.beta, rel=1e-10)


def test_a_fit_stopped_short_is_not_called_converged():
    frame = growth_panel(500, 8, 3, seed=11)
    names = arm_names(3)
    stopped = _fit(frame, names, max_iterations=1)
    assert not stopped.converged and stopped.newton_step > STEP_TOLERANCE
    finished = _fit(frame, names)
    assert finished.converged
    assert stopped.reml_criterion > finished.reml_criterion


def test_the_result_does_not_depend_on_the_order_or_labels_of_participants():
    names = arm_names(2)
    frame = growth_panel(400, 6, 2, seed=8)
    shuffled = frame.sample(frac=1.0, random_state=1).assign(
        participant=lambda f: "p" + f["participant"].astype(str)
    )
    a, b = _fit(frame, names), _fit(shuffled, names)
    assert a.fixed_effects == pytest.approx(b.fixed_effects, rel=1e-9)
    assert a.theta == pytest.approx(b.theta, rel=1e-7)
