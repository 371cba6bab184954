"""Differences in growth per wave between arms, from one dimension's long data."""

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM
from statsmodels.tools.sm_exceptions import ConvergenceWarning, ModelWarning

_COLUMNS = ["participant", "arm", "wave", "score"]
# ``arm`` is a categorical whose first category is the control, so patsy's default treatment
# coding makes every ``wave:arm[T.<arm>]`` coefficient a difference from the control's growth.
_FORMULA = "score ~ wave * arm"
# A random-effects covariance whose smallest eigenvalue, relative to the residual variance, is
# below this is reported as a boundary fit. statsmodels' unconstrained optimiser only approaches a
# zero variance: in our simulations boundary fits ended between 1e-10 and 1e-7, interior ones
# above 1e-3, so lme4's tolerance (1e-4 on the Cholesky factor, roughly 1e-8 here) would miss some.
_SINGULAR_TOLERANCE = 1e-6
_BOUNDARY_NOTE = (
    "boundary fit: the random intercept-and-slope covariance is singular (a variance is zero or "
    "the correlation is ±1); the random-effects structure may be richer than the data support"
)


@dataclass(frozen=True)
class ArmContrast:
    """Difference in growth per wave between ``arm`` and the control arm.

    ``n_participants`` and ``n_observations`` count the rows of ``arm`` and the control arm
    together, the data the contrast compares. ``warnings`` lists, once each and in the order
    raised, what statsmodels warned during the fit, including attempts that a later optimiser
    retried successfully, so read it together with ``converged``. All fields are plain ``str``,
    ``float``, ``int``, ``bool`` or ``tuple``, so ``dataclasses.asdict`` gives JSON-ready data.
    """

    arm: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    n_participants: int
    n_observations: int
    converged: bool
    warnings: tuple[str, ...]


