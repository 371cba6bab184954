r"""Item-level ordinal growth model (graded response, cumulative logit): a sensitivity analysis.

The main growth model treats scale scores as Gaussian. This one models every item answer as
ordinal, so floor and ceiling effects and unequal item spacing cannot bias the growth difference.

Model
-----
Participant :math:`i` in arm :math:`a(i)` has a latent level at time :math:`t` (0 = baseline,
1, 2, … waves)

.. math::

    \theta_{it} = \alpha_{a(i)} + b_{0i} + (\beta_1 + \gamma_{a(i)} + b_{1i})\, t,
    \qquad \alpha_0 = \gamma_0 = 0 \text{ (control)},

with :math:`(b_{0i}, b_{1i}) \sim N(0, \Sigma)`,
:math:`\Sigma = \begin{pmatrix} 1 & \rho\sigma_1 \\ \rho\sigma_1 & \sigma_1^2\end{pmatrix}`.
Fixing the intercept SD at 1 and leaving out an overall intercept identifies the latent scale:
control participants' baseline levels are :math:`N(0, 1)`, so :math:`\gamma_a` is the difference
in growth per wave in baseline latent-SD units. The person effects are non-centred,
:math:`b_{0i} = z_{0i}`, :math:`b_{1i} = \sigma_1(\rho z_{0i} + \sqrt{1-\rho^2}\, z_{1i})`,
:math:`z \sim N(0, I)`.

Item :math:`j` with :math:`K_j` categories has a discrimination :math:`\lambda_j > 0` and ordered
cutpoints :math:`\kappa_{j1} < \dots < \kappa_{j,K_j-1}` (Samejima's graded response model in
its cumulative-logit form):

.. math::

    P(Y_{itj} = k) = F(\kappa_{j,k+1} - \lambda_j\theta_{it})
                   - F(\kappa_{jk} - \lambda_j\theta_{it}), \qquad F(x) = \frac{1}{1 + e^{-x}},

categories numbered :math:`0 … K_j - 1`, :math:`\kappa_{j0} = -\infty`,
:math:`\kappa_{jK_j} = +\infty`. This is numpyro's ``OrderedLogistic(λ_j θ_it, κ_j)``, which
evaluates all :math:`K_j` probabilities of every answer and takes the log of a difference of
logistics: in float32 that is :math:`-\infty` once an answer lies about 17 logits into a tail.
Here only the two cutpoints around the answer, :math:`l < u`, enter, in log space:
:math:`\log P = -\operatorname{softplus}(l - \eta) - \operatorname{softplus}(\eta - u)
+ \log(1 - e^{l - u})`.

Priors: :math:`\alpha_a, \beta_1, \gamma_a \sim N(0, 1)`; :math:`\sigma_1 \sim
\text{HalfNormal}(0.5)`; LKJ(2) on the 2×2 correlation (:math:`(\rho + 1)/2 \sim
\text{Beta}(2, 2)`); :math:`\lambda_j \sim \text{LogNormal}(0, 0.5)`; each item's cutpoints are
i.i.d. :math:`N(0, 3)` restricted to increasing order (a proper prior: the density of sorted
normal draws up to a constant).

Items with different numbers of categories get one cutpoint block per distinct :math:`K` (no
padded parameters, which would be unidentified and would change the prior of the real ones); for
the likelihood the blocks are laid side by side and padded with :math:`+\infty`, which gives the
unused categories probability zero. Answers are laid out on a participant × visit × item grid with
a mask for unanswered cells, so person and item effects broadcast instead of being gathered: the
gradient then needs no scatter-add, whose atomic updates are slow on GPUs.

NUTS (numpyro) samples everything jointly. The latent model has :math:`2P +` a few dozen
parameters and costs one cumulative-logit term per answer; it is meant for offline sensitivity
runs, on a GPU when there is one.

References
----------
Samejima, F. (1969). Estimation of latent ability using a response pattern of graded scores.
Psychometrika Monograph Supplement, 17. McCullagh, P. (1980). Regression models for ordinal
data. JRSS B, 42(2), 109–142. Lewandowski, D., Kurowicka, D., & Joe, H. (2009). Generating
random correlation matrices based on vines and extended onion method. J. Multivariate Anal.,
100, 1989–2001. Hoffman, M. D., & Gelman, A. (2014). The No-U-Turn sampler. JMLR, 15,
1593–1623. Phan, D., Pradhan, N., & Jankowiak, M. (2019). Composable effects for flexible and
accelerated probabilistic programming in NumPyro. arXiv:1912.11554.
"""

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints
from numpyro.infer import MCMC, NUTS

