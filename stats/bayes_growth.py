r"""Bayesian growth model of flourishing scores with the participant effects integrated out.

Model
-----
Participant :math:`i` in arm :math:`a(i)` and community :math:`c(i)` has, on dimension
:math:`d` at wave :math:`t` (0 = baseline, 1, 2, …),

.. math::

    y_{itd} = \beta_{0d} + \alpha_{a(i)d} + b_{0id}
              + (\beta_{1c(i)d} + \gamma_{a(i)c(i)d} + b_{1id})\, t
              + \varepsilon_{itd}, \qquad \varepsilon_{itd} \sim N(0, \sigma_d^2),

with :math:`\alpha_{0d} = \gamma_{0cd} = 0` for the control arm. The
:math:`2D` participant effects :math:`b_i = (b_{01}, b_{11}, \dots, b_{0D}, b_{1D})` are jointly
normal, :math:`b_i \sim N(0, \Sigma_b)`, :math:`\Sigma_b = \operatorname{diag}(s) R
\operatorname{diag}(s)` with an LKJ(2) prior on the correlation :math:`R`, so effects on
different dimensions of the same person are correlated. Each community :math:`c` has its own
growth and its own effect :math:`\gamma_{acd}` (a trial has a handful of communities: too few to
estimate a between-community variance, which made a hierarchical version diverge). The estimand
is :math:`\gamma_{ad} = \sum_c \pi_c \gamma_{acd}`, the difference in growth per wave between
arm :math:`a` and control in the trial's population (:math:`\pi_c` the share of participants in
community :math:`c`; with one community it is simply :math:`\gamma_{a1d}`). (The sampler sees
each arm's level :math:`\beta_{0d} + \alpha_{ad}` and growth
:math:`\beta_{1cd} + \gamma_{acd}` and time centred at the mean observed wave: the same model,
parameterised for fewer leapfrog steps.)

Integrating :math:`b_i` out, :math:`y_i \sim N(X_i\theta, V_i)` with
:math:`V_i = Z_i \Sigma_b Z_i^\top + \Sigma_\varepsilon`. By the Woodbury identity and the matrix
determinant lemma, with :math:`A_i = Z_i^\top\Sigma_\varepsilon^{-1}Z_i`,
:math:`u_i = Z_i^\top\Sigma_\varepsilon^{-1} r_i`, :math:`r_i = y_i - X_i\theta` and
:math:`\Sigma_b = LL^\top`,

.. math::

    \log|V_i| = \sum_d n_{id}\log\sigma_d^2 + \log|I + L^\top A_i L|, \qquad
    r_i^\top V_i^{-1} r_i = \sum_d \frac{r_{id}^\top r_{id}}{\sigma_d^2}
        - u_i^\top L (I + L^\top A_i L)^{-1} L^\top u_i .

Everything is a function of six statistics per participant and dimension,
:math:`(n, \sum t, \sum t^2, \sum y, \sum ty, \sum y^2)`; a missing wave only lowers the counts,
so the likelihood is valid under missing at random and nothing is imputed. Participants who share
arm, community and the same observed waves share :math:`A_i`, so the sums over them of
:math:`u_i`, :math:`u_i u_i^\top` and :math:`r^\top r` follow from the group's sums of
:math:`(\sum y, \sum ty)`, their outer products and :math:`\sum y^2`. The likelihood is therefore
computed exactly from group totals: with monotone drop-out a few dozen groups however many
participants there are; with participants who skip a wave and come back, more groups (hundreds
at 1,000 participants, about a thousand at 10,000), never more than there are participants.
Each group's 2D × 2D algebra is written out entry by entry over vectors of groups
(:func:`marginal_loglik`), so that a group costs its arithmetic and nothing more.

The sampler is compiled once per model shape and size class: the group totals are its
arguments, padded with empty groups to a grid of sizes, so a later fit of other data of about
the same size runs the same compiled program (``_sampler``).

Scores are standardised per dimension by the baseline mean and SD before fitting (priors are
weakly informative on that scale) and results are returned in each score's own units.

References
----------
Laird, N. M., & Ware, J. H. (1982). Random-effects models for longitudinal data. Biometrics, 38,
963–974. Harville, D. A. (1977). Maximum likelihood approaches to variance component estimation.
JASA, 72, 320–338 (the determinant and inverse identities). Lewandowski, D., Kurowicka, D., &
Joe, H. (2009). Generating random correlation matrices based on vines and extended onion method.
J. Multivariate Anal., 100, 1989–2001 (LKJ). Hoffman, M. D., & Gelman, A. (2014). The No-U-Turn
sampler. JMLR, 15, 1593–1623.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import lax
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

from stats import compiled
from stats.diagnostics import GateReport, convergence_gates

STATISTICS = ("n", "sum_t", "sum_tt", "sum_y", "sum_ty", "sum_yy")
INTERVAL = (0.025, 0.975)


@dataclass(frozen=True)
class GrowthData:
    """Per-participant sufficient statistics of a trial's scores, standardised per dimension.

    ``stats[i, d]`` holds :data:`STATISTICS` of participant ``i`` on dimension ``d`` computed on
    ``(score - centre[d]) / scale[d]`` and ``t = wave - time_centre``; ``arm`` and ``community``
    are integer codes into ``arm_names`` (index 0 = control) and ``community_names``.
    """

    dimensions: tuple[str, ...]
    arm_names: tuple[str, ...]
    community_names: tuple[str, ...]
    arm: np.ndarray
    community: np.ndarray
    stats: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    last_wave: int
    time_centre: float

    @property
    def participants(self) -> int:
        return len(self.arm)

    @property
    def community_shares(self) -> np.ndarray:
        return np.bincount(self.community, minlength=len(self.community_names)) / len(self.arm)

    @property
    def observations(self) -> int:
        return int(self.stats[..., 0].sum())


def growth_data_from_frame(
    frame: pd.DataFrame, *, control: str, dimensions: tuple[str, ...] | None = None
) -> GrowthData:
    """Sufficient statistics from long data: one row per participant × wave × dimension.

    ``frame`` needs ``participant, arm, wave, dimension, score`` and may have ``community``;
    rows of missing waves are simply absent. Scores are centred and scaled by each dimension's
    baseline (wave 0) mean and SD.
    """
    required = {"participant", "arm", "wave", "dimension", "score"}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"The frame lacks column(s) {', '.join(sorted(missing))}.")
    if frame.empty:
        raise ValueError("There are no scores to analyse.")
    if not np.all(np.isfinite(frame["score"].to_numpy(dtype=float))):
        raise ValueError("Scores must be finite numbers.")
    if (frame["wave"] < 0).any():
        raise ValueError("Waves are numbered from 0 (baseline).")
    dimensions = dimensions or tuple(sorted(frame["dimension"].unique()))
    frame = frame[frame["dimension"].isin(dimensions)]
    people = frame.drop_duplicates("participant")
    if people.groupby("participant").arm.nunique().max() > 1:
        raise ValueError("A participant appears in more than one arm.")
    arms = sorted(set(people["arm"]))
    if control not in arms:
        raise ValueError(f"The control arm {control!r} has no scores.")
    if len(arms) < 2:
        raise ValueError("Growth differences need at least two arms with scores.")
    arm_names = (control, *[a for a in arms if a != control])
    communities = (
        people["community"].fillna("").astype(str)
        if "community" in people
        else pd.Series("", index=people.index)
    )
    community_names = tuple(sorted(set(communities)))
    participant_ids = people["participant"].to_numpy()
    position = pd.Index(participant_ids)
    stats = np.zeros((len(participant_ids), len(dimensions), len(STATISTICS)))
    # Time is centred at the mean observed wave: intercepts and slopes are then nearly
    # uncorrelated a posteriori, which NUTS samples in fewer steps; slopes are unchanged.
    time_centre = float(frame["wave"].mean())
    centre = np.zeros(len(dimensions))
    scale = np.ones(len(dimensions))
    for d, dimension in enumerate(dimensions):
        rows = frame[frame["dimension"] == dimension]
        baseline = rows.loc[rows["wave"] == 0, "score"]
        reference = baseline if len(baseline) > 1 else rows["score"]
        centre[d] = reference.mean()
        spread = reference.std(ddof=1)
        scale[d] = spread if np.isfinite(spread) and spread > 0 else 1.0
        t = rows["wave"].to_numpy(dtype=float) - time_centre
        y = (rows["score"].to_numpy(dtype=float) - centre[d]) / scale[d]
        index = position.get_indexer(rows["participant"])
        for k, values in enumerate((np.ones_like(t), t, t * t, y, t * y, y * y)):
            stats[:, d, k] = np.bincount(index, weights=values, minlength=len(participant_ids))
    return GrowthData(
        dimensions=tuple(dimensions),
        arm_names=arm_names,
        community_names=community_names,
        arm=np.array([arm_names.index(a) for a in people["arm"]]),
        community=np.array([community_names.index(c) for c in communities]),
        stats=stats,
        centre=centre,
        scale=scale,
        last_wave=int(frame["wave"].max()),
        time_centre=time_centre,
    )


class GroupTotals(NamedTuple):
    """Participants pooled by arm, community and observed-wave pattern (exact, see module doc).

    ``design[g, d]`` = (n, Σt, Σt²) shared by the group; ``sum_u[g]`` = Σ_i (Σy, Σty) stacked
    over dimensions (length 2D); ``sum_uu[g]`` = Σ_i of its outer product; ``sum_yy[g, d]`` =
    Σ_i Σy².
    """

    count: np.ndarray
    arm: np.ndarray
    community: np.ndarray
    design: np.ndarray
    sum_u: np.ndarray
    sum_uu: np.ndarray
    sum_yy: np.ndarray


def group_totals(data: GrowthData) -> GroupTotals:
    """Pool participants whose likelihood terms share everything but their data sums."""
    P, D, _ = data.stats.shape
    design = data.stats[..., :3]
    keys = np.concatenate(
        [data.arm[:, None], data.community[:, None], design.reshape(P, -1)], axis=1
    )
    unique, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    G = len(unique)
    u = data.stats[..., 3:5].reshape(P, 2 * D)
    sum_u = np.zeros((G, 2 * D))
    np.add.at(sum_u, group, u)
    sum_uu = np.zeros((G, 2 * D, 2 * D))
    np.add.at(sum_uu, group, u[:, :, None] * u[:, None, :])
    sum_yy = np.zeros((G, D))
    np.add.at(sum_yy, group, data.stats[..., 5])
    return GroupTotals(
        count=np.bincount(group, minlength=G).astype(float),
        arm=unique[:, 0].astype(int),
        community=unique[:, 1].astype(int),
        design=unique[:, 2:].reshape(G, D, 3),
        sum_u=sum_u,
        sum_uu=sum_uu,
        sum_yy=sum_yy,
    )


def marginal_loglik(
    totals: GroupTotals,
    *,
    intercept: jnp.ndarray,
    slope: jnp.ndarray,
    sigma: jnp.ndarray,
    chol_cov: jnp.ndarray,
) -> jnp.ndarray:
    r"""Gaussian log-likelihood of every participant's scores with their effects integrated out.

    Parameters
    ----------
    totals : GroupTotals
    intercept, slope : array (G, D)
        Each group's fixed intercept :math:`\beta_0 + \alpha_a` and slope
        :math:`\beta_{1c} + \gamma_{ac}` per dimension.
    sigma : array (D,)
        Residual SDs.
    chol_cov : array (2D, 2D)
        Lower Cholesky factor :math:`L` of :math:`\Sigma_b`, effects ordered
        (intercept₁, slope₁, …, intercept_D, slope_D).

    Every group's 2D × 2D algebra (:math:`B = I + L^\top A L`, its Cholesky factor and
    :math:`B^{-1}`) is written out entry by entry on vectors over the groups, so XLA fuses it
    into a few loops over the groups. Batched ``jnp.linalg`` calls go to LAPACK once per group
    (and again in the gradient), which made a group's fixed cost, not its arithmetic, the price
    of a gradient: with participants who skip a wave and come back there are hundreds of groups.
    """
    count = totals.count
    n, sum_t, sum_tt = (totals.design[..., k] for k in range(3))
    G, D = n.shape
    K = 2 * D
    precision = 1.0 / sigma**2
    m = totals.sum_u.reshape(G, D, 2)
    residual_ss = (
        totals.sum_yy
        - 2 * (intercept * m[..., 0] + slope * m[..., 1])
        + count[:, None] * (intercept**2 * n + 2 * intercept * slope * sum_t + slope**2 * sum_tt)
    )
    # X_i θ summed into the (Σy, Σty) space: S θ with S = [[n, Σt], [Σt, Σt²]] per dimension.
    fitted = jnp.stack([n * intercept + sum_t * slope, sum_t * intercept + sum_tt * slope], -1)
    fitted = fitted.reshape(G, K)
    weight = jnp.repeat(precision, 2)
    centred = (
        totals.sum_uu
        - totals.sum_u[:, :, None] * fitted[:, None, :]
        - fitted[:, :, None] * totals.sum_u[:, None, :]
        + count[:, None, None] * fitted[:, :, None] * fitted[:, None, :]
    )
    outer = centred * weight[None, :, None] * weight[None, None, :]  # Σ u uᵀ
    # Lᵀ A L with A = blockdiag(S_d / σ_d²) is linear in each group's (n, Σt, Σt²): one matrix
    # product of the (G, 3D) designs with coefficients that depend on the parameters alone.
    rows = chol_cov.reshape(D, 2, K)
    level, growth = rows[:, 0], rows[:, 1]
    coefficients = precision[:, None, None, None] * jnp.stack(
        [
            level[:, :, None] * level[:, None, :],
            level[:, :, None] * growth[:, None, :] + growth[:, :, None] * level[:, None, :],
            growth[:, :, None] * growth[:, None, :],
        ],
        1,
    )
    inner = jnp.eye(K)[:, :, None] + jnp.einsum("gdk,dkij->ijg", totals.design, coefficients)
    projected = jnp.einsum("ai,gab,bj->ijg", chol_cov, outer, chol_cov)  # Lᵀ Σuuᵀ L
    logdet, trace = _logdet_and_trace(inner, projected)
    per_group = (
        count * (n.sum(-1) * jnp.log(2 * jnp.pi) + (n * jnp.log(sigma**2)).sum(-1) + logdet)
        + (residual_ss * precision).sum(-1)
        - trace
    )
    return -0.5 * jnp.sum(per_group)


@jax.custom_vjp
def _logdet_and_trace(inner: jnp.ndarray, projected: jnp.ndarray) -> tuple:
    """log|B| and tr(B⁻¹ W) of every group's K × K matrices ``inner[:, :, g]`` (B, positive
    definite) and ``projected[:, :, g]`` (W, symmetric)."""
    logdet, trace, _ = _logdet_trace_inverse(inner, projected)
    return logdet, trace


def _logdet_trace_inverse(inner, projected):
    # B = CCᵀ, entry by entry on vectors over the groups; B⁻¹ = C⁻ᵀ C⁻¹.
    K = inner.shape[0]
    chol: list[list] = [[None] * K for _ in range(K)]
    for j in range(K):
        pivot = jnp.sqrt(inner[j, j] - sum(chol[j][m] ** 2 for m in range(j)))
        chol[j][j] = pivot
        for i in range(j + 1, K):
            chol[i][j] = (inner[i, j] - sum(chol[i][m] * chol[j][m] for m in range(j))) / pivot
    lower_inverse: list[list] = [[0.0] * K for _ in range(K)]
    for j in range(K):
        lower_inverse[j][j] = 1.0 / chol[j][j]
        for i in range(j + 1, K):
            lower_inverse[i][j] = (
                -sum(chol[i][m] * lower_inverse[m][j] for m in range(j, i)) / chol[i][i]
            )
    entries = [
        [
            sum(lower_inverse[m][i] * lower_inverse[m][j] for m in range(max(i, j), K))
            for j in range(K)
        ]
        for i in range(K)
    ]
    inverse = jnp.stack([jnp.stack(row) for row in entries])
    logdet = 2 * sum(jnp.log(chol[j][j]) for j in range(K))
    trace = jnp.sum(inverse * projected, axis=(0, 1))
    return logdet, trace, inverse


def _logdet_and_trace_forward(inner, projected):
    logdet, trace, inverse = _logdet_trace_inverse(inner, projected)
    return (logdet, trace), (inverse, projected)


def _logdet_and_trace_backward(residuals, cotangents):
    # d log|B| = tr(B⁻¹ dB); d tr(B⁻¹W) = tr(B⁻¹ dW) − tr(B⁻¹ W B⁻¹ dB) (B, W symmetric).
    inverse, projected = residuals
    d_logdet, d_trace = cotangents
    # Products of 6 × 6 matrices per group as broadcasts XLA fuses (a batched dot_general with
    # the groups last is a loop of tiny matrix products).
    half = (inverse[:, :, None, :] * projected[None, :, :, :]).sum(1)
    sandwich = (half[:, :, None, :] * inverse[None, :, :, :]).sum(1)
    return d_logdet * inverse - d_trace * sandwich, d_trace * inverse


_logdet_and_trace.defvjp(_logdet_and_trace_forward, _logdet_and_trace_backward)


def _padded(totals: GroupTotals) -> GroupTotals:
    """Totals padded with empty groups (count 0 adds exactly 0 to the likelihood) up to the next
    size on a grid of four sizes per doubling (8, 10, 12, 14, 16, 20, …), so that fits of data
    of similar size share one compiled sampler and padding adds at most a quarter."""
    G = len(totals.count)
    step = max(2, 1 << max(0, (G - 1).bit_length() - 3))
    size = max(8, -(-G // step) * step)
    return GroupTotals(
        *(np.concatenate([x, np.zeros((size - G, *x.shape[1:]), x.dtype)]) for x in totals)
    )


def _model(totals: GroupTotals, *, n_arms: int, n_communities: int) -> None:
    """Priors are weakly informative on the standardised scale (baseline SD = 1, time in
    waves); each arm has its own level, and each arm within each community its own growth (cell
    means, which NUTS samples more easily than a control slope and differences); γ and the
    community effects are computed from them afterwards."""
    D = totals.design.shape[1]
    level = numpyro.sample("level", dist.Normal(0.0, 1.0).expand([n_arms, D]).to_event(2))
    growth = numpyro.sample(
        "growth", dist.Normal(0.0, 1.0).expand([n_arms, n_communities, D]).to_event(3)
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0).expand([D]).to_event(1))
    effect_sd = numpyro.sample("effect_sd", dist.HalfNormal(1.0).expand([2 * D]).to_event(1))
    corr = numpyro.sample("corr_chol", dist.LKJCholesky(2 * D, concentration=2.0))
    numpyro.factor(
        "loglik",
        marginal_loglik(
            totals,
            intercept=level[totals.arm],
            slope=growth[totals.arm, totals.community],
            sigma=sigma,
            chol_cov=effect_sd[:, None] * corr,
        ),
    )


# Chains start at independent uniform draws in [-0.5, 0.5] on the unconstrained scale: still
# dispersed, as R̂ needs, but not numpyro's default [-2, 2], which puts effect SDs at e^±2 and the
# LKJ factor near degenerate correlations. From there early warm-up ran trees to NUTS's maximum
# depth (1,023 gradients a draw) for a tenth of its iterations, which multiplied the warm-up's
# gradients several times over.
INIT_RADIUS = 0.5


class _Sampler(NamedTuple):
    """The compiled programs of one model shape and sampler setting: ``start(keys, totals)``
    warms up and draws every chain, ``extend(states, totals)`` draws more from where they
    stopped; both return (last states, unconstrained draws by site, divergences)."""

    start: Callable
    extend: Callable


# One sampler per model shape and sampler setting, reused by later fits in the process. The
# data are the programs' arguments, never constants in them (numpyro's ``MCMC`` puts them into
# a fresh parallel-chain program on every run), and their sizes are bucketed (``_padded``), so
# a fit of other data in the same bucket runs the compiled program as it is. What the process
# keeps compiled is bounded by ``compiled``, which empties this cache too.
_SAMPLERS: dict[tuple, _Sampler] = compiled.sampler_cache()


def _potential(model: Callable, totals: GroupTotals) -> Callable:
    return lambda z: potential_energy(model, (totals,), {}, z)


def _kernel(model, totals, z, key, *, warmup, target_accept):
    """NUTS's functional kernel (numpyro.infer.hmc.hmc, as numpyro's ``NUTS`` configures it)
    and its initial state at ``z``. Initialising also sets the kernel's warm-up schedule, which
    its sampling step reads, so an extension initialises too and keeps the state it is given."""
    init_kernel, sample_kernel = hmc(potential_fn_gen=partial(_potential, model), algo="NUTS")
    state = init_kernel(
        z,
        warmup,
        target_accept_prob=target_accept,
        trajectory_length=None,
        model_args=(totals,),
        rng_key=key,
    )
    return state, partial(sample_kernel, model_args=(totals,))


def _draw(step, state, draws):
    def one(state, _):
        state = step(state)
        return state, (state.z, state.diverging)

    state, (z, diverging) = lax.scan(one, state, None, length=draws)
    return state, z, diverging


def _start_chain(key, totals, *, model, prototype, warmup, draws, target_accept):
    init_key, key = jax.random.split(key)
    names = sorted(prototype)
    z = {
        name: jax.random.uniform(
            k, prototype[name].shape, prototype[name].dtype, -INIT_RADIUS, INIT_RADIUS
        )
        for name, k in zip(names, jax.random.split(init_key, len(names)), strict=True)
    }
    state, step = _kernel(model, totals, z, key, warmup=warmup, target_accept=target_accept)
    state = lax.fori_loop(0, warmup, lambda _, s: step(s), state)
    return _draw(step, state, draws)


def _extend_chain(state, totals, *, model, warmup, draws, target_accept):
    _, step = _kernel(
        model, totals, state.z, state.rng_key, warmup=warmup, target_accept=target_accept
    )
    return _draw(step, state, draws)


def _unconstrained_shapes(model: Callable, totals: GroupTotals) -> dict:
    """Shape and dtype of each latent site on the unconstrained scale NUTS moves on."""

    def shapes(totals):
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(totals)
        return {
            name: jnp.zeros(biject_to(site["fn"].support).inverse_shape(site["value"].shape))
            for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        }

    return jax.eval_shape(shapes, totals)


def _sampler(*, totals, n_arms, n_communities, chains, warmup, draws, target_accept) -> _Sampler:
    method = compiled.chain_method(chains, cpu_fallback="vectorized")
    D = totals.design.shape[1]
    key = (D, n_arms, n_communities, chains, warmup, draws, target_accept, method)
    if key not in _SAMPLERS:
        model = partial(_model, n_arms=n_arms, n_communities=n_communities)
        settings = dict(model=model, warmup=warmup, draws=draws, target_accept=target_accept)
        start = partial(_start_chain, prototype=_unconstrained_shapes(model, totals), **settings)
        extend = partial(_extend_chain, **settings)
        if method == "parallel":
            # One chain per CPU device, in parallel threads; the data go to every device.
            _SAMPLERS[key] = _Sampler(
                jax.pmap(start, in_axes=(0, None)), jax.pmap(extend, in_axes=(0, None))
            )
        else:
            _SAMPLERS[key] = _Sampler(
                jax.jit(jax.vmap(start, in_axes=(0, None))),
                jax.jit(jax.vmap(extend, in_axes=(0, None))),
            )
    return _SAMPLERS[key]


@dataclass(frozen=True)
class PosteriorSummary:
    """One quantity's posterior: mean, SD, equal-tailed 95% interval, P(> 0) and, where a
    minimal important difference applies, P(> MID); Monte Carlo SEs of the mean and of P(> 0)."""

    mean: float
    sd: float
    ci_low: float
    ci_high: float
    prob_benefit: float
    prob_above_mid: float | None
    mcse_mean: float
    mcse_prob_benefit: float


@dataclass(frozen=True)
class ArmDimensionEffect:
    """γ for one arm and dimension, per wave in the score's units."""

    arm: str
    dimension: str
    growth_difference_per_wave: PosteriorSummary


