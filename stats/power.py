"""Sample size and power for a two-arm trial analysed by ANCOVA of repeated measurements."""

import math
from dataclasses import dataclass
from numbers import Integral, Real

from scipy import stats


@dataclass(frozen=True)
class SampleSizeResult:
    """Participants to enrol per arm, with the inputs that produced the numbers.

    ``n_control`` and ``n_treatment`` are enrolments (inflated for attrition);
    ``n_control_evaluable`` is the rounded number with complete follow-up that the formula needs in
    the control arm and ``n_control_exact`` the same number before rounding. All fields are plain
    ``int``, ``float``, ``bool`` or ``str``, so ``dataclasses.asdict`` gives JSON-ready data.
    """

    n_control: int
    n_treatment: int
    n_total: int
    n_control_evaluable: int
    n_control_exact: float
    design_multiplier: float
    achieved_power: float
    effect: float
    sd: float
    rho: float
    follow_ups: int
    baselines: int
    alpha: float
    power: float
    attrition: float
    allocation_ratio: float
    t_correction: bool


def design_multiplier(*, rho: float, follow_ups: int, baselines: int = 1) -> float:
    r"""Variance of the adjusted mean follow-up as a multiple of :math:`\sigma^2` (Frison & Pocock).

    Under compound symmetry (every measurement has variance :math:`\sigma^2` and every pair of
    measurements of one participant correlation :math:`\rho`), the residual variance of the mean
    of :math:`r` follow-up measurements after regression on :math:`p` baseline measurements is
    :math:`\sigma^2 m` with

    .. math:: m = \frac{1 + (r-1)\rho}{r} - \frac{p\rho^2}{1 + (p-1)\rho},

    so the ANCOVA treatment effect has variance :math:`\sigma^2 m\,(1/n_0 + 1/n_1)`. With
    :math:`p = 0` this is the analysis of post-treatment means; with :math:`r = p = 1` it is the
    familiar :math:`1 - \rho^2`.

    Parameters
    ----------
    rho : float
        Correlation between any two measurements of a participant, in :math:`[0, 1)`.
    follow_ups : int
        Number :math:`r \ge 1` of post-randomisation measurements whose mean is analysed.
    baselines : int
        Number :math:`p \ge 0` of pre-randomisation measurements adjusted for.

    Returns
    -------
    float

    References
    ----------
    Frison, L., & Pocock, S. J. (1992). Repeated measures in clinical trials: analysis using mean
    summary statistics and its implications for design. Statistics in Medicine, 11(13), 1685–1704.
    """
    _check_design(rho, follow_ups, baselines)
    r, p = follow_ups, baselines
    multiplier = (1 + (r - 1) * rho) / r
    if p > 0:
        multiplier -= p * rho**2 / (1 + (p - 1) * rho)
    return float(multiplier)


