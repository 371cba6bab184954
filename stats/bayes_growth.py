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

Baseline covariates and moderators (optional, pre-registered)
-------------------------------------------------------------
Participant :math:`i` may have baseline covariates :math:`x_i` (standardised: mean 0, SD 1 over
the participants analysed), a subgroup :math:`s(i)` of a categorical moderator and continuous
moderators :math:`m_i`, which are covariates too (the first columns of :math:`x_i`):

.. math::

    \text{intercept}_{id} &= \beta_{0a(i)s(i)d} + x_i^\top \delta_{0d}
        + [a(i) > 0]\, m_i^\top \lambda_{a(i)d} \\
    \text{slope}_{id} &= \beta_{1c(i)d} + \gamma_{a(i)c(i)d} + \eta_{s(i)d}
        + x_i^\top \delta_{1d} + [a(i) > 0]\,(\omega_{ad} z_{a s(i) d}
        + m_i^\top \kappa_{a(i)d}),

with :math:`\eta_{0d} = 0` (subgroup 0 the reference) and :math:`z \sim N(0, 1)`: each
subgroup's treatment effect on growth is drawn from a normal around the arm's effect,
:math:`\gamma_{asd} = \gamma_{ad} + \omega_{ad} z_{asd}`, with a half-normal scale
:math:`\omega_{ad}`. The deviations :math:`\omega_{ad} z_{asd}` enter the slopes linearly, so
the likelihood integrates them out exactly, as it does the participant effects
(:func:`_collapsed_deviations`): the sampler sees ω without the funnel that sampling z (or the
deviations themselves) against ω makes, and the deviations are drawn from their conditional
normal at each draw.
Covariates and moderators shift every participant's intercept and slope by fixed coefficients
with N(0, 1) priors on the standardised scale; :math:`\kappa` is the treatment × moderator
interaction on growth per SD of the moderator (:math:`\lambda` the same on the level, free as
the arms' levels are, the model of ``score ~ wave * arm * m + wave * x``). Because covariates
and moderators are centred, :math:`\gamma_{ad}`, reported as the subgroup effects averaged
with the trial's subgroup shares, is the same estimand with or without them; covariates that
predict the slopes make its posterior narrower (Senn 1989 for the ANCOVA argument).

The likelihood stays exact on group totals: a participant's fixed effects are
:math:`\theta_i = \theta_g + C_g x_i` with :math:`C_g` the group's coefficients (its arm fixes
the interactions), so the group's sums of :math:`x_i`, :math:`x_i x_i^\top` and
:math:`u_i x_i^\top` give every term :func:`marginal_loglik` needs; participants are still pooled
by arm, community, subgroup and observed waves, and the covariate sums are arguments of the
compiled sampler like the other totals.

References
----------
Laird, N. M., & Ware, J. H. (1982). Random-effects models for longitudinal data. Biometrics, 38,
963–974. Harville, D. A. (1977). Maximum likelihood approaches to variance component estimation.
JASA, 72, 320–338 (the determinant and inverse identities). Lewandowski, D., Kurowicka, D., &
Joe, H. (2009). Generating random correlation matrices based on vines and extended onion method.
J. Multivariate Anal., 100, 1989–2001 (LKJ). Hoffman, M. D., & Gelman, A. (2014). The No-U-Turn
sampler. JMLR, 15, 1593–1623. Senn, S. (1989). Covariate imbalance and random allocation in
clinical trials. Statistics in Medicine, 8, 467–475. Jones, H. E., Ohlssen, D. I., Neuenschwander,
B., Racine, A., & Branson, M. (2011). Bayesian models for subgroup analysis in clinical trials.
Clinical Trials, 8, 129–143 (partial pooling of subgroup effects). Betancourt, M., & Girolami, M.
(2015). Hamiltonian Monte Carlo for hierarchical models (the non-centred parameterisation).
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import lax
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy

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

    Optional (see the module doc): ``covariates[i]``, participant ``i``'s baseline covariates
    named ``covariate_names``, standardised (``(value - covariate_centre) / covariate_scale``);
    the first ``len(interactions)`` of them are the continuous moderators ``interactions``;
    ``subgroup[i]``, a code into ``subgroup_names``, the levels of the categorical moderator
    ``subgroup_moderator``.
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
    covariate_names: tuple[str, ...] = ()
    covariates: np.ndarray | None = None
    covariate_centre: np.ndarray | None = None
    covariate_scale: np.ndarray | None = None
    interactions: tuple[str, ...] = ()
    subgroup_moderator: str | None = None
    subgroup_names: tuple[str, ...] = ()
    subgroup: np.ndarray | None = None

    @property
    def participants(self) -> int:
        return len(self.arm)

    @property
    def subgroup_shares(self) -> np.ndarray:
        return np.bincount(self.subgroup, minlength=len(self.subgroup_names)) / len(self.arm)

    @property
    def adjusted(self) -> bool:
        """Whether the fit has covariates or moderators beyond arm and community."""
        return self.covariates is not None or self.subgroup is not None

    def unadjusted(self) -> "GrowthData":
        """The same scores without covariates and moderators: the model whose posterior SDs an
        adjusted fit's are compared with (``growth_fit(..., compare_unadjusted=True)``)."""
        return replace(
            self,
            covariate_names=(),
            covariates=None,
            covariate_centre=None,
            covariate_scale=None,
            interactions=(),
            subgroup_moderator=None,
            subgroup_names=(),
            subgroup=None,
        )

    @property
    def community_shares(self) -> np.ndarray:
        return np.bincount(self.community, minlength=len(self.community_names)) / len(self.arm)

    @property
    def observations(self) -> int:
        return int(self.stats[..., 0].sum())


