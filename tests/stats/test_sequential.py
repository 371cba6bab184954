import json
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from stats.sequential import alpha_spent, spending_boundaries

pytestmark = pytest.mark.unit

FIVE_LOOKS = [0.2, 0.4, 0.6, 0.8, 1.0]

# Published boundaries are given to three decimals; the recursive integration agrees with a grid
# four times finer to < 1e-7, so the tolerance is the published rounding (5e-4) plus slack.
PUBLISHED_TOL = 6e-4


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_single_final_look_is_the_fixed_design(spending):
    result = spending_boundaries([1.0], spending=spending)
    assert result.z == pytest.approx((1.959964,), abs=1e-6)
    assert result.nominal_p == pytest.approx((0.05,), rel=1e-12)
    assert result.cumulative_alpha == pytest.approx((0.05,), rel=1e-12)


def test_obrien_fleming_matches_published_values():
    # Lan–DeMets O'Brien–Fleming type, K = 5 equally spaced, two-sided alpha = 0.05 (alpha/2 per
    # side): ldbounds (Reboussin et al. 2000) and gsDesign sfLDOF give
    # 4.877 3.357 2.680 2.290 2.031.
    result = spending_boundaries(FIVE_LOOKS)
    assert result.z == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=PUBLISHED_TOL)
    assert result.cumulative_alpha[-1] == pytest.approx(0.05, rel=1e-12)


def test_pocock_matches_published_values():
    # Lan–DeMets Pocock type, K = 5 equally spaced, two-sided alpha = 0.05: gsDesign sfLDPocock
    # (one-sided 0.025, symmetric) gives 2.438 2.427 2.410 2.397 2.386. A value of 2.388 that is
    # sometimes quoted for the last look is not consistent with alpha = 0.05: with the first four
    # boundaries fixed, Genz's multivariate normal integration gives a total of 0.04994 for 2.388
    # and 0.050000 for 2.386 (checked while writing; see also the independent check below).
    result = spending_boundaries(FIVE_LOOKS, spending="pocock")
    assert result.z == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=PUBLISHED_TOL)


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
@pytest.mark.parametrize("fractions", [FIVE_LOOKS, [0.1, 0.35, 0.5, 0.9, 1.0]])
def test_crossing_probabilities_match_multivariate_normal_integration(spending, fractions):
    # Independent check: scipy's multivariate_normal.cdf (Genz's quasi-Monte Carlo) on the
    # canonical joint distribution corr(Z_i, Z_j) = sqrt(t_i / t_j) must give P(stop by look k)
    # = alpha(t_k) for the computed boundaries, to within its requested absolute error of 1e-6.
    result = spending_boundaries(fractions, spending=spending)
    t = np.array(fractions)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.array(result.z)
    for k in range(1, len(t) + 1):
        mvn = stats.multivariate_normal(cov=cov[:k, :k], seed=k, abseps=1e-6, releps=0)
        stopped = 1 - mvn.cdf(c[:k], lower_limit=-c[:k])
        assert stopped == pytest.approx(result.cumulative_alpha[k - 1], abs=3e-6)


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_monte_carlo_type_one_error(spending):
    # Brownian motion under the null at the looks; reject when any |Z_k| >= c_k.
    draws = 200_000
    result = spending_boundaries(FIVE_LOOKS, spending=spending)
    t = np.array(FIVE_LOOKS)
    rng = np.random.default_rng(11)
    score = np.cumsum(rng.standard_normal((draws, len(t))) * np.sqrt(np.diff(t, prepend=0)), axis=1)
    crossed = np.abs(score / np.sqrt(t)) >= np.array(result.z)
    rejected = crossed.any(axis=1).sum()
    low, high = stats.binom.ppf([0.0005, 0.9995], draws, 0.05)
    assert low <= rejected <= high
    # Per look: the first crossing happens at look k with probability alpha(t_k) - alpha(t_k-1).
    first = np.argmax(crossed, axis=1)[crossed.any(axis=1)]
    per_look = np.bincount(first, minlength=len(t))
    for k, spent in enumerate(result.incremental_alpha):
        low, high = stats.binom.ppf([0.0005, 0.9995], draws, spent)
        assert low <= per_look[k] <= high


def test_boundaries_do_not_depend_on_future_looks():
    # Spending makes each look's boundary a function of the looks so far only, which is why
    # a last fraction below 1 is accepted (interim looks of a design not yet complete).
    interim = spending_boundaries([0.25, 0.5])
    full = spending_boundaries([0.25, 0.5, 0.75, 1.0])
    assert interim.z == pytest.approx(full.z[:2], rel=1e-10)
    assert interim.cumulative_alpha[-1] == pytest.approx(alpha_spent(0.5), rel=1e-12)
    assert interim.cumulative_alpha[-1] < 0.05


def test_spending_functions_and_docstring_example():
    assert alpha_spent(1.0) == pytest.approx(0.05, rel=1e-12)
    assert alpha_spent(1.0, spending="pocock") == pytest.approx(0.05, rel=1e-12)
    assert alpha_spent(0.5, spending="pocock") == pytest.approx(0.05 * np.log(1 + (np.e - 1) / 2))
    # O'Brien–Fleming type at t = 0.5: 2 * 2 * (1 - Phi(z_0.9875 / sqrt(0.5))).
    z = stats.norm.ppf(1 - 0.0125) / np.sqrt(0.5)
    assert alpha_spent(0.5) == pytest.approx(4 * stats.norm.sf(z), rel=1e-12)
    assert [round(z, 3) for z in spending_boundaries([0.5, 1.0]).z] == [2.963, 1.969]


def test_result_is_json_ready():
    result = spending_boundaries(FIVE_LOOKS, alpha=0.01, spending="pocock")
    data = json.loads(json.dumps(asdict(result)))
    assert data["spending"] == "pocock" and len(data["z"]) == 5
    assert data["nominal_p"] == pytest.approx([2 * stats.norm.sf(c) for c in result.z])


@pytest.mark.parametrize(
    ("fractions", "kwargs", "message"),
    [
        ([], {}, "non-empty"),
        ([[0.5, 1.0]], {}, "1-D"),
        ([0.0, 1.0], {}, r"\(0, 1\]"),
        ([0.5, 1.2], {}, r"\(0, 1\]"),
        ([0.5, float("nan")], {}, r"\(0, 1\]"),
        ([0.5, 0.5, 1.0], {}, "strictly increasing"),
        ([0.6, 0.4, 1.0], {}, "strictly increasing"),
        (["a", 1.0], {}, "numbers"),
        (FIVE_LOOKS, {"alpha": 0.0}, "alpha"),
        (FIVE_LOOKS, {"alpha": 1.0}, "alpha"),
        (FIVE_LOOKS, {"spending": "haybittle"}, "spending"),
        ([1e-4, 1.0], {}, "no alpha"),
        ([0.5, 0.5 + 1e-7, 1.0], {}, "too close"),
    ],
)
def test_bad_input_raises_value_error(fractions, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spending_boundaries(fractions, **kwargs)