@dataclass(frozen=True)
class CommunityEffect:
    """An arm's growth difference within one community: per dimension in score units and, with
    the community's own weights, as a composite in baseline-SD units per wave."""

    arm: str
    community: str
    per_dimension: dict[str, PosteriorSummary]
    composite: PosteriorSummary | None
    weights: dict[str, float]


@dataclass(frozen=True)
class GrowthFit:
    """The fitted model: effects, community effects, convergence gates and timing."""

    effects: tuple[ArmDimensionEffect, ...]
    community_effects: tuple[CommunityEffect, ...]
    gates: GateReport
    reportable: bool
    participants: int
    observations: int
    groups: int
    seconds: float
    target_accept: float
    draws: dict[str, np.ndarray]
    """Posterior draws (chains, draws, …) of γ (``gamma``, score units) and, with several
    communities, of each arm × community × dimension effect (``community_gamma``); for
    derived quantities such as the engagement-vs-flourishing divergence. Not JSON."""


def _summary(draws: np.ndarray, mid: float | None = None) -> PosteriorSummary:
    from arviz_stats import mcse

    flat = draws.ravel()
    benefit = (draws > 0).astype(float)
    low, high = np.quantile(flat, INTERVAL)
    return PosteriorSummary(
        mean=float(flat.mean()),
        sd=float(flat.std(ddof=1)),
        ci_low=float(low),
        ci_high=float(high),
        prob_benefit=float(benefit.mean()),
        prob_above_mid=None if mid is None else float((flat > mid).mean()),
        mcse_mean=float(mcse(draws, method="mean")),
        mcse_prob_benefit=float(mcse(benefit, method="mean")),
    )