def ancova_power(
    *,
    n_per_arm: float,
    effect: float,
    sd: float,
    rho: float,
    follow_ups: int,
    baselines: int = 1,
    alpha: float = 0.05,
    attrition: float = 0.0,
    allocation_ratio: float = 1.0,
    t_correction: bool = False,
) -> float:
    r"""Power of the two-sided ANCOVA test of the treatment effect on the mean follow-up.

    With :math:`n_0 = (1-a)\,n` evaluable control participants and :math:`n_1 = k n_0` treated
    ones (:math:`a` the attrition, :math:`k` the allocation ratio), the standard error of the
    effect is :math:`\mathrm{se} = \sigma\sqrt{m\,(1/n_0 + 1/n_1)}` with :math:`m` from
    :func:`design_multiplier`, and :math:`\lambda = |\delta| / \mathrm{se}`. The default is the
    normal approximation

    .. math:: 1 - \beta = \Phi(\lambda - z_{1-\alpha/2}) + \Phi(-\lambda - z_{1-\alpha/2}),

    which ignores that the residual variance and the baseline slopes are estimated and so slightly
    overstates power in small trials. ``t_correction=True`` uses the noncentral t distribution with
    :math:`\nu = n_0 + n_1 - p - 2` residual degrees of freedom and noncentrality :math:`\lambda`
    instead; it still treats the baselines as fixed (the variance inflation from estimating
    :math:`p` slopes is of order :math:`p/N`).

    Parameters
    ----------
    n_per_arm : float
        Participants enrolled in the control arm; the treatment arm enrols ``allocation_ratio``
        times as many. Equal to the size of each arm when ``allocation_ratio`` is 1.
    effect : float
        Difference in means between arms (treatment minus control), non-zero, in outcome units.
    sd : float
        Standard deviation of a single measurement (the same at every wave).
    rho, follow_ups, baselines
        See :func:`design_multiplier`.
    alpha : float
        Two-sided significance level.
    attrition : float
        Fraction in :math:`[0, 1)` of enrolled participants expected to lack follow-up.
    allocation_ratio : float
        Treated per control participant, :math:`k > 0`.
    t_correction : bool
        Use the noncentral t distribution instead of the normal approximation.

    Returns
    -------
    float

    References
    ----------
    Frison, L., & Pocock, S. J. (1992). Statistics in Medicine, 11(13), 1685–1704.
    Chow, S.-C., Shao, J., & Wang, H. (2008). Sample Size Calculations in Clinical Research
    (2nd ed.), §3.2. Chapman & Hall/CRC.

    Examples
    --------
    >>> round(ancova_power(n_per_arm=64, effect=0.5, sd=1.0, rho=0.0, follow_ups=1, baselines=0), 4)
    0.8074
    """
    _check_common(effect, sd, alpha, attrition, allocation_ratio)
    if not _is_real(n_per_arm) or not 0 < n_per_arm < math.inf:
        raise ValueError("n_per_arm must be a positive finite number.")
    multiplier = design_multiplier(rho=rho, follow_ups=follow_ups, baselines=baselines)
    n_control = float(n_per_arm) * (1 - attrition)
    return _power(
        n_control, effect, sd, multiplier, baselines, alpha, allocation_ratio, t_correction
    )


def ancova_sample_size(
    *,
    effect: float,
    sd: float,
    rho: float,
    follow_ups: int,
    baselines: int = 1,
    alpha: float = 0.05,
    power: float = 0.8,
    attrition: float = 0.0,
    allocation_ratio: float = 1.0,
    t_correction: bool = False,
) -> SampleSizeResult:
    r"""Participants per arm for a two-sided ANCOVA test of the mean follow-up (Frison & Pocock).

    The evaluable control-arm size from the normal approximation is

    .. math:: n_0 = \left(1 + \frac{1}{k}\right)
              \frac{(z_{1-\alpha/2} + z_{1-\beta})^2\,\sigma^2 m}{\delta^2},

    with :math:`m` from :func:`design_multiplier` and :math:`n_1 = k n_0`. It is rounded up, then
    each arm is inflated for attrition as :math:`\lceil n / (1 - a) \rceil`. With
    ``t_correction=True`` the evaluable size is instead the smallest integer at which the
    noncentral-t power of :func:`ancova_power` reaches the target. The returned enrolments always
    achieve at least the requested power by :func:`ancova_power` with the same options.

    Parameters
    ----------
    effect, sd, rho, follow_ups, baselines, alpha, attrition, allocation_ratio, t_correction
        See :func:`ancova_power`.
    power : float
        Target power :math:`1-\beta`, in :math:`(\alpha/2, 1)`.

    Returns
    -------
    SampleSizeResult

    References
    ----------
    Frison, L., & Pocock, S. J. (1992). Repeated measures in clinical trials: analysis using mean
    summary statistics and its implications for design. Statistics in Medicine, 11(13), 1685–1704.

    Examples
    --------
    >>> result = ancova_sample_size(effect=0.5, sd=1.0, rho=0.5, follow_ups=1)
    >>> result.n_control, result.n_treatment, result.design_multiplier
    (48, 48, 0.75)
    """
    _check_common(effect, sd, alpha, attrition, allocation_ratio)
    if not _is_real(power) or not alpha / 2 < power < 1:
        raise ValueError("power must lie in (alpha/2, 1).")
    multiplier = design_multiplier(rho=rho, follow_ups=follow_ups, baselines=baselines)
    k = float(allocation_ratio)
    z_sum = stats.norm.isf(alpha / 2) + stats.norm.isf(1 - power)
    n_exact = (1 + 1 / k) * z_sum**2 * sd**2 * multiplier / effect**2
    n_evaluable = math.ceil(n_exact)
    if t_correction:
        # The t test needs at least as many as the normal one: step up from there.
        n_evaluable = max(n_evaluable, 1)
        while (
            n_evaluable * (1 + k) - baselines - 2 < 1
            or _power(n_evaluable, effect, sd, multiplier, baselines, alpha, k, True) < power
        ):
            n_evaluable += 1
    n_control = _ceil(n_evaluable / (1 - attrition))
    n_treatment = _ceil(k * n_control)
    achieved = _power(
        n_control * (1 - attrition), effect, sd, multiplier, baselines, alpha, k, t_correction
    )
    return SampleSizeResult(
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_control + n_treatment,
        n_control_evaluable=n_evaluable,
        n_control_exact=float(n_exact),
        design_multiplier=multiplier,
        achieved_power=achieved,
        effect=float(effect),
        sd=float(sd),
        rho=float(rho),
        follow_ups=int(follow_ups),
        baselines=int(baselines),
        alpha=float(alpha),
        power=float(power),
        attrition=float(attrition),
        allocation_ratio=k,
        t_correction=bool(t_correction),
    )


