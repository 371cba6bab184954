import json
import math
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.tools.numdiff import approx_fprime

from stats.growth import (
    _BOUNDARY_NOTE,
    _FORMULA,
    _validated,
    gee_growth,
    gee_growth_from_statistics,
    mixedlm_growth,
    mixedlm_growth_from_statistics,
)
from stats.reml_growth import participant_statistics
from tests.stats.mixedlm_reference import SignSafeMixedLM

pytestmark = pytest.mark.unit

WAVES = np.arange(5)


def _balanced(seed: int, sizes=(30, 40, 50), slope_sd=0.4) -> pd.DataFrame:
    """Every participant observed at waves 0–4; arms a, b, c grow by 0.5, 0.8 and 1.1 a wave."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, n in enumerate(sizes):
        for i in range(n):
            intercept, slope = rng.normal(10, 1), rng.normal(0.5 + 0.3 * k, slope_sd)
            scores = intercept + slope * WAVES + rng.normal(0, 1, len(WAVES))
            rows += [(f"{k}-{i}", "abc"[k], int(t), s) for t, s in zip(WAVES, scores, strict=True)]
    return pd.DataFrame(rows, columns=["participant", "arm", "wave", "score"])


def _per_participant_ols(frame: pd.DataFrame):
    """Independent implementation with numpy only: every participant's least-squares intercept
    and slope on the common design Z = [1, t], and the residual sum of squares."""
    design = np.column_stack([np.ones(len(WAVES)), WAVES])
    coefficients, rss = {}, 0.0
    for arm, group in frame.groupby("arm"):
        scores = group.pivot(index="participant", columns="wave", values="score")[WAVES]
        fitted, residuals, *_ = np.linalg.lstsq(design, scores.to_numpy().T, rcond=None)
        coefficients[arm], rss = fitted.T, rss + residuals.sum()
    return design, coefficients, rss


def test_mixedlm_on_balanced_data_equals_the_two_stage_analysis():
    # Seed 11 is a data set on which stock statsmodels (method=["lbfgs", "bfgs"]) reports
    # convergence with standard errors 9% too large: the sign error in its score that
    # SignSafeMixedLM (tests/stats/mixedlm_reference.py) corrects.
    frame = _balanced(seed=11)
    design, coefficients, rss = _per_participant_ols(frame)
    n = {arm: len(c) for arm, c in coefficients.items()}
    # With one design Z for everyone, V = ZDZ' + σ²I is the same for every participant, so GLS
    # averages the per-participant OLS coefficients within arms (exactly, for any D), and REML
    # estimates Var(OLS coefficients) = D + σ²(Z'Z)⁻¹ by their within-arm covariance pooled
    # over all arms (divisor N − K) and σ² by RSS / (N(T − 2)), provided the implied D is
    # positive definite (an interior optimum), which we check first.
    centred = [c - c.mean(axis=0) for c in coefficients.values()]
    pooled = sum(c.T @ c for c in centred) / (sum(n.values()) - len(n))
    sigma2 = rss / (sum(n.values()) * (len(WAVES) - 2))
    assert np.linalg.eigvalsh(pooled - sigma2 * np.linalg.inv(design.T @ design)).min() > 0.05

    results = mixedlm_growth(frame, control="a")
    assert [r.arm for r in results] == ["b", "c"]
    for result in results:
        slope_gap = coefficients[result.arm][:, 1].mean() - coefficients["a"][:, 1].mean()
        two_stage_se = math.sqrt(pooled[1, 1] * (1 / n[result.arm] + 1 / n["a"]))
        assert result.estimate == pytest.approx(slope_gap, rel=1e-10)
        # Equal at the exact REML optimum, which the fit reaches to far below this.
        assert result.std_error == pytest.approx(two_stage_se, rel=1e-8)
        # The two-stage variance is a pooled within-arm variance on N − K = 117 df, exactly a
        # scaled χ²: Satterthwaite's approximation recovers those df.
        assert result.df == pytest.approx(117, rel=1e-5)
        # t interval and p-value from the estimate, its standard error and those df.
        z = result.estimate / result.std_error
        assert result.p_value == pytest.approx(2 * stats.t.sf(abs(z), result.df), rel=1e-9)
        half_width = stats.t.ppf(0.975, result.df) * result.std_error
        assert result.ci_low == pytest.approx(result.estimate - half_width, rel=1e-12)
        assert result.ci_high == pytest.approx(result.estimate + half_width, rel=1e-12)
        assert result.n_participants == n[result.arm] + n["a"]
        assert result.n_observations == len(WAVES) * result.n_participants
        assert result.converged and result.warnings == ()
    json.dumps([asdict(r) for r in results])


def test_gee_on_balanced_data_equals_pooled_least_squares():
    frame = _balanced(seed=3)
    _, coefficients, _ = _per_participant_ols(frame)
    # Independent implementation: pooled OLS of score on [1, b, c, t, t·b, t·c] by lstsq. With
    # one design Z for everyone and an exchangeable V, VZ lies in span(Z), so GEE's GLS step
    # equals OLS whatever the correlation parameter.
    b = (frame["arm"] == "b").to_numpy(float)
    c = (frame["arm"] == "c").to_numpy(float)
    t = frame["wave"].to_numpy(float)
    design = np.column_stack([np.ones_like(t), b, c, t, t * b, t * c])
    ols = np.linalg.lstsq(design, frame["score"].to_numpy(), rcond=None)[0]
    results = gee_growth(frame, control="a", alpha=0.1)
    assert [r.estimate for r in results] == pytest.approx(ols[4:], rel=1e-10)
    for result in results:
        # The sandwich variance of an arm's mean slope is Σ(sᵢ − s̄)² / n² over its
        # participants' OLS slopes sᵢ (the bread is n(Z'Z) per arm and cancels).
        variance = 0.0
        for arm in ("a", result.arm):
            slopes = coefficients[arm][:, 1]
            variance += np.sum((slopes - slopes.mean()) ** 2) / len(slopes) ** 2
        assert result.std_error == pytest.approx(math.sqrt(variance), rel=1e-10)
        assert result.ci_high - result.ci_low == pytest.approx(
            2 * 1.6448536269514722 * result.std_error, rel=1e-12
        )
        assert result.converged and result.warnings == ()


def _with_dropout(seed: int) -> pd.DataFrame:
    """400 participants over waves 0–5; treatment grows 0.8 a wave faster than control; random
    intercepts (SD 2) and slopes (SD 0.5), residual SD 1; 20% of participants, chosen at random,
    stop after a wave drawn uniformly from 0–4 (missing completely at random)."""
    rng = np.random.default_rng(seed)
    n, waves = 400, np.arange(6)
    arm = np.repeat(["control", "treatment"], n // 2)
    intercept = rng.normal(20, 2, n)
    slope = 0.3 + 0.8 * (arm == "treatment") + rng.normal(0, 0.5, n)
    last = np.where(rng.random(n) < 0.2, rng.integers(0, 5, n), 5)
    scores = intercept[:, None] + slope[:, None] * waves + rng.normal(0, 1, (n, len(waves)))
    person, wave = np.nonzero(waves[None, :] <= last[:, None])
    return pd.DataFrame(
        {"participant": person, "arm": arm[person], "wave": wave, "score": scores[person, wave]}
    )


@pytest.mark.parametrize("fit", [mixedlm_growth, gee_growth])
def test_recovers_the_simulated_growth_difference_despite_dropout(fit):
    frame = _with_dropout(seed=2024)
    assert 2000 < len(frame) < 2400  # about a fifth of participants lost some waves
    (result,) = fit(frame, control="control")
    # Complete data would give SE = sqrt((0.5² + 1/Σ(t − t̄)²) · 2/200) = 0.0554 (two-stage);
    # drop-out can only widen it, and not by half. This keeps the check below from passing with
    # a vacuous interval.
    assert 0.0554 < result.std_error < 1.5 * 0.0554
    assert result.ci_low < 0.8 < result.ci_high
    assert abs(result.estimate - 0.8) < 3 * result.std_error
    assert result.p_value < 1e-20
    assert result.n_participants == 400 and result.n_observations == len(frame)
    assert result.converged


def test_boundary_fit_is_reported_in_units_free_terms():
    # No slope variation at all and few participants: per-participant slopes vary less than
    # their sampling error alone implies, so the REML estimate of D is singular.
    frame = _balanced(seed=5, sizes=(8, 8), slope_sd=0.0)
    design, coefficients, rss = _per_participant_ols(frame)
    centred = [c - c.mean(axis=0) for c in coefficients.values()]
    pooled = sum(c.T @ c for c in centred) / (16 - 2)
    moment = pooled - rss / (16 * 3) * np.linalg.inv(design.T @ design)
    assert np.linalg.eigvalsh(moment).min() < 0  # the unconstrained optimum is not a covariance
    (result,) = mixedlm_growth(frame, control="a")
    assert _BOUNDARY_NOTE in result.warnings


def test_small_score_units_do_not_trigger_a_boundary_warning():
    # statsmodels' own check compares variances with 0.01 in the score's units and would warn
    # here; the fit itself is equivariant, so the contrast scales with the scores.
    frame = _balanced(seed=11)
    (reference, _) = mixedlm_growth(frame, control="a")
    (scaled, _) = mixedlm_growth(frame.assign(score=frame["score"] / 1000), control="a")
    assert scaled.warnings == ()
    assert scaled.estimate == pytest.approx(reference.estimate / 1000, rel=1e-9)
    assert scaled.std_error == pytest.approx(reference.std_error / 1000, rel=1e-8)


def test_score_is_the_gradient_even_with_negative_cholesky_diagonals():
    # Finite differences of the profile REML log-likelihood are the independent reference; with
    # a negative diagonal entry stock statsmodels returns the wrong sign in that column. If a
    # statsmodels release changes its parameterisation this test says so.
    frame = _validated(_balanced(seed=1), "a", 0.05)
    model = SignSafeMixedLM.from_formula(_FORMULA, frame, groups="participant", re_formula="~wave")
    model.fit(reml=True, method=["lbfgs"])  # sets the state that loglike and score read
    for packed in ([0.8, 0.1, -0.6], [-0.8, 0.1, 0.6], [-0.5, -0.3, -0.2], [0.9, 0.05, 0.45]):
        point = np.array(packed)
        numeric = approx_fprime(point, model.loglike, epsilon=1e-6, centered=True)
        assert model.score(point) == pytest.approx(numeric, rel=1e-5, abs=1e-5)


def _valid_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant": [1, 1, 2, 2, 3, 3, 4, 4],
            "arm": ["a"] * 4 + ["b"] * 4,
            "wave": [0, 1] * 4,
            "score": [1.0, 2.0, 1.5, 2.5, 1.0, 3.0, 2.0, 3.5],
        }
    )


def _edit(column, index, value):
    def change(frame):
        frame[column] = frame[column].astype(object) if value is None else frame[column]
        frame.loc[index, column] = value
        return frame

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="wave"), "lacks the column"),
        (lambda f: f.to_dict("list"), "pandas DataFrame"),
        (_edit("score", 3, np.nan), "score must be finite"),
        (_edit("score", 3, np.inf), "score must be finite"),
        (lambda f: f.assign(score=list("abcdefgh")), "score must be numeric"),
        (_edit("participant", 0, None), "must not be missing"),
        (lambda f: f.assign(wave=[0, 1.5] * 4), "whole numbers"),
        (lambda f: f.assign(wave=[-1, 0] * 4), "whole numbers"),
        (lambda f: f.assign(arm=[0] * 4 + [1] * 4), "arm must hold strings"),
        (lambda f: f.assign(arm="a"), "At least two arms"),
        (lambda f: f.assign(arm=["c"] * 4 + ["b"] * 4), "control arm 'a' does not occur"),
        (_edit("arm", 1, "b"), "more than one arm"),
        (_edit("wave", 1, 0), "more than one row at wave 0"),
        (lambda f: f[f["participant"] != 2], "'a' has fewer than two participants"),
        (lambda f: f[f["wave"] == 0], "only one wave"),
        (lambda f: f[~((f["arm"] == "b") & (f["wave"] == 1))], "'b' has observations at only"),
    ],
)
@pytest.mark.parametrize("fit", [mixedlm_growth, gee_growth])
def test_bad_input_raises_value_error(fit, change, message):
    with pytest.raises(ValueError, match=message):
        fit(change(_valid_frame()), control="a")


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1])
def test_alpha_outside_the_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        mixedlm_growth(_valid_frame(), control="a", alpha=alpha)


@pytest.mark.slow
def test_type_i_error_is_nominal_when_arms_do_not_differ():
    from analytics.simulate import simulate_scores

    rejections = 0
    for seed in range(120):
        simulated = simulate_scores(
            n_participants=40, n_waves=4, effect=0.0, seed=500 + seed, dropout=0.2, clip=False
        )
        rows = simulated.scores.query("dimension == 'mental_wellbeing'")
        rows = rows.assign(arm=np.where(rows.arm == 0, "control", "treatment"))
        (contrast,) = mixedlm_growth(rows, control="control")
        rejections += contrast.p_value < 0.05
    # 120 null trials at a nominal 5%: the binomial 99% range is 1–13 rejections (a test that
    # never rejects, as well as one that rejects too often, fails).
    assert 1 <= rejections <= 13, f"{rejections} rejections"


def test_the_fit_from_each_participant_s_statistics_is_the_fit_from_the_rows():
    # What the database aggregates (six statistics per participant) gives the same contrasts as
    # the long frame, and the same checks refuse an arm observed at one wave only.
    frame = _with_dropout(seed=7)
    participant, _ = pd.factorize(frame["participant"])
    statistics = participant_statistics(
        participant, frame["wave"].to_numpy(), frame["score"].to_numpy(), participant.max() + 1
    )
    arm = np.zeros(participant.max() + 1, dtype=int)
    arm[participant] = (frame["arm"] == "treatment").to_numpy()
    names = ("control", "treatment")
    assert mixedlm_growth_from_statistics(arm, statistics, names) == mixedlm_growth(
        frame, control="control"
    )
    at_baseline = statistics.copy()
    at_baseline[arm == 1, 1:3] = 0.0  # every treatment observation at wave 0
    with pytest.raises(ValueError, match="'treatment' has observations at only one wave"):
        mixedlm_growth_from_statistics(arm, at_baseline, names)
    with pytest.raises(ValueError, match="fewer than two participants"):
        mixedlm_growth_from_statistics(np.r_[arm[:-1] * 0, 1], statistics, names)


def _unbalanced(seed: int, arms: str) -> pd.DataFrame:
    """Participants of ``arms`` over waves 0–6 with random intercepts (SD 2) and slopes
    (SD 0.5), residual SD 1: each skips a wave with probability 0.2, a third drop out after a
    wave drawn from 0–5, arms of unequal sizes."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, arm in enumerate(arms):
        for i in range(60 + 25 * k):
            intercept, slope = rng.normal(12, 2), rng.normal(0.2 + 0.3 * k, 0.5)
            last = rng.integers(0, 6) if rng.random() < 1 / 3 else 6
            for t in range(last + 1):
                if t > 0 and rng.random() < 0.2:
                    continue
                rows.append((f"{arm}{i}", arm, t, intercept + slope * t + rng.normal(0, 1)))
    return pd.DataFrame(rows, columns=["participant", "arm", "wave", "score"])


