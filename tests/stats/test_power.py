import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from stats.power import ancova_power, ancova_sample_size, design_multiplier

pytestmark = pytest.mark.unit

# r = 1 follow-up, p = 0 baselines and rho = 0 make the ANCOVA a plain two-sample comparison.
TWO_SAMPLE = {"rho": 0.0, "follow_ups": 1, "baselines": 0}


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.5])
@pytest.mark.parametrize(("effect", "alpha", "power"), [(0.5, 0.05, 0.8), (0.3, 0.01, 0.9)])
def test_reduces_to_two_sample_formula_of_statsmodels(ratio, effect, alpha, power):
    # statsmodels' NormalIndPower is an independent implementation (root-finding on its own power
    # function); it counts both rejection tails, which moves n by ~1e-6 relative.
    expected = NormalIndPower().solve_power(
        effect_size=effect, nobs1=None, alpha=alpha, power=power, ratio=ratio
    )
    result = ancova_sample_size(
        effect=effect, sd=1.0, alpha=alpha, power=power, allocation_ratio=ratio, **TWO_SAMPLE
    )
    assert result.design_multiplier == 1.0
    assert result.n_control_exact == pytest.approx(expected, rel=1e-4)
    assert result.n_control == math.ceil(expected)
    for n in (10, 57, 300):
        ours = ancova_power(
            n_per_arm=n, effect=effect, sd=1.0, alpha=alpha, allocation_ratio=ratio, **TWO_SAMPLE
        )
        theirs = NormalIndPower().power(effect_size=effect, nobs1=n, alpha=alpha, ratio=ratio)
        assert ours == pytest.approx(theirs, rel=1e-10)


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_t_correction_reduces_to_statsmodels_t_test(ratio):
    # TTestIndPower: noncentral t with df = n0 + n1 - 2, which is ours when p = 0.
    for n in (8, 30, 120):
        ours = ancova_power(
            n_per_arm=n, effect=0.6, sd=1.0, allocation_ratio=ratio, t_correction=True, **TWO_SAMPLE
        )
        theirs = TTestIndPower().power(effect_size=0.6, nobs1=n, alpha=0.05, ratio=ratio)
        assert ours == pytest.approx(theirs, rel=1e-8)
    result = ancova_sample_size(effect=0.6, sd=1.0, t_correction=True, **TWO_SAMPLE)
    expected = TTestIndPower().solve_power(effect_size=0.6, nobs1=None, alpha=0.05, power=0.8)
    assert result.n_control == math.ceil(expected)


def test_design_multiplier_matches_frison_pocock_special_cases():
    # r = p = 1: the familiar 1 - rho^2 of ANCOVA on one baseline.
    assert design_multiplier(rho=0.6, follow_ups=1, baselines=1) == pytest.approx(1 - 0.36)
    # p = 0: variance of a mean of r equicorrelated measurements.
    assert design_multiplier(rho=0.5, follow_ups=4, baselines=0) == pytest.approx(2.5 / 4)
    # r = 3, p = 2, rho = 0.6 by hand: 2.2 / 3 - 2 * 0.36 / 1.6 = 0.73333 - 0.45.
    assert design_multiplier(rho=0.6, follow_ups=3, baselines=2) == pytest.approx(0.283333, 1e-5)