def _power(
    n_control: float,
    effect: float,
    sd: float,
    multiplier: float,
    baselines: int,
    alpha: float,
    allocation_ratio: float,
    t_correction: bool,
) -> float:
    n_treatment = allocation_ratio * n_control
    se = sd * math.sqrt(multiplier * (1 / n_control + 1 / n_treatment))
    noncentrality = abs(effect) / se
    if not t_correction:
        z = stats.norm.isf(alpha / 2)
        return float(stats.norm.cdf(noncentrality - z) + stats.norm.cdf(-noncentrality - z))
    df = n_control + n_treatment - baselines - 2
    if df < 1:
        raise ValueError("Too few evaluable participants for the t test (df = N - p - 2 < 1).")
    t = stats.t.isf(alpha / 2, df)
    # P(T <= -t) written as P(-T >= t) with -T ~ nct(df, -lambda): scipy's nct.cdf returns nan
    # far in this tail where nct.sf does not; the normal tail is a last resort.
    opposite = stats.nct.sf(t, df, -noncentrality)
    if not math.isfinite(opposite):
        opposite = stats.norm.cdf(-noncentrality - t)
    return float(stats.nct.sf(t, df, noncentrality) + opposite)


def _ceil(x: float) -> int:
    # n / (1 - a) and k * n are exact in real arithmetic; forgive float noise such as
    # 90 / 0.9 = 100.00000000000001 rather than enrolling one more participant.
    return math.ceil(x - 1e-9 * max(1.0, abs(x)))


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_design(rho: float, follow_ups: int, baselines: int) -> None:
    if not _is_real(rho) or not 0 <= rho < 1:
        raise ValueError("rho must lie in [0, 1).")
    if not isinstance(follow_ups, Integral) or isinstance(follow_ups, bool) or follow_ups < 1:
        raise ValueError("follow_ups must be an integer >= 1.")
    if not isinstance(baselines, Integral) or isinstance(baselines, bool) or baselines < 0:
        raise ValueError("baselines must be an integer >= 0.")


def _check_common(
    effect: float, sd: float, alpha: float, attrition: float, allocation_ratio: float
) -> None:
    if not _is_real(effect) or not math.isfinite(effect) or effect == 0:
        raise ValueError("effect must be a finite non-zero number.")
    if not _is_real(sd) or not 0 < sd < math.inf:
        raise ValueError("sd must be a positive finite number.")
    if not _is_real(alpha) or not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1).")
    if not _is_real(attrition) or not 0 <= attrition < 1:
        raise ValueError("attrition must lie in [0, 1).")
    if not _is_real(allocation_ratio) or not 0 < allocation_ratio < math.inf:
        raise ValueError("allocation_ratio must be a positive finite number.")
