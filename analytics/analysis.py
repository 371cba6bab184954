"""What an analysis run computes: the frozen plan's models on the stored scores.

A confirmatory run analyses the pre-registered outcomes, for the pre-registered contrast, with the
pre-registered models, up to the pre-registered outcome wave. Every other estimate it reports
(other outcomes, other arms, sensitivity models) is labelled exploratory, and so is everything in
an exploratory run. What it finds is a typed document, :class:`analytics.results.Results` (with
:class:`~analytics.results.Diagnostics`), stored as JSON in ``AnalysisRun.results``; dashboards
and ``analyze_trial --json`` read it.
"""

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analytics.item_rows import trial_item_chunks
from analytics.results import (
    AlphaFigure,
    BayesGrowth,
    BayesianEstimate,
    CommunityEffect,
    Consort,
    CovariateAdjustment,
    DesignEffect,
    Diagnostics,
    Divergence,
    Estimate,
    FactorialCells,
    FrequentistEstimate,
    Gates,
    Interim,
    InvarianceFigure,
    JointTest,
    OmegaFigure,
    OrdinalEstimate,
    OrdinalRun,
    Outcome,
    PosteriorDensity,
    Reliability,
    Results,
    SampleRatioMismatch,
    ScorePsychometrics,
    Section,
    TrajectoryPoint,
    WaveAttrition,
)
from analytics.selectors import (
    EngagementRelease,
    GrowthStatistics,
    ScoreKind,
    allocated_per_arm,
    analysed_score_rows,
    ancova_rows,
    baseline_variables,
    consort_counts,
    growth_statistics,
    occasion_of,
    outcomes_statistics,
    responded_per_wave,
    score_kinds,
    score_trajectories,
    scores_digest,
    telemetry_engagement_releases,
)
from stats.ancova import ancova
from stats.attrition import differential_attrition
from stats.bayes_growth import GrowthFit, growth_data_from_statistics, growth_fit
from stats.divergence import (
    engagement_flourishing_divergence,
    gaussian_draws,
    released_mean_difference,
)
from stats.growth import (
    ArmContrast,
    CovariateGrowth,
    gee_growth_from_statistics,
    mixedlm_growth_adjusted,
    mixedlm_growth_from_statistics,
    variable_columns,
)
from stats.ordinal import ordinal_data_from_chunks, ordinal_growth_fit
from stats.sequential import spending_boundaries
from stats.srm import sample_ratio_mismatch
from surveys.models import Instrument
from surveys.reports import trial_survey_report
from trials.models import FlourishingProfile, Trial
from trials.plan import Plan, WeightedContrast

GROWTH = "growth_difference_per_wave"
FINAL_WAVE = "final_wave_difference"
# The ordinal model's growth difference is in baseline latent-SD units per wave.
LATENT_GROWTH = "latent_growth_difference_per_wave"
# The models a plan on this platform pre-registers; GEE and the ordinal model are sensitivity
# analyses and always exploratory.
PLANNED_METHODS = ("mixedlm", "ancova", "bayes_growth")
MULTIPLICITY_METHODS = {"holm": "holm", "bh": "fdr_bh"}
# A lower score on this outcome means more reliance on the assistant: the survey's engagement
# signal for the divergence guardrail, beside DP telemetry releases where they exist.
RELIANCE_OUTCOME = "ai_independence"
# Bins of the stored posterior histograms: enough for a smooth curve on a dashboard, small
# enough that a run's JSON stays a few kilobytes per arm and outcome.
DENSITY_BINS = 60


def planned_outcomes(
    plan: Plan, scores: list[ScoreKind], last_wave: int | None, confirmatory: bool
) -> list[Outcome]:
    """The plan's outcomes (the named score, or each score of the named instrument on the named
    dimension), then every other score in the data (``scores``, by code) as an exploratory
    outcome at the last wave with data."""
    outcomes: list[Outcome] = []
    for role, entry in plan.outcomes:
        matching = [
            score
            for score in scores
            if score.instrument == entry.instrument
            and score.dimension == entry.dimension
            and entry.score in (None, score.code)
        ]
        if not matching:
            raise ValueError(
                f"No scores of {entry.instrument} on {entry.dimension} for the {role} outcome."
            )
        outcomes += [
            Outcome(
                code=code,
                instrument=entry.instrument,
                dimension=entry.dimension,
                wave=entry.wave,
                role=role,
                planned=True,
            )
            for code in sorted(score.code for score in matching)
            if code not in {o.code for o in outcomes}
        ]
    named = {o.code for o in outcomes}
    for score in sorted(scores, key=lambda score: score.code):
        if score.code not in named and last_wave is not None:
            named.add(score.code)
            outcomes.append(
                Outcome(
                    code=score.code,
                    instrument=score.instrument,
                    dimension=score.dimension,
                    wave=last_wave,
                    role="exploratory",
                    planned=False,
                )
            )
    if not confirmatory:
        outcomes = [o.model_copy(update={"planned": False}) for o in outcomes]
    return outcomes


