r"""The differentially private release of one telemetry window, built with OpenDP.

Per arm, the window releases a noisy count of reporting participants and a noisy sum of each
metric. Every quantity is an OpenDP chain on a vector of whole numbers, one per participant:
``clamp(lower, upper) >> sum >> integer Gaussian`` for a metric, ``count >> integer Gaussian``
for the count. The integer (discrete) Gaussian is exact: no floating-point noise to attack.

Privacy unit: one participant, added or removed (symmetric distance 1), who contributes one
vector per window (the server keeps one reply per participant). Accounting in zero-concentrated
DP (Bun & Steinke 2016):

* a quantity with sensitivity :math:`\Delta` and scale :math:`\sigma` costs
  :math:`\rho = \Delta^2 / (2\sigma^2)`, as OpenDP's ``map(1)`` reports (rounded up by OpenDP);
* the quantities of one arm compose sequentially: :math:`\rho_\text{window} = \sum_q \rho_q`
  (Bun & Steinke 2016, Lemma 2.3);
* arms partition the participants, so across arms the costs compose in parallel: a participant
  changes one arm's vectors only, and the window costs :math:`\rho_\text{window}`, not a multiple.

The window's ρ is split evenly over its quantities and each scale is found by OpenDP's binary
search so that the quantity costs at most its share. The charge is the exact sum, rounded up to
whole nano-ρ, and :func:`release` refuses to draw noise unless that sum fits the reservation.

OpenDP draws noise from the operating system's randomness; it cannot be seeded, so tests of the
noise are statistical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING

from federated.schema import COUNT, DOSE_PRODUCTS, dose_bounds
from trials.telemetry import DoseSection, TelemetrySection

if TYPE_CHECKING:
    from opendp.mod import Measurement

NANO = 10**9  # the ledger counts ρ in integer nano-units
INTEGER = "i64"  # sums of many bounded minutes overflow 32 bits


@cache
def _opendp() -> SimpleNamespace:
    """The part of OpenDP this module uses, imported on first use (the web process imports this
    module for the ledger's figures: tests/config/test_startup_imports.py) and from OpenDP's core
    modules: ``opendp.prelude`` also imports its extras, which load pandas, PyArrow, SciPy and
    scikit-learn, and the Flower ServerApp that releases windows imports none of those."""
    import opendp.combinators as c
    import opendp.measurements as m
    import opendp.transformations as t
    from opendp import accuracy, domains, metrics, mod

    mod.enable_features("contrib")
    return SimpleNamespace(
        Measurement=mod.Measurement,
        serialize=mod.serialize,
        deserialize=mod.deserialize,
        binary_search_param=mod.binary_search_param,
        discrete_gaussian_scale_to_accuracy=accuracy.discrete_gaussian_scale_to_accuracy,
        atom_domain=domains.atom_domain,
        vector_domain=domains.vector_domain,
        symmetric_distance=metrics.symmetric_distance,
        absolute_distance=metrics.absolute_distance,
        t=t,
        m=m,
        c=c,
    )


def nano_rho_floor(rho: float) -> int:
    """A budget's total in whole nano-ρ, rounded down (the ledger never grants more than stated)."""
    return math.floor(Fraction(rho) * NANO)


@dataclass(frozen=True)
class QuantityMechanism:
    """One released quantity: its bounds, its noise scale and what it costs."""

    quantity: str  # COUNT or a metric code
    lower: int
    upper: int
    scale: float
    rho: float

    def measurement(self) -> Measurement:
        if self.quantity == COUNT:
            return _count(self.scale)
        return _clamped_sum(self.lower, self.upper, self.scale)


@dataclass(frozen=True)
class ReleasePlan:
    quantities: tuple[QuantityMechanism, ...]

    @property
    def rho(self) -> float:
        return math.fsum(q.rho for q in self.quantities)

    @property
    def nano_rho(self) -> int:
        """The window's cost in whole nano-ρ, rounded up exactly (no float multiplication)."""
        return math.ceil(sum(Fraction(q.rho) for q in self.quantities) * NANO)

    def serialized(self) -> dict[str, str]:
        """Each quantity's OpenDP measurement as JSON (``dp.deserialize`` restores it)."""
        return {q.quantity: _opendp().serialize(q.measurement()) for q in self.quantities}


@dataclass(frozen=True)
class NoisyValue:
    value: int
    scale: float  # of the integer Gaussian; its standard deviation is at most this


def _count(scale: float) -> Measurement:
    dp = _opendp()
    domain, metric = dp.vector_domain(dp.atom_domain(T=INTEGER)), dp.symmetric_distance()
    return dp.t.make_count(domain, metric, TO=INTEGER) >> dp.m.then_gaussian(scale)


def _clamped_sum(lower: int, upper: int, scale: float) -> Measurement:
    dp = _opendp()
    domain, metric = dp.vector_domain(dp.atom_domain(T=INTEGER)), dp.symmetric_distance()
    return (
        dp.t.make_clamp(domain, metric, (lower, upper))
        >> dp.t.then_sum()
        >> dp.m.then_gaussian(scale)
    )


def release_plan(schema: TelemetrySection) -> ReleasePlan:
    """The mechanisms of one window of ``schema`` (its metrics and rating questions),
    calibrated to its ``rho_per_window``."""
    return _even_plan(schema.window_quantities(), schema.rho_per_window)


def dose_release_plan(dose: DoseSection) -> ReleasePlan:
    """The mechanisms of the dose release: the count and the sums of the clipped usage, change
    and products per arm, calibrated to ``dose.rho`` (``federated.dose``)."""
    bounds = dose_bounds(dose)
    return _even_plan([(q, *bounds[q]) for q in DOSE_PRODUCTS], dose.rho)


def _even_plan(quantities: list[tuple[str, int, int]], rho: float) -> ReleasePlan:
    """The count and ``quantities`` (name, lower, upper), ``rho`` split evenly over them."""
    share = rho / (1 + len(quantities))
    mechanisms = [_calibrated(COUNT, 0, 1, share)]
    mechanisms += [_calibrated(name, lower, upper, share) for name, lower, upper in quantities]
    plan = ReleasePlan(tuple(mechanisms))
    if plan.rho > rho:
        raise ValueError(f"Calibration overspent the release: ρ {plan.rho} > {rho}.")
    return plan


def _calibrated(quantity: str, lower: int, upper: int, rho: float) -> QuantityMechanism:
    """The quantity with the noise scale at which it costs at most ``rho`` (OpenDP's binary
    search on the measurement's own privacy map)."""

    def build(scale: float) -> Measurement:
        return QuantityMechanism(quantity, lower, upper, scale, rho=0.0).measurement()

    scale = _opendp().binary_search_param(build, d_in=1, d_out=rho)
    return QuantityMechanism(quantity, lower, upper, scale, build(scale).map(1))


def release(
    plan: ReleasePlan, vectors_by_arm: dict[str, list[dict[str, int]]], *, reserved_nano_rho: int
) -> dict[str, dict[str, NoisyValue]]:
    """Noisy count and sums per arm. Raises before drawing any noise if the plan's cost, as
    OpenDP maps it now, exceeds the reservation."""
    measurements = {q.quantity: q.measurement() for q in plan.quantities}
    cost = sum(Fraction(m.map(1)) for m in measurements.values()) * NANO
    if cost > reserved_nano_rho:
        raise ValueError(
            f"The release would cost {float(cost):.0f} nano-ρ but only {reserved_nano_rho} were "
            "reserved; nothing was released."
        )
    released = {}
    for arm, vectors in vectors_by_arm.items():
        released[arm] = {}
        for q in plan.quantities:
            column = [0] * len(vectors) if q.quantity == COUNT else [v[q.quantity] for v in vectors]
            released[arm][q.quantity] = NoisyValue(int(measurements[q.quantity](column)), q.scale)
    return released


def accuracy(scale: float, alpha: float = 0.05) -> float:
    """Half-width ``a`` with P(|noise| ≥ a) ≤ alpha for the integer Gaussian of ``scale``."""
    return _opendp().discrete_gaussian_scale_to_accuracy(scale, alpha)


def rho_to_epsilon(rho: float, delta: float) -> float:
    """The (ε, δ)-DP guarantee implied by ρ-zCDP, by OpenDP's conversion (tighter than the
    ρ + 2√(ρ ln 1/δ) bound of Bun & Steinke 2016, Prop. 1.3)."""
    if rho <= 0:
        return 0.0
    dp = _opendp()
    # A unit-sensitivity Gaussian of scale 1/√(2ρ) costs ρ; its privacy profile at δ.
    gaussian = dp.m.make_gaussian(
        dp.atom_domain(T=float, nan=False),
        dp.absolute_distance(T=float),
        1.0 / math.sqrt(2.0 * rho),
    )
    return dp.c.make_zCDP_to_approxDP(gaussian).map(1.0).epsilon(delta)