from stats import compiled
from stats.diagnostics import GateReport, convergence_gates

INTERVAL = (0.025, 0.975)
CUTPOINT_PRIOR_SD = 3.0
# Chains on the CPU: vectorised chains are the slowest there (every step waits for the longest of
# the chains' trees), so chains run in parallel when the process has a CPU device per chain
# (``compiled.chain_method``) and one after another if not.
CPU_CHAIN_METHOD = "sequential"
# Early warm-up, before the step size and mass matrix fit the posterior, hits NUTS's default
# depth of 10 (1,023 gradients a draw); capping warm-up trees at depth 8 makes that phase
# cheaper without touching the kept draws, whose trees need depth 5-6 here.
MAX_TREE_DEPTH = (8, 10)


@dataclass(frozen=True)
class OrdinalData:
    """Item answers of a trial, one entry per observed answer (participant × wave × item).

    ``participant``, ``wave``, ``item`` and ``response`` have one entry per answer;
    ``participant`` indexes ``arm`` (one arm code per participant, 0 = control, indexing
    ``arm_names``), ``item`` indexes ``categories`` (the number of response categories
    :math:`K_j` of each item) and ``response`` runs from 0 to :math:`K_j - 1`. ``wave`` is the
    time of the answer in waves: 0 at baseline, then 1, 2, …. Arrays are copied and made
    read-only.
    """

    participant: np.ndarray
    arm: np.ndarray
    wave: np.ndarray
    item: np.ndarray
    response: np.ndarray
    categories: np.ndarray
    arm_names: tuple[str, ...]

    def __post_init__(self) -> None:
        codes = {}
        for name in ("participant", "arm", "item", "response", "categories"):
            value = np.asarray(getattr(self, name))
            if value.ndim != 1:
                raise ValueError(f"{name} must be a 1-D array.")
            if not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"{name} must hold integers.")
            codes[name] = value.astype(np.int64)
        wave = np.asarray(self.wave)
        if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.number):
            raise ValueError("wave must be a 1-D array of numbers.")
        wave = wave.astype(float)
        n = len(wave)
        if n == 0:
            raise ValueError("There are no answers.")
        if not len(codes["participant"]) == len(codes["item"]) == len(codes["response"]) == n:
            raise ValueError("participant, wave, item and response need one entry per answer.")
        if not np.all(np.isfinite(wave)) or np.any(wave < 0):
            raise ValueError("wave must be finite and at least 0 (0 = baseline).")
        arm_names = tuple(self.arm_names)
        if len(arm_names) < 2 or len(set(arm_names)) != len(arm_names):
            raise ValueError("arm_names needs at least two distinct names (control first).")
        if not all(isinstance(name, str) for name in arm_names):
            raise ValueError("arm_names must be strings.")
        arm, categories = codes["arm"], codes["categories"]
        if len(arm) == 0 or arm.min() < 0 or arm.max() >= len(arm_names):
            raise ValueError("arm must hold one code per participant, indexing arm_names.")
        if len(categories) == 0 or categories.min() < 2:
            raise ValueError("Every item needs at least two response categories.")
        participant, item, response = codes["participant"], codes["item"], codes["response"]
        if participant.min() < 0 or participant.max() >= len(arm):
            raise ValueError("participant codes must index arm (0 … P-1).")
        if item.min() < 0 or item.max() >= len(categories):
            raise ValueError("item codes must index categories (0 … J-1).")
        if response.min() < 0 or np.any(response >= categories[item]):
            raise ValueError("Each response must lie in 0 … K_j - 1 for its item.")
        keys = np.stack([participant.astype(float), wave, item.astype(float)], axis=1)
        if len(np.unique(keys, axis=0)) != n:
            raise ValueError("A participant answered the same item twice in one wave.")
        for name, value in (*codes.items(), ("wave", wave)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "arm_names", arm_names)

    @property
    def participants(self) -> int:
        return len(self.arm)

    @property
    def items(self) -> int:
        return len(self.categories)

    @property
    def observations(self) -> int:
        return len(self.response)