@pytest.mark.parametrize(("seed", "arms"), [(1, "ab"), (2, "abc"), (3, "abc"), (4, "ab")])
def test_gee_from_statistics_is_statsmodels_gee_on_the_rows(seed, arms):
    # Independent implementation: statsmodels' GEE on the long rows (exchangeable working
    # correlation, robust covariance, its default iteration). Unbalanced panels make the
    # estimate and its sandwich SE depend on ρ, so the two must follow the same iteration and
    # moment estimators, not merely reach the same kind of answer; they agree to rounding.
    frame = _unbalanced(seed, arms)
    data = _validated(frame, "a", 0.05)
    reference = smf.gee(
        _FORMULA, groups="participant", data=data, cov_struct=sm.cov_struct.Exchangeable()
    ).fit(cov_type="robust")
    assert 0.3 < reference.cov_struct.dep_params < 0.95  # a correlation the weights feel
    assert len(reference.fit_history["params"]) > 2  # ρ was re-estimated more than once
    results = gee_growth(frame, control="a")
    assert [r.arm for r in results] == list(arms[1:])
    for result in results:
        name = f"wave:arm[T.{result.arm}]"
        assert result.estimate == pytest.approx(reference.params[name], rel=1e-9)
        assert result.std_error == pytest.approx(reference.bse[name], rel=1e-9)
        assert result.p_value == pytest.approx(reference.pvalues[name], rel=1e-7)
        low, high = reference.conf_int(alpha=0.05).loc[name]
        assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
        compared = frame[frame["arm"].isin(["a", result.arm])]
        assert result.n_participants == compared["participant"].nunique()
        assert result.n_observations == len(compared)
        assert result.converged == bool(reference.converged) and result.warnings == ()


def test_gee_from_statistics_needs_no_rows():
    # The database's six statistics per participant are all the fit reads.
    frame = _unbalanced(5, "abc")
    participant, _ = pd.factorize(frame["participant"])
    statistics = participant_statistics(
        participant, frame["wave"].to_numpy(), frame["score"].to_numpy(), participant.max() + 1
    )
    arm = np.zeros(participant.max() + 1, dtype=int)
    arm[participant] = frame["arm"].map({"a": 0, "b": 1, "c": 2}).to_numpy()
    assert gee_growth_from_statistics(arm, statistics, ("a", "b", "c")) == gee_growth(
        frame, control="a"
    )
    with pytest.raises(ValueError, match="fewer than two participants"):
        gee_growth_from_statistics(np.r_[arm[:-1] * 0, 1], statistics, ("a", "b"))