def _run(totals, data, *, seed, chains, warmup, draws, target_accept, max_draws, progress):
    sampler = _sampler(
        totals=totals,
        n_arms=len(data.arm_names),
        n_communities=len(data.community_names),
        chains=chains,
        warmup=warmup,
        draws=draws,
        target_accept=target_accept,
    )
    arguments = jax.tree.map(jnp.asarray, totals)
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    states, z, diverging = sampler.start(keys, arguments)
    batches, divergences = [jax.device_get(z)], [np.asarray(diverging)]
    while True:
        # The latent sites the estimands use have real support: unconstrained = constrained.
        samples = {k: np.concatenate([b[k] for b in batches], axis=1) for k in batches[0]}
        gated = _gated(samples, data)
        report = convergence_gates(gated, divergences=int(sum(d.sum() for d in divergences)))
        drawn = samples["growth"].shape[1]
        progress(min(0.95, drawn / max_draws))
        # More draws cure low ESS or a slightly high R̂, never divergences.
        if report.passed or report.divergences or drawn + draws > max_draws:
            return samples, report
        states, z, diverging = sampler.extend(states, arguments)
        batches.append(jax.device_get(z))
        divergences.append(np.asarray(diverging))


def _community_growth(samples: Mapping[str, np.ndarray]) -> np.ndarray:
    """γ_c per arm contrast × community × dimension (standardised units): each arm's growth
    minus control's growth in the same community."""
    growth = np.asarray(samples["growth"])
    return growth[:, :, 1:] - growth[:, :, :1]