def growth_data_from_frame(
    frame: pd.DataFrame,
    *,
    control: str,
    dimensions: tuple[str, ...] | None = None,
    baseline: pd.DataFrame | None = None,
    covariates: Sequence[str] = (),
    subgroup: str | None = None,
    interactions: Sequence[str] = (),
) -> GrowthData:
    """Sufficient statistics from long data: one row per participant × wave × dimension.

    ``frame`` needs ``participant, arm, wave, dimension, score`` and may have ``community``;
    rows of missing waves are simply absent. Scores are centred and scaled by each dimension's
    baseline (wave 0) mean and SD.

    Parameters
    ----------
    baseline : DataFrame, optional
        One row per participant: ``participant`` and the columns named below. Every participant
        with scores needs a row with every named value present (the analysis decides, as
        pre-registered, how a missing baseline value is filled before this).
    covariates : sequence of str
        Numeric columns adjusted for (shifting each participant's intercept and slope), for
        precision; standardised here.
    subgroup : str, optional
        A categorical column (e.g. baseline-loneliness tertile, language): the treatment effect
        on growth per level, partially pooled towards the arm's effect.
    interactions : sequence of str
        Numeric columns whose product with treatment acts on growth (continuous moderators); each
        is adjusted for as a covariate too.
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
    if frame.groupby("participant")["arm"].nunique().max() > 1:
        raise ValueError("A participant appears in more than one arm.")
    people = frame.drop_duplicates("participant")
    communities = (
        people["community"].fillna("").astype(str)
        if "community" in people
        else pd.Series("", index=people.index)
    )
    participant_ids = people["participant"].to_numpy()
    position = pd.Index(participant_ids)
    # Raw sums of the scores as recorded (t = wave); growth_data_from_statistics standardises.
    statistics = np.zeros((len(participant_ids), len(dimensions), len(STATISTICS)))
    baseline_moments = np.zeros((len(dimensions), 3))
    for d, dimension in enumerate(dimensions):
        rows = frame[frame["dimension"] == dimension]
        t = rows["wave"].to_numpy(dtype=float)
        y = rows["score"].to_numpy(dtype=float)
        index = position.get_indexer(rows["participant"])
        for k, values in enumerate((np.ones_like(t), t, t * t, y, t * y, y * y)):
            statistics[:, d, k] = np.bincount(index, weights=values, minlength=len(participant_ids))
        at_baseline = y[t == 0]
        baseline_moments[d] = (
            len(at_baseline),
            at_baseline.mean() if len(at_baseline) else np.nan,
            at_baseline.std(ddof=1) if len(at_baseline) > 1 else np.nan,
        )
    return growth_data_from_statistics(
        participants=participant_ids,
        arms=people["arm"].to_numpy(),
        communities=communities.to_numpy(),
        statistics=statistics,
        baseline_moments=baseline_moments,
        control=control,
        dimensions=tuple(dimensions),
        last_wave=int(frame["wave"].max()),
        baseline=baseline,
        covariates=covariates,
        subgroup=subgroup,
        interactions=interactions,
    )


def growth_data_from_statistics(
    *,
    participants: np.ndarray,
    arms: np.ndarray,
    communities: np.ndarray,
    statistics: np.ndarray,
    baseline_moments: np.ndarray,
    control: str,
    dimensions: Sequence[str],
    last_wave: int,
    baseline: pd.DataFrame | None = None,
    covariates: Sequence[str] = (),
    subgroup: str | None = None,
    interactions: Sequence[str] = (),
) -> GrowthData:
    r""":class:`GrowthData` from each participant's raw sums, e.g. aggregated by the database.

    ``statistics[i, d]`` holds :data:`STATISTICS` of participant ``participants[i]`` on
    ``dimensions[d]`` for score ``y`` at wave ``t`` (0 = baseline), as recorded (zeros where
    the participant has no score on the dimension); ``arms[i]`` and ``communities[i]`` are the
    participant's arm and community ("" for none). ``baseline_moments[d]`` = (count, mean, SD
    with ddof 1) of the dimension's wave-0 scores. The other arguments are
    :func:`growth_data_from_frame`'s, which computes these sums from long data and calls this:
    the result is the same.

    Standardising is exact on the sums: with :math:`t' = t - \bar t` and
    :math:`y' = (y - c)/s`, :math:`\sum t' = \sum t - n\bar t`,
    :math:`\sum t'^2 = \sum t^2 - 2\bar t\sum t + n\bar t^2`, :math:`\sum y' = (\sum y -
    nc)/s`, :math:`\sum t'y' = (\sum ty - c\sum t - \bar t\sum y + n\bar t c)/s` and
    :math:`\sum y'^2 = (\sum y^2 - 2c\sum y + nc^2)/s^2`. The centre :math:`c` and scale
    :math:`s` are the baseline mean and SD, or, with fewer than two baseline scores, the mean
    and SD of all the dimension's scores (from the totals of the sums); :math:`\bar t` is the
    mean observed wave over every score of the dimensions analysed. Participants without any
    score on these dimensions are left out, as they are absent from a frame.
    """
    dimensions = tuple(dimensions)
    statistics = np.asarray(statistics, dtype=float)
    participants = np.asarray(participants)
    P = len(participants)
    if statistics.shape != (P, len(dimensions), len(STATISTICS)):
        raise ValueError(
            f"The statistics must be shaped (participants, dimensions, {len(STATISTICS)})."
        )
    if len(arms) != P or len(communities) != P:
        raise ValueError("Every participant needs one arm and one community.")
    moments = np.asarray(baseline_moments, dtype=float)
    if moments.shape != (len(dimensions), 3):
        raise ValueError("The baseline moments must be shaped (dimensions, 3).")
    if len(pd.unique(participants)) != P:
        raise ValueError("A participant appears more than once.")
    if not np.all(np.isfinite(statistics)):
        raise ValueError("Scores must be finite numbers.")
    scored = statistics[..., 0].sum(1) > 0
    if not scored.any():
        raise ValueError("There are no scores to analyse.")
    participants, statistics = participants[scored], statistics[scored]
    arms = np.asarray(arms, dtype=object)[scored]
    communities = pd.Series(np.asarray(communities, dtype=object)[scored]).fillna("").astype(str)
    arm_set = sorted(set(arms))
    if control not in arm_set:
        raise ValueError(f"The control arm {control!r} has no scores.")
    if len(arm_set) < 2:
        raise ValueError("Growth differences need at least two arms with scores.")
    arm_names = (control, *[a for a in arm_set if a != control])
    community_names = tuple(sorted(set(communities)))
    totals = statistics.sum(0)  # (D, 6): every score of each dimension
    n, sum_t, sum_tt, sum_y, sum_ty, sum_yy = (statistics[..., k] for k in range(6))
    # Time is centred at the mean observed wave: intercepts and slopes are then nearly
    # uncorrelated a posteriori, which NUTS samples in fewer steps; slopes are unchanged.
    time_centre = float(totals[:, 1].sum() / totals[:, 0].sum())
    centre = np.zeros(len(dimensions))
    scale = np.ones(len(dimensions))
    for d in range(len(dimensions)):
        count, mean, spread = moments[d]
        if not count > 1:
            count, total, squares = totals[d, 0], totals[d, 3], totals[d, 5]
            mean = total / count if count else np.nan
            spread = (
                np.sqrt(max(squares - count * mean**2, 0.0) / (count - 1)) if count > 1 else np.nan
            )
        centre[d] = mean
        scale[d] = spread if np.isfinite(spread) and spread > 0 else 1.0
    c, s, tc = centre, scale, time_centre
    stats = np.stack(
        [
            n,
            sum_t - n * tc,
            sum_tt - 2 * tc * sum_t + n * tc**2,
            (sum_y - n * c) / s,
            (sum_ty - c * sum_t - tc * sum_y + n * tc * c) / s,
            (sum_yy - 2 * c * sum_y + n * c**2) / s**2,
        ],
        -1,
    )
    community = np.array([community_names.index(x) for x in communities], dtype=int)
    moderation = _baseline_fields(participants, baseline, covariates, subgroup, interactions)
    if "subgroup" in moderation and len(community_names) > 1:
        communities_per_subgroup = pd.Series(community).groupby(moderation["subgroup"]).nunique()
        if (communities_per_subgroup == 1).all():
            raise ValueError(
                f"Each subgroup of {subgroup} lies within one community, whose effects the model "
                "already estimates (the community effects): the two cannot be told apart."
            )
    return GrowthData(
        dimensions=dimensions,
        arm_names=arm_names,
        community_names=community_names,
        arm=np.array([arm_names.index(a) for a in arms], dtype=int),
        community=community,
        stats=stats,
        centre=centre,
        scale=scale,
        last_wave=int(last_wave),
        time_centre=time_centre,
        **moderation,
    )


def _baseline_fields(
    participant_ids: np.ndarray,
    baseline: pd.DataFrame | None,
    covariates: Sequence[str],
    subgroup: str | None,
    interactions: Sequence[str],
) -> dict:
    """The :class:`GrowthData` fields of the covariates and moderators, checked."""
    if not covariates and subgroup is None and not interactions:
        return {}
    if baseline is None:
        raise ValueError("Covariates and moderators need a baseline table of the participants.")
    # Moderators first: their columns carry the treatment interactions (the model's C_g).
    names = tuple(dict.fromkeys([*interactions, *covariates]))
    needed = {"participant", *names, *([subgroup] if subgroup is not None else [])}
    missing = needed - set(baseline.columns)
    if missing:
        raise ValueError(f"The baseline table lacks column(s) {', '.join(sorted(missing))}.")
    if baseline["participant"].duplicated().any():
        raise ValueError("The baseline table has more than one row for a participant.")
    rows = baseline.set_index("participant").reindex(participant_ids)
    fields: dict = {}
    if names:
        try:
            values = rows[list(names)].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError("Covariates and continuous moderators must be numbers.") from None
        absent = ~np.isfinite(values)
        if absent.any():
            lacking = [n for n, gap in zip(names, absent.any(0), strict=True) if gap]
            raise ValueError(
                f"{int(absent.any(1).sum())} participant(s) with scores lack a finite baseline "
                f"value of {', '.join(lacking)}."
            )
        centre = values.mean(0)
        scale = values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(names))
        constant = [n for n, spread in zip(names, scale, strict=True) if not spread > 0]
        if constant:
            raise ValueError(f"{', '.join(constant)} does not vary between participants.")
        fields.update(
            covariate_names=names,
            covariates=(values - centre) / scale,
            covariate_centre=centre,
            covariate_scale=scale,
            interactions=tuple(dict.fromkeys(interactions)),
        )
    if subgroup is not None:
        levels = rows[subgroup]
        if levels.isna().any():
            raise ValueError(
                f"{int(levels.isna().sum())} participant(s) with scores have no {subgroup}."
            )
        levels = levels.astype(str)
        subgroup_names = tuple(sorted(set(levels)))
        if len(subgroup_names) < 2:
            raise ValueError(f"The moderator {subgroup} needs at least two subgroups.")
        fields.update(
            subgroup_moderator=subgroup,
            subgroup_names=subgroup_names,
            subgroup=np.array([subgroup_names.index(level) for level in levels]),
        )
    return fields


class GroupTotals(NamedTuple):
    """Participants pooled by arm, community, subgroup and observed-wave pattern (exact, see
    module doc).

    ``design[g, d]`` = (n, Σt, Σt²) shared by the group; ``sum_u[g]`` = Σ_i (Σy, Σty) stacked
    over dimensions (length 2D); ``sum_uu[g]`` = Σ_i of its outer product; ``sum_yy[g, d]`` =
    Σ_i Σy². With covariates, ``sum_x[g]`` = Σ_i x_i, ``sum_xx[g]`` = Σ_i x_i x_iᵀ and
    ``sum_ux[g]`` = Σ_i u_i x_iᵀ (2D × Q); with a categorical moderator, ``subgroup[g]``. They
    are None otherwise (an empty leaf of the sampler's arguments).
    """

    count: np.ndarray
    arm: np.ndarray
    community: np.ndarray
    design: np.ndarray
    sum_u: np.ndarray
    sum_uu: np.ndarray
    sum_yy: np.ndarray
    subgroup: np.ndarray | None = None
    sum_x: np.ndarray | None = None
    sum_xx: np.ndarray | None = None
    sum_ux: np.ndarray | None = None


def group_totals(data: GrowthData) -> GroupTotals:
    """Pool participants whose likelihood terms share everything but their data sums."""
    P, D, _ = data.stats.shape
    design = data.stats[..., :3]
    labels = [data.arm[:, None], data.community[:, None]]
    if data.subgroup is not None:
        labels.append(data.subgroup[:, None])
    keys = np.concatenate([*labels, design.reshape(P, -1)], axis=1)
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
    covariate_sums = {}
    if data.covariates is not None:
        x = data.covariates
        for name, value in (
            ("sum_x", x),
            ("sum_xx", x[:, :, None] * x[:, None, :]),
            ("sum_ux", u[:, :, None] * x[:, None, :]),
        ):
            covariate_sums[name] = np.zeros((G, *value.shape[1:]))
            np.add.at(covariate_sums[name], group, value)
    labelled = len(labels)
    return GroupTotals(
        count=np.bincount(group, minlength=G).astype(float),
        arm=unique[:, 0].astype(int),
        community=unique[:, 1].astype(int),
        design=unique[:, labelled:].reshape(G, D, 3),
        sum_u=sum_u,
        sum_uu=sum_uu,
        sum_yy=sum_yy,
        subgroup=unique[:, 2].astype(int) if data.subgroup is not None else None,
        **covariate_sums,
    )


def marginal_loglik(
    totals: GroupTotals,
    *,
    intercept: jnp.ndarray,
    slope: jnp.ndarray,
    sigma: jnp.ndarray,
    chol_cov: jnp.ndarray,
    coefficients: jnp.ndarray | None = None,
    deviations: "Deviations | None" = None,
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
    coefficients : array (G, Q, D, 2), optional
        With covariates: each group's :math:`C_g`, the shift of a participant's intercept
        (``[..., 0]``) and slope (``[..., 1]``) on each dimension per unit of each covariate,
        so that :math:`\theta_i = \theta_g + C_g x_i` (module doc).
    deviations : Deviations, optional
        Shifts of the slopes shared by the groups of a cell, with independent normal priors,
        integrated out as well (:func:`_collapsed_deviations`); the result is then the
        likelihood with them integrated out.

    Every group's 2D × 2D algebra (:math:`B = I + L^\top A L`, its Cholesky factor and
    :math:`B^{-1}`) is written out entry by entry on vectors over the groups, so XLA fuses it
    into a few loops over the groups. Batched ``jnp.linalg`` calls go to LAPACK once per group
    (and again in the gradient), which made a group's fixed cost, not its arithmetic, the price
    of a gradient: with participants who skip a wave and come back there are hundreds of groups.
    """
    return _marginal_loglik(
        totals,
        intercept=intercept,
        slope=slope,
        sigma=sigma,
        chol_cov=chol_cov,
        coefficients=coefficients,
        deviations=deviations,
    )[0]


def _marginal_loglik(
    totals, *, intercept, slope, sigma, chol_cov, coefficients, deviations
) -> tuple:
    """:func:`marginal_loglik` and, with ``deviations``, their conditional normals (the
    means and factors of :func:`_collapsed_deviations`), else None."""
    count = totals.count
    n, sum_t, sum_tt = (totals.design[..., k] for k in range(3))
    G, D = n.shape
    K = 2 * D
    precision = 1.0 / sigma**2
    if coefficients is None:
        m = totals.sum_u.reshape(G, D, 2)
        residual_ss = (
            totals.sum_yy
            - 2 * (intercept * m[..., 0] + slope * m[..., 1])
            + count[:, None]
            * (intercept**2 * n + 2 * intercept * slope * sum_t + slope**2 * sum_tt)
        )
        # X_i θ summed into the (Σy, Σty) space: S θ with S = [[n, Σt], [Σt, Σt²]] per dimension.
        fitted = jnp.stack([n * intercept + sum_t * slope, sum_t * intercept + sum_tt * slope], -1)
        fitted = fitted.reshape(G, K)
        centred = (
            totals.sum_uu
            - totals.sum_u[:, :, None] * fitted[:, None, :]
            - fitted[:, :, None] * totals.sum_u[:, None, :]
            + count[:, None, None] * fitted[:, :, None] * fitted[:, None, :]
        )
    else:
        residual_ss, centred = _covariate_moments(totals, intercept, slope, coefficients)
    # Lᵀ A L with A = blockdiag(S_d / σ_d²) is linear in each group's (n, Σt, Σt²), and
    # Lᵀ (W Σ r rᵀ W) L (W = diag(1/σ²) per pair) linear in its Σ r rᵀ: both are one matrix
    # product of the groups' data with a matrix of the parameters alone (a GEMM, which also
    # differentiates into GEMMs; per-group contractions were most of a gradient's time).
    rows = chol_cov.reshape(D, 2, K)
    level, growth = rows[:, 0], rows[:, 1]
    design_terms = precision[:, None, None, None] * jnp.stack(
        [
            level[:, :, None] * level[:, None, :],
            level[:, :, None] * growth[:, None, :] + growth[:, :, None] * level[:, None, :],
            growth[:, :, None] * growth[:, None, :],
        ],
        1,
    )
    inner = jnp.eye(K)[:, :, None] + (
        design_terms.reshape(3 * D, K * K).T @ totals.design.reshape(G, 3 * D).T
    ).reshape(K, K, G)
    weighted = jnp.repeat(precision, 2)[:, None] * chol_cov  # W L
    congruence = (weighted[:, None, :, None] * weighted[None, :, None, :]).reshape(K * K, K * K)
    projected = (centred.reshape(G, K * K) @ congruence).T.reshape(K, K, G)  # Lᵀ W Σ r rᵀ W L
    logdet, inverse = _logdet_and_inverse(inner)
    trace = jnp.sum(inverse * projected, axis=(0, 1))
    per_group = (
        count * (n.sum(-1) * jnp.log(2 * jnp.pi) + (n * jnp.log(sigma**2)).sum(-1) + logdet)
        + (residual_ss * precision).sum(-1)
        - trace
    )
    loglik = -0.5 * jnp.sum(per_group)
    if deviations is None:
        return loglik, None
    gradient, hessian = _slope_derivatives(
        totals, intercept, slope, precision, chol_cov, inverse, coefficients
    )
    collapsed, mean, root = _collapsed_deviations(deviations, gradient, hessian)
    return loglik + collapsed, (mean, root)


class Deviations(NamedTuple):
    r"""Slope shifts :math:`\delta_{cd}` shared by the groups of cell ``cell[g]`` (cells
    ``0 … len(scale) − 1``; ``len(scale)`` for a group without one), with independent
    :math:`N(0, \text{scale}_{cd}^2)` priors: the subgroup deviations of the treated arms."""

    cell: jnp.ndarray
    scale: jnp.ndarray


def _slope_derivatives(totals, intercept, slope, precision, chol_cov, inverse, coefficients):
    r"""Each group's log-likelihood is quadratic in a shift :math:`\delta` of its slopes
    (:math:`D`): its gradient :math:`g_g` and negative Hessian :math:`H_g` at
    :math:`\delta = 0`.

    For one participant, with :math:`w_i` = the (Σy, Σty) stacked over dimensions,
    :math:`P` = the residual precisions (repeated per pair), :math:`S` = blockdiag of the
    designs and :math:`M = L B^{-1} L^\top`,
    :math:`\ell_i(\theta) = \text{const} + \theta^\top P w_i - \tfrac12 \theta^\top PS\theta
    + \tfrac12 (w_i - S\theta)^\top PMP (w_i - S\theta)`, so
    :math:`\nabla_\theta \ell_i = (I - SPM) P (w_i - S\theta_i)` and
    :math:`-\nabla^2_\theta \ell_i = PS - SPMPS`; a slope shift takes their slope entries.
    Summed over a group, :math:`\sum_i S\theta_i = S(n_g\theta_g + C_g\sum x_i)`."""
    count = totals.count
    n, sum_t, sum_tt = (totals.design[..., k] for k in range(3))
    G, D = n.shape
    K = 2 * D
    theta = jnp.stack([intercept, slope], -1)  # (G, D, 2)
    mean = count[:, None, None] * theta
    if coefficients is not None:
        mean = mean + jnp.einsum("gqdj,gq->gdj", coefficients, totals.sum_x)

    def design_times(v):  # S v for v (G, D, 2)
        return jnp.stack(
            [n * v[..., 0] + sum_t * v[..., 1], sum_t * v[..., 0] + sum_tt * v[..., 1]], -1
        )

    weighted = precision[None, :, None] * (totals.sum_u.reshape(G, D, 2) - design_times(mean))
    projected = jnp.einsum("ai,ga->ig", chol_cov, weighted.reshape(G, K))  # Lᵀ P r (K, G)
    solved = (inverse * projected[None, :, :]).sum(1)  # B⁻¹ Lᵀ P r
    back = jnp.einsum("ai,ig->ga", chol_cov, solved).reshape(G, D, 2)  # M P r
    gradient = (weighted - design_times(precision[None, :, None] * back))[..., 1]  # (G, D)
    # Lᵀ P S restricted to the slope columns: column d has p_d (Σt_d, Σt²_d) in rows 2d, 2d+1.
    rows = chol_cov.reshape(D, 2, K)
    lifted = precision[None, :, None] * (
        rows[None, :, 0, :] * sum_t[:, :, None] + rows[None, :, 1, :] * sum_tt[:, :, None]
    )  # (G, D, K)
    solved = (inverse[None, :, :, :] * lifted.transpose(1, 2, 0)[:, None, :, :]).sum(2)
    quadratic = jnp.einsum("gdi,eig->gde", lifted, solved)  # (G, D, D)
    hessian = count[:, None, None] * (
        jnp.eye(D)[None] * (precision * sum_tt)[:, :, None] - quadratic
    )
    return gradient, hessian


def _collapsed_deviations(deviations: Deviations, gradient, hessian) -> tuple:
    r"""Integrate the cells' slope shifts out of a likelihood quadratic in them.

    With :math:`g_c`, :math:`H_c` the sums of the cell's groups' :func:`_slope_derivatives`
    and :math:`\Omega_c = \operatorname{diag}(\text{scale}_c^2)`,
    :math:`\int e^{g^\top\delta - \frac12\delta^\top H\delta} N(\delta; 0, \Omega)\,d\delta
    = |A|^{-1/2} \exp(\tfrac12 \tilde g^\top A^{-1}\tilde g)` with
    :math:`A = I + \Omega^{1/2} H \Omega^{1/2}`, :math:`\tilde g = \Omega^{1/2} g`, finite as a
    scale goes to 0. Given everything else, :math:`\delta_c \sim N(\Omega^{1/2} A^{-1}\tilde g,
    \Omega^{1/2} A^{-1} \Omega^{1/2})`. Returns the log of the integral, the conditional
    means and factors :math:`F_c = \Omega_c^{1/2} R_c^{-\top}` (:math:`A_c = R_c R_c^\top`),
    so that :math:`\text{mean}_c + F_c \epsilon`, :math:`\epsilon \sim N(0, I)`, is a draw."""
    cells, D = deviations.scale.shape
    g = jax.ops.segment_sum(gradient, deviations.cell, num_segments=cells + 1)[:cells]
    h = jax.ops.segment_sum(hessian, deviations.cell, num_segments=cells + 1)[:cells]
    scale = deviations.scale
    a = jnp.eye(D) + scale[:, :, None] * h * scale[:, None, :]
    root = jnp.linalg.cholesky(a)
    g_scaled = scale * g
    half = jax.scipy.linalg.solve_triangular(root, g_scaled[..., None], lower=True)[..., 0]
    solved = jax.scipy.linalg.solve_triangular(
        jnp.swapaxes(root, -1, -2), half[..., None], lower=False
    )[..., 0]
    log_integral = 0.5 * jnp.sum(half**2) - jnp.sum(jnp.log(jnp.diagonal(root, 0, -2, -1)))
    # Ω^{1/2} R⁻ᵀ (A = RRᵀ): times a standard normal vector, the conditional's deviation.
    factor = scale[:, :, None] * jax.scipy.linalg.solve_triangular(
        jnp.swapaxes(root, -1, -2), jnp.broadcast_to(jnp.eye(D), root.shape), lower=False
    )
    return log_integral, scale * solved, factor


def _covariate_moments(totals: GroupTotals, intercept, slope, coefficients) -> tuple:
    r"""Each group's residual sum of squares per dimension, :math:`\sum_i r_i^\top r_i`, and
    :math:`\sum_i (u_i - S\theta_i)(u_i - S\theta_i)^\top` when every participant's fixed
    effects are :math:`\theta_i = \theta_g + C_g x_i`: expanded, they need only the group's
    :math:`\sum x_i`, :math:`\sum x_i x_i^\top` and :math:`\sum u_i x_i^\top`."""
    count = totals.count
    n, sum_t, sum_tt = (totals.design[..., k] for k in range(3))
    G, D = n.shape
    K = 2 * D
    theta = jnp.stack([intercept, slope], -1).reshape(G, K)
    shift = coefficients.reshape(G, -1, K).transpose(0, 2, 1)  # C_g, (G, K, Q)
    # S = blockdiag_d [[n, Σt], [Σt, Σt²]], the (Σy, Σty) of a unit intercept and slope.
    block = jnp.stack([jnp.stack([n, sum_t], -1), jnp.stack([sum_t, sum_tt], -1)], -2)
    design = jnp.einsum("gdjk,de->gdjek", block, jnp.eye(D)).reshape(G, K, K)
    mean_shift = jnp.einsum("gkq,gq->gk", shift, totals.sum_x)  # C Σx
    u_theta = totals.sum_u[:, :, None] * theta[:, None, :] + jnp.einsum(
        "gkq,glq->gkl", totals.sum_ux, shift
    )  # Σ u_i θ_iᵀ
    theta_theta = (
        count[:, None, None] * theta[:, :, None] * theta[:, None, :]
        + theta[:, :, None] * mean_shift[:, None, :]
        + mean_shift[:, :, None] * theta[:, None, :]
        + jnp.einsum("gkq,gqr,glr->gkl", shift, totals.sum_xx, shift)
    )  # Σ θ_i θ_iᵀ
    cross = jnp.einsum("gkl,gml->gkm", u_theta, design)  # Σ u_i (S θ_i)ᵀ
    centred = (
        totals.sum_uu
        - cross
        - cross.transpose(0, 2, 1)
        + jnp.einsum("gkl,glm,gnm->gkn", design, theta_theta, design)
    )

    def blocks(matrix):  # [g, j, k, d] = matrix[g, 2d + j, 2d + k]
        return jnp.diagonal(matrix.reshape(G, D, 2, D, 2), axis1=1, axis2=3)

    # Σ_i r_iᵀ r_i = Σy² − 2 Σ_i θ_iᵀ u_i + Σ_i θ_iᵀ S θ_i, per dimension.
    residual_ss = (
        totals.sum_yy
        - 2 * jnp.einsum("gjjd->gd", blocks(u_theta))
        + (blocks(design) * blocks(theta_theta)).sum((1, 2))
    )
    return residual_ss, centred


@jax.custom_vjp
def _logdet_and_inverse(inner: jnp.ndarray) -> tuple:
    """log|B| and B⁻¹ of every group's K × K matrix ``inner[:, :, g]`` (B, positive definite)."""
    return _logdet_inverse(inner)


def _logdet_inverse(inner):
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
    return logdet, inverse


def _logdet_and_inverse_forward(inner):
    logdet, inverse = _logdet_inverse(inner)
    return (logdet, inverse), inverse


def _logdet_and_inverse_backward(inverse, cotangents):
    # d log|B| = tr(B⁻¹ dB); d B⁻¹ = −B⁻¹ dB B⁻¹, so a cotangent Ḡ of B⁻¹ gives −B⁻¹ Ḡ B⁻¹
    # (B symmetric).
    d_logdet, d_inverse = cotangents
    # Products of K × K matrices per group as broadcasts XLA fuses (a batched dot_general with
    # the groups last is a loop of tiny matrix products).
    half = (inverse[:, :, None, :] * d_inverse[None, :, :, :]).sum(1)
    sandwich = (half[:, :, None, :] * inverse[None, :, :, :]).sum(1)
    return (d_logdet * inverse - sandwich,)


_logdet_and_inverse.defvjp(_logdet_and_inverse_forward, _logdet_and_inverse_backward)


def _padded(totals: GroupTotals) -> GroupTotals:
    """Totals padded with empty groups (count 0 adds exactly 0 to the likelihood) up to the next
    size on a grid of four sizes per doubling (8, 10, 12, 14, 16, 20, …), so that fits of data
    of similar size share one compiled sampler and padding adds at most a quarter."""
    G = len(totals.count)
    step = max(2, 1 << max(0, (G - 1).bit_length() - 3))
    size = max(8, -(-G // step) * step)
    return GroupTotals(
        *(
            None if x is None else np.concatenate([x, np.zeros((size - G, *x.shape[1:]), x.dtype)])
            for x in totals
        )
    )


class ModelShape(NamedTuple):
    """What fixes the model's parameters (and so its compiled sampler) beyond the dimensions:
    the numbers of arms, communities, subgroups of the categorical moderator (0: none),
    covariates and continuous moderators (the first ``interactions`` covariates)."""

    arms: int
    communities: int
    subgroups: int = 0
    covariates: int = 0
    interactions: int = 0


def model_shape(data: GrowthData) -> ModelShape:
    return ModelShape(
        arms=len(data.arm_names),
        communities=len(data.community_names),
        subgroups=len(data.subgroup_names),
        covariates=len(data.covariate_names),
        interactions=len(data.interactions),
    )


# The half-normal scale of how far a subgroup's effect on growth lies from its arm's, in
# baseline SDs per wave: effects on growth are a small fraction of a baseline SD per wave, so
# this lets subgroups differ by as much as the largest plausible effect while shrinking noise.
# A half-normal on the group-level SD, scaled to what is plausible, is the weakly informative
# choice when there are few groups (here two to five subgroups) to estimate it from (Gelman, A.
# (2006). Prior distributions for variance parameters in hierarchical models. Bayesian
# Analysis, 1, 515–534): unlike an inverse-gamma it puts no spike near zero nor a floor above.
SUBGROUP_SPREAD_PRIOR = 0.25


def _model(totals: GroupTotals, *, shape: ModelShape) -> None:
    """Priors are weakly informative on the standardised scale (baseline SD = 1, time in
    waves); each arm has its own level, and each arm within each community its own growth (cell
    means, which NUTS samples more easily than a control slope and differences); γ and the
    community effects are computed from them afterwards. With a categorical moderator the
    levels are per arm and subgroup, and growth gets each subgroup's difference from the
    reference subgroup and each treated subgroup's partially pooled deviation from its arm's
    effect; covariates and continuous moderators add the coefficients of the module doc."""
    D = totals.design.shape[1]
    n_arms, n_communities = shape.arms, shape.communities
    cells = [n_arms, shape.subgroups, D] if shape.subgroups else [n_arms, D]
    level = numpyro.sample("level", dist.Normal(0.0, 1.0).expand(cells).to_event(len(cells)))
    growth = numpyro.sample(
        "growth", dist.Normal(0.0, 1.0).expand([n_arms, n_communities, D]).to_event(3)
    )
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0).expand([D]).to_event(1))
    effect_sd = numpyro.sample("effect_sd", dist.HalfNormal(1.0).expand([2 * D]).to_event(1))
    corr = numpyro.sample("corr_chol", dist.LKJCholesky(2 * D, concentration=2.0))
    intercept = level[totals.arm]
    slope = growth[totals.arm, totals.community]
    deviations = None
    if shape.subgroups:
        intercept = level[totals.arm, totals.subgroup]
        difference, deviations = _subgroup_growth(totals, shape, D)
        slope = slope + difference[totals.subgroup]
    coefficients = None
    if shape.covariates:
        coefficients = _covariate_coefficients(shape, D)[totals.arm]
    loglik, conditional = _marginal_loglik(
        totals,
        intercept=intercept,
        slope=slope,
        sigma=sigma,
        chol_cov=effect_sd[:, None] * corr,
        coefficients=coefficients,
        deviations=deviations,
    )
    numpyro.factor("loglik", loglik)
    if conditional is not None:
        # Unused by the potential (XLA drops them there); read by _subgroup_deviation_draws.
        numpyro.deterministic("subgroup_deviation_mean", conditional[0])
        numpyro.deterministic("subgroup_deviation_factor", conditional[1])


def _subgroup_growth(totals: GroupTotals, shape: ModelShape, D: int) -> tuple:
    r"""Growth added per subgroup × dimension, the subgroup's difference from the reference
    subgroup (η, all arms), and, in a treated arm, each subgroup's deviation from the arm's
    effect, :math:`N(0, \omega_{ad}^2)`, which the likelihood integrates out
    (:class:`Deviations`; drawn afterwards from their conditional normal,
    :func:`_subgroup_deviation_draws`).

    Integrating them out is what makes this sampleable whatever the subgroups' sizes: sampled
    as ω z (non-centred), well-informed subgroups (a few hundred participants each) tie z to
    1/ω and the sampler diverged in the neck of that funnel; sampled as δ (centred),
    weakly informed subgroups make the classic funnel of δ and ω (Betancourt & Girolami
    2015). With δ integrated out, ω's posterior is its marginal one, a smooth density."""
    S, treated = shape.subgroups, shape.arms - 1
    difference = numpyro.sample(
        "subgroup_growth", dist.Normal(0.0, 1.0).expand([S - 1, D]).to_event(2)
    )
    spread = numpyro.sample(
        "subgroup_spread", dist.HalfNormal(SUBGROUP_SPREAD_PRIOR).expand([treated, D]).to_event(2)
    )
    cell = jnp.where(
        totals.arm > 0, (totals.arm - 1) * S + totals.subgroup, treated * S
    )  # (treated arm, subgroup); control's groups have none
    scale = jnp.repeat(spread, S, axis=0)  # cell (a, s) at row a·S + s
    return jnp.concatenate([jnp.zeros((1, D)), difference]), Deviations(cell, scale)


def _covariate_coefficients(shape: ModelShape, D: int) -> jnp.ndarray:
    """C per arm, (arms, Q, D, 2): the covariates' common shifts of intercept and slope (δ₀,
    δ₁), plus, on the moderators' columns of a treated arm, the interactions (λ, κ)."""
    Q, M, treated = shape.covariates, shape.interactions, shape.arms - 1
    common = jnp.stack(
        [
            numpyro.sample(f"covariate_{part}", dist.Normal(0.0, 1.0).expand([Q, D]).to_event(2))
            for part in ("level", "growth")
        ],
        -1,
    )
    if not M:
        return jnp.broadcast_to(common, (shape.arms, Q, D, 2))
    interaction = jnp.stack(
        [
            numpyro.sample(
                f"interaction_{part}", dist.Normal(0.0, 1.0).expand([treated, M, D]).to_event(3)
            )
            for part in ("level", "growth")
        ],
        -1,
    )
    per_arm = jnp.concatenate([jnp.zeros((1, M, D, 2)), interaction])
    return common[None] + jnp.pad(per_arm, ((0, 0), (0, Q - M), (0, 0), (0, 0)))


# Chains start at independent uniform draws in [-0.5, 0.5] on the unconstrained scale: still
# dispersed, as R̂ needs, but not numpyro's default [-2, 2], which puts effect SDs at e^±2 and the
# LKJ factor near degenerate correlations. From there early warm-up ran trees to NUTS's maximum
# depth (1,023 gradients a draw) for a tenth of its iterations, which multiplied the warm-up's
# gradients several times over.
INIT_RADIUS = 0.5

# NUTS trees during warm-up stop at depth 6 (63 leapfrog steps), after warm-up at numpyro's 10.
# Warm-up trajectories only feed the step-size and mass-matrix adaptation; before the first
# mass matrix is estimated (unit scales against posterior SDs a hundred times smaller) a tree
# can double to 1,023 steps, which made early warm-up several times the cost of sampling
# without adapting better (the adapted step size and the post-warm-up trees are the same with
# the cap). numpyro's ``max_tree_depth`` takes the pair for this.
TREE_DEPTH = (6, 10)


class _Sampler(NamedTuple):
    """The compiled programs of one model shape and sampler setting: ``start(keys, totals)``
    warms up and draws every chain, ``extend(states, totals)`` draws more from where they
    stopped; both return (last states, unconstrained draws by site, divergences). With a
    categorical moderator, ``conditional(z, totals)`` gives each draw's conditional normal of
    the subgroup deviations (:func:`_subgroup_deviation_draws`)."""

    start: Callable
    extend: Callable
    conditional: Callable | None = None


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
        max_tree_depth=TREE_DEPTH,
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


def _deviation_conditionals(model, z, totals) -> tuple:
    """Every draw's (chains, draws, …) conditional mean and factor of the subgroup deviations,
    (cells, D) and (cells, D, D), from the model's deterministic sites."""

    def one(point):
        values = constrain_fn(model, (totals,), {}, point, return_deterministic=True)
        return values["subgroup_deviation_mean"], values["subgroup_deviation_factor"]

    return jax.vmap(jax.vmap(one))(z)


def _subgroup_deviation_draws(sampler, z, totals, shape, rng) -> np.ndarray:
    """Draws of the subgroup deviations δ (chains, draws, treated arm, subgroup, D), one from
    each draw's conditional normal given the rest: with the sampler's draws of everything
    else, draws from their joint posterior (the collapsed sampler's deviations)."""
    mean, factor = jax.device_get(sampler.conditional(z, totals))
    noise = rng.standard_normal(mean.shape)
    deviation = mean + np.einsum("...ij,...j->...i", factor, noise)
    return deviation.reshape(*mean.shape[:2], shape.arms - 1, shape.subgroups, -1)


def _sampler(*, totals, shape, chains, warmup, draws, target_accept) -> _Sampler:
    method = compiled.chain_method(chains, cpu_fallback="vectorized")
    D = totals.design.shape[1]
    key = (D, shape, chains, warmup, draws, target_accept, method)
    if key not in _SAMPLERS:
        model = partial(_model, shape=shape)
        settings = dict(model=model, warmup=warmup, draws=draws, target_accept=target_accept)
        start = partial(_start_chain, prototype=_unconstrained_shapes(model, totals), **settings)
        extend = partial(_extend_chain, **settings)
        conditional = None
        if shape.subgroups:
            conditional = jax.jit(partial(_deviation_conditionals, model))
        if method == "parallel":
            # One chain per CPU device, in parallel threads; the data go to every device.
            _SAMPLERS[key] = _Sampler(
                jax.pmap(start, in_axes=(0, None)),
                jax.pmap(extend, in_axes=(0, None)),
                conditional,
            )
        else:
            _SAMPLERS[key] = _Sampler(
                jax.jit(jax.vmap(start, in_axes=(0, None))),
                jax.jit(jax.vmap(extend, in_axes=(0, None))),
                conditional,
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
class SubgroupEffect:
    """An arm's growth difference within one subgroup of the categorical moderator, per wave in
    the score's units: the arm's effect plus the subgroup's partially pooled deviation."""

    moderator: str
    subgroup: str
    arm: str
    dimension: str
    growth_difference_per_wave: PosteriorSummary


@dataclass(frozen=True)
class SubgroupSpread:
    """ω: the SD of the subgroups' growth differences around the arm's, per wave in the score's
    units (how much the effect varies between subgroups)."""

    moderator: str
    arm: str
    dimension: str
    sd: PosteriorSummary


@dataclass(frozen=True)
class InteractionEffect:
    """κ: the change in an arm's growth difference per SD of a continuous moderator (score
    units per wave per ``moderator_sd`` of the moderator, in its own units)."""

    moderator: str
    moderator_sd: float
    arm: str
    dimension: str
    growth_difference_per_wave_per_sd: PosteriorSummary


@dataclass(frozen=True)
class CovariateEffect:
    """A covariate's coefficients, common to the arms, per SD of the covariate (``covariate_sd``
    in its own units): the difference in score at baseline and in growth per wave."""

    covariate: str
    covariate_sd: float
    dimension: str
    baseline_per_sd: PosteriorSummary
    growth_per_wave_per_sd: PosteriorSummary


@dataclass(frozen=True)
class PrecisionGain:
    """An arm contrast's posterior SD with covariates and moderators and without them, and
    ``variance_reduction`` = 1 − adjusted² / unadjusted² (negative when adjusting cost
    precision)."""

    arm: str
    dimension: str
    sd_adjusted: float
    sd_unadjusted: float
    variance_reduction: float


@dataclass(frozen=True)
class GrowthFit:
    """The fitted model: effects, community effects, convergence gates and timing; with
    covariates and moderators, their effects too."""

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
    """Posterior draws (chains, draws, …) in score units per wave, for derived quantities such
    as the engagement-vs-flourishing divergence and a factorial design's main effects and
    interactions. Not JSON.

    - ``arm_growth`` (chains, draws, arm, dimension): each arm's growth per wave in the trial's
      population (communities and subgroups averaged with the trial's shares, covariates at
      their means), arms in ``arm_names`` order (control first). A linear contrast of arms is a
      contrast of these draws; ``arm_growth[..., a, :] − arm_growth[..., 0, :]`` is ``gamma``'s
      arm ``a − 1``.
    - ``gamma`` (chains, draws, arm − 1, dimension): each treated arm minus control.
    - ``community_gamma`` (…, arm − 1, community, dimension) and, with a categorical moderator,
      ``subgroup_gamma`` (…, arm − 1, subgroup, dimension); with continuous moderators,
      ``interaction`` (…, arm − 1, moderator, dimension), per SD of the moderator.
    """
    arm_names: tuple[str, ...] = ()
    """The arms in the order of ``draws["arm_growth"]``, control first."""
    method: str = "nuts"
    """"nuts", or "laplace" where the draws come from the Laplace approximation
    (:func:`_laplace`)."""
    dimensions: tuple[str, ...] = ()
    """The dimensions in the order of every draw's last axis."""
    subgroup_effects: tuple[SubgroupEffect, ...] = ()
    subgroup_spreads: tuple[SubgroupSpread, ...] = ()
    interactions: tuple[InteractionEffect, ...] = ()
    covariate_effects: tuple[CovariateEffect, ...] = ()
    precision: tuple[PrecisionGain, ...] = ()
    """With ``compare_unadjusted``: each arm contrast's posterior SD against the fit of the
    same data without covariates and moderators."""


def posterior_summary(draws: np.ndarray, mid: float | None = None) -> PosteriorSummary:
    """Summary of one scalar quantity's draws shaped (chains, draws), e.g. a contrast of
    ``GrowthFit.draws["arm_growth"]``; ``mid`` gives P(> mid)."""
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
        shape=model_shape(data),
        chains=chains,
        warmup=warmup,
        draws=draws,
        target_accept=target_accept,
    )
    arguments = jax.tree.map(jnp.asarray, totals)
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    shape = model_shape(data)
    rng = np.random.default_rng(seed)

    def drawn_values(z):
        values = jax.device_get(z)
        if sampler.conditional is not None:
            values["subgroup_deviation"] = _subgroup_deviation_draws(
                sampler, z, arguments, shape, rng
            )
        return values

    states, z, diverging = sampler.start(keys, arguments)
    batches, divergences = [drawn_values(z)], [np.asarray(diverging)]
    while True:
        samples = {k: np.concatenate([b[k] for b in batches], axis=1) for k in batches[0]}
        estimands = _estimands(samples, data)
        report = convergence_gates(
            _gated(estimands, data), divergences=int(sum(d.sum() for d in divergences))
        )
        drawn = samples["growth"].shape[1]
        progress(min(0.95, drawn / max_draws))
        # More draws cure low ESS or a slightly high R̂, never divergences.
        if report.passed or report.divergences or drawn + draws > max_draws:
            return estimands, report
        states, z, diverging = sampler.extend(states, arguments)
        batches.append(drawn_values(z))
        divergences.append(np.asarray(diverging))


# Above this many groups (participants pooled by arm, community, subgroup and observed waves:
# ``group_totals``) the posterior is drawn from its Laplace approximation instead of by NUTS.
# Participants who skip waves and come back make nearly every participant a group of their own
# up to hundreds of thousands of groups, where NUTS's many thousand gradients a chain take hours
# on a few cores; with that many participants the posterior is normal to within its Monte Carlo
# error (Bernstein–von Mises: its SDs shrink as 1/√participants), which a test checks against
# NUTS on the same data.
LAPLACE_GROUPS = 5_000
# The mode is accepted when the last Newton step from the optimiser's point, on the unconstrained
# scale, is below this in every coordinate: far below any posterior SD there.
LAPLACE_STEP_TOLERANCE = 1e-6
_LAPLACE_NEWTON_STEPS = 5


class _LaplacePrograms(NamedTuple):
    """Compiled for one model shape: the potential (negative log posterior on NUTS's
    unconstrained scale) with its gradient, its Hessian, and the flat vector's latent sites."""

    value_and_grad: Callable
    hessian: Callable
    size: int
    unravel: Callable


# Like _SAMPLERS: one set of programs per model shape, the data their arguments.
_LAPLACE: dict[tuple, _LaplacePrograms] = compiled.sampler_cache()


def _laplace_programs(totals: GroupTotals, shape: ModelShape) -> _LaplacePrograms:
    key = (totals.design.shape[1], shape)
    if key not in _LAPLACE:
        model = partial(_model, shape=shape)
        prototype = _unconstrained_shapes(model, totals)
        flat, unravel = ravel_pytree(
            {name: jnp.zeros(site.shape, site.dtype) for name, site in prototype.items()}
        )

        def potential(x, totals):
            return potential_energy(model, (totals,), {}, unravel(x))

        _LAPLACE[key] = _LaplacePrograms(
            jax.jit(jax.value_and_grad(potential)),
            jax.jit(jax.hessian(potential)),
            flat.size,
            unravel,
        )
    return _LAPLACE[key]


def _laplace(totals, data, *, seed, chains, draws, progress):
    """Estimands and gates from the Laplace approximation of the posterior (Tierney & Kadane
    1986): its mode on the unconstrained scale NUTS moves on (L-BFGS, then Newton steps with the
    exact Hessian), and ``chains`` × ``draws`` independent draws from the normal with the
    inverse Hessian there, arranged as chains so that the same estimands, summaries and gates
    apply (their R̂ and ESS then measure only the draws' Monte Carlo error). Not reportable when
    the mode is not found to :data:`LAPLACE_STEP_TOLERANCE` or the Hessian there is not
    positive definite."""
    from scipy.optimize import minimize

    shape = model_shape(data)
    arguments = jax.tree.map(jnp.asarray, totals)
    programs = _laplace_programs(arguments, shape)

    def value_and_grad(x):
        value, gradient = programs.value_and_grad(jnp.asarray(x), arguments)
        return float(value), np.asarray(gradient, dtype=float)

    def hessian(x):
        matrix = np.asarray(programs.hessian(jnp.asarray(x), arguments), dtype=float)
        return (matrix + matrix.T) / 2

    found = minimize(
        value_and_grad,
        np.zeros(programs.size),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 20_000, "maxcor": 30, "ftol": 0.0, "gtol": 1e-9},
    )
    progress(0.6)
    x, step, factor = found.x, np.inf, None
    for _ in range(_LAPLACE_NEWTON_STEPS):
        try:
            factor = np.linalg.cholesky(hessian(x))
        except np.linalg.LinAlgError:
            factor = None
            break
        newton = np.linalg.solve(factor.T, np.linalg.solve(factor, value_and_grad(x)[1]))
        x, step = x - newton, float(np.max(np.abs(newton)))
        if step < LAPLACE_STEP_TOLERANCE:
            try:
                factor = np.linalg.cholesky(hessian(x))
            except np.linalg.LinAlgError:
                factor = None
            break
    reasons = []
    if factor is None:
        reasons.append("the posterior's Hessian at its mode is not positive definite")
        factor = np.eye(programs.size)
    elif not step < LAPLACE_STEP_TOLERANCE:
        reasons.append(f"the posterior's mode was not found (last Newton step {step:.2g})")
    progress(0.9)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((chains * draws, programs.size))
    # x + L⁻ᵀε has covariance (LLᵀ)⁻¹ = H⁻¹.
    flat = x + np.linalg.solve(factor.T, noise.T).T
    z = jax.vmap(programs.unravel)(jnp.asarray(flat))
    z = {name: value.reshape(chains, draws, *value.shape[1:]) for name, value in z.items()}
    samples = {name: np.asarray(value) for name, value in z.items()}
    if shape.subgroups:
        sampler = _sampler(
            totals=arguments, shape=shape, chains=chains, warmup=1, draws=draws, target_accept=0.9
        )
        samples["subgroup_deviation"] = _subgroup_deviation_draws(sampler, z, arguments, shape, rng)
    estimands = _estimands(samples, data)
    report = convergence_gates(_gated(estimands, data), divergences=0)
    if reasons:
        report = replace(report, passed=False, reasons=(*reasons, *report.reasons))
    return estimands, report