def analyse(
    *,
    trial: Trial,
    plan: Plan | None,
    confirmatory: bool,
    seed: int,
    progress: Callable[[float], None],
    ordinal: bool | None = None,
) -> tuple[dict, dict, str]:
    """Results, diagnostics (as the JSON of :mod:`analytics.results`'s documents) and the data
    snapshot's SHA-256 for one run.

    ``ordinal`` adds the item-level graded-response model as a sensitivity analysis; by default
    it runs where JAX sees a GPU, since on a CPU it takes minutes for a mid-sized trial.
    """
    snapshot = scores_digest(trial)
    if snapshot is None:
        raise ValueError("The trial has no scores yet.")
    arms = list(trial.arms.order_by("-is_control", "slug").values_list("slug", flat=True))
    plan = plan or Plan()  # an exploratory run of a trial with no frozen plan
    control = plan.arms_compared[0] if plan.arms_compared else arms[0]
    planned_arm = plan.planned_arm
    outcomes = planned_outcomes(plan, *score_kinds(trial), confirmatory)
    alpha = plan.alpha
    mids = plan.minimal_important_differences

    def is_confirmatory(outcome: Outcome, arm: str, method: str) -> bool:
        return outcome.planned and arm == planned_arm and method in PLANNED_METHODS

    estimates: list[Estimate] = []
    design = _DesignFindings([], [], [])
    steps = len(outcomes) + 2
    for position, outcome in enumerate(outcomes):
        growth = growth_statistics(trial, outcome.code, last_wave=outcome.wave)
        contrasts, found = _mixedlm(trial, plan, outcome, growth, control, alpha)
        estimates += _frequentist(
            trial, outcome, growth, control, alpha, contrasts, is_confirmatory
        )
        design = design.extended(found)
        progress(0.4 * (position + 1) / steps)
    adjusted = _adjust([*estimates, *design.effects], plan.multiplicity, alpha)
    estimates = [e for e in adjusted if not isinstance(e, DesignEffect)]
    design = design._replace(effects=[e for e in adjusted if isinstance(e, DesignEffect)])

    bayes_outcomes = [o for o in outcomes if o.planned] or outcomes
    horizon = max(o.wave for o in bayes_outcomes)
    # Each participant's six statistics per outcome, summed by PostgreSQL, with every
    # outcome's baseline moments: the model's input without the score rows.
    summed = outcomes_statistics(trial, tuple(o.code for o in bayes_outcomes), last_wave=horizon)
    moderation = _bayes_moderation(trial, plan, summed.participants)
    data = growth_data_from_statistics(
        participants=summed.participants,
        arms=summed.arms,
        communities=summed.communities,
        statistics=summed.statistics,
        baseline_moments=summed.baseline_moments,
        control=control,
        dimensions=summed.codes,
        last_wave=summed.last_occasion,
        **moderation,
    )
    fit = growth_fit(
        data,
        seed=seed,
        mid_per_wave={
            o.code: mids[o.dimension] / occasion_of(trial, o.instrument, o.wave)
            for o in bayes_outcomes
            if o.dimension in mids
        },
        community_weights=_community_weights(trial, bayes_outcomes),
        compare_unadjusted=bool(moderation),
        progress=lambda fraction: progress(0.4 + 0.55 * fraction),
    )
    estimates += _bayes_estimates(fit, bayes_outcomes, mids, is_confirmatory)
    design = _DesignFindings(
        design.effects
        + _bayes_design_effects(fit, bayes_outcomes, plan, control)
        + _bayes_moderator_effects(fit, bayes_outcomes),
        design.joint_tests,
        design.adjustments + _bayes_adjustments(fit, plan),
    )
    ordinal_runs: list[OrdinalRun] = []
    if ordinal if ordinal is not None else jax.default_backend() == "gpu":
        for outcome in bayes_outcomes:
            result = _ordinal(trial, outcome, control, seed, horizon)
            ordinal_runs.append(_section(OrdinalRun, {"outcome": outcome.code, **_plain(result)}))
            estimates += [
                OrdinalEstimate(
                    **_identity(outcome, effect.arm),
                    method="bayes_ordinal",
                    estimand=LATENT_GROWTH,
                    estimate=effect.mean,
                    std_error=effect.sd,
                    ci_low=effect.ci_low,
                    ci_high=effect.ci_high,
                    prob_benefit=effect.prob_positive,
                    n_participants=result.participants,
                    n_observations=result.observations,
                    reportable=result.reportable,
                    not_reportable_because=list(result.gates.reasons),
                    confirmatory=False,
                )
                for effect in result.effects
            ]

    allocated = allocated_per_arm(trial)
    responded = responded_per_wave(trial)
    ratio = plan.randomisation.ratio_for(list(allocated))
    randomised = {arm: n for arm, n in allocated.items() if n}  # attrition needs people
    results = Results(
        kind="confirmatory" if confirmatory else "exploratory",
        control=control,
        planned_contrast=None if planned_arm is None else f"{planned_arm} − {control}",
        alpha=alpha,
        multiplicity=plan.multiplicity,
        outcomes=outcomes,
        estimates=estimates,
        bayes_growth=_bayes_section(fit, [o.code for o in bayes_outcomes]),
        trajectories=_trajectories(trial),
        srm=_section(SampleRatioMismatch, sample_ratio_mismatch(allocated, ratio)),
        attrition=[
            _section(WaveAttrition, w)
            for w in differential_attrition(
                randomised,
                {w: {a: r.get(a, 0) for a in randomised} for w, r in responded.items()},
                alpha=alpha,
            )
        ],
        consort=Consort.model_validate(consort_counts(trial)),
        interim=_interim(plan, estimates, allocated, responded),
        divergence=_divergence(
            fit, bayes_outcomes, control, telemetry_engagement_releases(trial), seed
        ),
        ordinal=ordinal_runs,
        psychometrics=_psychometrics(trial),
        factorial=None
        if plan.factorial is None
        else FactorialCells(
            factors={f.name: f.levels for f in plan.factorial.factors},
            cells=plan.factorial.cells,
        ),
        design_effects=design.effects,
        joint_tests=design.joint_tests,
        covariate_adjustment=design.adjustments,
    )
    diagnostics = Diagnostics(
        gates=_section(Gates, fit.gates),
        reportable=fit.reportable,
        bayes_seconds=fit.seconds,
        bayes_groups=fit.groups,
        bayes_method=fit.method,
        target_accept=fit.target_accept,
        rows=analysed_score_rows(trial),
    )
    progress(1.0)
    return results.model_dump(mode="json"), diagnostics.model_dump(mode="json"), snapshot


