"""Differences in growth per wave between arms, from one dimension's long data or each
participant's sufficient statistics; with baseline covariates and moderators, any contrast of the
arms' growths (a factorial design's main effects and interactions) and arm × moderator effects."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.tools.sm_exceptions import ModelWarning

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
    data = _validated(frame, control, alpha)
    participant = data["participant"].to_numpy()
    participants = int(participant.max()) + 1
    statistics = participant_statistics(
        participant, data["wave"].to_numpy(), data["score"].to_numpy(), participants
    )
    arm = np.empty(participants, dtype=int)
    arm[participant] = data["arm"].cat.codes.to_numpy()
    arm_names = tuple(str(name) for name in data["arm"].cat.categories)
    return mixedlm_growth_from_statistics(arm, statistics, arm_names, alpha=alpha)


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
    r"""Growth differences by GEE with an exchangeable working correlation (sensitivity analysis).

    Fits the population-averaged mean model

    .. math:: E[y_{ij}] = \beta_0 + \gamma_{k(i)} + (\beta_1 + \delta_{k(i)})\,t_{ij}

    by generalised estimating equations with an exchangeable working correlation (Liang & Zeger
    1986) and reports :math:`\hat\delta_k` for every non-control arm with the robust (sandwich)
    standard error, which stays valid when the working correlation is wrong, and the same normal
    interval and p-value with a normal reference. Unlike the mixed model, GEE is consistent only
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


def _fit_recording_warnings(fit: Callable[[], Any]) -> tuple[Any, tuple[str, ...]]:
    """Run ``fit`` and return its result with the distinct warnings it raised, in order."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelWarning)
        result = fit()
    return result, tuple(dict.fromkeys(str(w.message) for w in caught))


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


def _contrasts(
    data: pd.DataFrame,
    fit: Any,
    control: str,
    alpha: float,
    *,
    converged: bool,
    messages: tuple[str, ...],
) -> tuple[ArmContrast, ...]:
    """The ``wave:arm`` coefficients of a statsmodels ``fit`` as normal-theory contrasts with
    the control."""
    contrasts = []
    for arm in data["arm"].cat.categories[1:]:
        name = f"wave:arm[T.{arm}]"
        compared = data[data["arm"].isin([control, arm])]
        contrasts.append(
            _arm_contrast(
                str(arm),
                float(fit.params[name]),
                float(fit.bse[name]),
                None,
                alpha,
                n_participants=int(compared["participant"].nunique()),
                n_observations=len(compared),
                converged=converged,
                messages=messages,
            )
        )
    return tuple(contrasts)


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
