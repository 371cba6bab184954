"""The analysis results document: the one place that knows its shape.

An analysis run (``analytics.analysis.analyse``) builds a :class:`Results` and a
:class:`Diagnostics` and stores their JSON (``model_dump(mode="json")``) in
``AnalysisRun.results`` and ``AnalysisRun.diagnostics``; the dashboards read them back with
``Results.model_validate`` and use attributes, never string keys. ``Results.model_json_schema()``
publishes the shape for anyone reading stored runs (``analyze_trial --json``, exports).

Stored runs outlive code versions, so a change here keeps them readable: a new field gets a
default; renaming or removing one needs a data migration of the stored runs. The golden run in
``tests/dashboards`` validates against these models, so a change of shape fails its test until
the golden document is regenerated (see ``tests/dashboards/test_golden.py``).

Units: growth differences are in the score's points per wave (the ordinal model's in baseline
latent SDs per wave), final-wave differences in score points, intervals are 95%.
"""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from trials.documents import Document
from trials.plan import InterimLook, Multiplicity

Role = Literal["primary", "secondary", "exploratory"]
Estimand = Literal[
    "growth_difference_per_wave", "final_wave_difference", "latent_growth_difference_per_wave"
]


class Section(Document):
    """A part of the results document; attribute docstrings become the JSON Schema's
    descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Outcome(Section):
    """One analysed score."""

    code: str
    """The score's code (an instrument may have several)."""
    instrument: str
    dimension: str
    wave: int
    """The outcome wave: the models use the waves up to it."""
    role: Role
    planned: bool
    """Named by the plan and analysed as planned (always false in an exploratory run)."""


class _Estimate(Section):
    outcome: str
    instrument: str
    dimension: str
    role: Role
    wave: int
    arm: str
    """The arm compared with the control arm (``Results.control``)."""
    estimand: Estimand
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    n_participants: int
    n_observations: int
    reportable: bool
    not_reportable_because: list[str] = []
    warnings: list[str] = []
    confirmatory: bool
    """A pre-registered model of a planned outcome for the planned contrast, in a confirmatory
    run; everything else is exploratory."""


class FrequentistEstimate(_Estimate):
    """A mixed-model or GEE growth contrast, or an ANCOVA of the outcome wave."""

    method: Literal["mixedlm", "gee", "ancova"]
    p_value: float
    p_adjusted: float
    """After the plan's multiplicity correction across the confirmatory family of its model;
    the raw p-value for an estimate outside that family."""
    df: float | None = None
    """The t reference's degrees of freedom behind the interval and p-value (Satterthwaite's,
    for the mixed model); None where the reference is the normal (GEE) or not recorded."""


class BayesianEstimate(_Estimate):
    """The Bayesian growth model's contrast: posterior mean, SD and 95% interval."""

    method: Literal["bayes_growth"]
    prob_benefit: float
    """P(growth difference > 0)."""
    prob_above_mid: float | None = None
    """P(the difference reaches the MID by the outcome wave), where the plan gives a MID."""
    mid: float | None = None
    """The plan's minimal important difference at the outcome wave, in score points."""
    mcse_mean: float
    mcse_prob_benefit: float


class OrdinalEstimate(_Estimate):
    """The item-level graded-response model's contrast (a sensitivity analysis)."""

    method: Literal["bayes_ordinal"]
    prob_benefit: float


Estimate = Annotated[
    FrequentistEstimate | BayesianEstimate | OrdinalEstimate, Field(discriminator="method")
]


DesignEffectKind = Literal["main_effect", "interaction", "levels", "moderator"]


class DesignEffect(Section):
    """A contrast of the arms' growths per wave that the plan's design defines: a factorial
    main effect, interaction or level contrast (``trials.plan.FactorialDesign``), or an arm's
    interaction with a moderator (how much its growth difference from the control changes per
    unit of the moderator, or in a category against the most common one)."""

    outcome: str
    instrument: str
    dimension: str
    role: Role
    wave: int
    kind: DesignEffectKind
    contrast: str
    """The plan's contrast (``main effect of mode``) or the moderator's name."""
    label: str
    """The estimate within it: ``mode: voice − text``, ``b × baseline who5``."""
    method: Literal["mixedlm", "bayes_growth"]
    estimate: float
    std_error: float
    """The SE, or the posterior SD."""
    ci_low: float
    ci_high: float
    df: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    """After the plan's correction across the mixed model's confirmatory family (with the
    arms' contrasts); the raw p-value outside it."""
    prob_benefit: float | None = None
    """P(contrast > 0), Bayesian."""
    n_participants: int
    n_observations: int
    reportable: bool
    warnings: list[str] = []
    confirmatory: bool
    """Pre-registered (the plan's contrast or moderator, a planned outcome, a planned model)
    in a confirmatory run; everything else is exploratory."""