def ordinal_data_from_frame(
    frame: pd.DataFrame, *, control: str, categories: Mapping[str, tuple[int, int]]
) -> OrdinalData:
    """Ordinal data from stored answers: one row per participant × wave × item.

    ``frame`` needs the columns ``participant, arm, wave, item, value``; unanswered items are
    simply absent. ``categories`` maps every item to the lowest and highest value of its response
    scale (both inclusive, e.g. ``(1, 5)`` for a five-point item), so ``value - lowest`` is the
    response category. Items are ordered as in ``categories`` (those without answers dropped);
    arms are ``control`` first, then the others sorted by name.
    """
    required = {"participant", "arm", "wave", "item", "value"}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"The frame lacks column(s) {', '.join(sorted(missing))}.")
    if frame.empty:
        raise ValueError("There are no answers to analyse.")
    answered = set(frame["item"])
    unknown = sorted(map(str, answered - set(categories)))
    if unknown:
        raise ValueError(f"No response scale given for item(s) {', '.join(unknown)}.")
    for name, (lowest, highest) in categories.items():
        if int(lowest) != lowest or int(highest) != highest or highest <= lowest:
            raise ValueError(f"Item {name}: the scale must be two integers, lowest < highest.")
    value = frame["value"].to_numpy(dtype=float)
    if not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
        raise ValueError("Answer values must be whole numbers (pass answered items only).")
    items = [name for name in categories if name in answered]
    item = pd.Index(items).get_indexer(frame["item"])
    lowest = np.array([categories[name][0] for name in items], dtype=np.int64)
    highest = np.array([categories[name][1] for name in items], dtype=np.int64)
    if np.any(value < lowest[item]) or np.any(value > highest[item]):
        raise ValueError("An answer lies outside its item's scale.")
    arms = frame["arm"].astype(str)
    participant = pd.factorize(frame["participant"])[0]
    arm_of = pd.Series(arms.to_numpy()).groupby(participant)
    if arm_of.nunique().max() > 1:
        raise ValueError("A participant appears in more than one arm.")
    if control not in set(arms):
        raise ValueError(f"The control arm {control!r} has no answers.")
    arm_names = (control, *sorted(set(arms) - {control}))
    if len(arm_names) < 2:
        raise ValueError("Growth differences need at least two arms with answers.")
    return OrdinalData(
        participant=participant,
        arm=pd.Index(arm_names).get_indexer(arm_of.first().to_numpy()),
        wave=frame["wave"].to_numpy(dtype=float),
        item=item,
        response=(value - lowest[item]).astype(np.int64),
        categories=highest - lowest + 1,
        arm_names=arm_names,
    )


