import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analytics.simulate import DIMENSIONS, simulate_scores
from stats.bayes_growth import (
    group_totals,
    growth_data_from_frame,
    growth_fit,
    marginal_loglik,
)

pytestmark = pytest.mark.unit


def _frame(simulated, arms=("a", "b", "c")) -> pd.DataFrame:
    frame = simulated.scores.copy()
    frame["arm"] = [arms[a] for a in frame["arm"]]
    return frame


def _brute_force(data, beta0, beta1, alpha, gamma, delta, sigma, cov) -> float:
    """Σ_i log N(y_i; X_i θ, Z_i Σ_b Z_iᵀ + Σ_ε) with every participant's observations stacked
    over dimensions: the textbook marginal likelihood, rebuilt from the long data."""
    total = 0.0
    for i in range(data.participants):
        rows = data.frame[data.frame.position == i]
        d = rows["d"].to_numpy()
        t = rows["t"].to_numpy()
        y = rows["y"].to_numpy()
        arm, community = data.arm[i], data.community[i]
        mean = beta0[d] + alpha[arm, d] + (beta1[d] + gamma[arm, d] + delta[arm, community, d]) * t
        design = np.zeros((len(y), 2 * len(sigma)))
        design[np.arange(len(y)), 2 * d] = 1
        design[np.arange(len(y)), 2 * d + 1] = t
        covariance = design @ cov @ design.T + np.diag(sigma[d] ** 2)
        total += stats.multivariate_normal(mean, covariance).logpdf(y)
    return total


def test_marginal_likelihood_equals_the_brute_force_one():
    # Three arms, two communities, three dimensions, and missing waves that differ between
    # dimensions of the same participant: every branch of the grouping is exercised.
    simulated = simulate_scores(
        n_participants=60,
        n_waves=5,
        effect=1.0,
        seed=4,
        dropout=0.3,
        dimensions=DIMENSIONS,
        clip=False,
        n_arms=3,
    )
    frame = _frame(simulated)
    rng = np.random.default_rng(0)
    frame = frame[(frame.wave == 0) | (rng.random(len(frame)) > 0.15)].copy()
    frame["community"] = np.where(frame.participant % 3 == 0, "north", "south")
    data = growth_data_from_frame(frame, control="a")
    # The long data the brute force reads, on the same standardised scale.
    dimensions = list(data.dimensions)
    frame["d"] = frame.dimension.map(dimensions.index)
    frame["y"] = (frame.score - data.centre[frame.d]) / data.scale[frame.d]
    frame["t"] = frame.wave - data.time_centre
    frame["position"] = pd.Index(frame.drop_duplicates("participant").participant).get_indexer(
        frame.participant
    )
    D = len(dimensions)
    beta0, beta1 = rng.normal(0, 0.3, D), rng.normal(0, 0.1, D)
    alpha = np.vstack([np.zeros(D), rng.normal(0, 0.2, (2, D))])
    gamma = np.vstack([np.zeros(D), rng.normal(0, 0.1, (2, D))])
    delta = np.concatenate([np.zeros((1, 2, D)), rng.normal(0, 0.05, (2, 2, D))])
    sigma = rng.uniform(0.3, 0.8, D)
    root = rng.normal(0, 0.3, (2 * D, 2 * D))
    cov = root @ root.T + np.diag(np.tile([0.6, 0.02], D))
    totals = group_totals(data)
    assert len(totals.count) < data.participants  # participants really were pooled
    with jax.enable_x64(True):  # as growth_fit evaluates it
        fast = marginal_loglik(
            totals,
            intercept=jnp.asarray(beta0 + alpha[totals.arm]),
            slope=jnp.asarray(beta1 + gamma[totals.arm] + delta[totals.arm, totals.community]),
            sigma=jnp.asarray(sigma),
            chol_cov=jnp.asarray(np.linalg.cholesky(cov)),
        )

    class Long:  # the brute force's view of the same data
        pass

    long = Long()
    long.frame, long.participants = frame, data.participants
    long.arm, long.community = data.arm, data.community
    expected = _brute_force(long, beta0, beta1, alpha, gamma, delta, sigma, cov)
    assert float(fast) == pytest.approx(expected, rel=1e-10)


