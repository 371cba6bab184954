"""Baseline-adjusted treatment effect on a follow-up outcome (ANCOVA)."""

from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class EffectEstimate:
    """A difference between arms with its frequentist uncertainty."""

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    df_resid: float


def ancova(
    outcome: ArrayLike, baseline: ArrayLike, treated: ArrayLike, *, alpha: float = 0.05
) -> EffectEstimate:
    r"""Treatment effect on ``outcome`` adjusted for ``baseline`` by ordinary least squares.

    Fits :math:`y_i = \beta_0 + \tau\, z_i + \gamma\, x_i + \varepsilon_i` with
    :math:`\varepsilon_i \sim N(0, \sigma^2)`, where :math:`z_i \in \{0, 1\}` is the arm and
    :math:`x_i` the baseline score, and reports :math:`\hat\tau` with its classical standard error,
    a two-sided :math:`1-\alpha` t interval and p-value. Adjusting for baseline is unbiased under
    randomisation and more precise than comparing follow-up means or change scores (Senn 2006).

    Parameters
    ----------
    outcome, baseline : array_like of float
        Follow-up and baseline scores of the same participants (complete cases only).
    treated : array_like of {0, 1}
        1 for the arm compared with the reference arm.
    alpha : float
        Two-sided level of the interval.

    Returns
    -------
    EffectEstimate

    References
    ----------
    Senn, S. (2006). Change from baseline and analysis of covariance revisited.
    Statistics in Medicine, 25(24), 4334–4344.
    """
    y = np.asarray(outcome, dtype=float)
    x = np.asarray(baseline, dtype=float)
    z = np.asarray(treated, dtype=float)
    if not (y.ndim == x.ndim == z.ndim == 1 and len(y) == len(x) == len(z)):
        raise ValueError("outcome, baseline and treated must be 1-D arrays of equal length.")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(x)):
        raise ValueError("outcome and baseline must be finite (pass complete cases only).")
    if not np.all((z == 0) | (z == 1)):
        raise ValueError("treated must contain only 0 and 1.")
    if min(int(z.sum()), int(len(z) - z.sum())) < 2:
        raise ValueError("Each arm needs at least two participants.")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1).")
    design = np.column_stack([np.ones_like(z), z, x])
    fit = sm.OLS(y, design).fit()
    low, high = fit.conf_int(alpha=alpha)[1]
    return EffectEstimate(
        estimate=float(fit.params[1]),
        std_error=float(fit.bse[1]),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(fit.pvalues[1]),
        n=len(y),
        df_resid=float(fit.df_resid),
    )