class JointTest(Section):
    """The mixed model's F test that all of one contrast's estimates are zero (e.g. every level
    of a three-level main effect), Satterthwaite denominator df. It summarises the contrast;
    the family the plan's correction runs over is the estimates themselves."""

    outcome: str
    contrast: str
    f_statistic: float
    df_numerator: int
    df_denominator: float
    p_value: float
    confirmatory: bool


class FactorialCells(Section):
    """The plan's factorial design as the dashboards draw it: each factor's levels (the
    reference first) and each arm's cell."""

    factors: dict[str, list[str]]
    cells: dict[str, dict[str, str]]


class CovariateAdjustment(Section):
    """What the plan's baseline covariates did to one arm's growth contrast: the mixed model
    adjusted for the covariates, or the Bayesian model with covariates and moderators, against
    the same model without them."""

    outcome: str
    arm: str
    method: Literal["mixedlm", "bayes_growth"] = "mixedlm"
    covariates: list[str]
    std_error_adjusted: float
    """The SE, or the posterior SD."""
    std_error_unadjusted: float
    variance_ratio: float
    """SE² adjusted / SE² unadjusted: below 1 is the precision the covariates bought."""


class PosteriorSummary(Section):
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    prob_benefit: float
    prob_above_mid: float | None = None
    mcse_mean: float
    mcse_prob_benefit: float


class CommunityEffect(Section):
    """An arm's growth difference within one community, per outcome and, with the community's
    own weights, as a composite in baseline SDs per wave."""

    arm: str
    community: str
    per_dimension: dict[str, PosteriorSummary]
    """Keyed by outcome code."""
    composite: PosteriorSummary | None = None
    weights: dict[str, float] = {}


class PosteriorDensity(Section):
    """A histogram of the growth difference's draws, normalised to a density."""

    arm: str
    outcome: str
    x: list[float]
    """Bin centres (score points per wave)."""
    density: list[float]


class BayesGrowth(Section):
    reportable: bool
    not_reportable_because: list[str] = []
    community_effects: list[CommunityEffect] = []
    participants: int
    observations: int
    posterior_densities: list[PosteriorDensity] = []


class TrajectoryPoint(Section):
    """The observed mean of one outcome, arm and wave with a normal 95% interval (none for a
    single observation)."""

    outcome: str
    arm: str
    wave: int
    n: int
    mean: float
    ci_low: float | None = None
    ci_high: float | None = None


class SampleRatioMismatch(Section):
    """Pearson's χ² of arm sizes against the planned allocation ratio (``stats.srm``)."""

    chi2: float
    df: int
    p_value: float
    mismatch: bool
    threshold: float
    total: int
    observed: dict[str, int]
    expected: dict[str, float]


class WaveAttrition(Section):
    """Response per arm at one follow-up wave and the χ² test of differential attrition."""

    wave: int
    allocated: dict[str, int]
    responded: dict[str, int]
    response_rate: dict[str, float]
    chi2: float
    df: int
    p_value: float
    differential: bool


class ConsortArm(Section):
    slug: str
    name: str
    allocated: int
    followed_up: int
    """Answered the final wave."""
    analysed: int
    """Answered the baseline and the final wave: the ANCOVA's complete cases."""
    withdrawn: int
    withdrawal_reasons: dict[str, int] = {}


class Consort(Section):
    """The CONSORT 2010 flow from the trial's records."""

    assessed: int
    eligible: int
    excluded: int
    excluded_reasons: dict[str, int] = {}
    consented: int
    final_wave: int | None
    arms: list[ConsortArm]


class Interim(Section):
    """Where the trial stands against its planned interim looks (the primary outcome's
    mixed-model test); the boundary fields are there once a look has been reached."""

    looks: list[InterimLook]
    status: str
    information_fraction: float | None = None
    look: int | None = None
    boundary_z: float | None = None
    boundary_p: float | None = None
    primary_z: float | None = None
    crossed: bool | None = None


