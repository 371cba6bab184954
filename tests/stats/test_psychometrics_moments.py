"""α, ω, the CFA and measurement invariance from complete-case moments (``ItemMoments``) agree
with the row-level functions, which drop incomplete rows (listwise); moments from exact sums are
exact even where the one-pass floating-point formula cancels catastrophically."""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from stats import psychometrics as pm

pytestmark = pytest.mark.unit


def _one_factor(n: int, loadings, rng, missing: float = 0.0) -> np.ndarray:
    loadings = np.asarray(loadings, dtype=float)
    factor = rng.normal(size=(n, 1))
    x = np.rint(3 + factor * loadings + rng.normal(size=(n, len(loadings))) * 0.8)
    x[rng.random(x.shape) < missing] = np.nan
    return x


def _sums(x: np.ndarray):
    complete = x[~np.isnan(x).any(axis=1)].astype(np.int64)
    ints = complete.tolist()
    p = complete.shape[1]
    sums = [sum(row[j] for row in ints) for j in range(p)]
    cross = [[sum(row[j] * row[k] for row in ints) for k in range(p)] for j in range(p)]
    return len(ints), sums, cross


def test_moments_from_exact_sums_are_exact_where_floating_sums_cancel():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 6, size=(500, 4))
    shifted = small + 10**9  # the covariance does not change with a shift
    n, sums, cross = _sums(shifted.astype(float))
    moments = pm.ItemMoments.from_sums(n, [Decimal(s) for s in sums], cross)
    truth = np.cov(small, rowvar=False, bias=True)
    np.testing.assert_allclose(moments.cov, truth, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(moments.mean, shifted.mean(axis=0), rtol=1e-15)
    # The one-pass formula in doubles loses the covariance entirely at this offset.
    x = shifted.astype(float)
    naive = (x.T @ x) / n - np.outer(x.mean(axis=0), x.mean(axis=0))
    assert np.max(np.abs(naive - truth)) > 0.1


def test_moments_of_no_complete_row_are_refused_as_no_rows_are():
    x = np.array([[1.0, np.nan, 2.0], [np.nan, 1.0, 2.0]])
    empty = pm.ItemMoments.from_rows(x)
    assert empty.n == 0 and np.isnan(empty.cov).all() and np.isnan(empty.mean).all()
    assert pm.ItemMoments.from_sums(0, [0] * 3, [[0] * 3] * 3).n == 0
    with pytest.raises(ValueError, match="at least 2 complete rows"):
        pm.cronbach_alpha_from_moments(empty)
    with pytest.raises(ValueError, match="0 complete rows for 3 items"):
        pm.mcdonald_omega_from_moments(empty)


def test_figures_from_moments_equal_the_listwise_row_level_figures():
    rng = np.random.default_rng(7)
    x = _one_factor(400, [1.0, 0.8, 0.6, 0.9, 0.5], rng, missing=0.04)
    complete = x[~np.isnan(x).any(axis=1)]
    assert len(complete) < len(x)
    moments = pm.ItemMoments.from_sums(*_sums(x))
    assert moments.n == len(complete)

    alpha, alpha_m = pm.cronbach_alpha(x), pm.cronbach_alpha_from_moments(moments)
    assert alpha_m.n_respondents == alpha.n_respondents == len(complete)
    for field in ("alpha", "ci_low", "ci_high"):
        assert getattr(alpha_m, field) == pytest.approx(getattr(alpha, field), rel=1e-12)

    omega, omega_m = pm.mcdonald_omega(x), pm.mcdonald_omega_from_moments(moments)
    assert omega_m.omega == pytest.approx(omega.omega, rel=1e-8)
    np.testing.assert_allclose(omega_m.loadings, omega.loadings, rtol=1e-6)

    columns = [f"i{j}" for j in range(5)]
    frame = pd.DataFrame(x, columns=columns)
    # The model lists the items in another order than the moments: they are rearranged.
    factors = {"f": ["i2", "i0", "i1", "i3", "i4"]}
    cfa, cfa_m = pm.cfa_fit(frame, factors), pm.cfa_fit_from_moments(moments, columns, factors)
    for field in ("chi2", "cfi", "tli", "rmsea", "srmr", "p_value"):
        assert getattr(cfa_m, field) == pytest.approx(getattr(cfa, field), rel=1e-6, abs=1e-9)
    assert cfa_m.df == cfa.df and cfa_m.n == cfa.n
    pd.testing.assert_frame_equal(cfa_m.loadings, cfa.loadings, rtol=1e-6)


def test_invariance_from_moments_equals_the_row_level_test_and_skips_empty_groups():
    rng = np.random.default_rng(3)
    a = _one_factor(300, [1.0, 0.8, 0.7, 0.9], rng, missing=0.03)
    b = _one_factor(250, [1.0, 0.5, 0.7, 0.9], rng, missing=0.03) + 0.3
    columns = ["q1", "q2", "q3", "q4"]
    frame = pd.DataFrame(np.vstack([a, b]), columns=columns).assign(
        g=["a"] * len(a) + ["b"] * len(b)
    )
    rows = pm.measurement_invariance(frame, {"f": columns}, "g")
    no_rows = np.full((3, 4), np.nan)
    groups = [
        ("a", pm.ItemMoments.from_rows(a)),
        ("empty", pm.ItemMoments.from_rows(no_rows)),
        ("b", pm.ItemMoments.from_rows(b)),
    ]
    moments = pm.measurement_invariance_from_moments(groups, columns, {"f": columns})
    assert moments.groups == rows.groups == ("a", "b")
    assert moments.n_per_group == rows.n_per_group
    for step in ("configural", "metric", "scalar"):
        expected, actual = getattr(rows, step), getattr(moments, step)
        assert actual.df == expected.df and actual.holds == expected.holds
        for field in ("chi2", "cfi", "rmsea", "srmr"):
            assert getattr(actual, field) == pytest.approx(
                getattr(expected, field), rel=1e-6, abs=1e-9
            )
    with pytest.raises(ValueError, match="at least 2 groups"):
        pm.measurement_invariance_from_moments(groups[:2], columns, {"f": columns})
