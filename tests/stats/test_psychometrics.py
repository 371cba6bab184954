"""Psychometrics checked against independent implementations and published lavaan output.

References used below:
* pingouin 0.5+ (``cronbach_alpha``, ``intraclass_corr``) — an independent Python implementation.
* semopy 2.3 (``Model``, ``calc_stats``) on its bundled Holzinger & Swineford (1939) data.
* lavaan's CFA tutorial (https://lavaan.ugent.be/tutorial/cfa.html) and multiple-groups tutorial
  (https://lavaan.ugent.be/tutorial/groups.html), which print fits of the same data.
* semTools ``measurementInvariance`` output for that data, as printed in M. Clark (2019),
  "Comparisons of the Unseen", https://m-clark.github.io/posts/2019-08-05-comparing-latent-variables/.
"""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import semopy
import statsmodels.api as sm
from semopy.examples import holzinger39

from stats.psychometrics import (
    _PanelDesign,
    _reml_variance_ratio,
    cfa_fit,
    cronbach_alpha,
    icc_test_retest,
    mcdonald_omega,
    measurement_invariance,
    reliable_change,
)

pytestmark = pytest.mark.unit

HS_FACTORS = {
    "visual": ["x1", "x2", "x3"],
    "textual": ["x4", "x5", "x6"],
    "speed": ["x7", "x8", "x9"],
}
HS_SYNTAX = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


@pytest.fixture(scope="module")
def hs() -> pd.DataFrame:
    return holzinger39.get_data()


@pytest.fixture(scope="module")
def hs_invariance(hs):
    return measurement_invariance(hs, HS_FACTORS, "school")