def test_sufficient_statistics_are_standardised_per_dimension():
    simulated = simulate_scores(n_participants=40, n_waves=3, effect=0.0, seed=1, dropout=0.0)
    frame = _frame(simulated)
    data = growth_data_from_frame(frame, control="a")
    baseline = frame[frame.wave == 0].groupby("dimension").score
    assert list(data.centre) == pytest.approx(list(baseline.mean()[list(data.dimensions)]))
    assert list(data.scale) == pytest.approx(list(baseline.std()[list(data.dimensions)]))
    assert data.stats[..., 0].sum() == len(frame)  # every observation counted once
    assert data.arm_names == ("a", "b") and data.last_wave == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="wave"), "lacks column"),
        (lambda f: f.assign(score=np.nan), "finite"),
        (lambda f: f[f.arm == "a"], "at least two arms"),
        (lambda f: f.assign(arm="b"), "control arm"),
        (lambda f: f.iloc[:0], "no scores"),
    ],
)
def test_bad_frames_are_refused(change, message):
    frame = _frame(simulate_scores(n_participants=20, n_waves=3, effect=0.0, seed=1))
    with pytest.raises(ValueError, match=message):
        growth_data_from_frame(change(frame), control="a")


def test_a_run_that_fails_the_gates_says_why_and_is_not_reportable():
    simulated = simulate_scores(n_participants=80, n_waves=4, effect=1.0, seed=2)
    data = growth_data_from_frame(_frame(simulated), control="a")
    # 30 draws per chain cannot reach a bulk ESS of 400, and extending is not allowed.
    fit = growth_fit(data, seed=1, warmup=100, draws=30, max_draws=30)
    assert not fit.reportable and not fit.gates.passed
    assert any("ESS" in reason for reason in fit.gates.reasons)


def test_64_bit_mode_lasts_for_the_fit_only():
    # The same data and settings as the test above, so the compiled sampler is reused.
    simulated = simulate_scores(n_participants=80, n_waves=4, effect=1.0, seed=2)
    data = growth_data_from_frame(_frame(simulated), control="a")
    growth_fit(data, seed=1, warmup=100, draws=30, max_draws=30)
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(1.0).dtype == jnp.float32


def test_community_composites_weigh_the_standardised_community_effects():
    simulated = simulate_scores(n_participants=240, n_waves=4, effect=1.0, seed=6, dropout=0.1)
    frame = _frame(simulated)
    frame["community"] = np.where(frame.participant % 2 == 0, "north", "south")
    data = growth_data_from_frame(frame, control="a")
    weights = {"north": {"mental_wellbeing": 3, "life_satisfaction": 1}}
    fit = growth_fit(data, seed=2, community_weights=weights)
    assert {(c.arm, c.community) for c in fit.community_effects} == {
        ("b", "north"),
        ("b", "south"),
    }
    north = next(c for c in fit.community_effects if c.community == "north")
    assert north.weights == {"life_satisfaction": 0.25, "mental_wellbeing": 0.75}
    # The composite is the weighted sum of the community's effects in baseline-SD units, so its
    # posterior mean is the weighted sum of their posterior means.
    expected = sum(
        w * north.per_dimension[d].mean / data.scale[data.dimensions.index(d)]
        for d, w in north.weights.items()
    )
    assert north.composite.mean == pytest.approx(expected, rel=1e-9)
    south = next(c for c in fit.community_effects if c.community == "south")
    assert south.composite is None  # no profile, no composite
    assert "community_gamma" in fit.gates.per_quantity  # community effects are gated too