def _community_growth(samples: Mapping[str, np.ndarray]) -> np.ndarray:
    """γ_c per arm contrast × community × dimension (standardised units): each arm's growth
    minus control's growth in the same community."""
    growth = np.asarray(samples["growth"])
    return growth[:, :, 1:] - growth[:, :, :1]


def _estimands(samples: Mapping[str, np.ndarray], data: GrowthData) -> dict[str, np.ndarray]:
    """Every reported quantity's draws in standardised units (names as ``GrowthFit.draws``,
    plus ``subgroup_spread``, ``covariate_level`` and ``covariate_growth``) from the
    sampler's unconstrained draws: the sites they use have real support, except ω, drawn as
    log ω. γ averages the community effects, and the subgroup effects, with the trial's shares
    (the trial population's effect)."""
    community = _community_growth(samples)
    shares = data.community_shares
    estimands = {
        "gamma": np.einsum("...acd,c->...ad", community, shares),
        "community_gamma": community,
        "arm_growth": np.einsum("...acd,c->...ad", np.asarray(samples["growth"]), shares),
    }
    if data.subgroup is not None:
        spread = np.exp(samples["subgroup_spread"])
        deviation = samples["subgroup_deviation"]
        average = np.einsum("...asd,s->...ad", deviation, data.subgroup_shares)
        difference = np.einsum(
            "...sd,s->...d", samples["subgroup_growth"], data.subgroup_shares[1:]
        )
        untreated = np.zeros_like(average[..., :1, :])
        estimands.update(
            subgroup_gamma=estimands["gamma"][..., None, :] + deviation,
            gamma=estimands["gamma"] + average,
            community_gamma=community + average[..., None, :],
            arm_growth=estimands["arm_growth"]
            + difference[..., None, :]
            + np.concatenate([untreated, average], axis=-2),
            subgroup_spread=spread,
        )
    if data.interactions:
        estimands["interaction"] = samples["interaction_growth"]
    if data.covariates is not None:
        # The sampler's levels are at the centre of time; a covariate's baseline difference is
        # its level minus its growth over the waves from baseline to there.
        estimands["covariate_growth"] = samples["covariate_growth"]
        estimands["covariate_level"] = (
            samples["covariate_level"] - data.time_centre * samples["covariate_growth"]
        )
    return estimands


