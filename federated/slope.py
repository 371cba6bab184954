r"""The usage-outcome slope from the dose release's noisy sums, with a noise-aware interval.

Each arm :math:`a` releases, with integer Gaussian noise of known scales, the count
:math:`N_a` and the sums :math:`A_a = \sum u`, :math:`B_a = \sum c`, :math:`P_a = \sum uc`,
:math:`Q_a = \sum u^2`, :math:`R_a = \sum c^2` of its participants' clipped usage :math:`u` and
outcome change :math:`c` (``federated.dose``). With the centred cross-products
:math:`S^{uc}_a = P_a - A_a B_a / N_a`, :math:`S^{uu}_a = Q_a - A_a^2 / N_a` and
:math:`S^{cc}_a = R_a - B_a^2 / N_a`, the least-squares slope of :math:`c` on :math:`u` within
arms is

.. math:: \hat\beta = \sum_a S^{uc}_a \big/ \sum_a S^{uu}_a

(one arm: that arm's slope). Its variance has two independent parts:

* **sampling**: the ordinary least-squares variance :math:`\hat\sigma^2_e / \sum_a S^{uu}_a`
  with :math:`\hat\sigma^2_e = (\sum_a S^{cc}_a - \hat\beta \sum_a S^{uc}_a) / (N - k - 1)` for
  :math:`k` arms (homoskedastic errors; e.g. Weisberg, *Applied Linear Regression*, 4th ed., §2);
* **privacy noise**: by the delta method, :math:`\sum_{a,q} (\partial\hat\beta/\partial q_a)^2
  \sigma_{q,a}^2` over the released quantities, whose noise variances the release states (the
  integer Gaussian of scale :math:`\sigma` has variance at most :math:`\sigma^2`; Canonne, Kamath
  & Steinke 2020). With :math:`S = \sum_a S^{uu}_a`, the partial derivatives are
  :math:`\partial/\partial P_a = 1/S`, :math:`\partial/\partial Q_a = -\hat\beta/S`,
  :math:`\partial/\partial A_a = (2\hat\beta A_a - B_a) / (N_a S)`,
  :math:`\partial/\partial B_a = -A_a / (N_a S)` and
  :math:`\partial/\partial N_a = A_a (B_a - \hat\beta A_a) / (N_a^2 S)`.

The interval is :math:`\hat\beta \pm z_{1-\alpha/2}` times the square root of their sum; its
coverage over repeated releases is checked by simulation with a known slope
(``tests/federated/test_dose.py``). The slope describes how usage, which participants choose
after randomisation, goes with their outcome change: exploratory and **not causal**.

Pure: no Django imports.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from federated.schema import (
    CHANGE,
    CHANGE_SQUARED,
    COUNT,
    USAGE,
    USAGE_CHANGE,
    USAGE_SQUARED,
)


@dataclass(frozen=True)
class NoisySum:
    value: float
    scale: float  # of its integer Gaussian noise


@dataclass(frozen=True)
class DoseSums:
    """One arm's released dose quantities (``federated.schema.DOSE_PRODUCTS`` and the count)."""

    values: dict[str, NoisySum]

    def __getitem__(self, quantity: str) -> float:
        return self.values[quantity].value

    def variance(self, quantity: str) -> float:
        return self.values[quantity].scale ** 2


@dataclass(frozen=True)
class SlopeEstimate:
    """Change (in the change's units) per unit of usage, with its noise-aware interval."""

    slope: float
    std_error: float
    sampling_std_error: float
    noise_std_error: float
    ci_low: float
    ci_high: float
    participants: float
    """The noisy count of participants behind it."""


def dose_slope(
    arms: Sequence[DoseSums], *, change_unit: float = 1.0, alpha: float = 0.05
) -> SlopeEstimate | None:
    """The within-arm slope of the change on usage over ``arms`` (one arm: its own slope),
    scaled by ``change_unit`` (score points per released step of the change); None when the
    noisy sums leave no usable variance of usage or no residual degrees of freedom."""
    if not arms:
        raise ValueError("Give at least one arm's sums.")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1.")
    if any(arm[COUNT] <= 0 for arm in arms):
        return None
    s_uc = sum(arm[USAGE_CHANGE] - arm[USAGE] * arm[CHANGE] / arm[COUNT] for arm in arms)
    s_uu = sum(arm[USAGE_SQUARED] - arm[USAGE] ** 2 / arm[COUNT] for arm in arms)
    s_cc = sum(arm[CHANGE_SQUARED] - arm[CHANGE] ** 2 / arm[COUNT] for arm in arms)
    n = sum(arm[COUNT] for arm in arms)
    df = n - len(arms) - 1
    if s_uu <= 0 or df <= 0:
        return None
    slope = s_uc / s_uu
    residual_variance = max(s_cc - slope * s_uc, 0.0) / df
    sampling_variance = residual_variance / s_uu
    noise_variance = 0.0
    for arm in arms:
        count, usage, change = arm[COUNT], arm[USAGE], arm[CHANGE]
        gradient = {
            USAGE_CHANGE: 1 / s_uu,
            USAGE_SQUARED: -slope / s_uu,
            USAGE: (2 * slope * usage - change) / (count * s_uu),
            CHANGE: -usage / (count * s_uu),
            COUNT: usage * (change - slope * usage) / (count**2 * s_uu),
        }
        noise_variance += sum(d**2 * arm.variance(q) for q, d in gradient.items())
    std_error = math.sqrt(sampling_variance + noise_variance)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return SlopeEstimate(
        slope=slope * change_unit,
        std_error=std_error * change_unit,
        sampling_std_error=math.sqrt(sampling_variance) * change_unit,
        noise_std_error=math.sqrt(noise_variance) * change_unit,
        ci_low=(slope - z * std_error) * change_unit,
        ci_high=(slope + z * std_error) * change_unit,
        participants=n,
    )