def _gamma(samples: Mapping[str, np.ndarray], data: GrowthData) -> np.ndarray:
    """γ per arm contrast × dimension: the community effects averaged with the trial's
    community shares (the trial population's effect)."""
    return np.einsum("...acd,c->...ad", _community_growth(samples), data.community_shares)


def _gated(samples: Mapping[str, np.ndarray], data: GrowthData) -> dict[str, np.ndarray]:
    """The reported quantities: every arm × dimension effect and every community effect."""
    gated = {"gamma": _gamma(samples, data)}
    if len(data.community_names) > 1:
        gated["community_gamma"] = _community_growth(samples)
    return gated


def growth_fit(
    data: GrowthData,
    *,
    seed: int,
    mid_per_wave: Mapping[str, float] | None = None,
    community_weights: Mapping[str, Mapping[str, float]] | None = None,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    max_draws: int = 4000,
    target_accept: float = 0.9,
    progress: Callable[[float], None] = lambda fraction: None,
) -> GrowthFit:
    """Fit the marginalised growth model by NUTS (numpyro, float64) and gate it.

    Chains run in parallel when the process has a CPU device per chain, and vectorised otherwise
    (:func:`compiled.chain_method`): with the likelihood reduced to group totals a gradient
    costs microseconds, so one batched chain step is cheaper than chains one after another. The
    defaults (4 × 500 draws after 500 warm-up) gave bulk ESS ≥ 1,100 and tail ESS ≥ 580 from
    300 draws a chain at 10,000 participants; warm-up is most of the time, so draws are cheap
    insurance. If the gates fail on ESS or R̂ alone, more draws are taken (up to ``max_draws``
    per chain); if any transition diverged, the model is refitted once with ``target_accept``
    0.99. A fit that still fails is returned with ``reportable = False`` and the reasons in
    ``gates``. It runs in float64, which sums of squares over many participants need, set for
    this call only (``jax.enable_x64`` as a context): other JAX code in the process keeps JAX's
    default.

    Parameters
    ----------
    mid_per_wave : mapping, optional
        Dimension → the growth difference per wave (score units) that reaches the minimal
        important difference by the outcome wave, i.e. MID / outcome wave; ``prob_above_mid`` is
        :math:`P(\\gamma > \\text{that})`.
    community_weights : mapping, optional
        Community → {dimension: weight}, each community's own profile; a community's composite
        is :math:`\\sum_d w_d \\gamma_{cd}` on the standardised scale (baseline-SD
        units per wave) with weights renormalised over the fitted dimensions.
    """
    if chains < 2:
        raise ValueError("Convergence gates need at least two chains.")
    if not 0 < target_accept < 1:
        raise ValueError("target_accept must lie in (0, 1).")
    started = time.perf_counter()
    totals = _padded(group_totals(data))
    options = dict(
        seed=seed, chains=chains, warmup=warmup, draws=draws, max_draws=max_draws, progress=progress
    )
    try:
        with jax.enable_x64(True):
            samples, report = _run(totals, data, target_accept=target_accept, **options)
            if report.divergences:
                target_accept = 0.99
                samples, report = _run(totals, data, target_accept=target_accept, **options)
    finally:
        compiled.fit_finished()
    mids = mid_per_wave or {}
    scale = data.scale
    gamma = _gamma(samples, data) * scale
    effects = []
    for a, arm in enumerate(data.arm_names[1:]):
        for d, dimension in enumerate(data.dimensions):
            effects.append(
                ArmDimensionEffect(
                    arm=arm,
                    dimension=dimension,
                    growth_difference_per_wave=_summary(gamma[:, :, a, d], mids.get(dimension)),
                )
            )
    community = _community_growth(samples)
    community_effects = []
    for a, arm in enumerate(data.arm_names[1:]):
        for c, name in enumerate(data.community_names):
            weights = _weights((community_weights or {}).get(name), data.dimensions)
            standardised = community[:, :, a, c, :]
            community_effects.append(
                CommunityEffect(
                    arm=arm,
                    community=name,
                    per_dimension={
                        dimension: _summary(standardised[..., d] * scale[d])
                        for d, dimension in enumerate(data.dimensions)
                    },
                    composite=None
                    if weights is None
                    else _summary(standardised @ np.array(list(weights.values()))),
                    weights=weights or {},
                )
            )
    return GrowthFit(
        effects=tuple(effects),
        community_effects=tuple(community_effects),
        gates=report,
        reportable=report.passed,
        participants=data.participants,
        observations=data.observations,
        groups=int(np.count_nonzero(totals.count)),
        seconds=time.perf_counter() - started,
        target_accept=target_accept,
        draws={"gamma": gamma, "community_gamma": community * scale},
    )


def _weights(
    profile: Mapping[str, float] | None, dimensions: tuple[str, ...]
) -> dict[str, float] | None:
    """A community's weights over the fitted dimensions, summing to one (None without any)."""
    if not profile:
        return None
    raw = {d: float(profile.get(d, 0.0)) for d in dimensions}
    if any(w < 0 for w in raw.values()):
        raise ValueError("Community weights cannot be negative.")
    total = sum(raw.values())
    if total <= 0:
        return None
    return {d: w / total for d, w in raw.items()}
