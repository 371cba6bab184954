"""Shares of participants and their differences: Wilson's score interval for one share and
Newcombe's hybrid score interval for the difference of two independent shares (the harm
boundaries of ``safety.harms`` and the per-arm event rates of ``safety.selectors``)."""

import math
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class ShareInterval:
    """``events`` of ``total`` (the share ``estimate``) and its two-sided ``confidence``
    interval ``[lower, upper]``; plain ``int`` and ``float`` so ``dataclasses.asdict`` gives
    JSON-ready data."""

    events: int
    total: int
    estimate: float
    lower: float
    upper: float
    confidence: float


@dataclass(frozen=True)
class DifferenceInterval:
    """The difference ``first.estimate - second.estimate`` and its two-sided ``confidence``
    interval ``[lower, upper]``, with the two shares' own Wilson intervals it was built from."""

    estimate: float
    lower: float
    upper: float
    confidence: float
    first: ShareInterval
    second: ShareInterval


def _check(events: int, total: int, confidence: float) -> None:
    if isinstance(events, bool) or isinstance(total, bool):
        raise ValueError("events and total must be integers, not booleans")
    if not (isinstance(events, int) and isinstance(total, int)):
        raise ValueError(f"events and total must be integers (got {events!r} and {total!r})")
    if total < 1:
        raise ValueError(f"a share needs at least one participant (total={total})")
    if not 0 <= events <= total:
        raise ValueError(f"events must be between 0 and total (events={events}, total={total})")
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1) (got {confidence!r})")


def wilson_interval(events: int, total: int, *, confidence: float = 0.95) -> ShareInterval:
    r"""Wilson's score interval for the share :math:`p = x/n` of ``events`` among ``total``.

    With :math:`z = \Phi^{-1}\big(1 - \tfrac{1-\text{confidence}}{2}\big)`, the interval is the
    set of :math:`\pi` with :math:`|p - \pi| \le z\sqrt{\pi(1-\pi)/n}`, whose ends are

    .. math:: \frac{2np + z^2 \pm z\sqrt{z^2 + 4np(1-p)}}{2(n + z^2)}.

    Unlike the Wald interval it stays inside :math:`[0, 1]`, is not degenerate at 0 or
    :math:`n` events, and keeps close to nominal coverage for small :math:`n` (Newcombe 1998a,
    method 3), which is why it suits adverse events: rare, in arms of tens of participants.

    Parameters
    ----------
    events : int
        Participants with the event, ``0 <= events <= total``.
    total : int
        Participants, at least 1 (a share of nobody is undefined: ``ValueError``).
    confidence : float
        Two-sided confidence level in :math:`(0, 1)`.

    Returns
    -------
    ShareInterval

    References
    ----------
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    JASA, 22(158), 209–212.
    Newcombe, R. G. (1998a). Two-sided confidence intervals for the single proportion:
    comparison of seven methods. Statistics in Medicine, 17(8), 857–872.

    Examples
    --------
    >>> interval = wilson_interval(81, 263)
    >>> round(interval.lower, 4), round(interval.upper, 4)
    (0.2553, 0.3662)
    """
    _check(events, total, confidence)
    # The standard library's normal quantile (Wichura's AS 241, accurate to double precision),
    # so the admin pages that show these intervals do not load SciPy.
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    share = events / total
    centre = 2 * total * share + z * z
    spread = z * math.sqrt(z * z + 4 * total * share * (1 - share))
    denominator = 2 * (total + z * z)
    # At 0 or n events one end is exactly 0 or 1; floating point would leave ~1e-17 off it.
    lower = 0.0 if events == 0 else (centre - spread) / denominator
    upper = 1.0 if events == total else (centre + spread) / denominator
    return ShareInterval(
        events=events,
        total=total,
        estimate=share,
        lower=lower,
        upper=upper,
        confidence=float(confidence),
    )


def newcombe_difference(
    first_events: int,
    first_total: int,
    second_events: int,
    second_total: int,
    *,
    confidence: float = 0.95,
) -> DifferenceInterval:
    r"""Newcombe's hybrid score interval for :math:`p_1 - p_2`, two independent shares.

    Each share gets its Wilson interval :math:`[l_i, u_i]` (:func:`wilson_interval`); with
    :math:`d = p_1 - p_2` the interval is

    .. math::
        \Big[d - \sqrt{(p_1 - l_1)^2 + (u_2 - p_2)^2},\;
             d + \sqrt{(u_1 - p_1)^2 + (p_2 - l_2)^2}\Big].

    This is method 10 of Newcombe (1998b): it needs no iteration, stays inside
    :math:`[-1, 1]`, and keeps coverage close to nominal where the Wald interval fails (small
    arms, shares near 0), as for harms in a field trial. A harm boundary uses its lower end:
    above ``max_excess``, the data rule out an excess no larger than that.

    Parameters
    ----------
    first_events, first_total : int
        Participants with the event, and participants, in the first group (an arm).
    second_events, second_total : int
        The same in the second group (the control).
    confidence : float
        Two-sided confidence level of the interval and of both Wilson intervals.

    Returns
    -------
    DifferenceInterval

    References
    ----------
    Newcombe, R. G. (1998b). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Statistics in Medicine, 17(8), 873–890.

    Examples
    --------
    >>> interval = newcombe_difference(56, 70, 48, 80)
    >>> round(interval.lower, 4), round(interval.upper, 4)
    (0.0524, 0.3339)
    """
    first = wilson_interval(first_events, first_total, confidence=confidence)
    second = wilson_interval(second_events, second_total, confidence=confidence)
    difference = first.estimate - second.estimate
    below = math.hypot(first.estimate - first.lower, second.upper - second.estimate)
    above = math.hypot(first.upper - first.estimate, second.estimate - second.lower)
    return DifferenceInterval(
        estimate=difference,
        lower=difference - below,
        upper=difference + above,
        confidence=float(confidence),
        first=first,
        second=second,
    )