def _congeneric(n: int, loadings: np.ndarray, seed: int) -> np.ndarray:
    """One-factor data with unequal loadings and unit item variances."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n, 1))
    noise = rng.normal(size=(n, len(loadings))) * np.sqrt(1 - loadings**2)
    return 3 + factor * loadings + noise


# --- Cronbach's alpha -----------------------------------------------------------------------


def test_alpha_matches_pingouin():
    x = _congeneric(300, np.array([0.8, 0.7, 0.6, 0.5, 0.4]), seed=11)
    result = cronbach_alpha(x)
    alpha, ci = pg.cronbach_alpha(pd.DataFrame(x))
    assert result.alpha == pytest.approx(alpha, rel=1e-12)
    # pingouin rounds its Feldt interval to 3 decimals.
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(ci), abs=5e-4)
    assert (result.n_respondents, result.n_items) == (300, 5)


def test_alpha_listwise_deletion_matches_pingouin_listwise():
    x = _congeneric(300, np.array([0.8, 0.7, 0.6, 0.5, 0.4]), seed=11)
    x[[3, 50, 120], [0, 2, 4]] = np.nan
    result = cronbach_alpha(x)
    alpha, _ = pg.cronbach_alpha(pd.DataFrame(x), nan_policy="listwise")
    assert result.alpha == pytest.approx(alpha, rel=1e-12)
    # pingouin 0.5.x takes n for its interval *before* dropping rows (300 here), so only the
    # point estimate is comparable; the interval must equal the one on the complete rows.
    complete = cronbach_alpha(x[~np.isnan(x).any(axis=1)])
    assert (result.ci_low, result.ci_high) == (complete.ci_low, complete.ci_high)
    assert result.n_respondents == 297


def test_alpha_hand_calculation_with_tabled_f_quantiles():
    # Item variances 5/3, 2/3, 5/3 (sum 4); total scores 8, 13, 12, 15 have variance 26/3;
    # alpha = 3/2 * (1 - 4 / (26/3)) = 21/26. Feldt with F(3, 6): F_.975(3, 6) = 6.599 and
    # F_.025(3, 6) = 1 / F_.975(6, 3) = 1 / 14.73 (printed F tables).
    items = [[2, 3, 3], [4, 4, 5], [3, 5, 4], [5, 4, 6]]
    result = cronbach_alpha(items)
    assert result.alpha == pytest.approx(21 / 26, rel=1e-12)
    assert result.ci_low == pytest.approx(1 - (5 / 26) * 6.599, abs=1e-3)
    assert result.ci_high == pytest.approx(1 - (5 / 26) / 14.73, abs=1e-3)


# --- Single-group CFA -----------------------------------------------------------------------


def test_cfa_reproduces_lavaan_tutorial_holzinger_swineford(hs):
    result = cfa_fit(hs, HS_FACTORS)
    # lavaan tutorial, cfa(HS.model, data = HolzingerSwineford1939) with fitMeasures.
    assert round(result.chi2, 3) == 85.306
    assert result.df == 24 and result.n == 301
    assert round(result.cfi, 3) == 0.931
    assert round(result.tli, 3) == 0.896
    assert round(result.rmsea, 3) == 0.092
    assert round(result.srmr, 3) == 0.065
    # Same tutorial, "Latent Variables" estimates and the "Std.all" column for visual.
    loadings = result.loadings
    printed = {
        ("x2", "visual"): 0.554,
        ("x3", "visual"): 0.729,
        ("x5", "textual"): 1.113,
        ("x6", "textual"): 0.926,
        ("x8", "speed"): 1.180,
        ("x9", "speed"): 1.082,
    }
    for (item, factor), value in printed.items():
        assert round(loadings.loc[item, factor], 3) == value
    assert round(result.factor_covariance.loc["visual", "textual"], 3) == 0.408
    assert result.standardized_loadings["visual"].round(3).tolist()[:3] == [0.772, 0.424, 0.581]


def test_cfa_matches_semopy_calc_stats(hs):
    model = semopy.Model(HS_SYNTAX)
    model.fit(hs)
    reference = semopy.calc_stats(model).T["Value"]
    result = cfa_fit(hs, HS_FACTORS)
    assert result.chi2 == pytest.approx(reference["chi2"], rel=1e-4)
    assert result.df == reference["DoF"]
    assert result.cfi == pytest.approx(reference["CFI"], rel=1e-4)
    assert result.tli == pytest.approx(reference["TLI"], rel=1e-4)
    # semopy divides by N - 1 in RMSEA where lavaan divides by N.
    n = result.n
    assert result.rmsea * np.sqrt(n / (n - 1)) == pytest.approx(reference["RMSEA"], rel=1e-4)


def test_cfa_is_unit_free_and_uses_the_listed_marker(hs):
    rescaled = hs.assign(x1=hs["x1"] * 1000, x5=hs["x5"] / 1000)
    reference = cfa_fit(hs, HS_FACTORS)
    result = cfa_fit(rescaled, HS_FACTORS)
    assert result.chi2 == pytest.approx(reference.chi2, rel=1e-8)
    assert result.srmr == pytest.approx(reference.srmr, rel=1e-6)
    # x1 is visual's marker: the factor takes its unit, so the other loadings shrink 1000-fold.
    assert result.loadings.loc["x2", "visual"] * 1000 == pytest.approx(
        reference.loadings.loc["x2", "visual"], rel=1e-5
    )
    # x2 cross-loads and is listed before x4 overall, but x4 is listed first for "b".
    cross = cfa_fit(hs, {"a": ["x1", "x2", "x3"], "b": ["x4", "x2", "x5", "x6"]})
    assert cross.loadings.loc["x4", "b"] == 1.0
    assert cross.loadings.loc["x2", "b"] != 1.0


# --- Omega ----------------------------------------------------------------------------------


def test_omega_matches_closed_form_for_three_items(hs):
    # With 3 items the one-factor model is just identified: lambda_j^2 = s_jk s_jl / s_kl and
    # theta_j = s_jj - lambda_j^2 exactly (divide-by-N covariance, as ML uses).
    x = hs[["x4", "x5", "x6"]].to_numpy()
    s = np.cov(x, rowvar=False, bias=True)
    lam = np.sqrt(
        [s[0, 1] * s[0, 2] / s[1, 2], s[0, 1] * s[1, 2] / s[0, 2], s[0, 2] * s[1, 2] / s[0, 1]]
    )
    theta = np.diag(s) - lam**2
    expected = lam.sum() ** 2 / (lam.sum() ** 2 + theta.sum())
    result = mcdonald_omega(x)
    assert result.omega == pytest.approx(expected, rel=1e-6)
    assert result.loadings == pytest.approx(lam, rel=1e-4)
    assert result.residual_variances == pytest.approx(theta, rel=1e-4)


def test_omega_matches_semopy_one_factor_fit():
    x = _congeneric(500, np.array([0.85, 0.75, 0.65, 0.55, 0.45, 0.35]), seed=5)
    data = pd.DataFrame(x, columns=[f"i{j}" for j in range(6)])
    model = semopy.Model("f =~ " + " + ".join(data.columns))
    model.fit(data)
    est = model.inspect().set_index(["lval", "op", "rval"])["Estimate"]
    lam = np.array([est[(c, "~", "f")] for c in data.columns]) * np.sqrt(est[("f", "~~", "f")])
    theta = np.array([est[(c, "~~", c)] for c in data.columns])
    expected = lam.sum() ** 2 / (lam.sum() ** 2 + theta.sum())
    result = mcdonald_omega(x)
    # semopy's default optimiser stops earlier than ours; omega is insensitive to that.
    assert result.omega == pytest.approx(expected, abs=1e-3)
    assert result.omega > cronbach_alpha(x).alpha  # unequal loadings: alpha underestimates
    assert result.n_respondents == 500


def test_improper_solutions_warn_or_raise():
    # Three nearly uncorrelated items (seeded draws): the just-identified one-factor solution
    # needs lambda_1^2 = r12 r13 / r23 > var(x1), i.e. a negative residual variance...
    heywood = np.random.default_rng(5).normal(size=(100, 3))
    with pytest.warns(RuntimeWarning, match="Heywood"):
        mcdonald_omega(heywood)
    # ...or here no finite ML solution at all, which must not be reported as a fit.
    with pytest.raises(RuntimeError, match="did not converge"):
        mcdonald_omega(np.random.default_rng(1).normal(size=(100, 3)))


# --- Measurement invariance -----------------------------------------------------------------


def test_invariance_chi_square_matches_lavaan_tutorial(hs_invariance):
    # lavaan multiple-groups tutorial: configural 115.851 (48), loadings 124.044 (54),
    # loadings + intercepts 164.103 (60).
    steps = (hs_invariance.configural, hs_invariance.metric, hs_invariance.scalar)
    assert [round(step.chi2, 3) for step in steps] == [115.851, 124.044, 164.103]
    assert [step.df for step in steps] == [48, 54, 60]
    assert hs_invariance.groups == ("Pasteur", "Grant-White")
    assert hs_invariance.n_per_group == (156, 145)


def test_configural_is_the_sum_of_per_group_fits(hs, hs_invariance):
    # lavaan tutorial "Test statistic for each group": Pasteur 64.309, Grant-White 51.542.
    pasteur = cfa_fit(hs[hs.school == "Pasteur"], HS_FACTORS)
    grant_white = cfa_fit(hs[hs.school == "Grant-White"], HS_FACTORS)
    assert round(pasteur.chi2, 3) == 64.309
    assert round(grant_white.chi2, 3) == 51.542
    assert round(pasteur.loadings.loc["x2", "visual"], 3) == 0.394  # tutorial, group 1
    assert hs_invariance.configural.chi2 == pytest.approx(pasteur.chi2 + grant_white.chi2)
    # lavaan's SRMR with a mean structure divides by p(p+1)/2 + p; the configural mean
    # residuals are 0, so it is the N-weighted per-group SRMR scaled by sqrt(45 / 54).
    weighted = (156 * pasteur.srmr + 145 * grant_white.srmr) / 301
    assert hs_invariance.configural.srmr == pytest.approx(weighted * np.sqrt(45 / 54), rel=1e-6)


def test_invariance_fit_indices_match_semtools(hs_invariance):
    # semTools::measurementInvariance printout (Clark 2019): CFI .923/.921/.882,
    # RMSEA .097/.093/.107, chi-square differences 8.192 (p .2244) and 40.059 (p 4.435e-07),
    # |delta CFI| .002/.038 and |delta RMSEA| .004/.015.
    configural, metric, scalar = (
        hs_invariance.configural,
        hs_invariance.metric,
        hs_invariance.scalar,
    )
    assert [round(s.cfi, 3) for s in (configural, metric, scalar)] == [0.923, 0.921, 0.882]
    assert [round(s.rmsea, 3) for s in (configural, metric, scalar)] == [0.097, 0.093, 0.107]
    assert round(metric.delta_chi2, 3) == 8.192 and metric.delta_df == 6
    assert metric.delta_p_value == pytest.approx(0.2244, abs=5e-5)
    assert round(scalar.delta_chi2, 3) == 40.059 and scalar.delta_df == 6
    assert scalar.delta_p_value == pytest.approx(4.435e-07, rel=1e-3)
    assert (round(-metric.delta_cfi, 3), round(-metric.delta_rmsea, 3)) == (0.002, 0.004)
    assert (round(-scalar.delta_cfi, 3), round(scalar.delta_rmsea, 3)) == (0.038, 0.015)
    # Metric invariance holds; scalar fails on CFI (-.038 < -.010) though RMSEA rises < .015.
    assert configural.holds is None
    assert metric.holds is True
    assert scalar.holds is False


def test_invariance_holds_on_data_generated_invariant():
    rng = np.random.default_rng(21)
    loadings = np.array([0.8, 0.7, 0.6, 0.5])
    frames = []
    for label, shift in (("en", 0.0), ("de", 0.4)):
        f = rng.normal(shift, 1.0, size=(400, 1))
        x = 2 + f * loadings + rng.normal(size=(400, 4)) * 0.6
        frames.append(pd.DataFrame(x, columns=list("abcd")).assign(language=label))
    result = measurement_invariance(pd.concat(frames), {"wellbeing": list("abcd")}, "language")
    assert result.metric.holds and result.scalar.holds
    assert result.metric.delta_p_value > 0.01 and result.scalar.delta_p_value > 0.01


# --- Test-retest ICC ------------------------------------------------------------------------


def _panel(n: int, occasion_means, subject_sd, residual_sd, missing, seed) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    k = len(occasion_means)
    subject = np.repeat(np.arange(n), k)
    occasion = np.tile(np.arange(k), n)
    score = (
        np.asarray(occasion_means)[occasion]
        + rng.normal(0, subject_sd, n)[subject]
        + rng.normal(0, residual_sd, n * k)
    )
    keep = rng.random(n * k) >= missing
    return pd.DataFrame({"pid": subject, "wave": occasion, "score": score})[keep]


def _pingouin_icc2(panel: pd.DataFrame) -> pd.Series:
    return pg.intraclass_corr(panel, "pid", "wave", "score").set_index("Type").loc["ICC(A,1)"]


def test_icc_on_balanced_data_matches_pingouin_icc2():
    shifted = _panel(60, [10.0, 10.4, 10.9], 1.0, 0.7, missing=0.0, seed=4)
    result = icc_test_retest(shifted, "pid", "wave", "score", seed=1)
    reference = _pingouin_icc2(shifted)
    # REML on balanced data reproduces the ANOVA estimator of ICC(A,1) up to optimiser tolerance.
    assert result.icc == pytest.approx(reference["ICC"], abs=1e-6)
    assert (result.n_subjects, result.n_observations) == (60, 180)
    assert result.method.startswith("ICC(A,1)")
    # McGraw-Wong's F interval also samples the occasions, so with real occasion shifts it is
    # wider than ours, which (like the model) holds these three waves fixed.
    assert result.ci_low > reference["CI95"][0]


def test_icc_interval_agrees_with_mcgraw_wong_without_occasion_effects():
    flat = _panel(60, [10.0, 10.0, 10.0], 1.0, 0.7, missing=0.0, seed=4)
    result = icc_test_retest(flat, "pid", "wave", "score", seed=1)
    low, high = _pingouin_icc2(flat)["CI95"]
    # Different approximations (parametric bootstrap vs Satterthwaite F), pingouin rounding to
    # 2 decimals: the ends agree to a few hundredths.
    assert result.ci_low == pytest.approx(low, abs=0.03)
    assert result.ci_high == pytest.approx(high, abs=0.03)


def test_profiled_reml_matches_statsmodels_mixedlm():
    panel = _panel(150, [0.0, 0.2, 0.5], 1.0, 0.8, missing=0.3, seed=8)
    subject, _ = pd.factorize(panel["pid"])
    occasion = panel["wave"].to_numpy()
    observed = np.zeros((subject.max() + 1, 3))
    observed[subject, occasion] = 1.0
    design = _PanelDesign(observed=observed, subject=subject, occasion=occasion)
    y = panel["score"].to_numpy()
    fit = sm.MixedLM(y, np.eye(3)[occasion], groups=subject).fit(reml=True, gtol=1e-8)
    subject_var, residual_var = _reml_variance_ratio(design, y)
    assert subject_var == pytest.approx(float(np.asarray(fit.cov_re)[0, 0]), rel=1e-6)
    assert residual_var == pytest.approx(fit.scale, rel=1e-6)


def test_icc_recovers_true_value_on_unbalanced_panels():
    # sigma_u^2 = 1, sigma_e^2 = 0.5, occasion means 0, .3, .6 so theta_c^2 = .18 / 2 = .09:
    # true ICC(A,1) = 1 / (1 + .09 + .5). 400 subjects x 3 waves, 30 % of scores missing
    # completely at random.
    truth = 1 / (1 + 0.09 + 0.5)
    replicates = [
        icc_test_retest(
            _panel(400, [0.0, 0.3, 0.6], 1.0, np.sqrt(0.5), missing=0.3, seed=100 + r),
            "pid",
            "wave",
            "score",
            n_boot=200,
            seed=r,
        )
        for r in range(8)
    ]
    estimates = np.array([r.icc for r in replicates])
    mc_se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 3 * mc_se
    # Each interval should cover the truth with probability .95; P(fewer than 6 of 8) < .006.
    assert sum(r.ci_low <= truth <= r.ci_high for r in replicates) >= 6
    # Interval widths should reflect the real sampling spread; an SD from 8 draws is uncertain
    # by about 27 %, hence the wide band.
    bootstrap_se = np.mean([(r.ci_high - r.ci_low) / (2 * 1.96) for r in replicates])
    assert 0.67 < bootstrap_se / estimates.std(ddof=1) < 1.5
    assert all(r.n_observations < 3 * r.n_subjects for r in replicates)  # really unbalanced


# --- Reliable change ------------------------------------------------------------------------


def test_reliable_change_hand_worked():
    # SD 10, r = .84: SEM = 10 * sqrt(.16) = 4, S_diff = 4 * sqrt(2) = 5.657.
    result = reliable_change([50, 50, 50, 50, np.nan], [62, 45, 58, 38, 60], 10.0, 0.84)
    assert result.sem == pytest.approx(4.0)
    assert result.s_diff == pytest.approx(4 * np.sqrt(2))
    np.testing.assert_allclose(result.rci[:4], [2.1213, -0.8839, 1.4142, -2.1213], atol=1e-4)
    assert np.isnan(result.rci[4])
    assert result.reliable_improvement.tolist() == [True, False, False, False, False]
    assert result.reliable_deterioration.tolist() == [False, False, False, True, False]
    flipped = reliable_change([50, 50], [62, 38], 10.0, 0.84, higher_is_better=False)
    assert flipped.reliable_improvement.tolist() == [False, True]


# --- Bad input ------------------------------------------------------------------------------


def _two_schools(rows_in_second: int) -> pd.DataFrame:
    x = _congeneric(200 + rows_in_second, np.array([0.8, 0.7, 0.6, 0.5]), seed=2)
    frame = pd.DataFrame(x, columns=list("abcd"))
    return frame.assign(school=["A"] * 200 + ["B"] * rows_in_second)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cronbach_alpha(np.ones((10, 1))), "at least 2 items"),
        (lambda: cronbach_alpha([[1.0, np.nan], [np.nan, 2.0]]), "2 complete rows"),
        (lambda: cronbach_alpha([1.0, 2.0, 3.0]), "2-D"),
        (lambda: cronbach_alpha([[1, 2], [3, 4]], confidence=1.5), "confidence"),
        (lambda: cronbach_alpha([[1, 1], [1, 1], [1, 1]]), "zero variance"),
        (lambda: mcdonald_omega(np.random.default_rng(0).normal(size=(50, 2))), "at least 3"),
        (lambda: cfa_fit(_two_schools(0), {"f": ["a", "zz"]}), "not in data"),
        (lambda: cfa_fit(_two_schools(0), {"f": ["a"]}), "at least 2 item"),
        (lambda: cfa_fit(_two_schools(0), {"f": ["a", "b"]}), "not identified"),
        (lambda: cfa_fit(_two_schools(0).head(4), {"f": list("abcd")}), "more rows than items"),
        (lambda: cfa_fit(_two_schools(0), {"f": list("abc"), "g": list("abd")}), "marker"),
        (
            lambda: measurement_invariance(_two_schools(4), {"f": list("abcd")}, "school"),
            "group 'B' has 4 complete rows",
        ),
        (
            lambda: measurement_invariance(_two_schools(0), {"f": list("abcd")}, "school"),
            "at least 2 groups",
        ),
        (lambda: measurement_invariance(_two_schools(9), {"f": list("abcd")}, "site"), "site"),
        (
            lambda: icc_test_retest(
                pd.DataFrame({"s": [1, 1, 2, 2, 3], "o": [1, 1, 1, 2, 1], "y": [1.0, 2, 3, 4, 5]}),
                "s",
                "o",
                "y",
            ),
            "at most one score",
        ),
        (
            lambda: icc_test_retest(
                pd.DataFrame({"s": [1, 2, 3], "o": [1, 1, 1], "y": [1.0, 2, 3]}), "s", "o", "y"
            ),
            "at least 2 occasions",
        ),
        (
            lambda: icc_test_retest(
                _panel(20, [0, 0], 1, 1, 0, 1), "pid", "wave", "score", n_boot=10
            ),
            "n_boot",
        ),
        (
            lambda: icc_test_retest(
                _panel(20, [0, 0], 1, 1, 0, 1).astype({"score": str}), "pid", "wave", "score"
            ),
            "numeric",
        ),
        (lambda: reliable_change([1.0], [2.0], 10.0, 1.0), "reliability"),
        (lambda: reliable_change([1.0], [2.0], 0.0, 0.8), "sd_baseline"),
        (lambda: reliable_change([1.0, 2.0], [2.0, 3.0, 4.0], 10.0, 0.8), "broadcast"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