def ordinal_data_from_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    control: str,
    categories: Mapping[str, tuple[int, int]],
) -> OrdinalData:
    """:func:`ordinal_data_from_frame` of the concatenated ``chunks``, with bounded memory.

    Each chunk is a frame with the columns ``participant, arm, wave, item, value`` (e.g. one
    fetch of a server-side cursor); it is reduced to small integer codes at once, so what stays
    in memory is a few bytes per answer rather than a pandas frame of Python objects for every
    answer of the trial. Participants are coded in order of first appearance across chunks, as
    ``pandas.factorize`` codes the whole frame, so the result equals ``ordinal_data_from_frame``
    on ``pandas.concat(chunks)``, and raises the same errors.
    """
    required = {"participant", "arm", "wave", "item", "value"}
    names = list(categories)
    lowest_all = np.array([categories[n][0] for n in names], dtype=np.int64)
    highest_all = np.array([categories[n][1] for n in names], dtype=np.int64)
    codes: dict[object, int] = {}
    arm_of: list[str] = []
    mixed_arms = not_whole = outside = False
    unknown: set[str] = set()
    parts: dict[str, list[np.ndarray]] = {"participant": [], "wave": [], "item": [], "value": []}
    for chunk in chunks:
        missing = required - set(chunk.columns)
        if missing:
            raise ValueError(f"The frame lacks column(s) {', '.join(sorted(missing))}.")
        if chunk.empty:
            continue
        item = pd.Index(names).get_indexer(chunk["item"])
        unknown |= set(map(str, chunk["item"][item < 0]))
        value = chunk["value"].to_numpy(dtype=float)
        whole = np.isfinite(value) & (value == np.round(value))
        not_whole |= not whole.all()
        known = (item >= 0) & whole
        outside |= bool(
            np.any(value[known] < lowest_all[item[known]])
            or np.any(value[known] > highest_all[item[known]])
        )
        local, uniques = pd.factorize(chunk["participant"])
        arms = pd.Series(chunk["arm"].astype(str).to_numpy()).groupby(local)
        mixed_arms |= bool(arms.nunique().max() > 1)
        mapping = np.empty(len(uniques), dtype=np.int64)
        for position, (who, arm) in enumerate(zip(uniques, arms.first(), strict=True)):
            code = mapping[position] = codes.setdefault(who, len(codes))
            if code == len(arm_of):
                arm_of.append(arm)
            elif arm_of[code] != arm:
                mixed_arms = True
        parts["participant"].append(mapping[local].astype(np.int32))
        parts["wave"].append(chunk["wave"].to_numpy(dtype=float))
        parts["item"].append(item.astype(np.int32))
        parts["value"].append(np.where(whole, value, 0).astype(np.int32))
    if not parts["item"]:
        raise ValueError("There are no answers to analyse.")
    if unknown:
        raise ValueError(f"No response scale given for item(s) {', '.join(sorted(unknown))}.")
    for name, (lowest, highest) in categories.items():
        if int(lowest) != lowest or int(highest) != highest or highest <= lowest:
            raise ValueError(f"Item {name}: the scale must be two integers, lowest < highest.")
    if not_whole:
        raise ValueError("Answer values must be whole numbers (pass answered items only).")
    if outside:
        raise ValueError("An answer lies outside its item's scale.")
    if mixed_arms:
        raise ValueError("A participant appears in more than one arm.")
    arms = set(arm_of)
    if control not in arms:
        raise ValueError(f"The control arm {control!r} has no answers.")
    arm_names = (control, *sorted(arms - {control}))
    if len(arm_names) < 2:
        raise ValueError("Growth differences need at least two arms with answers.")
    item = np.concatenate(parts.pop("item"))
    # Items without answers are dropped, the others keep the order of ``categories``.
    answered = np.zeros(len(names), dtype=bool)
    answered[item] = True
    renumber = np.cumsum(answered) - 1
    value = np.concatenate(parts.pop("value"))
    return OrdinalData(
        participant=np.concatenate(parts.pop("participant")),
        arm=pd.Index(arm_names).get_indexer(arm_of),
        wave=np.concatenate(parts.pop("wave")),
        item=renumber[item],
        response=value - lowest_all[item],
        categories=(highest_all - lowest_all + 1)[answered],
        arm_names=arm_names,
    )


def graded_response_log_prob(
    predictor: jnp.ndarray, cutpoints: jnp.ndarray, response: jnp.ndarray
) -> jnp.ndarray:
    r"""Log-probability of ordinal answers under the cumulative-logit (graded response) model.

    .. math::

        \log P(Y = k \mid \eta, \kappa) = \log\bigl(F(\kappa_{k+1} - \eta) - F(\kappa_k - \eta)
        \bigr), \qquad \kappa_0 = -\infty,\ \kappa_K = +\infty,

    with :math:`F` the logistic CDF and ``cutpoints`` holding :math:`\kappa_1 … \kappa_{K-1}`
    (the same as numpyro's ``OrderedLogistic(η, κ).log_prob(k)``). Cutpoints may be padded on the
    right with ``+inf`` to give items with fewer categories a common shape. Computed stably in
    log space from the two cutpoints around the answer.

    Parameters
    ----------
    predictor : array (...)
        :math:`\eta`, the linear predictor of each answer.
    cutpoints : array (..., K - 1)
        Increasing cutpoints, broadcasting against ``predictor``.
    response : int array (...)
        Categories 0 … K - 1 (not checked: the function is traced).
    """
    edge = jnp.full(cutpoints.shape[:-1] + (1,), jnp.inf, dtype=cutpoints.dtype)
    bounds = jnp.concatenate([-edge, cutpoints, edge], axis=-1)
    slot = jnp.arange(bounds.shape[-1])
    # Selecting with `where` (not a one-hot product: 0 × inf is NaN) keeps the gradient a
    # reduction over answers, with no scatter-add into the small cutpoint table.
    lower = jnp.sum(jnp.where(response[..., None] == slot, bounds, 0.0), axis=-1)
    upper = jnp.sum(jnp.where(response[..., None] + 1 == slot, bounds, 0.0), axis=-1)
    # log(1 - e^(l - u)) as log(-expm1(l - u)): exact near 0 (close cutpoints) and 0 at the ends
    # of the scale; Mächler's second branch only adds relative accuracy the sum does not need.
    return (
        -_softplus(lower - predictor)
        - _softplus(predictor - upper)
        + jnp.log(-jnp.expm1(lower - upper))
    )


