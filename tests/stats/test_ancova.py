import numpy as np
import pytest
from scipy import stats

from stats.ancova import ancova

pytestmark = pytest.mark.unit


def _closed_form(y, x, z, alpha=0.05):
    """Independent implementation: normal equations solved directly, classical OLS variance."""
    design = np.column_stack([np.ones_like(z), z, x])
    xtx_inv = np.linalg.inv(design.T @ design)
    beta = xtx_inv @ design.T @ y
    resid = y - design @ beta
    df = len(y) - design.shape[1]
    sigma2 = resid @ resid / df
    se = np.sqrt(sigma2 * xtx_inv[1, 1])
    t = stats.t.ppf(1 - alpha / 2, df)
    p = 2 * stats.t.sf(abs(beta[1] / se), df)
    return beta[1], se, beta[1] - t * se, beta[1] + t * se, p


def test_matches_closed_form_least_squares():
    rng = np.random.default_rng(3)
    n = 200
    z = rng.integers(0, 2, n).astype(float)
    x = rng.normal(50, 10, n)
    y = 10 + 0.6 * x + 4 * z + rng.normal(0, 5, n)
    result = ancova(y, x, z)
    estimate, se, low, high, p = _closed_form(y, x, z)
    assert result.estimate == pytest.approx(estimate, rel=1e-10)
    assert result.std_error == pytest.approx(se, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert result.p_value == pytest.approx(p, rel=1e-8)
    assert result.n == n and result.df_resid == n - 3


def test_textbook_example_with_known_answer():
    # Exact data: y = 2 + 3 z + 0.5 x with residuals that are orthogonal to the design
    # (they sum to zero within each arm and are uncorrelated with x), so τ̂ = 3 exactly.
    x = np.array([10.0, 12, 14, 16, 10, 12, 14, 16])
    z = np.array([0.0, 0, 0, 0, 1, 1, 1, 1])
    e = np.array([1.0, -1, -1, 1, 1, -1, -1, 1])
    y = 2 + 3 * z + 0.5 * x + e
    assert ancova(y, x, z).estimate == pytest.approx(3.0, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"treated": [0, 1, 2, 1]}, "only 0 and 1"),
        ({"treated": [0, 0, 0, 1]}, "at least two"),
        ({"outcome": [1.0, np.nan, 2.0, 3.0]}, "finite"),
        ({"outcome": [1.0, 2.0]}, "equal length"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    arguments = {
        "outcome": [1.0, 2.0, 3.0, 4.0],
        "baseline": [1.0, 2.0, 2.0, 1.0],
        "treated": [0, 0, 1, 1],
    } | kwargs
    alpha = arguments.pop("alpha", 0.05)
    with pytest.raises(ValueError, match=message):
        ancova(arguments["outcome"], arguments["baseline"], arguments["treated"], alpha=alpha)
