"""Differential attrition: do the arms lose participants at different rates at each wave?"""

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class WaveAttrition:
    """Pearson's chi-squared test of equal response rates across arms at one wave.

    ``allocated``, ``responded`` and ``response_rate`` are keyed by arm in the order of the
    ``allocated`` argument; all fields are plain ``int``, ``float``, ``bool`` or ``dict``, so
    ``dataclasses.asdict`` gives JSON-ready data.
    """

    wave: int
    allocated: dict[str, int]
    responded: dict[str, int]
    response_rate: dict[str, float]
    chi2: float
    df: int
    p_value: float
    differential: bool


def differential_attrition(
    allocated: Mapping[str, int],
    responded: Mapping[int, Mapping[str, int]],
    *,
    alpha: float = 0.05,
) -> tuple[WaveAttrition, ...]:
    r"""Test, wave by wave, whether the arms' response rates differ.

    At each wave the :math:`K` arms form a :math:`K \times 2` table of participants who
    responded, :math:`r_k`, and did not, :math:`n_k - r_k`, out of the :math:`n_k` allocated.
    With :math:`N = \sum_k n_k` and :math:`R = \sum_k r_k`, the expected counts under equal rates
    are :math:`n_k R / N` and :math:`n_k (N - R) / N`, and

    .. math:: X^2 = \sum_{k=1}^{K} \sum_{c} \frac{(O_{kc} - E_{kc})^2}{E_{kc}}
              \sim \chi^2_{K-1} \quad\text{under equal response rates}

    (Pearson's test without continuity correction, ``scipy.stats.chi2_contingency`` with
    ``correction=False``). Attrition is flagged as differential when :math:`p <` ``alpha``.
    The approximation is rough when an expected count is below 5; a non-significant result in a
    small trial is weak evidence that attrition is balanced, so read it together with the rates.

    When every allocated participant responded at a wave, or none did, the rates are equal
    (all 1 or all 0), the other column of the table is empty and :math:`X^2` is undefined
    (0/0). We then report its limit of equal rates, ``chi2 = 0.0`` and ``p_value = 1.0``, with
    ``df = K - 1`` as usual, and ``differential = False``.

    Parameters
    ----------
    allocated : Mapping[str, int]
        Participants randomised to each arm, positive integers; at least two arms.
    responded : Mapping[int, Mapping[str, int]]
        For each wave, the participants of each arm who responded: non-negative integers no
        larger than ``allocated`` and keyed by exactly the arms of ``allocated``. Waves are
        reported in sorted order; an empty mapping gives an empty tuple.
    alpha : float
        Significance level in :math:`(0, 1)`.

    Returns
    -------
    tuple of WaveAttrition

    Raises
    ------
    ValueError
        On any input outside the ranges above, naming the offending arm or wave.

    References
    ----------
    Pearson, K. (1900). On the criterion that a given system of deviations from the probable ...
    Philosophical Magazine, 50(302), 157–175.
    Agresti, A. (2013). Categorical Data Analysis (3rd ed.), §3.2. Wiley.

    Examples
    --------
    >>> (wave,) = differential_attrition({"control": 100, "treatment": 100},
    ...                                  {1: {"control": 80, "treatment": 60}})
    >>> round(wave.chi2, 4), wave.df, wave.differential
    (9.5238, 1, True)
    """
    if not isinstance(allocated, Mapping) or not isinstance(responded, Mapping):
        raise ValueError("allocated must map arm to count and responded wave to such a mapping.")
    if not all(isinstance(arm, str) for arm in allocated):
        raise ValueError("Arm names must be strings.")
    if len(allocated) < 2:
        raise ValueError("At least two arms are needed.")
    for arm, count in allocated.items():
        if not _is_count(count) or count < 1:
            raise ValueError(f"allocated[{arm!r}] must be a positive integer.")
    if not isinstance(alpha, Real) or not 0 < alpha < 1:
        raise ValueError("alpha must lie in (0, 1).")
    for wave, counts in responded.items():
        if not isinstance(wave, Integral) or isinstance(wave, bool):
            raise ValueError(f"Wave {wave!r} must be an integer.")
        if not isinstance(counts, Mapping) or set(counts) != set(allocated):
            raise ValueError(f"responded[{wave}] must give a count for exactly the allocated arms.")
        for arm, count in counts.items():
            if not _is_count(count) or not 0 <= count <= allocated[arm]:
                raise ValueError(
                    f"responded[{wave}][{arm!r}] must be an integer from 0 to allocated[{arm!r}]"
                    f" = {allocated[arm]}."
                )

    arms = list(allocated)
    sizes = np.array([int(allocated[arm]) for arm in arms])
    results = []
    for wave in sorted(responded):
        answered = np.array([int(responded[wave][arm]) for arm in arms])
        if answered.sum() in (0, sizes.sum()):
            chi2, p_value = 0.0, 1.0
        else:
            test = stats.chi2_contingency(
                np.column_stack([answered, sizes - answered]), correction=False
            )
            chi2, p_value = float(test.statistic), float(test.pvalue)
        results.append(
            WaveAttrition(
                wave=int(wave),
                allocated=dict(zip(arms, sizes.tolist(), strict=True)),
                responded=dict(zip(arms, answered.tolist(), strict=True)),
                response_rate=dict(zip(arms, (answered / sizes).tolist(), strict=True)),
                chi2=chi2,
                df=len(arms) - 1,
                p_value=p_value,
                differential=p_value < alpha,
            )
        )
    return tuple(results)


def _is_count(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)