def _softplus(x: jnp.ndarray) -> jnp.ndarray:
    """log(1 + e^x), exact at ±inf, in fewer operations than ``jax.nn.softplus`` (a general
    ``logaddexp(x, 0)``)."""
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@dataclass(frozen=True)
class _Layout:
    """Answers on a participant × visit × item grid (numpy), as the model consumes them.

    A visit is one distinct time at which a participant answered; ``time`` holds its wave.
    ``blocks`` lists, per distinct number of categories K, the items with K categories;
    ``item_order`` puts the rows of the stacked cutpoint blocks back in item order.
    """

    time: np.ndarray
    response: np.ndarray
    observed: np.ndarray
    arm_design: np.ndarray
    blocks: tuple[tuple[int, np.ndarray], ...]
    item_order: np.ndarray


def _layout(data: OrdinalData) -> _Layout:
    pairs, visit_of_answer = np.unique(
        np.stack([data.participant.astype(float), data.wave], axis=1), axis=0, return_inverse=True
    )
    visit_of_answer = visit_of_answer.ravel()
    owner = pairs[:, 0].astype(np.int64)
    # Rows are sorted by participant, so a visit's rank within its participant is its offset
    # from the participant's first row.
    first = np.searchsorted(owner, owner, side="left")
    slot = np.arange(len(owner)) - first
    visits = int(slot.max()) + 1
    time = np.zeros((data.participants, visits))
    time[owner, slot] = pairs[:, 1]
    response = np.zeros((data.participants, visits, data.items), dtype=np.int32)
    observed = np.zeros(response.shape, dtype=bool)
    cell = (owner[visit_of_answer], slot[visit_of_answer], data.item)
    response[cell] = data.response
    observed[cell] = True
    arms = len(data.arm_names)
    arm_design = (data.arm[:, None] == np.arange(1, arms)[None, :]).astype(float)
    sizes = np.unique(data.categories)
    blocks = tuple((int(k), np.flatnonzero(data.categories == k)) for k in sizes)
    item_order = np.argsort(np.concatenate([items for _, items in blocks]))
    return _Layout(time, response, observed, arm_design, blocks, item_order)


def _block_name(size: int, blocks: tuple[tuple[int, np.ndarray], ...]) -> str:
    return "cutpoints" if len(blocks) == 1 else f"cutpoints_k{size}"


def _model(time, response, observed, arm_design, *, blocks, item_order) -> None:
    participants = time.shape[0]
    contrasts = arm_design.shape[1]
    items = response.shape[-1]
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 1.0).expand([contrasts]).to_event(1))
    beta1 = numpyro.sample("beta1", dist.Normal(0.0, 1.0))
    gamma = numpyro.sample("gamma", dist.Normal(0.0, 1.0).expand([contrasts]).to_event(1))
    slope_sd = numpyro.sample("slope_sd", dist.HalfNormal(0.5))
    corr = numpyro.sample("corr_chol", dist.LKJCholesky(2, concentration=2.0))
    z = numpyro.sample("person", dist.Normal(0.0, 1.0).expand([participants, 2]).to_event(2))
    intercept = z[:, 0] + arm_design @ alpha
    slope = beta1 + arm_design @ gamma + slope_sd * (corr[1, 0] * z[:, 0] + corr[1, 1] * z[:, 1])
    theta = intercept[:, None] + slope[:, None] * time
    discrimination = numpyro.sample(
        "discrimination", dist.LogNormal(0.0, 0.5).expand([items]).to_event(1)
    )
    widest = max(size for size, _ in blocks) - 1
    stacked = []
    for size, block_items in blocks:
        name = _block_name(size, blocks)
        cut = numpyro.sample(
            name,
            dist.ImproperUniform(
                constraints.ordered_vector, (len(block_items),), event_shape=(size - 1,)
            ),
        )
        numpyro.factor(f"{name}_prior", dist.Normal(0.0, CUTPOINT_PRIOR_SD).log_prob(cut).sum())
        stacked.append(jnp.pad(cut, ((0, 0), (0, widest - (size - 1))), constant_values=jnp.inf))
    cutpoints = jnp.concatenate(stacked)[item_order]
    log_prob = graded_response_log_prob(theta[:, :, None] * discrimination, cutpoints, response)
    numpyro.factor("answers", jnp.sum(jnp.where(observed, log_prob, 0.0)))