class Divergence(Section):
    """P(engagement rose while flourishing did not) for one arm and one engagement source."""

    arm: str
    engagement_source: str
    """``"<kind>: <detail>"``: the survey's reliance score, or a DP telemetry release."""
    flourishing_source: str
    prob_engagement_rose: float
    prob_flourishing_rose: float
    probability: float
    threshold: float
    flagged: bool
    draws: int


class QuantityConvergence(Section):
    rhat: float
    ess_bulk: float
    ess_tail: float


class Gates(Section):
    """The convergence gates of ``stats.diagnostics`` (R̂, bulk and tail ESS, divergences) and
    the worst value of each gated quantity."""

    passed: bool
    reasons: list[str] = []
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws_per_chain: int
    per_quantity: dict[str, QuantityConvergence] = {}


class OrdinalEffect(Section):
    arm: str
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    prob_positive: float


class OrdinalRun(Section):
    """The graded-response model's fit on one outcome's items, with how and where it ran."""

    outcome: str
    effects: list[OrdinalEffect]
    gates: Gates
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


class Alpha(Section):
    alpha: float
    ci_low: float | None
    ci_high: float | None
    n_respondents: int
    n_items: int


class Omega(Section):
    omega: float
    n_respondents: int


class InvarianceStep(Section):
    """One model of the configural → metric → scalar sequence; the changes are against the
    step before it."""

    model: str
    chi2: float | None
    df: int
    p_value: float | None
    cfi: float | None
    tli: float | None
    rmsea: float | None
    srmr: float | None
    delta_chi2: float | None = None
    delta_df: int | None = None
    delta_p_value: float | None = None
    delta_cfi: float | None = None
    delta_rmsea: float | None = None
    holds: bool | None = None


class Invariance(Section):
    groups: dict[str, int]
    """Respondents per group."""
    steps: list[InvarianceStep]


class AlphaFigure(Section):
    """α, or the reason it could not be computed."""

    value: Alpha | None = None
    reason: str = ""


class OmegaFigure(Section):
    value: Omega | None = None
    reason: str = ""


class InvarianceFigure(Section):
    value: Invariance | None = None
    reason: str = ""


class Reliability(Section):
    wave: int
    n: int
    alpha: AlphaFigure
    omega: OmegaFigure


class ScorePsychometrics(Section):
    """Reliability per wave and measurement invariance of one score (``surveys.reports``)."""

    instrument: str
    score: str
    validated: bool
    reliability: list[Reliability]
    invariance: dict[str, InvarianceFigure]
    """Keyed by what is compared: language, community, wave."""


class Results(Section):
    """Everything an analysis run found, as stored in ``AnalysisRun.results``."""

    kind: Literal["confirmatory", "exploratory"]
    control: str
    planned_contrast: str | None
    """``"<arm> − <control>"``; none when the plan names no contrast."""
    alpha: float
    multiplicity: Multiplicity
    outcomes: list[Outcome]
    """The plan's outcomes first (primary, then secondary), then the other scores."""
    estimates: list[Estimate]
    bayes_growth: BayesGrowth
    trajectories: list[TrajectoryPoint] = []
    srm: SampleRatioMismatch
    attrition: list[WaveAttrition] = []
    consort: Consort
    interim: Interim | None = None
    divergence: list[Divergence] = []
    ordinal: list[OrdinalRun] = []
    psychometrics: list[ScorePsychometrics] = []
    factorial: FactorialCells | None = None
    design_effects: list[DesignEffect] = []
    """The plan's factorial contrasts and moderator effects, per outcome and model."""
    joint_tests: list[JointTest] = []
    covariate_adjustment: list[CovariateAdjustment] = []


class Diagnostics(Section):
    """How the Bayesian growth fit ran, as stored in ``AnalysisRun.diagnostics``."""

    gates: Gates
    reportable: bool
    bayes_seconds: float | None = None
    bayes_groups: int | None = None
    bayes_method: Literal["nuts", "laplace"] | None = None
    """How the Bayesian posterior was drawn: by NUTS, or from its Laplace approximation at the
    mode where the participants' wave patterns make more groups than NUTS samples in reasonable
    time (``stats.bayes_growth.LAPLACE_GROUPS``). None in runs stored before it was recorded."""
    target_accept: float | None = None
    rows: int | None = None
    """Score rows analysed."""