def _gated(estimands: Mapping[str, np.ndarray], data: GrowthData) -> dict[str, np.ndarray]:
    """The reported estimands: every arm × dimension effect, every community effect, and the
    moderators' subgroup effects and interactions (covariates' coefficients are adjustments,
    not estimands)."""
    gated = {"gamma": estimands["gamma"]}
    if len(data.community_names) > 1:
        gated["community_gamma"] = estimands["community_gamma"]
    for name in ("subgroup_gamma", "interaction"):
        if name in estimands:
            gated[name] = estimands[name]
    return gated


def growth_fit(
    data: GrowthData,
    *,
    seed: int,
    mid_per_wave: Mapping[str, float] | None = None,
    community_weights: Mapping[str, Mapping[str, float]] | None = None,
    compare_unadjusted: bool = False,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    max_draws: int = 4000,
    target_accept: float = 0.9,
    laplace_groups: int = LAPLACE_GROUPS,
    progress: Callable[[float], None] = lambda fraction: None,
) -> GrowthFit:
    """Fit the marginalised growth model by NUTS (numpyro, float64) and gate it; above
    ``laplace_groups`` groups, by its Laplace approximation (:func:`_laplace`) instead.

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

    With covariates and moderators (``growth_data_from_frame``'s ``baseline``, ``covariates``,
    ``subgroup``, ``interactions``) the fit also reports ``subgroup_effects``,
    ``subgroup_spreads``, ``interactions`` and ``covariate_effects``; the subgroup effects and
    interactions are gated as the arm effects are. An analysis calls, for example::

        data = growth_data_from_frame(
            rows, control="control", dimensions=codes, baseline=participants,
            covariates=["baseline_loneliness"], subgroup="language",
            interactions=["baseline_loneliness"],
        )
        fit = growth_fit(data, seed=seed, mid_per_wave=mids, compare_unadjusted=True)
        fit.effects                  # γ per arm and outcome: the same estimand as unadjusted
        fit.precision                # each γ's posterior SD with and without the adjustment
        fit.subgroup_effects         # per language, arm and outcome
        fit.interactions             # treatment × loneliness per SD, per arm and outcome
        fit.draws["arm_growth"]      # per-arm growth draws, for factorial contrasts

    Parameters
    ----------
    mid_per_wave : mapping, optional
        Dimension → the growth difference per wave (score units) that reaches the minimal
        important difference by the outcome wave, i.e. MID / outcome wave; ``prob_above_mid`` is
        :math:`P(\\gamma > \\text{that})`, for the arm effects and the subgroup effects.
    community_weights : mapping, optional
        Community → {dimension: weight}, each community's own profile; a community's composite
        is :math:`\\sum_d w_d \\gamma_{cd}` on the standardised scale (baseline-SD
        units per wave) with weights renormalised over the fitted dimensions.
    compare_unadjusted : bool
        Also fit ``data.unadjusted()`` (same seed and settings; a second fit, so about twice
        the time) and report ``precision``: the variance reduction the pre-registered
        adjustment bought. Ignored for data without covariates or moderators.
    """
    if chains < 2:
        raise ValueError("Convergence gates need at least two chains.")
    if not 0 < target_accept < 1:
        raise ValueError("target_accept must lie in (0, 1).")
    started = time.perf_counter()
    comparing = compare_unadjusted and data.adjusted
    settings = dict(
        chains=chains,
        warmup=warmup,
        draws=draws,
        max_draws=max_draws,
        laplace_groups=laplace_groups,
    )
    totals = _padded(group_totals(data))
    groups = int(np.count_nonzero(totals.count))
    method = "laplace" if groups > laplace_groups else "nuts"
    options = dict(
        seed=seed,
        progress=(lambda fraction: progress(fraction / 2)) if comparing else progress,
        chains=chains,
        warmup=warmup,
        draws=draws,
        max_draws=max_draws,
    )
    try:
        with jax.enable_x64(True):
            if method == "laplace":
                estimands, report = _laplace(
                    totals,
                    data,
                    seed=seed,
                    chains=chains,
                    draws=draws,
                    progress=options["progress"],
                )
            else:
                estimands, report = _run(totals, data, target_accept=target_accept, **options)
            if report.divergences:
                target_accept = 0.99
                estimands, report = _run(totals, data, target_accept=target_accept, **options)
    finally:
        compiled.fit_finished()
    seconds = time.perf_counter() - started
    mids = mid_per_wave or {}
    scale = data.scale
    gamma = estimands["gamma"] * scale
    effects = []
    for a, arm in enumerate(data.arm_names[1:]):
        for d, dimension in enumerate(data.dimensions):
            effects.append(
                ArmDimensionEffect(
                    arm=arm,
                    dimension=dimension,
                    growth_difference_per_wave=posterior_summary(
                        gamma[:, :, a, d], mids.get(dimension)
                    ),
                )
            )
    community = estimands["community_gamma"]
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
                        dimension: posterior_summary(standardised[..., d] * scale[d])
                        for d, dimension in enumerate(data.dimensions)
                    },
                    composite=None
                    if weights is None
                    else posterior_summary(standardised @ np.array(list(weights.values()))),
                    weights=weights or {},
                )
            )
    precision = ()
    if comparing:
        plain = growth_fit(
            data.unadjusted(),
            seed=seed,
            mid_per_wave=mid_per_wave,
            target_accept=target_accept,
            progress=lambda fraction: progress(0.5 + fraction / 2),
            **settings,
        )
        precision = tuple(
            _precision_gain(adjusted, unadjusted)
            for adjusted, unadjusted in zip(effects, plain.effects, strict=True)
        )
    draws_out = {"gamma": gamma, "community_gamma": community * scale}
    draws_out.update(
        (name, estimands[name] * scale)
        for name in ("arm_growth", "subgroup_gamma", "interaction")
        if name in estimands
    )
    return GrowthFit(
        effects=tuple(effects),
        community_effects=tuple(community_effects),
        gates=report,
        reportable=report.passed,
        participants=data.participants,
        observations=data.observations,
        groups=groups,
        seconds=seconds,
        method=method,
        target_accept=target_accept,
        draws=draws_out,
        arm_names=data.arm_names,
        dimensions=data.dimensions,
        **_moderation(estimands, data, mids),
        precision=precision,
    )