def _section[S: Section](model: type[S], value: object) -> S:
    """A statistics result (a frozen dataclass, or its fields) as its section of the document:
    read by attribute, its tuples taken as the document's lists."""
    return model.model_validate(value, from_attributes=True, strict=False)


def _plain(value: object) -> object:
    """A statistics result as JSON-ready data: a dataclass as its fields without the arrays
    (draws and loadings stay out of the document), mapping keys as text, NaN as null
    (PostgreSQL's jsonb has no NaN; an undefined statistic, e.g. a p-value at 0 df)."""
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {
            str(k): _plain(v)
            for k, v in value.items()
            if not isinstance(v, np.ndarray | pd.DataFrame | pd.Series)
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _identity(outcome: Outcome, arm: str) -> dict[str, str | int]:
    """The fields that say what an estimate is about: its outcome and the arm compared."""
    return {
        "outcome": outcome.code,
        "instrument": outcome.instrument,
        "dimension": outcome.dimension,
        "role": outcome.role,
        "wave": outcome.wave,
        "arm": arm,
    }


def _contrast(outcome, contrast: ArmContrast, method, is_confirmatory) -> FrequentistEstimate:
    return FrequentistEstimate(
        **_identity(outcome, contrast.arm),
        method=method,
        estimand=GROWTH,
        estimate=contrast.estimate,
        std_error=contrast.std_error,
        ci_low=contrast.ci_low,
        ci_high=contrast.ci_high,
        p_value=contrast.p_value,
        p_adjusted=contrast.p_value,  # until the plan's correction (_adjust)
        df=contrast.df,
        n_participants=contrast.n_participants,
        n_observations=contrast.n_observations,
        reportable=contrast.converged,
        not_reportable_because=[] if contrast.converged else ["the fit did not converge"],
        warnings=list(contrast.warnings),
        confirmatory=is_confirmatory(outcome, contrast.arm, method),
    )


class _DesignFindings(NamedTuple):
    """What the plan's design, covariates and moderators add to a run's results."""

    effects: list[DesignEffect]
    joint_tests: list[JointTest]
    adjustments: list[CovariateAdjustment]

    def extended(self, other: "_DesignFindings") -> "_DesignFindings":
        return _DesignFindings(*(mine + theirs for mine, theirs in zip(self, other, strict=True)))


def _mixedlm(
    trial: Trial,
    plan: Plan,
    outcome: Outcome,
    growth: GrowthStatistics,
    control: str,
    alpha: float,
) -> tuple[tuple[ArmContrast, ...], _DesignFindings]:
    """The growth model by exact REML of the outcome up to its wave, from each participant's six
    statistics as PostgreSQL aggregates them (analytics.selectors.growth_statistics): the fit
    ``mixedlm_growth`` makes of the same score rows, without them leaving the database.

    With the plan's baseline covariates the arms' contrasts come from the model adjusted for
    them (and the unadjusted model says what that bought); the plan's factorial contrasts are
    combinations of the same model's arm growths, and its moderators' effects come from the
    model with the moderators and their products with the arms as well."""
    arm_names, arm = _arm_codes(growth, control)
    findings = _DesignFindings([], [], [])
    if not (plan.covariates or plan.moderators or plan.factorial):
        return (
            mixedlm_growth_from_statistics(arm, growth.statistics, arm_names, alpha=alpha),
            findings,
        )
    variables = baseline_variables(trial, [*plan.covariates, *plan.moderators], growth.participants)
    covariates = {v.name: variables[v.name] for v in plan.covariates}
    model = mixedlm_growth_adjusted(
        arm, growth.statistics, arm_names, covariates=covariates, alpha=alpha
    )
    if plan.covariates:
        unadjusted = mixedlm_growth_from_statistics(arm, growth.statistics, arm_names, alpha=alpha)
        findings.adjustments.extend(
            CovariateAdjustment(
                outcome=outcome.code,
                arm=plain.arm,
                covariates=list(covariates),
                std_error_adjusted=adjusted.std_error,
                std_error_unadjusted=plain.std_error,
                variance_ratio=(adjusted.std_error / plain.std_error) ** 2,
            )
            for plain, adjusted in zip(unadjusted, model.arm_contrasts, strict=True)
        )
    identity = {k: v for k, v in _identity(outcome, "").items() if k != "arm"}
    size = {"n_participants": model.fit.participants, "n_observations": model.fit.observations}
    if plan.factorial is not None:
        for contrast in plan.factorial.contrasts:
            rows = plan.factorial.weighted_contrasts(contrast)
            for row in rows:
                findings.effects.append(
                    _frequentist_effect(
                        model.contrast(row.weights, row.label),
                        model,
                        identity | size,
                        kind=contrast.kind,
                        contrast=contrast.title,
                        confirmatory=outcome.planned,
                    )
                )
            if len(rows) > 1:
                test = model.joint_test([row.weights for row in rows], contrast.title)
                findings.joint_tests.append(
                    JointTest(
                        outcome=outcome.code,
                        contrast=contrast.title,
                        f_statistic=test.f_statistic,
                        df_numerator=test.df_numerator,
                        df_denominator=test.df_denominator,
                        p_value=test.p_value,
                        confirmatory=outcome.planned,
                    )
                )
    if plan.moderators:
        moderators = {v.name: variables[v.name] for v in plan.moderators}
        moderated = mixedlm_growth_adjusted(
            arm,
            growth.statistics,
            arm_names,
            covariates={k: v for k, v in covariates.items() if k not in moderators},
            moderators=moderators,
            alpha=alpha,
        )
        moderated_size = {
            "n_participants": moderated.fit.participants,
            "n_observations": moderated.fit.observations,
        }
        for effect in moderated.moderator_effects:
            column = effect.label.split(" × ", 1)[1]
            name = next(m for m in moderators if column == m or column.startswith(f"{m}="))
            findings.effects.append(
                _frequentist_effect(
                    effect,
                    moderated,
                    identity | moderated_size,
                    kind="moderator",
                    contrast=name,
                    confirmatory=outcome.planned,
                )
            )
    return model.arm_contrasts, findings


def _frequentist_effect(
    effect, model: CovariateGrowth, identity: dict, *, kind: str, contrast: str, confirmatory: bool
) -> DesignEffect:
    return DesignEffect(
        **identity,
        kind=kind,
        contrast=contrast,
        label=effect.label,
        method="mixedlm",
        estimate=effect.estimate,
        std_error=effect.std_error,
        ci_low=effect.ci_low,
        ci_high=effect.ci_high,
        df=effect.df,
        p_value=effect.p_value,
        p_adjusted=effect.p_value,  # until the plan's correction (_adjust)
        reportable=model.fit.converged,
        warnings=list(model.warnings),
        confirmatory=confirmatory,
    )


def _arm_codes(growth: GrowthStatistics, control: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The arms (the control first, then the others sorted) and each participant's code."""
    arm_names = (control, *sorted(set(growth.arms) - {control}))
    codes = {name: code for code, name in enumerate(arm_names)}
    return arm_names, np.array([codes[name] for name in growth.arms], dtype=int)


def _frequentist(
    trial: Trial,
    outcome: Outcome,
    growth: GrowthStatistics,
    control: str,
    alpha: float,
    mixedlm: tuple[ArmContrast, ...],
    is_confirmatory,
) -> list[FrequentistEstimate]:
    """The mixed model's contrasts, GEE's from the same per-participant statistics, and the
    ANCOVA of the outcome wave on baseline from one row per participant
    (analytics.selectors.ancova_rows)."""
    arm_names, arm = _arm_codes(growth, control)
    estimates = []
    for method, contrasts in (
        ("mixedlm", mixedlm),
        ("gee", gee_growth_from_statistics(arm, growth.statistics, arm_names, alpha=alpha)),
    ):
        for contrast in contrasts:
            estimates.append(_contrast(outcome, contrast, method, is_confirmatory))
    complete = ancova_rows(trial, outcome.code, outcome.wave)
    for other in sorted(set(complete.arms) - {control}):
        pair = np.isin(complete.arms, [control, other])
        effect = ancova(
            complete.outcome[pair],
            complete.baseline[pair],
            (complete.arms[pair] == other).astype(int),
            alpha=alpha,
        )
        estimates.append(
            FrequentistEstimate(
                **_identity(outcome, other),
                method="ancova",
                estimand=FINAL_WAVE,
                estimate=effect.estimate,
                std_error=effect.std_error,
                ci_low=effect.ci_low,
                ci_high=effect.ci_high,
                p_value=effect.p_value,
                p_adjusted=effect.p_value,
                n_participants=effect.n,
                n_observations=effect.n,
                reportable=True,
                confirmatory=is_confirmatory(outcome, other, "ancova"),
            )
        )
    return estimates


def _adjust(
    estimates: list[Estimate | DesignEffect], correction: str, alpha: float
) -> list[Estimate | DesignEffect]:
    """The pre-registered correction across the confirmatory family of each frequentist model
    (statsmodels' implementation): the planned arm contrasts of the planned outcomes and, for
    the mixed model, the plan's factorial contrasts and moderator effects on them; other
    estimates keep their raw p-value."""
    if correction == "none":
        return estimates
    adjusted = list(estimates)
    for method in ("mixedlm", "ancova"):
        family = [i for i, e in enumerate(adjusted) if e.method == method and e.confirmatory]
        if len(family) > 1:
            p_values = multipletests(
                [adjusted[i].p_value for i in family],
                alpha=alpha,
                method=MULTIPLICITY_METHODS[correction],
            )[1]
            for i, p in zip(family, p_values, strict=True):
                adjusted[i] = adjusted[i].model_copy(update={"p_adjusted": float(p)})
    return adjusted


def _community_weights(trial: Trial, outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    """Each community's current profile, as weights over the analysed scores: a dimension's
    weight is shared equally by the scores that measure it."""
    per_dimension: dict[str, int] = {}
    for outcome in outcomes:
        per_dimension[outcome.dimension] = per_dimension.get(outcome.dimension, 0) + 1
    weights = {}
    communities = set(trial.participants.values_list("community__slug", flat=True)) - {None}
    for profile in FlourishingProfile.objects.filter(community__slug__in=communities).order_by(
        "community__slug", "version"
    ):  # the latest version wins
        weights[profile.community.slug] = {
            o.code: float(profile.weights.get(o.dimension, 0)) / per_dimension[o.dimension]
            for o in outcomes
        }
    return weights


def _bayes_estimates(fit: GrowthFit, outcomes, mids, is_confirmatory) -> list[BayesianEstimate]:
    by_code = {o.code: o for o in outcomes}
    rows = []
    for effect in fit.effects:
        outcome = by_code[effect.dimension]
        summary = effect.growth_difference_per_wave
        rows.append(
            BayesianEstimate(
                **_identity(outcome, effect.arm),
                method="bayes_growth",
                estimand=GROWTH,
                estimate=summary.mean,
                std_error=summary.sd,
                ci_low=summary.ci_low,
                ci_high=summary.ci_high,
                prob_benefit=summary.prob_benefit,
                prob_above_mid=summary.prob_above_mid,
                mid=mids.get(outcome.dimension),
                mcse_mean=summary.mcse_mean,
                mcse_prob_benefit=summary.mcse_prob_benefit,
                n_participants=fit.participants,
                n_observations=fit.observations,
                reportable=fit.reportable,
                not_reportable_because=list(fit.gates.reasons),
                confirmatory=is_confirmatory(outcome, effect.arm, "bayes_growth"),
            )
        )
    return rows


def _bayes_design_effects(
    fit: GrowthFit, outcomes: list[Outcome], plan: Plan, control: str
) -> list[DesignEffect]:
    """The plan's factorial contrasts on the Bayesian growth model: the same weights over the
    arms' growths applied to each posterior draw of γ (each arm's growth minus the control's;
    the weights of a contrast sum to zero, so the control's own growth cancels)."""
    if plan.factorial is None:
        return []
    gamma = fit.draws["gamma"]
    arms = list(dict.fromkeys(e.arm for e in fit.effects))
    effects = []
    for d, outcome in enumerate(outcomes):
        identity = {k: v for k, v in _identity(outcome, "").items() if k != "arm"}
        for contrast in plan.factorial.contrasts:
            for row in plan.factorial.weighted_contrasts(contrast):
                draws = _weighted_draws(gamma[..., d], arms, control, row)
                low, high = np.quantile(draws, [0.025, 0.975])
                effects.append(
                    DesignEffect(
                        **identity,
                        kind=contrast.kind,
                        contrast=contrast.title,
                        label=row.label,
                        method="bayes_growth",
                        estimate=float(draws.mean()),
                        std_error=float(draws.std(ddof=1)),
                        ci_low=float(low),
                        ci_high=float(high),
                        prob_benefit=float(np.mean(draws > 0)),
                        n_participants=fit.participants,
                        n_observations=fit.observations,
                        reportable=fit.reportable,
                        confirmatory=outcome.planned,
                    )
                )
    return effects


def _bayes_moderation(trial: Trial, plan: Plan, participants: np.ndarray) -> dict:
    """The Bayesian growth model's baseline frame and roles for the plan's covariates and
    moderators (``stats.bayes_growth.growth_data_from_statistics``), coded as for the mixed model
    (``stats.growth.variable_columns``: centred, a missing number at the mean with an
    indicator): covariate columns; a numeric moderator's column as an interaction (its missing
    indicator a covariate); the language as the partially pooled subgroup. A community
    moderator is the model's own community effects already, so it adds nothing here."""
    if not (plan.covariates or plan.moderators):
        return {}
    values = baseline_variables(trial, [*plan.covariates, *plan.moderators], participants)
    baseline = {"participant": participants}
    covariates, interactions, subgroup = [], [], None
    for variable in plan.covariates:
        for column, centred in variable_columns(variable.name, values[variable.name]):
            baseline[column] = centred
            covariates.append(column)
    for variable in plan.moderators:
        if variable.kind == "language":
            baseline[variable.name] = values[variable.name]
            subgroup = variable.name
        elif variable.kind == "baseline_score":
            for column, centred in variable_columns(variable.name, values[variable.name]):
                baseline[column] = centred
                (covariates if column.endswith(" missing") else interactions).append(column)
    covariates = [c for c in covariates if c not in interactions]
    return {
        "baseline": pd.DataFrame(baseline),
        "covariates": covariates,
        "subgroup": subgroup,
        "interactions": interactions,
    }


def _bayes_moderator_effects(fit: GrowthFit, outcomes: list[Outcome]) -> list[DesignEffect]:
    """The Bayesian model's moderator effects: per SD of a numeric moderator, and each arm's
    growth difference within each subgroup (language), partially pooled."""
    by_code = {o.code: o for o in outcomes}
    rows = [
        (
            e.dimension,
            e.moderator,
            f"{e.arm} × {e.moderator} (per SD, {e.moderator_sd:.3g})",
            e.growth_difference_per_wave_per_sd,
        )
        for e in fit.interactions
    ] + [
        (
            e.dimension,
            e.moderator,
            f"{e.arm} within {e.moderator}={e.subgroup}",
            e.growth_difference_per_wave,
        )
        for e in fit.subgroup_effects
    ]
    effects = []
    for dimension, moderator, label, summary in rows:
        outcome = by_code[dimension]
        effects.append(
            DesignEffect(
                **{k: v for k, v in _identity(outcome, "").items() if k != "arm"},
                kind="moderator",
                contrast=moderator,
                label=label,
                method="bayes_growth",
                estimate=summary.mean,
                std_error=summary.sd,
                ci_low=summary.ci_low,
                ci_high=summary.ci_high,
                prob_benefit=summary.prob_benefit,
                n_participants=fit.participants,
                n_observations=fit.observations,
                reportable=fit.reportable,
                confirmatory=outcome.planned,
            )
        )
    return effects


def _bayes_adjustments(fit: GrowthFit, plan: Plan) -> list[CovariateAdjustment]:
    """The Bayesian contrasts' posterior SDs with the plan's covariates and moderators and
    without them."""
    names = [v.name for v in [*plan.covariates, *plan.moderators]]
    return [
        CovariateAdjustment(
            outcome=gain.dimension,
            arm=gain.arm,
            method="bayes_growth",
            covariates=names,
            std_error_adjusted=gain.sd_adjusted,
            std_error_unadjusted=gain.sd_unadjusted,
            variance_ratio=(gain.sd_adjusted / gain.sd_unadjusted) ** 2,
        )
        for gain in fit.precision
    ]


def _weighted_draws(
    gamma: np.ndarray, arms: list[str], control: str, row: WeightedContrast
) -> np.ndarray:
    """Σ_a w_a γ_a over every draw (chains × draws × arms in, a flat array out)."""
    missing = set(row.weights) - set(arms) - {control}
    if missing:
        raise ValueError(
            f"The Bayesian growth model has no arm {', '.join(sorted(missing))} for {row.label}."
        )
    weights = np.array([row.weights.get(arm, 0.0) for arm in arms])
    return (gamma @ weights).ravel()


def _bayes_section(fit: GrowthFit, codes: list[str]) -> BayesGrowth:
    return BayesGrowth(
        reportable=fit.reportable,
        not_reportable_because=list(fit.gates.reasons),
        community_effects=[_section(CommunityEffect, c) for c in fit.community_effects],
        participants=fit.participants,
        observations=fit.observations,
        posterior_densities=_posterior_densities(fit, codes),
    )


def _posterior_densities(fit: GrowthFit, codes: list[str]) -> list[PosteriorDensity]:
    """Per arm and outcome, a histogram of γ's draws (score points per wave) normalised to a
    density: dashboards draw the posterior from it without the draws themselves."""
    gamma = fit.draws["gamma"]
    arms = list(dict.fromkeys(e.arm for e in fit.effects))
    densities = []
    for a, arm in enumerate(arms):
        for d, code in enumerate(codes):
            density, edges = np.histogram(
                gamma[:, :, a, d].ravel(), bins=DENSITY_BINS, density=True
            )
            densities.append(
                PosteriorDensity(
                    arm=arm,
                    outcome=code,
                    x=((edges[:-1] + edges[1:]) / 2).tolist(),
                    density=density.tolist(),
                )
            )
    return densities


def _trajectories(trial: Trial) -> list[TrajectoryPoint]:
    """Observed mean score per outcome, arm and wave with a normal 95% interval: the growth
    curves a dashboard draws, kept with the run so they match the data the models saw. The
    counts, means and SDs are PostgreSQL's (analytics.selectors.score_trajectories)."""
    rows = []
    for cell in score_trajectories(trial):
        half = None if cell.std is None else 1.959964 * cell.std / math.sqrt(cell.n)
        rows.append(
            TrajectoryPoint(
                outcome=cell.outcome,
                arm=cell.arm,
                wave=cell.wave,
                n=cell.n,
                mean=cell.mean,
                ci_low=None if half is None else cell.mean - half,
                ci_high=None if half is None else cell.mean + half,
            )
        )
    return rows


def _figure[S: Section](model: type[S], figure) -> S:
    """A survey report figure as its section: its value's fields, or the reason there is none."""
    if figure.value is None:
        return model(reason=figure.reason)
    return _section(model, {"value": _plain(figure.value), "reason": ""})


def _psychometrics(trial: Trial) -> list[ScorePsychometrics]:
    """Reliability per wave and measurement invariance per score (surveys.reports), stored with
    the run so that no dashboard request fits a factor model."""
    return [
        ScorePsychometrics(
            instrument=report.instrument,
            score=report.score,
            validated=report.validated,
            reliability=[
                Reliability(
                    wave=int(row["wave"]),
                    n=int(row["n"]),
                    alpha=_figure(AlphaFigure, row["alpha"]),
                    omega=_figure(OmegaFigure, row["omega"]),
                )
                for row in report.by_wave
            ],
            invariance={
                group: _figure(InvarianceFigure, figure)
                for group, figure in report.invariance.items()
            },
        )
        # The run stores reliability per wave and invariance only: the test–retest figures,
        # which need every participant's score at every wave, are left to the survey report.
        for report in trial_survey_report(trial, retest=False)
    ]


def _interim(plan: Plan, estimates: list[Estimate], allocated, responded) -> Interim | None:
    """Where the trial stands against its planned interim looks, for the primary outcome's
    mixed-model test: the information fraction is the share of the planned sample that has
    reached the primary outcome wave."""
    looks = plan.interim_looks
    sample = plan.sample_size
    if not looks:
        return None
    primary = next((e for e in estimates if e.role == "primary" and e.method == "mixedlm"), None)
    if not sample or primary is None:
        return Interim(looks=looks, status="The plan gives no sample size to place the look.")
    planned_total = sample.per_arm * len(allocated)
    reached = sum(responded.get(primary.wave, {}).values())
    fraction = min(1.0, reached / planned_total)
    fractions = [look.information_fraction for look in looks]
    done = [f for f in fractions if f <= fraction] + ([1.0] if fraction >= 1.0 else [])
    if not done:
        return Interim(
            looks=looks, information_fraction=fraction, status="Before the first planned look."
        )
    boundaries = spending_boundaries(
        done,
        alpha=plan.alpha,
        spending=looks[0].spending,
    )
    z = abs(primary.estimate / primary.std_error)
    crossed = bool(z >= boundaries.z[-1])
    return Interim(
        looks=looks,
        information_fraction=fraction,
        look=len(done),
        boundary_z=float(boundaries.z[-1]),
        boundary_p=float(boundaries.nominal_p[-1]),
        primary_z=z,
        crossed=crossed,
        status="The efficacy boundary is crossed."
        if crossed
        else "The efficacy boundary is not crossed: continue as planned.",
    )


def _ordinal(trial: Trial, outcome: Outcome, control: str, seed: int, horizon: int):
    """The graded-response growth model on the items behind one score."""
    instrument = Instrument.objects.get(code=outcome.instrument)
    definition = instrument.definition
    items = definition.scored_items(definition.score(outcome.code))
    # Each item's own answers: a number or yes/no item has its own range (docs/instruments.md).
    categories = {code: definition.answer_range(definition.item(code)) for code in items}
    data = ordinal_data_from_chunks(
        trial_item_chunks(trial, instrument, items=items, last_wave=horizon),
        control=control,
        categories=categories,
    )
    return ordinal_growth_fit(data, seed=seed)


def _divergence(
    fit: GrowthFit,
    outcomes: list[Outcome],
    control: str,
    telemetry: EngagementRelease | None,
    seed: int,
) -> list[Divergence]:
    """Per arm: P(engagement rose while the primary flourishing outcome did not).

    Engagement is read from two sources, each reported on its own: the survey's reliance score
    (paired draws from the same posterior as flourishing) and, when the federated app has
    released one, the latest DP telemetry window (the arm's mean use minus control's, with its
    DP noise and a sampling bound propagated, drawn independently of the survey posterior)."""
    codes = [o.code for o in outcomes]
    flourishing = next((o for o in outcomes if o.code != RELIANCE_OUTCOME), None)
    if flourishing is None:
        return []
    gamma = fit.draws["gamma"]
    released = telemetry.arms if telemetry else {}
    results = []
    for a, arm in enumerate(dict.fromkeys(e.arm for e in fit.effects)):
        flourishing_draws = gamma[:, :, a, codes.index(flourishing.code)]
        sources = []
        if RELIANCE_OUTCOME in codes:
            sources.append(
                (
                    -gamma[:, :, a, codes.index(RELIANCE_OUTCOME)],
                    f"survey: reliance on the assistant (−{RELIANCE_OUTCOME})",
                )
            )
        if arm in released and control in released:
            try:
                estimate, std_error = released_mean_difference(released[arm], released[control])
            except ValueError:  # too few reporting participants for a mean
                pass
            else:
                draws = gaussian_draws(estimate, std_error, flourishing_draws.size, seed=seed)
                sources.append(
                    (
                        draws.reshape(flourishing_draws.shape),
                        f"DP telemetry: mean {telemetry.metric} per participant in window "
                        f"{telemetry.window_index}, {estimate:+.1f} ± {std_error:.1f} "
                        f"{telemetry.unit} vs control",
                    )
                )
        results += [
            _section(
                Divergence,
                engagement_flourishing_divergence(
                    engagement,
                    flourishing_draws,
                    arm=arm,
                    engagement_source=source,
                    flourishing_source=f"survey: {flourishing.code}",
                ),
            )
            for engagement, source in sources
        ]
    return results