def _simulated_ancova(
    rng: np.random.Generator,
    *,
    n: int,
    effect: float,
    sd: float,
    rho: float,
    follow_ups: int,
    baselines: int,
    alpha: float,
    reps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Reject flags and effect estimates of ``reps`` simulated trials with ``n`` per arm."""
    total, waves = 2 * n, baselines + follow_ups
    treated = np.repeat([0.0, 1.0], n)
    # Compound symmetry: a participant's shared component plus independent noise per wave.
    shared = rng.standard_normal((reps, total, 1))
    noise = rng.standard_normal((reps, total, waves))
    scores = sd * (math.sqrt(rho) * shared + math.sqrt(1 - rho) * noise)
    outcome = scores[:, :, baselines:].mean(axis=2) + effect * treated
    design = np.concatenate(
        [
            np.ones((reps, total, 1)),
            np.broadcast_to(treated[None, :, None], (reps, total, 1)),
            scores[:, :, :baselines],
        ],
        axis=2,
    )
    # Least squares for all trials at once through the normal equations.
    xtx = design.transpose(0, 2, 1) @ design
    beta = np.linalg.solve(xtx, design.transpose(0, 2, 1) @ outcome[..., None])[..., 0]
    resid = outcome - (design @ beta[..., None])[..., 0]
    df = total - baselines - 2
    se = np.sqrt((resid**2).sum(axis=1) / df * np.linalg.inv(xtx)[:, 1, 1])
    reject = np.abs(beta[:, 1] / se) > stats.t.isf(alpha / 2, df)
    return reject, beta[:, 1]


@pytest.mark.parametrize(
    ("rho", "follow_ups", "baselines", "effect"), [(0.6, 3, 2, 2.0), (0.5, 1, 1, 3.0)]
)
def test_simulated_power_matches_nominal(rho, follow_ups, baselines, effect):
    sd, reps = 10.0, 2000
    design = {"sd": sd, "rho": rho, "follow_ups": follow_ups, "baselines": baselines}
    plan = ancova_sample_size(effect=effect, **design)
    n = plan.n_control
    reject, estimates = _simulated_ancova(
        np.random.default_rng(20240611), n=n, effect=effect, alpha=0.05, reps=reps, **design
    )
    # Nominal: the t-corrected power at the simulated n. The remaining approximation (baselines
    # treated as fixed) costs ~0.5 points of power at these n, well inside the band.
    nominal = ancova_power(n_per_arm=n, effect=effect, t_correction=True, **design)
    low, high = stats.binom.ppf([0.0005, 0.9995], reps, nominal) / reps
    assert low <= reject.mean() <= high
    assert reject.mean() >= plan.power - 0.03
    # The variance of the estimate is sigma^2 m (2/n) (Frison & Pocock), times (N-2)/(N-p-3)
    # for random baselines; 99.9% chi-squared band for a variance from `reps` draws.
    expected_var = sd**2 * plan.design_multiplier * 2 / n * (2 * n - 2) / (2 * n - baselines - 3)
    ratio = estimates.var(ddof=1) / expected_var
    low, high = stats.chi2.ppf([0.0005, 0.9995], reps - 1) / (reps - 1)
    assert low <= ratio <= high
    assert estimates.mean() == pytest.approx(effect, abs=4 * math.sqrt(expected_var / reps))


@pytest.mark.parametrize("t_correction", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"effect": 0.4, "sd": 1.0, "rho": 0.7, "follow_ups": 4, "baselines": 1},
        {"effect": -5.0, "sd": 12.0, "rho": 0.3, "follow_ups": 2, "baselines": 3, "power": 0.9},
        {"effect": 1.0, "sd": 2.0, "rho": 0.5, "follow_ups": 1, "attrition": 0.1},
        {"effect": 1.0, "sd": 2.0, "rho": 0.5, "follow_ups": 2, "allocation_ratio": 1.5},
        {"effect": 0.2, "sd": 1.0, "rho": 0.0, "follow_ups": 1, "alpha": 0.01, "attrition": 0.25},
    ],
)
def test_sample_size_achieves_power_and_power_is_monotone(kwargs, t_correction):
    result = ancova_sample_size(**kwargs, t_correction=t_correction)
    settings = {key: value for key, value in kwargs.items() if key != "power"}
    achieved = ancova_power(n_per_arm=result.n_control, t_correction=t_correction, **settings)
    assert achieved >= result.power
    assert achieved == pytest.approx(result.achieved_power, rel=1e-12)
    # Minimal: one fewer evaluable participant per control arm falls short.
    if result.n_control_evaluable > 2:
        fewer = (result.n_control_evaluable - 1) / (1 - result.attrition)
        assert ancova_power(n_per_arm=fewer, t_correction=t_correction, **settings) < result.power
    attrition = kwargs.get("attrition", 0.0)
    assert result.n_control >= result.n_control_evaluable / (1 - attrition)
    assert result.n_treatment >= kwargs.get("allocation_ratio", 1.0) * result.n_control - 1e-9
    assert result.n_total == result.n_control + result.n_treatment
    curve = [
        ancova_power(n_per_arm=n, t_correction=t_correction, **settings) for n in range(5, 400, 7)
    ]
    assert np.all(np.isfinite(curve)) and np.all(np.diff(curve) >= 0)
    rising = np.array(curve[:-1]) < 1 - 1e-9  # strictly increasing until it saturates at 1
    assert np.all(np.diff(curve)[rising] > 0)
    # JSON-ready for storing in a plan.
    assert json.loads(json.dumps(asdict(result)))["n_control"] == result.n_control


def test_attrition_inflates_enrolment():
    base = {"effect": 0.5, "sd": 1.0, "rho": 0.5, "follow_ups": 2}
    complete = ancova_sample_size(**base)
    lossy = ancova_sample_size(**base, attrition=0.2)
    assert lossy.n_control_evaluable == complete.n_control
    assert lossy.n_control == math.ceil(complete.n_control / 0.8)


def test_docstring_examples():
    assert round(
        ancova_power(n_per_arm=64, effect=0.5, sd=1.0, rho=0.0, follow_ups=1, baselines=0), 4
    ) == pytest.approx(0.8074)
    result = ancova_sample_size(effect=0.5, sd=1.0, rho=0.5, follow_ups=1)
    assert (result.n_control, result.n_treatment, result.design_multiplier) == (48, 48, 0.75)


GOOD = {"effect": 0.5, "sd": 1.0, "rho": 0.5, "follow_ups": 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": 1.0}, "rho"),
        ({"rho": -0.1}, "rho"),
        ({"rho": float("nan")}, "rho"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"power": 1.0}, "power"),
        ({"power": 0.01}, "power"),
        ({"effect": 0.0}, "effect"),
        ({"effect": float("inf")}, "effect"),
        ({"sd": 0.0}, "sd"),
        ({"sd": -1.0}, "sd"),
        ({"follow_ups": 0}, "follow_ups"),
        ({"follow_ups": 2.5}, "follow_ups"),
        ({"follow_ups": True}, "follow_ups"),
        ({"baselines": -1}, "baselines"),
        ({"attrition": 1.0}, "attrition"),
        ({"attrition": -0.1}, "attrition"),
        ({"allocation_ratio": 0.0}, "allocation_ratio"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ancova_sample_size(**(GOOD | kwargs))
    power_kwargs = {key: value for key, value in (GOOD | kwargs).items() if key != "power"}
    if "power" not in kwargs:
        with pytest.raises(ValueError, match=message):
            ancova_power(n_per_arm=50, **power_kwargs)


@pytest.mark.parametrize("n", [0, -3, float("nan"), float("inf")])
def test_bad_n_raises_value_error(n):
    with pytest.raises(ValueError, match="n_per_arm"):
        ancova_power(n_per_arm=n, **GOOD)


def test_t_correction_needs_residual_degrees_of_freedom():
    with pytest.raises(ValueError, match="df"):
        ancova_power(n_per_arm=1, t_correction=True, **(GOOD | {"baselines": 2}))
