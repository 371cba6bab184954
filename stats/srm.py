"""Sample-ratio mismatch: are the arms the sizes that the allocation ratio promised?"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

from scipy import special


@dataclass(frozen=True)
class SrmResult:
    """A chi-squared goodness-of-fit test of arm sizes against the planned allocation.

    ``observed`` and ``expected`` are keyed by arm in the order of the ``observed`` argument; all
    fields are plain ``int``, ``float``, ``bool``, ``str`` or ``dict``, so ``dataclasses.asdict``
    gives JSON-ready data.
    """

    chi2: float
    df: int
    p_value: float
    mismatch: bool
    threshold: float
    total: int
    observed: dict[str, int]
    expected: dict[str, float]


def sample_ratio_mismatch(
    observed: Mapping[str, int],
    expected_ratio: Mapping[str, float],
    *,
    threshold: float = 0.001,
) -> SrmResult:
    r"""Pearson's chi-squared test of observed arm sizes against the planned allocation ratio.

    With :math:`N = \sum_j O_j` participants and planned weights :math:`w_j` (normalised to
    :math:`\pi_j = w_j / \sum_l w_l`), the expected counts are :math:`E_j = N\pi_j` and

    .. math:: X^2 = \sum_{j=1}^{K} \frac{(O_j - E_j)^2}{E_j} \sim \chi^2_{K-1}
              \quad\text{under correct allocation.}

    A sample-ratio mismatch is flagged when :math:`p < ` ``threshold``; the strict default of
    0.001 is the one GrowthBook and Eppo use, because the check runs on every experiment and
    often repeatedly. An arm with no participants is kept in the test (it contributes
    :math:`E_j` to :math:`X^2`), so an arm that never received anyone is flagged once :math:`N`
    is large enough. The chi-squared approximation is rough when some :math:`E_j < 5`, i.e. in
    the first hours of an experiment.

    Parameters
    ----------
    observed : Mapping[str, int]
        Participants per arm, non-negative integers. At least one must be positive: with no
        participants the test is undefined and ``ValueError`` is raised rather than returning a
        result that could be mistaken for "no mismatch".
    expected_ratio : Mapping[str, float]
        Planned allocation weights per arm, positive and finite; they need not sum to 1
        (``{"control": 1, "treatment": 2}`` means 1:2). Must have exactly the keys of
        ``observed``.
    threshold : float
        Significance level in :math:`(0, 1)` below which a mismatch is flagged.

    Returns
    -------
    SrmResult

    References
    ----------
    Fabijan, A., Gupchup, J., Gupta, S., Omhover, J., Qin, W., Vermeer, L., & Dmitriev, P. (2019).
    Diagnosing sample ratio mismatch in online controlled experiments. KDD '19, 2156–2164.
    Pearson, K. (1900). On the criterion that a given system of deviations from the probable ...
    Philosophical Magazine, 50(302), 157–175.

    Examples
    --------
    >>> result = sample_ratio_mismatch({"control": 1100, "treatment": 900},
    ...                                {"control": 1, "treatment": 1})
    >>> result.chi2, result.df, result.mismatch
    (20.0, 1, True)
    """
    if not isinstance(observed, Mapping) or not isinstance(expected_ratio, Mapping):
        raise ValueError("observed and expected_ratio must be mappings from arm to number.")
    if set(observed) != set(expected_ratio):
        missing = sorted(map(str, set(observed) ^ set(expected_ratio)))
        raise ValueError(
            f"observed and expected_ratio must have the same arms; differ on {missing}."
        )
    if not all(isinstance(arm, str) for arm in observed):
        raise ValueError("Arm names must be strings.")
    if len(observed) < 2:
        raise ValueError("At least two arms are needed.")
    for arm, count in observed.items():
        if not isinstance(count, Integral) or isinstance(count, bool) or count < 0:
            raise ValueError(f"observed[{arm!r}] must be a non-negative integer.")
    for arm, weight in expected_ratio.items():
        if not isinstance(weight, Real) or isinstance(weight, bool) or not 0 < weight < math.inf:
            raise ValueError(f"expected_ratio[{arm!r}] must be a positive finite number.")
    if not isinstance(threshold, Real) or not 0 < threshold < 1:
        raise ValueError("threshold must lie in (0, 1).")
    total = sum(int(count) for count in observed.values())
    if total == 0:
        raise ValueError("No participants in any arm: sample ratio mismatch is not evaluable.")

    weight_sum = math.fsum(float(w) for w in expected_ratio.values())
    expected = {arm: total * float(expected_ratio[arm]) / weight_sum for arm in observed}
    chi2 = math.fsum((int(observed[arm]) - e) ** 2 / e for arm, e in expected.items())
    df = len(observed) - 1
    # chdtrc is the chi-squared survival function, accurate far into the tail.
    p_value = float(special.chdtrc(df, chi2))
    return SrmResult(
        chi2=float(chi2),
        df=df,
        p_value=p_value,
        mismatch=bool(p_value < threshold),
        threshold=float(threshold),
        total=total,
        observed={str(arm): int(count) for arm, count in observed.items()},
        expected={str(arm): e for arm, e in expected.items()},
    )
