"""The release mechanism: calibration against the reservation, the noise's distribution, and an
empirical privacy audit that must catch a deliberately broken mechanism."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from federated.mechanism import NANO, release, release_plan, rho_to_epsilon
from federated.schema import COUNT
from trials.telemetry import TelemetrySection

SECTION = {
    "window_days": 7,
    "rho_total": 1.0,
    "rho_per_window": 0.0125,
    "metrics": [{"code": "minutes", "upper": 4200}, {"code": "sessions"}],
}


@pytest.mark.unit
def test_every_quantity_costs_its_share_and_the_window_fits_its_rho():
    schema = TelemetrySection.model_validate(SECTION)
    plan = release_plan(schema)
    assert [q.quantity for q in plan.quantities] == [COUNT, "minutes", "sessions"]
    for q in plan.quantities:
        cost = q.measurement().map(1)
        assert cost == q.rho <= schema.rho_per_window / 3
        # zCDP of the Gaussian: ρ = Δ² / (2σ²), with Δ the quantity's sensitivity.
        sensitivity = 1 if q.quantity == COUNT else q.upper
        assert cost == pytest.approx(sensitivity**2 / (2 * q.scale**2), rel=1e-6)
    assert plan.rho <= schema.rho_per_window
    assert plan.nano_rho == math.ceil(plan.rho * NANO - 1e-6)  # whole nano-ρ, rounded up


@pytest.mark.unit
def test_release_refuses_before_drawing_noise_when_the_reservation_is_short():
    plan = release_plan(TelemetrySection.model_validate(SECTION))
    with pytest.raises(ValueError, match="nothing was released"):
        release(plan, {"a": [{"minutes": 1, "sessions": 1}]}, reserved_nano_rho=plan.nano_rho - 1)


@pytest.mark.unit
def test_release_gives_every_arm_every_quantity_as_whole_numbers():
    plan = release_plan(TelemetrySection.model_validate(SECTION))
    noisy = release(
        plan,
        {"a": [{"minutes": 60, "sessions": 2}] * 50, "b": []},
        reserved_nano_rho=plan.nano_rho,
    )
    assert set(noisy) == {"a", "b"}
    for arm in noisy.values():
        assert set(arm) == {COUNT, "minutes", "sessions"}
        assert all(isinstance(v.value, int) for v in arm.values())


def _draws(measurement, data: list[int], n: int) -> np.ndarray:
    return np.array([measurement(data) for _ in range(n)])


def _audit_epsilon_lower_bound(
    on_d: np.ndarray, on_neighbour: np.ndarray, delta: float, level: float
) -> float:
    """Largest ε any threshold set {out ≥ t} proves with confidence 1 − level (Clopper–Pearson):
    ln((P̂₁,lower − δ) / P̂₀,upper), over thresholds above the smaller dataset's value."""
    n = len(on_d)
    best = 0.0
    for t in range(int(np.median(on_d)) + 1, int(np.percentile(on_neighbour, 99.9))):
        hits_0 = int((on_d >= t).sum())
        hits_1 = int((on_neighbour >= t).sum())
        p0_upper = stats.beta.ppf(1 - level, hits_0 + 1, n - hits_0) if hits_0 < n else 1.0
        p1_lower = stats.beta.ppf(level, hits_1, n - hits_1 + 1) if hits_1 > 0 else 0.0
        if p1_lower > delta:
            best = max(best, math.log((p1_lower - delta) / p0_upper))
    return best


@pytest.mark.slow
def test_noise_follows_the_integer_gaussian_and_the_audit_respects_the_claimed_epsilon():
    """The count of a window is audited on neighbouring data sets (100 vs 101 participants).

    Claimed: ρ = 0.125 for the count (its share of the window), so ε(δ = 0.01) ≈ 1.13. A
    correct mechanism's audited lower bound must stay below the claim; one whose noise is half
    the calibrated scale (true ρ = 0.5, ε ≈ 2.75) must be caught above it."""
    schema = TelemetrySection.model_validate(SECTION | {"rho_per_window": 0.375})
    plan = release_plan(schema)
    count = plan.quantities[0]
    claimed = rho_to_epsilon(count.rho, 0.01)
    honest = count.measurement()
    d, neighbour = [0] * 100, [0] * 101
    on_d, on_neighbour = _draws(honest, d, 10_000), _draws(honest, neighbour, 10_000)

    noise = np.concatenate([on_d - 100, on_neighbour - 101])
    support = np.arange(-40, 41)
    pmf = np.exp(-(support**2) / (2 * count.scale**2))
    pmf /= pmf.sum()  # mass beyond ±40 (20 σ) is far below double precision
    observed = np.array([(noise == k).sum() for k in support])
    expected = pmf * len(noise)
    # Pool the tails so every cell expects at least 5.
    keep = expected >= 5
    cells_obs = np.append(observed[keep], observed[~keep].sum())
    cells_exp = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(cells_obs, cells_exp).pvalue > 1e-4
    assert abs(noise.std() / count.scale - 1) < 0.05

    assert _audit_epsilon_lower_bound(on_d, on_neighbour, 0.01, 1e-4) <= claimed

    broken = dataclasses.replace(count, scale=count.scale / 2).measurement()
    found = _audit_epsilon_lower_bound(
        _draws(broken, d, 10_000), _draws(broken, neighbour, 10_000), 0.01, 1e-4
    )
    assert found > claimed, (found, claimed)
