"""The Bayesian growth model's data layout and compiled sampler (``stats.bayes_growth``):
pooling participants into groups is exact with waves skipped and returned to, and a second fit
of other data of the same size class compiles nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analytics.simulate import DIMENSIONS, simulate_scores
from stats import compiled
from stats.bayes_growth import (
    GroupTotals,
    group_totals,
    growth_data_from_frame,
    growth_fit,
    marginal_loglik,
)

pytestmark = pytest.mark.unit


def _intermittent(n_participants: int, seed: int):
    """Three arms and dimensions, drop-out, and 15% of waves after baseline skipped by a
    participant who comes back, plus single scores missing on one dimension."""
    simulated = simulate_scores(
        n_participants=n_participants,
        n_waves=8,
        effect=0.5,
        seed=seed,
        dropout=0.2,
        dimensions=DIMENSIONS,
        clip=False,
        n_arms=3,
    )
    frame = simulated.scores.assign(arm=simulated.scores.arm.map({0: "a", 1: "b", 2: "c"}))
    rng = np.random.default_rng(seed)
    skipped = rng.random((n_participants, 8)) < 0.15
    skipped[:, 0] = False
    frame = frame[~skipped[frame.participant.to_numpy(), frame.wave.to_numpy()]]
    frame = frame[(frame.wave == 0) | (rng.random(len(frame)) > 0.03)].copy()
    frame["community"] = np.where(frame.participant % 3 == 0, "north", "south")
    return growth_data_from_frame(frame, control="a")


def _one_group_per_participant(data) -> GroupTotals:
    """The unpooled layout: every participant their own group of one."""
    P, D, _ = data.stats.shape
    u = data.stats[..., 3:5].reshape(P, 2 * D)
    return GroupTotals(
        count=np.ones(P),
        arm=data.arm,
        community=data.community,
        design=data.stats[..., :3],
        sum_u=u,
        sum_uu=u[:, :, None] * u[:, None, :],
        sum_yy=data.stats[..., 5],
    )


def _loglik(totals: GroupTotals, parameters: dict) -> float:
    return float(
        marginal_loglik(
            totals,
            intercept=parameters["level"][totals.arm],
            slope=parameters["growth"][totals.arm, totals.community],
            sigma=parameters["sigma"],
            chol_cov=parameters["chol_cov"],
        )
    )


def test_pooled_groups_give_each_participants_likelihood_exactly():
    data = _intermittent(400, seed=3)
    pooled = group_totals(data)
    # Skipped waves make many patterns, yet participants still share some.
    assert 100 < len(pooled.count) < data.participants
    rng = np.random.default_rng(1)
    D = len(data.dimensions)
    root = rng.normal(0, 0.3, (2 * D, 2 * D))
    covariance = root @ root.T + np.diag(np.tile([0.6, 0.02], D))
    with jax.enable_x64(True):  # as growth_fit evaluates it
        for _ in range(3):
            parameters = {
                "level": jnp.asarray(rng.normal(0, 0.3, (3, D))),
                "growth": jnp.asarray(rng.normal(0, 0.1, (3, 2, D))),
                "sigma": jnp.asarray(rng.uniform(0.3, 0.8, D)),
                "chol_cov": jnp.asarray(np.linalg.cholesky(covariance)),
            }
            each = _loglik(_one_group_per_participant(data), parameters)
            assert _loglik(pooled, parameters) == pytest.approx(each, rel=1e-10, abs=0)


class _Compilations:
    """Counts what JAX traces and compiles while it is open."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __enter__(self):
        self.events: list[str] = []
        jax.monitoring.register_event_duration_secs_listener(self._heard)
        return self

    def _heard(self, event: str, duration: float, **_: object) -> None:
        if event in self.EVENTS:
            self.events.append(event)

    def __exit__(self, *_: object) -> None:
        jax.monitoring.unregister_event_duration_listener(self._heard)


def test_a_second_fit_of_other_data_of_the_same_size_class_compiles_nothing():
    first, second = _intermittent(150, seed=11), _intermittent(160, seed=12)
    assert not np.array_equal(group_totals(first).count, group_totals(second).count)
    settings = dict(chains=2, warmup=30, draws=30, max_draws=60)
    # Start the count of fits afresh: the release every compiled.FITS_PER_RELEASE fits, which
    # the earlier tests' fits bring closer, must not fall between these two.
    compiled.release()
    with _Compilations() as cold:
        growth_fit(first, seed=1, **settings)
    with _Compilations() as warm:
        fit = growth_fit(second, seed=2, **settings)
    assert cold.events  # the counter hears compilations
    assert warm.events == [], warm.events
    assert fit.participants == 160


def test_the_gradient_nuts_follows_is_the_likelihoods_derivative():
    # The log-determinant and trace have a hand-written reverse pass (_logdet_and_trace):
    # checked against central differences along a random direction in every parameter.
    data = _intermittent(120, seed=5)
    totals = group_totals(data)
    D = len(data.dimensions)
    rng = np.random.default_rng(2)
    root = np.tril(rng.normal(0, 0.4, (2 * D, 2 * D))) + np.eye(2 * D)
    with jax.enable_x64(True):
        point = {
            "level": jnp.asarray(rng.normal(0, 0.3, (3, D))),
            "growth": jnp.asarray(rng.normal(0, 0.1, (3, 2, D))),
            "sigma": jnp.asarray(rng.uniform(0.3, 0.8, D)),
            "chol_cov": jnp.asarray(root),
        }
        direction = {k: jnp.asarray(rng.normal(size=v.shape)) for k, v in point.items()}

        def along(step: float) -> float:
            return _loglik(totals, {k: point[k] + step * direction[k] for k in point})

        gradient = jax.grad(
            lambda p: marginal_loglik(
                totals,
                intercept=p["level"][totals.arm],
                slope=p["growth"][totals.arm, totals.community],
                sigma=p["sigma"],
                chol_cov=p["chol_cov"],
            )
        )(point)
        analytic = sum(float(jnp.vdot(gradient[k], direction[k])) for k in point)
        h = 1e-5
        numeric = (along(h) - along(-h)) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=1e-6)
