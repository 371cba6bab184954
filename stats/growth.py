"""Differences in growth per wave between arms, from one dimension's long data or each
participant's sufficient statistics; with baseline covariates and moderators, any contrast of the
arms' growths (a factorial design's main effects and interactions) and arm × moderator effects."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from stats.reml_growth import (
    DesignFit,
    arm_rows,
    participant_statistics,
    reml_design_fit,
    reml_growth_fit,
)

_COLUMNS = ["participant", "arm", "wave", "score"]
# ``arm`` is a categorical whose first category is the control, so patsy's default treatment
# coding makes every ``wave:arm[T.<arm>]`` coefficient a difference from the control's growth.
_FORMULA = "score ~ wave * arm"
# A random-effects covariance whose smallest eigenvalue, relative to the residual variance, is
# below this is reported as a boundary fit. The REML optimiser (stats.reml_growth) holds a
# diagonal entry of the Cholesky factor at exactly 0 when the optimum is on the boundary; interior
# fits in our simulations stayed above 1e-3.
_SINGULAR_TOLERANCE = 1e-6
_BOUNDARY_NOTE = (
    "boundary fit: the random intercept-and-slope covariance is singular (a variance is zero or "
    "the correlation is ±1); the random-effects structure may be richer than the data support"
)


@dataclass(frozen=True)
class ArmContrast:
    """Difference in growth per wave between ``arm`` and the control arm.

    ``n_participants`` and ``n_observations`` count the rows of ``arm`` and the control arm
    together, the data the contrast compares. ``df`` is the t reference's degrees of freedom
    (Satterthwaite's, for the mixed model) or None where the reference is the normal (GEE).
    ``warnings`` lists, once each and in the order raised, what the fit warned: for GEE what
    statsmodels warned, including attempts that a later optimiser retried successfully, so read
    it together with ``converged``; for the mixed model a boundary fit or a failed convergence
    check. All fields are plain ``str``, ``float``, ``int``, ``bool``, ``tuple`` or None, so
    ``dataclasses.asdict`` gives JSON-ready data.
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
    df: float | None = None


def mixedlm_growth(
    frame: pd.DataFrame, *, control: str, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    r"""Growth differences by a linear mixed model with random intercepts and slopes (REML).

    For participant :math:`i` in arm :math:`k(i)`, observed at waves :math:`t_{ij}`,

    .. math:: y_{ij} = \beta_0 + \gamma_{k(i)} + (\beta_1 + \delta_{k(i)})\,t_{ij}
              + b_{0i} + b_{1i} t_{ij} + \varepsilon_{ij},\qquad
              (b_{0i}, b_{1i})^\top \sim N(0, D),\quad \varepsilon_{ij} \sim N(0, \sigma^2),

    with :math:`\gamma_{\text{control}} = \delta_{\text{control}} = 0`, fitted by restricted
    maximum likelihood (Laird & Ware 1982), exactly, from six statistics per participant
    (:func:`stats.reml_growth.reml_growth_fit`; the same model, criterion and estimates as
    ``lmer(score ~ wave * arm + (1 + wave | participant), REML = TRUE)``). For every other arm
    :math:`k` the result is :math:`\hat\delta_k`, the difference in growth per wave from the
    control arm, with its standard error :math:`\hat\sigma^2 (X^\top W^{-1} X)^{-1}` at the
    REML estimate (lme4's ``vcov``), Satterthwaite's degrees of freedom :math:`\nu_k` for it
    (as lmerTest computes them, Kuznetsova et al. 2017), the two-sided :math:`1-\alpha`
    interval :math:`\hat\delta_k \pm t_{\nu_k, 1-\alpha/2}\,\mathrm{SE}` and the p-value
    :math:`2\{1 - F_{t, \nu_k}(|\hat\delta_k| / \mathrm{SE})\}`. The t reference carries
    the uncertainty in :math:`D` and :math:`\sigma^2` that a normal one ignores; with hundreds
    of participants the two agree to a few parts in a thousand.

    Waves a participant missed are simply absent rows: the likelihood uses every observed score
    and gives valid inference when data are missing at random, i.e. when drop-out may depend on
    the participant's earlier observed scores (Little & Rubin 2019). When every participant is
    observed at the same waves, :math:`\hat\delta_k` equals the difference between the arms'
    means of per-participant least-squares slopes, and at an interior optimum its standard error
    equals that two-stage analysis' pooled-variance standard error.

    A fit is reported as a boundary fit (a note in ``warnings``) when the smallest eigenvalue
    of :math:`D/\sigma^2` is below :math:`10^{-6}`, a test free of the score's units.
    ``converged`` is true only when the estimate is checked to be a minimum of the REML
    criterion (positive definite Hessian, Newton step below
    :data:`stats.reml_growth.STEP_TOLERANCE`); otherwise ``warnings`` says so.

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
    Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: tests
    in linear mixed effects models. Journal of Statistical Software, 82(13), 1–26.
    """
    return mixedlm_growth_from_statistics(*_frame_statistics(frame, control, alpha), alpha=alpha)


def _frame_statistics(
    frame: pd.DataFrame, control: str, alpha: float
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Each participant's arm code and six statistics from checked long data, and the arms'
    names (the control first)."""
    data = _validated(frame, control, alpha)
    participant = data["participant"].to_numpy()
    participants = int(participant.max()) + 1
    statistics = participant_statistics(
        participant, data["wave"].to_numpy(), data["score"].to_numpy(), participants
    )
    arm = np.empty(participants, dtype=int)
    arm[participant] = data["arm"].cat.codes.to_numpy()
    return arm, statistics, tuple(str(name) for name in data["arm"].cat.categories)


def mixedlm_growth_from_statistics(
    arm: np.ndarray, statistics: np.ndarray, arm_names: tuple[str, ...], *, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    """:func:`mixedlm_growth` from each participant's arm and six statistics
    (:func:`stats.reml_growth.participant_statistics`, or the same aggregated by the database),
    without the long frame: the same fit, contrasts and warnings.

    ``arm`` holds codes into ``arm_names``, whose first arm is the control. Raises ValueError
    when ``alpha`` is outside (0, 1), there are fewer than two arms, or an arm has fewer than
    two participants or all its observations at one wave.
    """
    arm, statistics = _checked_arms(arm, statistics, arm_names, alpha)
    fit = reml_growth_fit(arm, statistics, arm_names, singular_tolerance=_SINGULAR_TOLERANCE)
    messages = _fit_messages(fit)
    contrasts = []
    for k, contrast in enumerate(fit.contrasts, start=1):
        compared = (arm == 0) | (arm == k)
        contrasts.append(
            _arm_contrast(
                contrast.arm,
                contrast.estimate,
                contrast.std_error,
                contrast.df,
                alpha,
                n_participants=int(compared.sum()),
                n_observations=int(statistics[compared, 0].sum()),
                converged=fit.converged,
                messages=messages,
            )
        )
    return tuple(contrasts)


def _checked_arms(
    arm: np.ndarray, statistics: np.ndarray, arm_names: tuple[str, ...], alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """``arm`` and ``statistics`` as arrays, once every arm is checked to identify its growth."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1).")
    if len(arm_names) < 2:
        raise ValueError("At least two arms are needed, the control and one to compare with it.")
    arm = np.asarray(arm, dtype=int)
    statistics = np.asarray(statistics, dtype=float)
    for code, name in enumerate(arm_names):
        n, sum_t, sum_tt = statistics[arm == code, :3].sum(axis=0)
        if np.count_nonzero(arm == code) < 2:
            raise ValueError(f"arm {name!r} has fewer than two participants.")
        # Observations at two distinct waves or more ⇔ the waves' spread n Σt² − (Σt)² > 0.
        if n * sum_tt - sum_t**2 <= 0:
            raise ValueError(
                f"arm {name!r} has observations at only one wave; growth needs two distinct waves."
            )
    return arm, statistics


def _fit_messages(fit: Any) -> tuple[str, ...]:
    """What a REML fit warns: a failed convergence check, a boundary fit."""
    messages: tuple[str, ...] = ()
    if not fit.converged:
        messages += (
            f"REML did not converge: a Newton step of {fit.newton_step:.1e} remains "
            f"(the optimiser said: {fit.message})",
        )
    if fit.boundary:
        messages += (_BOUNDARY_NOTE,)
    return messages


@dataclass(frozen=True)
class GrowthEstimate:
    """A linear combination of growths per wave (``label`` says which) with its t-based
    two-sided interval and p-value on Satterthwaite's ``df``."""

    label: str
    estimate: float
    std_error: float
    df: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class GrowthJointTest:
    """The F test that several growth contrasts are all zero (``label`` says which)."""

    label: str
    f_statistic: float
    df_numerator: int
    df_denominator: float
    p_value: float


def variable_columns(name: str, values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """A baseline variable as centred design columns, named after it.

    Numbers (NaN where missing) give one column, the value minus the mean of the observed
    ones; where some are missing the missing ones take the mean and a centred indicator
    ``<name> missing`` is added (the missing-indicator method, unbiased for a baseline covariate
    in a randomised trial: White & Thompson 2005, Statistics in Medicine 24, 993–1007).
    Anything else is a category: a centred indicator of each value but the most common
    (``<name>=<value>``). Centring makes each arm's growth coefficient its growth at the
    sample's average baseline profile. A variable with one value gives no column.
    """
    values = np.asarray(values)
    if values.dtype.kind in "fiu":
        numbers = values.astype(float)
        observed = np.isfinite(numbers)
        if not observed.any():
            raise ValueError(f"{name}: no participant has a value.")
        filled = np.where(observed, numbers, numbers[observed].mean())
        columns = [(name, filled - filled.mean())] if np.ptp(filled) > 0 else []
        if not observed.all():
            missing = (~observed).astype(float)
            columns.append((f"{name} missing", missing - missing.mean()))
        return columns
    labels, counts = np.unique(values.astype(str), return_counts=True)
    reference = labels[counts.argmax()]
    return [
        (f"{name}={label}", (values == label) - np.mean(values == label))
        for label in labels
        if label != reference
    ]


@dataclass(frozen=True)
class CovariateGrowth:
    """The growth model with the arms' own levels and growths, baseline covariate columns and,
    for moderators, their columns and their products with every arm but the control
    (``<arm> × <column>``), all on level and growth (:func:`stats.reml_growth.reml_design_fit`).

    ``arm_contrasts`` are each arm's growth minus the control's at the average baseline profile;
    ``moderator_effects`` how much that difference changes per unit of each moderator column
    (for a category: in it against the most common one). :meth:`contrast` and
    :meth:`joint_test` take weights over the arms' growths, e.g. a factorial design's.
    """

    fit: DesignFit
    arm_names: tuple[str, ...]
    alpha: float
    arm_contrasts: tuple[ArmContrast, ...]
    moderator_effects: tuple[GrowthEstimate, ...]
    warnings: tuple[str, ...]

    def _weights(self, arm_weights: dict[str, float]) -> np.ndarray:
        unknown = set(arm_weights) - set(self.arm_names)
        if unknown:
            raise ValueError(f"not arms of the model: {', '.join(sorted(unknown))}.")
        weights = np.zeros(len(self.fit.columns))
        for a, name in enumerate(self.arm_names):
            weights[a] = arm_weights.get(name, 0.0)
        return weights

    def contrast(self, arm_weights: dict[str, float], label: str) -> GrowthEstimate:
        """:math:`\\sum_a w_a \\lambda_a` over the arms' growths."""
        return _growth_estimate(self.fit, self._weights(arm_weights), label, self.alpha)

    def joint_test(self, rows: list[dict[str, float]], label: str) -> GrowthJointTest:
        """The F test that every row's contrast of the arms' growths is zero."""
        test = self.fit.joint_test(np.array([self._weights(row) for row in rows]))
        return GrowthJointTest(
            label, test.f_statistic, test.df_numerator, test.df_denominator, test.p_value
        )


def _growth_estimate(fit: DesignFit, weights: np.ndarray, label: str, alpha: float):
    contrast = fit.contrast(weights)
    quantile = float(stats.t(contrast.df).ppf(1 - alpha / 2))
    return GrowthEstimate(
        label=label,
        estimate=contrast.estimate,
        std_error=contrast.std_error,
        df=contrast.df,
        ci_low=contrast.estimate - quantile * contrast.std_error,
        ci_high=contrast.estimate + quantile * contrast.std_error,
        p_value=float(2 * stats.t(contrast.df).sf(abs(contrast.estimate) / contrast.std_error)),
    )


def mixedlm_growth_adjusted(
    arm: np.ndarray,
    statistics: np.ndarray,
    arm_names: tuple[str, ...],
    *,
    covariates: dict[str, np.ndarray] | None = None,
    moderators: dict[str, np.ndarray] | None = None,
    alpha: float = 0.05,
) -> CovariateGrowth:
    """:func:`mixedlm_growth_from_statistics` with baseline covariates and moderators.

    ``covariates`` and ``moderators`` map a variable's name to its value per participant (in
    the order of ``arm``), coded by :func:`variable_columns`. Covariates enter level and growth
    for precision: the arms' contrasts keep their meaning (randomisation balances the
    covariates), and their SEs shrink as far as the covariates predict growth. A moderator's
    columns enter too, with their products with each non-control arm, whose growth coefficient
    is the moderator effect (the arm × moderator × wave term of
    ``lmer(score ~ wave * (arm * moderator + covariates) + (1 + wave | participant))``).
    Checked against lme4 and lmerTest (tests/stats/test_reml_design.py).
    """
    arm, statistics = _checked_arms(arm, statistics, arm_names, alpha)
    indicators = arm_rows(arm, len(arm_names))
    columns = [(name, indicators[:, a]) for a, name in enumerate(arm_names)]
    for name, values in (covariates or {}).items():
        columns += variable_columns(name, values)
    products = []
    for name, values in (moderators or {}).items():
        for column, centred in variable_columns(name, values):
            columns.append((column, centred))
            if not column.endswith(" missing"):
                products += [
                    (f"{arm_names[a]} × {column}", (arm == a) * centred)
                    for a in range(1, len(arm_names))
                ]
    columns += products
    names = [name for name, _ in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"design columns are named twice: {sorted(names)}.")
    fit = reml_design_fit(
        np.column_stack([values for _, values in columns]),
        statistics,
        tuple(name for name, _ in columns),
        singular_tolerance=_SINGULAR_TOLERANCE,
    )
    messages = _fit_messages(fit)
    arm_contrasts = []
    for a in range(1, len(arm_names)):
        weights = np.zeros(len(columns))
        weights[[a, 0]] = 1.0, -1.0
        contrast = fit.contrast(weights)
        compared = (arm == 0) | (arm == a)
        arm_contrasts.append(
            _arm_contrast(
                arm_names[a],
                contrast.estimate,
                contrast.std_error,
                contrast.df,
                alpha,
                n_participants=int(compared.sum()),
                n_observations=int(statistics[compared, 0].sum()),
                converged=fit.converged,
                messages=messages,
            )
        )
    product_names = {name for name, _ in products}
    moderator_effects = tuple(
        _growth_estimate(fit, np.eye(len(columns))[j], name, alpha)
        for j, (name, _) in enumerate(columns)
        if name in product_names
    )
    return CovariateGrowth(
        fit=fit,
        arm_names=tuple(arm_names),
        alpha=alpha,
        arm_contrasts=tuple(arm_contrasts),
        moderator_effects=moderator_effects,
        warnings=messages,
    )


def gee_growth(
    frame: pd.DataFrame, *, control: str, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    """:func:`gee_growth_from_statistics` from long data as for :func:`mixedlm_growth`, with the
    same checks (ValueError on malformed input)."""
    return gee_growth_from_statistics(*_frame_statistics(frame, control, alpha), alpha=alpha)


# statsmodels' GEE.fit defaults: at most 60 mean-parameter steps, stopping once the estimating
# equations' L2 norm is below 1e-6 (after at least one update of the working correlation).
_GEE_MAXITER = 60
_GEE_CTOL = 1e-6
_GEE_ITERATION_LIMIT = "Iteration limit reached prior to convergence"


def gee_growth_from_statistics(
    arm: np.ndarray, statistics: np.ndarray, arm_names: tuple[str, ...], *, alpha: float = 0.05
) -> tuple[ArmContrast, ...]:
    r"""Growth differences by GEE with an exchangeable working correlation (sensitivity
    analysis), from each participant's arm and six statistics
    :math:`(n_i, \sum t, \sum t^2, \sum y, \sum ty, \sum y^2)`
    (:func:`stats.reml_growth.participant_statistics`, or the same aggregated by the database).

    Fits the population-averaged mean model

    .. math:: E[y_{ij}] = \beta_0 + \gamma_{k(i)} + (\beta_1 + \delta_{k(i)})\,t_{ij}

    by generalised estimating equations with an exchangeable working correlation (Liang & Zeger
    1986) and reports :math:`\hat\delta_k` for every non-control arm with the robust (sandwich)
    standard error, which stays valid when the working correlation is wrong, and a normal
    interval and p-value. Unlike the mixed model, GEE is consistent only when data are missing
    completely at random (drop-out unrelated to the scores, given arm and wave), so a clear gap
    between the two estimates hints that drop-out depends on the outcome. The sandwich standard
    error is biased downwards with few participants (Mancl & DeRouen 2001).

    Every quantity of the fit is a function of the six statistics. Participant :math:`i`'s rows
    are :math:`X_i = Z_i L_{k(i)}` with :math:`Z_i = [1, t_{ij}]` and :math:`L_k` the map from
    the coefficients to arm :math:`k`'s intercept and slope; the working correlation inverse is
    :math:`R_i^{-1} = I/(1-\rho) - c_i 11^\top`,
    :math:`c_i = \rho / \{(1-\rho)(1 + (n_i - 1)\rho)\}`, so
    :math:`Z_i^\top R_i^{-1} Z_i = S_i/(1-\rho) - c_i s_i s_i^\top` with
    :math:`S_i = [[n, \sum t], [\sum t, \sum t^2]]`, :math:`s_i = (n, \sum t)`, and
    :math:`Z_i^\top R_i^{-1} r_i` follows from the residual sums :math:`\sum r`,
    :math:`\sum t r` (each linear in the statistics). The moment estimators need
    :math:`\sum r^2` (quadratic in them) and :math:`\sum_{j \ne k} r_{ij} r_{ik} =
    (\sum r)^2 - \sum r^2`. The iteration, the estimators and the convergence rule are
    statsmodels' (``GEE.fit`` with ``cov_struct=Exchangeable()``, ``cov_type="robust"``,
    version 0.15): start at ordinary least squares with :math:`\rho = 0`; each step solves the
    estimating equations at the current :math:`\rho`, stops when their L2 norm before the step
    is below :math:`10^{-6}` once :math:`\rho` has been updated, and otherwise updates
    :math:`\hat\phi = \sum r^2 / (N - p)` and
    :math:`\hat\rho = \sum_i \sum_{j<k} r_{ij} r_{ik} / \{\hat\phi\,(\sum_i n_i(n_i-1)/2 - p)\}`
    (:math:`p = 2K` coefficients); the covariance is the sandwich
    :math:`B^{-1} (\sum_i u_i u_i^\top) B^{-1}`, :math:`B = \sum_i X_i^\top R_i^{-1} X_i`,
    :math:`u_i = X_i^\top R_i^{-1} r_i`, at the last :math:`\rho` and coefficients. So the
    result is statsmodels' on the long rows, in time linear in the participants and without
    the rows (tests/stats/test_growth.py compares the two).

    When every participant is observed at the same waves, :math:`\hat\delta_k` equals the
    pooled ordinary least-squares estimate whatever the working correlation, and the sandwich
    variance of an arm's mean slope is :math:`\sum_i (s_i - \bar s)^2 / n^2` over its
    participants' least-squares slopes :math:`s_i`.

    Parameters
    ----------
    arm : numpy.ndarray of int
        Each participant's arm, a code into ``arm_names``.
    statistics : numpy.ndarray, shape (participants, 6)
        Each participant's :data:`stats.reml_growth.STATISTICS`.
    arm_names : tuple of str
        The arms, the control first.
    alpha : float
        Two-sided level of the intervals, in :math:`(0, 1)`.

    Returns
    -------
    tuple of ArmContrast
        One per non-control arm, in the order of ``arm_names``. ``converged`` is false, with
        statsmodels' warning, when 60 steps did not meet the stopping rule.

    Raises
    ------
    ValueError
        When ``alpha`` is outside (0, 1), there are fewer than two arms, or an arm has fewer
        than two participants or all its observations at one wave.

    References
    ----------
    Liang, K.-Y., & Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
    models. Biometrika, 73(1), 13–22.
    Mancl, L. A., & DeRouen, T. A. (2001). A covariance estimator for GEE with improved
    small-sample properties. Biometrics, 57(1), 126–134.
    """
    arm, statistics = _checked_arms(arm, statistics, arm_names, alpha)
    fit = _ExchangeableGee(arm, statistics, len(arm_names))
    rho, params, norm, assoc_updates = 0.0, fit.least_squares(), math.inf, 0
    for _ in range(_GEE_MAXITER):
        bread, score, _ = fit.terms(params, rho)
        params = params + np.linalg.solve(bread, score)
        norm = float(np.sqrt(np.sum(score**2)))
        if norm < _GEE_CTOL and assoc_updates > 0:
            break
        rho = fit.correlation(params)
        assoc_updates += 1
    converged = norm < _GEE_CTOL
    bread, _, meat = fit.terms(params, rho)
    inverse = np.linalg.inv(bread)
    covariance = inverse @ meat @ inverse
    messages = () if converged else (_GEE_ITERATION_LIMIT,)
    contrasts = []
    k = len(arm_names)
    for a in range(1, k):
        compared = (arm == 0) | (arm == a)
        contrasts.append(
            _arm_contrast(
                arm_names[a],
                float(params[k + a]),
                float(np.sqrt(covariance[k + a, k + a])),
                None,
                alpha,
                n_participants=int(compared.sum()),
                n_observations=int(statistics[compared, 0].sum()),
                converged=converged,
                messages=messages,
            )
        )
    return tuple(contrasts)


class _ExchangeableGee:
    """The sums of an exchangeable-correlation GEE for ``score ~ wave * arm`` from six
    statistics per participant. Coefficients are in patsy's order up to a permutation
    (intercept, the non-control arms' levels, wave, their growths), which leaves every norm
    and diagonal that :func:`gee_growth_from_statistics` reads unchanged."""

    def __init__(self, arm: np.ndarray, statistics: np.ndarray, arms: int) -> None:
        self.arm_of = arm_rows(arm, arms)  # participants × arms indicator
        self.n, self.t, self.tt, self.y, self.ty, self.yy = statistics.T
        self.observations = float(self.n.sum())
        self.pairs = float(np.sum(self.n * (self.n - 1) / 2))
        # L[a] maps the coefficients to arm a's (intercept, slope).
        self.maps = np.zeros((arms, 2, 2 * arms))
        self.maps[:, 0, 0] = self.maps[:, 1, arms] = 1.0
        for a in range(1, arms):
            self.maps[a, 0, a] = self.maps[a, 1, arms + a] = 1.0

    def _assembled(self, per_participant: np.ndarray) -> np.ndarray:
        """Σ_i L_aᵀ M_i L_a from the participants' symmetric 2 × 2 blocks (their three
        distinct entries as columns)."""
        a00, a01, a11 = (self.arm_of.T @ per_participant).T
        blocks = np.stack([np.stack([a00, a01], -1), np.stack([a01, a11], -1)], -2)
        return np.einsum("aip,aij,ajq->pq", self.maps, blocks, self.maps)

    def _residual_sums(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Σr, Σtr and Σr² of each participant at ``params``."""
        intercept, slope = np.einsum("pa,aiq,q->ip", self.arm_of, self.maps, params)
        r = self.y - self.n * intercept - self.t * slope
        tr = self.ty - self.t * intercept - self.tt * slope
        rr = (
            self.yy
            - 2 * intercept * self.y
            - 2 * slope * self.ty
            + self.n * intercept**2
            + 2 * intercept * slope * self.t
            + slope**2 * self.tt
        )
        return r, tr, rr

    def least_squares(self) -> np.ndarray:
        """Ordinary least squares, statsmodels' starting point (its Gaussian GLM)."""
        bread = self._assembled(np.column_stack([self.n, self.t, self.tt]))
        right = np.einsum("pa,aiq,ip->q", self.arm_of, self.maps, np.stack([self.y, self.ty]))
        return np.linalg.solve(bread, right)

    def terms(self, params: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """B = Σ XᵢᵀRᵢ⁻¹Xᵢ, the estimating equations Σ uᵢ and the meat Σ uᵢuᵢᵀ at
        ``params`` and correlation ``rho``."""
        scale = 1.0 / (1.0 - rho)
        c = rho / (1.0 - rho) / (1.0 + rho * (self.n - 1))
        bread = self._assembled(
            np.column_stack(
                [
                    scale * self.n - c * self.n**2,
                    scale * self.t - c * self.n * self.t,
                    scale * self.tt - c * self.t**2,
                ]
            )
        )
        r, tr, _ = self._residual_sums(params)
        u0 = scale * r - c * self.n * r
        u1 = scale * tr - c * self.t * r
        score = np.einsum("pa,aiq,ip->q", self.arm_of, self.maps, np.stack([u0, u1]))
        meat = self._assembled(np.column_stack([u0 * u0, u0 * u1, u1 * u1]))
        return bread, score, meat

    def correlation(self, params: np.ndarray) -> float:
        """statsmodels' ``Exchangeable.update``: moment estimates of the scale and then ρ,
        each with ``ddof_scale`` = the number of coefficients."""
        r, _, rr = self._residual_sums(params)
        ddof = self.maps.shape[2]
        phi = rr.sum() / (self.observations - ddof)
        cross = np.sum(r * r - rr) / 2 / phi
        return float(cross / (self.pairs - ddof))


def _validated(frame: pd.DataFrame, control: str, alpha: float) -> pd.DataFrame:
    """The four model columns, checked, with ``arm`` a categorical that starts with ``control``
    and ``participant`` replaced by integer codes 0, 1, … (statsmodels sorts group labels, which
    fails for ids of mixed types)."""
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
    others = sorted(arm for arm in arms if arm != control)
    names = [control, *others]
    arm = pd.Categorical(frame["arm"], categories=names)
    codes = arm.codes.astype(np.int64)
    participant, ids = pd.factorize(frame["participant"])
    # The checks below work on integer codes, in linear or n log n time: a million participants'
    # rows are checked in seconds. A participant's arm as last written must be every row's.
    arm_of = np.empty(len(ids), dtype=np.int64)
    arm_of[participant] = codes
    mixed = arm_of[participant] != codes
    if mixed.any():
        example = ids[participant[mixed.argmax()]]
        raise ValueError(f"participant {example!r} appears in more than one arm.")
    whole_waves = wave.to_numpy(dtype=np.int64)
    span = int(whole_waves.max()) + 1
    key = participant.astype(np.int64) * span + whole_waves
    order = np.argsort(key, kind="stable")
    repeated = order[1:][key[order][1:] == key[order][:-1]]
    if len(repeated):
        row = frame.iloc[int(repeated.min())]
        raise ValueError(
            f"participant {row['participant']!r} has more than one row at wave {row['wave']}; "
            "give one score per participant and wave."
        )
    participants_per_arm = np.bincount(arm_of, minlength=len(names))
    waves_per_arm = np.bincount(np.unique(codes * span + whole_waves) // span, minlength=len(names))
    for name in sorted(names):
        if participants_per_arm[names.index(name)] < 2:
            raise ValueError(f"arm {name!r} has fewer than two participants.")
        if waves_per_arm[names.index(name)] < 2:
            raise ValueError(
                f"arm {name!r} has observations at only one wave; growth needs two distinct waves."
            )
    return pd.DataFrame(
        {
            "participant": participant,
            "arm": arm,
            "wave": wave.to_numpy(dtype=float),
            "score": score.to_numpy(dtype=float),
        }
    )


def _arm_contrast(
    arm: str,
    estimate: float,
    std_error: float,
    df: float | None,
    alpha: float,
    *,
    n_participants: int,
    n_observations: int,
    converged: bool,
    messages: tuple[str, ...],
) -> ArmContrast:
    """A contrast with its two-sided interval and p-value: t with ``df`` degrees of freedom,
    or normal where ``df`` is None."""
    reference = stats.norm() if df is None else stats.t(df)
    quantile = float(reference.ppf(1 - alpha / 2))
    return ArmContrast(
        arm=arm,
        estimate=estimate,
        std_error=std_error,
        ci_low=estimate - quantile * std_error,
        ci_high=estimate + quantile * std_error,
        p_value=float(2 * reference.sf(abs(estimate) / std_error)),
        n_participants=n_participants,
        n_observations=n_observations,
        converged=converged,
        warnings=messages,
        df=df,
    )