def mixedlm_growth(
    frame: pd.DataFrame, *, control: str, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    r"""Growth differences by a linear mixed model with random intercepts and slopes (REML).

    For participant :math:`i` in arm :math:`k(i)`, observed at waves :math:`t_{ij}`,

    .. math:: y_{ij} = \beta_0 + \gamma_{k(i)} + (\beta_1 + \delta_{k(i)})\,t_{ij}
              + b_{0i} + b_{1i} t_{ij} + \varepsilon_{ij},\qquad
              (b_{0i}, b_{1i})^\top \sim N(0, D),\quad \varepsilon_{ij} \sim N(0, \sigma^2),

    with :math:`\gamma_{\text{control}} = \delta_{\text{control}} = 0`, fitted by restricted
    maximum likelihood (Laird & Ware 1982). For every other arm :math:`k` the result is
    :math:`\hat\delta_k`, the difference in growth per wave from the control arm, with its Wald
    standard error from the inverse Hessian, the two-sided :math:`1-\alpha` normal interval
    :math:`\hat\delta_k \pm z_{1-\alpha/2}\,\mathrm{SE}` and the p-value
    :math:`2\{1 - \Phi(|\hat\delta_k| / \mathrm{SE})\}`. The normal reference ignores the
    uncertainty in :math:`D` and :math:`\sigma^2`, so with few participants per arm the
    interval is somewhat too narrow.

    Waves a participant missed are simply absent rows: the likelihood uses every observed score
    and gives valid inference when data are missing at random, i.e. when drop-out may depend on
    the participant's earlier observed scores (Little & Rubin 2019). When every participant is
    observed at the same waves, :math:`\hat\delta_k` equals the difference between the arms'
    means of per-participant least-squares slopes, and at an interior optimum its standard error
    equals that two-stage analysis' pooled-variance standard error.

    A fit is reported as a boundary fit (a note in ``warnings``) when the smallest eigenvalue
    of :math:`D/\sigma^2` is below :math:`10^{-6}`. This replaces statsmodels' own boundary
    warning, which compares variances with 0.01 in the units of the score and so fires for
    scores on a small scale and misses boundary fits on a large one.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, one row per participant and wave attended, with columns ``participant``
        (any hashable id), ``arm`` (str; one arm per participant), ``wave`` (whole numbers,
        0 = baseline) and ``score`` (finite float). Other columns are ignored.
    control : str
        The reference arm.
    alpha : float
        Two-sided level of the intervals, in :math:`(0, 1)`.

    Returns
    -------
    tuple of ArmContrast
        One per non-control arm, in sorted arm order.

    Raises
    ------
    ValueError
        If a column is missing, ids, arms or waves are missing or malformed, a score is not
        finite, a participant appears in two arms or twice at one wave, ``control`` is not an
        arm, there are fewer than two arms, or an arm has fewer than two participants or
        observations at fewer than two distinct waves.

    References
    ----------
    Laird, N. M., & Ware, J. H. (1982). Random-effects models for longitudinal data.
    Biometrics, 38(4), 963–974.
    Little, R. J. A., & Rubin, D. B. (2019). Statistical Analysis with Missing Data (3rd ed.).
    Wiley.
    Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
    using lme4. Journal of Statistical Software, 67(1), 1–48.
    """
    data = _validated(frame, control, alpha)
    model = _SignSafeMixedLM.from_formula(_FORMULA, data, groups="participant", re_formula="~wave")
    # L-BFGS first: with a correct gradient it was the most reliable of statsmodels' optimisers
    # in our simulations, including boundary fits; BFGS retries from where it stopped.
    fit, messages = _fit_recording_warnings(
        lambda: model.fit(reml=True, method=["lbfgs", "bfgs"]),
        ignore="The MLE may be on the boundary",
    )
    if np.linalg.eigvalsh(np.asarray(fit.cov_re_unscaled))[0] < _SINGULAR_TOLERANCE:
        messages += (_BOUNDARY_NOTE,)
    return _contrasts(data, fit, control, alpha, converged=bool(fit.converged), messages=messages)


def gee_growth(
    frame: pd.DataFrame, *, control: str, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    r"""Growth differences by GEE with an exchangeable working correlation (sensitivity analysis).

    Fits the population-averaged mean model

    .. math:: E[y_{ij}] = \beta_0 + \gamma_{k(i)} + (\beta_1 + \delta_{k(i)})\,t_{ij}

    by generalised estimating equations with an exchangeable working correlation (Liang & Zeger
    1986) and reports :math:`\hat\delta_k` for every non-control arm with the robust (sandwich)
    standard error, which stays valid when the working correlation is wrong, and the same normal
    interval and p-value as :func:`mixedlm_growth`. Unlike the mixed model, GEE is consistent only
    when data are missing completely at random (drop-out unrelated to the scores, given arm and
    wave), so a clear gap between the two estimates hints that drop-out depends on the outcome.
    The sandwich standard error is biased downwards with few participants (Mancl & DeRouen 2001).

    When every participant is observed at the same waves, :math:`\hat\delta_k` equals the pooled
    ordinary least-squares estimate whatever the working correlation, and the sandwich variance
    of an arm's mean slope is :math:`\sum_i (s_i - \bar s)^2 / n^2` over its participants'
    least-squares slopes :math:`s_i`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data as for :func:`mixedlm_growth`.
    control : str
        The reference arm.
    alpha : float
        Two-sided level of the intervals, in :math:`(0, 1)`.

    Returns
    -------
    tuple of ArmContrast
        One per non-control arm, in sorted arm order.

    Raises
    ------
    ValueError
        On the same malformed input as :func:`mixedlm_growth`.

    References
    ----------
    Liang, K.-Y., & Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
    models. Biometrika, 73(1), 13–22.
    Mancl, L. A., & DeRouen, T. A. (2001). A covariance estimator for GEE with improved
    small-sample properties. Biometrics, 57(1), 126–134.
    """
    data = _validated(frame, control, alpha)
    model = smf.gee(
        _FORMULA, groups="participant", data=data, cov_struct=sm.cov_struct.Exchangeable()
    )
    fit, messages = _fit_recording_warnings(lambda: model.fit(cov_type="robust"))
    return _contrasts(data, fit, control, alpha, converged=bool(fit.converged), messages=messages)


class _SignSafeMixedLM(MixedLM):
    r"""MixedLM whose score is correct when a diagonal entry of the Cholesky factor is negative.

    The optimiser works on a packed lower-triangular :math:`L` with :math:`D/\sigma^2 = LL^\top`.
    statsmodels (0.15 when this was written) differentiates with respect to the Cholesky factor
    of :math:`LL^\top` recomputed with a positive diagonal, so once a step makes a diagonal entry
    negative the gradient has the wrong sign in that column: L-BFGS then stops in a failed line
    search or, worse, reports convergence several log-likelihood units short of the optimum.
    Flipping those columns, :math:`LS` with :math:`S = \operatorname{diag}(\pm 1)`, leaves
    :math:`LL^\top` and the likelihood unchanged, so the gradient at :math:`L` is the gradient at
    the positive-diagonal factor :math:`LS` times :math:`S`, whatever statsmodels does there.
    """

    def score(self, params: Any, profile_fe: bool = True) -> np.ndarray:
        if not isinstance(params, np.ndarray):
            return super().score(params, profile_fe=profile_fe)
        rows, cols = np.tril_indices(self.k_re)
        diagonal = params[: self.k_re2][rows == cols]
        flip = np.ones(len(params))
        flip[: self.k_re2] = np.where(diagonal < 0, -1.0, 1.0)[cols]
        return super().score(params * flip, profile_fe=profile_fe) * flip


def _fit_recording_warnings(
    fit: Callable[[], Any], *, ignore: str | None = None
) -> tuple[Any, tuple[str, ...]]:
    """Run ``fit`` and return its result with the distinct warnings it raised, in order."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelWarning)
        if ignore is not None:
            warnings.filterwarnings(
                "ignore", message=re.escape(ignore), category=ConvergenceWarning
            )
        result = fit()
    return result, tuple(dict.fromkeys(str(w.message) for w in caught))


def _validated(frame: pd.DataFrame, control: str, alpha: float) -> pd.DataFrame:
    """The four model columns, checked, with ``arm`` a categorical that starts with ``control``
    and ``participant`` replaced by integer codes (statsmodels sorts group labels, which fails
    for ids of mixed types)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("frame must be a pandas DataFrame in long format.")
    missing = [column for column in _COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the column(s) {missing}; it needs {_COLUMNS}.")
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1).")
    if frame[["participant", "arm", "wave"]].isna().any().any():
        raise ValueError("participant, arm and wave must not be missing in any row.")
    score, wave = frame["score"], frame["wave"]
    if not pd.api.types.is_numeric_dtype(score) or pd.api.types.is_bool_dtype(score):
        raise ValueError("score must be numeric.")
    if not np.isfinite(score.to_numpy(dtype=float)).all():
        raise ValueError(
            "score must be finite: drop the rows of waves a participant missed rather than "
            "leaving NaN (the models use whatever waves were observed)."
        )
    if (
        not pd.api.types.is_numeric_dtype(wave)
        or pd.api.types.is_bool_dtype(wave)
        or (wave.to_numpy(dtype=float) % 1 != 0).any()
        or (wave < 0).any()
    ):
        raise ValueError("wave must hold whole numbers 0, 1, 2, … (0 = baseline).")
    arms = frame["arm"].unique().tolist()
    if not all(isinstance(arm, str) for arm in arms):
        raise ValueError("arm must hold strings.")
    if control not in arms:
        raise ValueError(f"control arm {control!r} does not occur in frame (arms: {sorted(arms)}).")
    if len(arms) < 2:
        raise ValueError("At least two arms are needed, the control and one to compare with it.")
    arms_per_participant = frame.groupby("participant")["arm"].nunique()
    if (arms_per_participant > 1).any():
        example = arms_per_participant[arms_per_participant > 1].index[0]
        raise ValueError(f"participant {example!r} appears in more than one arm.")
    repeated = frame.duplicated(["participant", "wave"])
    if repeated.any():
        row = frame[repeated].iloc[0]
        raise ValueError(
            f"participant {row['participant']!r} has more than one row at wave {row['wave']}; "
            "give one score per participant and wave."
        )
    per_arm = frame.groupby("arm").agg(
        participants=("participant", "nunique"), waves=("wave", "nunique")
    )
    for arm, counts in per_arm.iterrows():
        if counts["participants"] < 2:
            raise ValueError(f"arm {arm!r} has fewer than two participants.")
        if counts["waves"] < 2:
            raise ValueError(
                f"arm {arm!r} has observations at only one wave; growth needs two distinct waves."
            )
    others = sorted(arm for arm in arms if arm != control)
    return pd.DataFrame(
        {
            "participant": pd.factorize(frame["participant"])[0],
            "arm": pd.Categorical(frame["arm"], categories=[control, *others]),
            "wave": wave.to_numpy(dtype=float),
            "score": score.to_numpy(dtype=float),
        }
    )


def _contrasts(
    data: pd.DataFrame,
    fit: Any,
    control: str,
    alpha: float,
    *,
    converged: bool,
    messages: tuple[str, ...],
) -> tuple[ArmContrast, ...]:
    """The ``wave:arm`` coefficients of ``fit`` as normal-theory contrasts with the control."""
    z = float(stats.norm.ppf(1 - alpha / 2))
    contrasts = []
    for arm in data["arm"].cat.categories[1:]:
        name = f"wave:arm[T.{arm}]"
        estimate, std_error = float(fit.params[name]), float(fit.bse[name])
        compared = data[data["arm"].isin([control, arm])]
        contrasts.append(
            ArmContrast(
                arm=str(arm),
                estimate=estimate,
                std_error=std_error,
                ci_low=estimate - z * std_error,
                ci_high=estimate + z * std_error,
                p_value=float(2 * stats.norm.sf(abs(estimate) / std_error)),
                n_participants=int(compared["participant"].nunique()),
                n_observations=len(compared),
                converged=converged,
                warnings=messages,
            )
        )
    return tuple(contrasts)