def _moderation(estimands: Mapping[str, np.ndarray], data: GrowthData, mids) -> dict:
    """The covariates' and moderators' summaries, in the score's units."""
    scale, arms, dimensions = data.scale, data.arm_names[1:], data.dimensions
    fields: dict = {}
    if data.subgroup is not None:
        subgroup = estimands["subgroup_gamma"] * scale
        spread = estimands["subgroup_spread"] * scale
        fields["subgroup_effects"] = tuple(
            SubgroupEffect(
                moderator=data.subgroup_moderator,
                subgroup=name,
                arm=arm,
                dimension=dimension,
                growth_difference_per_wave=posterior_summary(
                    subgroup[:, :, a, s, d], mids.get(dimension)
                ),
            )
            for a, arm in enumerate(arms)
            for s, name in enumerate(data.subgroup_names)
            for d, dimension in enumerate(dimensions)
        )
        fields["subgroup_spreads"] = tuple(
            SubgroupSpread(
                moderator=data.subgroup_moderator,
                arm=arm,
                dimension=dimension,
                sd=posterior_summary(spread[:, :, a, d]),
            )
            for a, arm in enumerate(arms)
            for d, dimension in enumerate(dimensions)
        )
    if data.interactions:
        interaction = estimands["interaction"] * scale
        fields["interactions"] = tuple(
            InteractionEffect(
                moderator=moderator,
                moderator_sd=float(data.covariate_scale[m]),
                arm=arm,
                dimension=dimension,
                growth_difference_per_wave_per_sd=posterior_summary(interaction[:, :, a, m, d]),
            )
            for a, arm in enumerate(arms)
            for m, moderator in enumerate(data.interactions)
            for d, dimension in enumerate(dimensions)
        )
    if data.covariates is not None:
        level = estimands["covariate_level"] * scale
        growth = estimands["covariate_growth"] * scale
        fields["covariate_effects"] = tuple(
            CovariateEffect(
                covariate=covariate,
                covariate_sd=float(data.covariate_scale[q]),
                dimension=dimension,
                baseline_per_sd=posterior_summary(level[:, :, q, d]),
                growth_per_wave_per_sd=posterior_summary(growth[:, :, q, d]),
            )
            for q, covariate in enumerate(data.covariate_names)
            for d, dimension in enumerate(dimensions)
        )
    return fields


def _precision_gain(adjusted: ArmDimensionEffect, unadjusted: ArmDimensionEffect) -> PrecisionGain:
    sd = adjusted.growth_difference_per_wave.sd
    sd_unadjusted = unadjusted.growth_difference_per_wave.sd
    return PrecisionGain(
        arm=adjusted.arm,
        dimension=adjusted.dimension,
        sd_adjusted=sd,
        sd_unadjusted=sd_unadjusted,
        variance_reduction=1 - sd**2 / sd_unadjusted**2,
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