@dataclass(frozen=True)
class OrdinalArmEffect:
    """γ for one arm against control: growth per wave in baseline latent-SD units."""

    arm: str
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    prob_positive: float


@dataclass(frozen=True)
class OrdinalGrowthResult:
    """The ordinal growth fit: effects per non-control arm, convergence gates and run facts.

    ``reportable`` is ``gates.passed``; the gates cover γ, β₁, the discriminations and every
    cutpoint. ``precision`` is the floating-point type the sampler ran in. JSON-ready through
    ``dataclasses.asdict``.
    """

    effects: tuple[OrdinalArmEffect, ...]
    gates: GateReport
    reportable: bool
    platform: str
    precision: str
    chain_method: str
    compile_and_sample_seconds: float
    observations: int
    participants: int
    items: int
    chains: int
    warmup: int
    draws: int
    target_accept: float
    seed: int


def ordinal_growth_fit(
    data: OrdinalData,
    *,
    seed: int,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    target_accept: float = 0.9,
) -> OrdinalGrowthResult:
    """Fit the ordinal growth model (module docstring) by NUTS and gate it.

    Runs on JAX's default backend. On a GPU the chains are vectorised (one batched program keeps
    the device busy) and the sampler runs in float32: the likelihood is evaluated in log space,
    its sum is a tree reduction, and many GPUs run float64 at a small fraction of float32 speed.
    On the CPU it runs in float64, chains in parallel when JAX has a CPU device per chain and one
    after another otherwise (:data:`CPU_CHAIN_METHOD`). The precision is set for this call only
    (``jax.enable_x64`` as a context), so other JAX code in the process is unaffected. The
    participant effects are not collected (2P numbers a draw); the arm, growth, item and
    covariance parameters are. Warm-up trees are capped at depth 8 (:data:`MAX_TREE_DEPTH`).

    Parameters
    ----------
    data : OrdinalData
    seed : int
        Seed of the sampler's random key.
    chains, warmup, draws : int
        Number of chains (at least two, for R̂) and warm-up and kept iterations per chain.
    target_accept : float
        NUTS target acceptance probability; raise it if transitions diverge.
    """
    if chains < 2:
        raise ValueError("Convergence gates need at least two chains.")
    if warmup < 1 or draws < 4:
        raise ValueError("Need at least one warm-up iteration and four draws per chain.")
    if not 0 < target_accept < 1:
        raise ValueError("target_accept must lie in (0, 1).")
    for code, name in enumerate(data.arm_names):
        if not np.any((data.arm[data.participant] == code) & (data.wave > 0)):
            raise ValueError(f"Arm {name!r} has no answers after baseline: γ is not identified.")
    if len(np.unique(data.item)) != data.items:
        raise ValueError("Every item needs at least one answer.")
    layout = _layout(data)
    platform = jax.default_backend()
    on_cpu = platform == "cpu"
    chain_method = compiled.chain_method(chains, cpu_fallback=CPU_CHAIN_METHOD)
    names = ["gamma", "beta1", "discrimination"]
    names += [_block_name(size, layout.blocks) for size, _ in layout.blocks]
    with jax.enable_x64(on_cpu):
        real = jnp.float64 if on_cpu else jnp.float32
        model = partial(_model, blocks=layout.blocks, item_order=layout.item_order)
        mcmc = MCMC(
            NUTS(model, target_accept_prob=target_accept, max_tree_depth=MAX_TREE_DEPTH),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=chains,
            chain_method=chain_method,
            progress_bar=False,
            # Data enter the compiled sampler as arguments, not as constants folded into it.
            jit_model_args=True,
        )
        started = time.perf_counter()
        try:
            mcmc.run(
                jax.random.PRNGKey(seed),
                jnp.asarray(layout.time, dtype=real),
                jnp.asarray(layout.response),
                jnp.asarray(layout.observed),
                jnp.asarray(layout.arm_design, dtype=real),
                # Participant effects stay on the device only for the current state.
                extra_fields=("~z.person",),
            )
            kept = mcmc.get_samples(group_by_chain=True)
            samples = {name: np.asarray(value, dtype=float) for name, value in kept.items()}
            divergences = int(np.sum(mcmc.get_extra_fields(group_by_chain=True)["diverging"]))
        finally:
            compiled.fit_finished()
        seconds = time.perf_counter() - started
    gates = convergence_gates({name: samples[name] for name in names}, divergences=divergences)
    effects = tuple(
        _effect(arm, samples["gamma"][:, :, a]) for a, arm in enumerate(data.arm_names[1:])
    )
    return OrdinalGrowthResult(
        effects=effects,
        gates=gates,
        reportable=gates.passed,
        platform=platform,
        precision="float64" if on_cpu else "float32",
        chain_method=chain_method,
        compile_and_sample_seconds=seconds,
        observations=data.observations,
        participants=data.participants,
        items=data.items,
        chains=chains,
        warmup=warmup,
        draws=draws,
        target_accept=target_accept,
        seed=seed,
    )


def _effect(arm: str, draws: np.ndarray) -> OrdinalArmEffect:
    flat = draws.ravel()
    low, high = np.quantile(flat, INTERVAL)
    return OrdinalArmEffect(
        arm=arm,
        mean=float(flat.mean()),
        sd=float(flat.std(ddof=1)),
        ci_low=float(low),
        ci_high=float(high),
        prob_positive=float(np.mean(flat > 0)),
    )


def simulate_ordinal(
    *,
    participants: int,
    waves: int,
    items: int,
    categories: int,
    effect: float,
    seed: int,
    dropout: float = 0.0,
) -> tuple[OrdinalData, dict]:
    r"""Two-arm trial of ordinal item answers drawn from the model, with the truth.

    Arms are allocated 1:1 at random; the treatment arm grows ``effect`` baseline latent SDs per
    wave faster (γ). Every item has ``categories`` categories. Answers come from the latent
    logistic representation :math:`Y = \#\{k : \kappa_{jk} < \lambda_j\theta_{it} +
    \varepsilon\}`, :math:`\varepsilon` standard logistic, independently of the model's
    likelihood code. After baseline, each remaining participant drops out with probability
    ``dropout`` per wave (monotone, completely at random).
    """
    if participants < 4 or waves < 2 or items < 1 or categories < 2:
        raise ValueError("Need at least 4 participants, 2 waves, 1 item and 2 categories.")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must lie in [0, 1).")
    rng = np.random.default_rng(seed)
    truth = {"gamma": float(effect), "alpha": 0.0, "beta1": 0.1, "slope_sd": 0.2, "rho": 0.3}
    arm = rng.permutation(np.arange(participants) % 2)
    b0 = rng.normal(size=participants)
    b1 = truth["slope_sd"] * (
        truth["rho"] * b0 + np.sqrt(1 - truth["rho"] ** 2) * rng.normal(size=participants)
    )
    discrimination = np.exp(rng.normal(0.0, 0.3, items))
    # Cutpoints spread over the latent range, so every category is used.
    spread = np.linspace(-1.5, 1.5, categories - 1)[None, :] + rng.normal(0.0, 0.3, (items, 1))
    cutpoints = discrimination[:, None] * spread
    last = np.full(participants, waves - 1)
    for wave in range(1, waves):
        leaves = (rng.random(participants) < dropout) & (last == waves - 1)
        last[leaves] = wave - 1
    person, wave = np.nonzero(np.arange(waves)[None, :] <= last[:, None])
    theta = b0[person] + (truth["beta1"] + effect * arm[person] + b1[person]) * wave
    person = np.repeat(person, items)
    wave = np.repeat(wave, items)
    item = np.tile(np.arange(items), len(theta))
    latent = np.repeat(theta, items) * discrimination[item] + rng.logistic(size=len(item))
    response = np.sum(latent[:, None] > cutpoints[item], axis=1)
    truth["discrimination"] = tuple(discrimination.tolist())
    truth["cutpoints"] = tuple(tuple(row) for row in cutpoints.tolist())
    data = OrdinalData(
        participant=person,
        arm=arm,
        wave=wave.astype(float),
        item=item,
        response=response,
        categories=np.full(items, categories),
        arm_names=("control", "treatment"),
    )
    return data, truth
