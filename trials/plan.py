"""The pre-registered plan: its sections, their defaults, and what it takes to freeze one.

The sections follow the OSF Preregistration template: hypotheses; design and randomisation (a
factorial design: its factors, the arm of each cell, the pre-registered main effects and
interactions); outcomes bound to instruments, scores, dimensions and waves; the estimand and
analysis model; baseline covariates and moderators; alpha and multiplicity correction; sample size
with its power calculation; interim looks and stopping rule; exclusions; missing data; minimal
important differences; guardrails; community weights; eligibility screening; safety (harm
boundaries, who lifts a suspension, canary prompts); the telemetry section (``trials.telemetry``).
This module is the one place that knows the plan's shape: everything else reads a :class:`Plan` by
attribute, and ``trials.registry_export`` turns a frozen one into OSF JSON and Markdown.

A draft is checked for shape only (each section that is there has the right type and range) so
work can be saved half done; :func:`freeze_errors` adds what a frozen plan needs (hypotheses, two
arms compared or a factorial design whose cells are the arms, a primary outcome) and checks every
name against the trial. Names owned by other apps (instruments, their scores, the wave schedule)
are checked by the functions those apps register with :func:`register_freeze_check`, so this app
never imports them (the layers in docs/architecture.md).
"""

import argparse
import itertools
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from trials.dimensions import Dimension
from trials.documents import Document, error_messages, schema_text
from trials.telemetry import TelemetrySection

if TYPE_CHECKING:
    from trials.models import Trial

Multiplicity = Literal["holm", "bh", "none"]
RandomisationMethod = Literal["permuted_blocks", "salted_hash"]
StratificationFactor = Literal["community", "locale"]
SpendingFunction = Literal["obrien_fleming", "pocock"]
YesNo = Literal["yes", "no"]

# Free text the coordinator writes, exported as it stands (OSF template questions).
NARRATIVE_SECTIONS = [
    "study_type",
    "blinding",
    "design",
    "data_collection_procedures",
    "estimand",
    "analysis_model",
    "transformations",
    "stopping_rule",
    "exclusions",
    "missing_data",
    "exploratory_analyses",
    "other",
]


class Outcome(Document):
    """A score of an instrument on a flourishing dimension, compared at a follow-up wave.

    ``score`` picks one of the instrument's scores on that dimension; without it, every score
    the instrument has on the dimension is an outcome."""

    dimension: Dimension
    instrument: str = Field(min_length=1)
    wave: int = Field(ge=1, description="The follow-up wave's index (0 is baseline).")
    score: str | None = None


class Randomisation(Document):
    method: RandomisationMethod = "permuted_blocks"
    strata: list[StratificationFactor] = ["community"]
    block_sizes: list[int] = Field(default=[4, 6], min_length=1)
    ratio: dict[str, int] | None = Field(
        default=None, description="Arm slug → allocation weight; none means equal allocation."
    )

    @field_validator("block_sizes")
    @classmethod
    def _positive_sizes(cls, sizes: list[int]) -> list[int]:
        if not all(size > 0 for size in sizes):
            raise ValueError("block sizes are positive whole numbers")
        return sizes

    @field_validator("ratio")
    @classmethod
    def _positive_weights(cls, ratio: dict[str, int] | None) -> dict[str, int] | None:
        if ratio is not None and not all(weight > 0 for weight in ratio.values()):
            raise ValueError("every arm's weight is a positive whole number")
        return ratio

    def ratio_for(self, arm_slugs: list[str]) -> dict[str, int]:
        """The allocation weights over ``arm_slugs``: the plan's, or 1 each."""
        return dict(self.ratio) if self.ratio else dict.fromkeys(arm_slugs, 1)


class InterimLook(Document):
    information_fraction: float = Field(gt=0, lt=1)
    spending: SpendingFunction = "obrien_fleming"


class PowerCalculation(Document):
    """The inputs and outputs of the ANCOVA power calculation (``stats.power``) behind a size."""

    method: str
    effect: float
    sd: float = Field(gt=0)
    rho: float = Field(ge=0, lt=1)
    follow_ups: int = Field(ge=1)
    attrition: float = Field(ge=0, lt=1)
    power: float = Field(gt=0, lt=1)
    alpha: float = Field(gt=0, lt=1)
    design_multiplier: float
    n_per_arm: int
    n_total: int
    achieved_power: float


class SampleSize(Document):
    per_arm: int = Field(ge=1)
    rationale: str = ""
    power: PowerCalculation | None = None


class CommunityWeights(Document):
    """A community's flourishing profile version; freezing copies its weights in."""

    profile_version: int = Field(ge=1)
    weights: dict[str, float] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_version(cls, data: Any) -> Any:
        # A draft may name just the version: {"community": 2}.
        return {"profile_version": data} if isinstance(data, int) else data


class ScreeningQuestion(Document):
    """A yes/no question a person must answer ``required_answer`` to be eligible."""

    text: str = Field(min_length=1)
    required_answer: YesNo


class Screening(Document):
    """Who may take part: asked on the screening page before consent. Only the outcome and the
    reason are kept (``trials.services.screening_record``), which CONSORT counts as assessed,
    eligible and excluded. An empty list or ``any`` asks nothing about that criterion."""

    min_age: int | None = Field(default=None, ge=0, le=120)
    max_age: int | None = Field(default=None, ge=0, le=120)
    languages: list[str] = Field(
        default=[], description="Language codes (e.g. en, de): speaking one of them is needed."
    )
    countries: list[str] = Field(
        default=[], description="ISO 3166-1 alpha-2 codes (e.g. GB, DE) of where people live."
    )
    uses_ai_assistants: Literal["yes", "no", "any"] = Field(
        default="any", description="Whether people must (yes) or must not (no) use one now."
    )
    questions: list[ScreeningQuestion] = []

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, codes: list[str]) -> list[str]:
        bad = [code for code in codes if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", code)]
        if bad:
            raise ValueError(f"not language codes like en or pt-br: {', '.join(bad)}")
        return codes

    @field_validator("countries")
    @classmethod
    def _country_codes(cls, codes: list[str]) -> list[str]:
        bad = [code for code in codes if not re.fullmatch(r"[A-Z]{2}", code)]
        if bad:
            raise ValueError(f"not two-letter country codes like GB: {', '.join(bad)}")
        return codes

    @model_validator(mode="after")
    def _ages_in_order(self) -> Self:
        if None not in (self.min_age, self.max_age) and self.min_age > self.max_age:
            raise ValueError("the minimum age is above the maximum age")
        return self


HarmMetric = Literal["serious_adverse_events", "adverse_events", "reliable_deterioration"]


class HarmBoundary(Document):
    """A pre-registered harm stopping boundary, compared for every arm against the control.

    The harm is the share of participants with at least one event of ``metric`` (reliable
    deterioration: the reliable change index of a primary outcome below -1.96). The boundary is
    crossed when the lower end of the two-sided ``confidence`` interval for the arm's share minus
    the control's (Newcombe's hybrid score interval) is above ``max_excess``: the data rule out
    an excess of at most that much. Crossing it tells every body; the bodies decide whether to
    suspend (``safety.harms``)."""

    metric: HarmMetric
    max_excess: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="The excess share (arm minus control) the data must rule out; 0: any excess.",
    )
    confidence: float = Field(default=0.9, gt=0.5, lt=1)
    min_participants_per_arm: int = Field(
        default=10, ge=1, description="Not checked before each compared arm has this many."
    )


class Safety(Document):
    """Who lifts a suspension, the harm boundaries, and the arms' canary prompts."""

    suspension_lifted_by: Literal["suspending_body", "every_required_body"] = Field(
        default="suspending_body",
        description="Who must lift a body's suspension: that body, or every required body.",
    )
    harm_boundaries: list[HarmBoundary] = []
    canary_prompts: dict[str, list[str]] = Field(
        default={},
        description="Arm slug → up to five prompts sent to its endpoint by the drift watch "
        "(safety.canary), which records the model and fingerprint the endpoint answers with.",
    )

    @field_validator("canary_prompts")
    @classmethod
    def _few_prompts(cls, prompts: dict[str, list[str]]) -> dict[str, list[str]]:
        if any(not 1 <= len(texts) <= 5 for texts in prompts.values()):
            raise ValueError("give each arm one to five canary prompts")
        if any(not text.strip() for texts in prompts.values() for text in texts):
            raise ValueError("a canary prompt is not empty")
        return prompts


FactorName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
DesignContrastKind = Literal["main_effect", "interaction", "levels"]


class Factor(Document):
    """A factor of a factorial design. Its first level is the reference level: the control
    arm's, against which the other levels are compared."""

    name: FactorName
    levels: list[str] = Field(min_length=2)

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, levels: list[str]) -> list[str]:
        if any(not level.strip() for level in levels) or len(set(levels)) != len(levels):
            raise ValueError("a factor's levels are distinct and not empty")
        return levels


class DesignContrast(Document):
    """A pre-registered comparison of a factorial design's cells, on the growth per wave.

    ``main_effect`` of ``factor``: each other level against the reference level, averaged over
    the levels of the other factors (one estimate per level, and their joint F test).
    ``interaction`` of ``factors``: for each combination of non-reference levels, the difference
    of differences from the reference levels (averaged over any factor not named).
    ``levels``: ``level`` against ``versus`` (the reference level if left out) of ``factor``,
    averaged over the other factors."""

    kind: DesignContrastKind
    factor: str | None = None
    factors: list[str] = []
    level: str | None = None
    versus: str | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        if self.kind == "interaction":
            if len(set(self.factors)) < 2 or len(set(self.factors)) != len(self.factors):
                raise ValueError("an interaction names two or more different factors")
            if self.factor or self.level or self.versus:
                raise ValueError("an interaction names factors, not a factor or levels")
        else:
            if not self.factor or self.factors:
                raise ValueError(f"a {self.kind} contrast names one factor")
            if self.kind == "main_effect" and (self.level or self.versus):
                raise ValueError("a main effect compares every level; name levels with 'levels'")
            if self.kind == "levels" and not self.level:
                raise ValueError("a levels contrast names the level compared")
        return self

    @property
    def title(self) -> str:
        if self.kind == "main_effect":
            return f"main effect of {self.factor}"
        if self.kind == "interaction":
            return f"interaction {' × '.join(self.factors)}"
        versus = f" vs {self.versus}" if self.versus else ""
        return f"{self.factor}: {self.level}{versus}"


class WeightedContrast(NamedTuple):
    """One estimable comparison: its label and each arm's weight on the arm's growth."""

    label: str
    weights: dict[str, float]


class FactorialDesign(Document):
    """A full factorial design: every combination of the factors' levels is one arm (a cell),
    each still a pinned assistant configuration. The control arm is the cell of every factor's
    reference (first) level. Randomisation is by permuted blocks whose sizes are multiples of
    the allocation ratio's sum, so every block holds each cell in the ratio."""

    factors: list[Factor] = Field(min_length=1)
    cells: dict[str, dict[str, str]] = Field(
        description="Arm slug → factor name → the arm's level of that factor."
    )
    contrasts: list[DesignContrast] = []

    @model_validator(mode="after")
    def _full_factorial(self) -> Self:
        levels = {factor.name: factor.levels for factor in self.factors}
        if len(levels) != len(self.factors):
            raise ValueError("each factor has its own name")
        problems = []
        for arm, cell in self.cells.items():
            if set(cell) != set(levels):
                problems.append(f"{arm} names factors {sorted(cell)}, not {sorted(levels)}")
            problems += [
                f"{arm}: {level!r} is not a level of {name} ({', '.join(levels[name])})"
                for name, level in cell.items()
                if name in levels and level not in levels[name]
            ]
        if problems:
            raise ValueError("; ".join(problems))
        combinations = [tuple(cell[f.name] for f in self.factors) for cell in self.cells.values()]
        repeated = sorted({c for c in combinations if combinations.count(c) > 1})
        if repeated:
            raise ValueError(f"more than one arm has the cell {', '.join(map(str, repeated))}")
        if len(combinations) != self.cell_count:
            missing = sorted(set(itertools.product(*levels.values())) - set(combinations))
            raise ValueError(
                f"every cell needs exactly one arm: {len(missing)} have none, e.g. {missing[0]}"
            )
        for contrast in self.contrasts:
            named = [contrast.factor] if contrast.factor else contrast.factors
            unknown = [name for name in named if name not in levels]
            if unknown:
                raise ValueError(
                    f"{contrast.title}: no factor {', '.join(unknown)} "
                    f"(factors: {', '.join(levels)})"
                )
            if contrast.kind == "levels":
                for level in filter(None, (contrast.level, contrast.versus)):
                    if level not in levels[contrast.factor]:
                        raise ValueError(
                            f"{contrast.title}: {level!r} is not a level of {contrast.factor} "
                            f"({', '.join(levels[contrast.factor])})"
                        )
                if contrast.level == (contrast.versus or levels[contrast.factor][0]):
                    raise ValueError(f"{contrast.title}: compare two different levels")
        return self

    @property
    def cell_count(self) -> int:
        return math.prod(len(factor.levels) for factor in self.factors)

    @property
    def reference_arm(self) -> str:
        """The arm of every factor's reference level: the control."""
        reference = {factor.name: factor.levels[0] for factor in self.factors}
        return next(arm for arm, cell in self.cells.items() if cell == reference)

    def weighted_contrasts(self, contrast: DesignContrast) -> list[WeightedContrast]:
        """``contrast`` as weights over the arms' growths (each set sums to 0): a main effect or
        levels contrast averages its difference over the other factors' level combinations;
        an interaction is the product of each named factor's ±1 difference, averaged over the
        factors it does not name (the usual effect definitions of a full factorial, e.g.
        Montgomery, Design and Analysis of Experiments, ch. 5)."""
        levels = {factor.name: factor.levels for factor in self.factors}
        if contrast.kind == "interaction":
            named = contrast.factors
            combinations = itertools.product(*(levels[name][1:] for name in named))
            compared = [
                {name: (level, levels[name][0]) for name, level in zip(named, chosen, strict=True)}
                for chosen in combinations
            ]
        elif contrast.kind == "main_effect":
            name = contrast.factor
            compared = [{name: (level, levels[name][0])} for level in levels[name][1:]]
        else:
            name = contrast.factor
            compared = [{name: (contrast.level, contrast.versus or levels[name][0])}]
        rows = []
        for pairs in compared:
            others = math.prod(len(levels[f]) for f in levels if f not in pairs)
            weights = {}
            for arm, cell in self.cells.items():
                sign = 1.0
                for name, (level, versus) in pairs.items():
                    sign *= 1.0 if cell[name] == level else -1.0 if cell[name] == versus else 0.0
                weights[arm] = sign / others
            label = " × ".join(
                f"{name}: {level} − {versus}" for name, (level, versus) in pairs.items()
            )
            rows.append(WeightedContrast(label, weights))
        return rows


ParticipantVariableKind = Literal["baseline_score", "community", "language"]


class ParticipantVariable(Document):
    """Something known of every participant at baseline: a score at wave 0 (an outcome's or
    any other questionnaire's score, by its code), the participant's community, or the language
    they take part in. Screening answers are not among them: only eligible people take part,
    and they all gave the required answer."""

    kind: ParticipantVariableKind
    score: str | None = Field(
        default=None, description="The score's code, for a baseline score (e.g. who5)."
    )

    @model_validator(mode="after")
    def _score_for_baseline(self) -> Self:
        if (self.kind == "baseline_score") != bool(self.score):
            raise ValueError("a baseline score names its score's code, and only it does")
        return self

    @property
    def name(self) -> str:
        return f"baseline {self.score}" if self.kind == "baseline_score" else self.kind


class Plan(Document):
    hypotheses: list[str] = []
    arms_compared: list[str] = Field(
        default=[],
        description="Two arm slugs, control first (a factorial design may name the control alone).",
        max_length=2,
    )
    randomisation: Randomisation = Randomisation()
    factorial: FactorialDesign | None = None
    covariates: list[ParticipantVariable] = Field(
        default=[],
        description="Baseline variables every growth model adjusts for, for precision.",
    )
    moderators: list[ParticipantVariable] = Field(
        default=[],
        description="Baseline variables whose interaction with the arm on growth is confirmatory.",
    )
    primary_outcomes: list[Outcome] = []
    secondary_outcomes: list[Outcome] = []
    alpha: float = Field(default=0.05, gt=0, lt=1)
    multiplicity: Multiplicity = "holm"
    interim_looks: list[InterimLook] = []
    minimal_important_differences: dict[Dimension, float] = {}  # type: ignore[valid-type]
    sample_size: SampleSize | None = None
    guardrails: list[str] = []
    community_weights: dict[str, CommunityWeights] = {}
    telemetry: TelemetrySection | None = None
    screening: Screening = Screening()
    safety: Safety = Safety()
    study_type: str = ""
    blinding: str = ""
    design: str = ""
    data_collection_procedures: str = ""
    estimand: str = ""
    analysis_model: str = ""
    transformations: str = ""
    stopping_rule: str = ""
    exclusions: str = ""
    missing_data: str = ""
    exploratory_analyses: str = ""
    other: str = ""

    @field_validator("minimal_important_differences")
    @classmethod
    def _positive_mids(cls, mids: dict[str, float]) -> dict[str, float]:
        if not all(value > 0 for value in mids.values()):
            raise ValueError("each minimal important difference is a positive number")
        return mids

    @model_validator(mode="after")
    def _looks_increase(self) -> Self:
        fractions = [look.information_fraction for look in self.interim_looks]
        if fractions != sorted(set(fractions)):
            raise ValueError("interim looks need increasing information fractions")
        return self

    @model_validator(mode="after")
    def _variables_once(self) -> Self:
        for section in ("covariates", "moderators"):
            names = [variable.name for variable in getattr(self, section)]
            if len(set(names)) != len(names):
                raise ValueError(f"{section} name each variable once")
        return self

    @property
    def control(self) -> str:
        return self.arms_compared[0]

    @property
    def planned_arm(self) -> str | None:
        """The arm of the planned pairwise contrast with the control, if the plan names one."""
        return self.arms_compared[1] if len(self.arms_compared) == 2 else None

    @property
    def outcomes(self) -> list[tuple[str, Outcome]]:
        """Every planned outcome with its role, primary first."""
        return [("primary", o) for o in self.primary_outcomes] + [
            ("secondary", o) for o in self.secondary_outcomes
        ]

    def canonical(self) -> dict[str, Any]:
        """The JSON object that is stored and hashed: every section, defaults written out, so a
        later change of a default never changes what a frozen plan meant."""
        return self.model_dump(mode="json")


class FrozenRecord(Document):
    """What freezing stores and hashes: the plan with what it was frozen against."""

    trial: str
    plan: Plan
    arms: dict[str, str] = Field(description="Arm slug → SHA-256 of its configuration.")
    arm_configs: dict[str, dict[str, Any]] = Field(description="Arm slug → its configuration.")
    allocation_sequence_sha256: str


class PlanError(ValueError):
    """A plan that cannot be stored or frozen; ``messages`` says each problem."""

    def __init__(self, messages: list[str]):
        super().__init__(" ".join(messages))
        self.messages = messages


def plan_parse(data: Any) -> Plan:
    """``data`` (a stored or submitted JSON object) as a :class:`Plan`, or :class:`PlanError`."""
    if isinstance(data, Plan):
        return data
    if not isinstance(data, dict):
        raise PlanError(["The plan must be a JSON object."])
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        raise PlanError(error_messages(error)) from None


FreezeCheck = Callable[["Trial", Plan], list[str]]
_freeze_checks: list[FreezeCheck] = []


def register_freeze_check(check: FreezeCheck) -> None:
    """Add a check every plan must pass to be frozen (an app's ``ready()`` registers its own)."""
    if check not in _freeze_checks:
        _freeze_checks.append(check)


def freeze_errors(trial: "Trial", plan: Plan, *, arm_slugs: list[str]) -> list[str]:
    """Everything that stops ``plan`` from being frozen for ``trial``, as messages a coordinator
    can act on: each names the valid choices."""
    errors: list[str] = []
    arms = ", ".join(arm_slugs) or "none yet"
    if not [h for h in plan.hypotheses if h.strip()]:
        errors.append("State at least one hypothesis.")
    compared = plan.arms_compared
    if plan.factorial is not None:
        errors += _factorial_errors(plan, arm_slugs)
    elif not (
        len(compared) == 2 and set(compared) <= set(arm_slugs) and compared[0] != compared[1]
    ):
        errors.append(
            f"arms_compared must name two different arms of this trial, control first "
            f"(arms: {arms})."
        )
    if not plan.primary_outcomes:
        errors.append("Name at least one primary outcome.")
    outcome_dimensions = {outcome.dimension for _, outcome in plan.outcomes}
    for dimension in sorted(set(plan.minimal_important_differences) - outcome_dimensions):
        errors.append(
            f"minimal_important_differences: {dimension} is not an outcome of this plan "
            f"(outcomes: {', '.join(sorted(outcome_dimensions)) or 'none'})."
        )
    errors += _randomisation_errors(plan.randomisation, arm_slugs)
    for slug in sorted(set(plan.safety.canary_prompts) - set(arm_slugs)):
        errors.append(f"safety.canary_prompts: {slug} is not an arm of this trial (arms: {arms}).")
    for check in _freeze_checks:
        errors += check(trial, plan)
    return errors


def _factorial_errors(plan: Plan, arm_slugs: list[str]) -> list[str]:
    """A factorial design's cells are exactly the trial's arms, the control is the reference
    cell, and allocation is by permuted blocks (so every block holds each cell in the ratio)."""
    design, arms = plan.factorial, ", ".join(arm_slugs) or "none yet"
    errors = []
    if set(design.cells) != set(arm_slugs):
        errors.append(
            f"factorial.cells must give each arm of this trial its cell, and name no other "
            f"(arms: {arms})."
        )
    compared = plan.arms_compared
    if not (
        1 <= len(compared) <= 2
        and compared[0] == design.reference_arm
        and set(compared) <= set(arm_slugs)
        and len(set(compared)) == len(compared)
    ):
        errors.append(
            f"arms_compared must start with the control, the reference cell "
            f"{design.reference_arm}, and may name one other arm of this trial (arms: {arms})."
        )
    if not design.contrasts:
        errors.append("factorial.contrasts: pre-register at least one main effect or interaction.")
    if plan.randomisation.method != "permuted_blocks":
        errors.append(
            "randomisation.method must be permuted_blocks for a factorial design, so that every "
            "block holds each cell in the ratio."
        )
    return errors


def _randomisation_errors(randomisation: Randomisation, arm_slugs: list[str]) -> list[str]:
    ratio = randomisation.ratio_for(arm_slugs)
    if set(ratio) != set(arm_slugs):
        return [
            "randomisation.ratio must give every arm of this trial a weight "
            f"(arms: {', '.join(arm_slugs)})."
        ]
    unit = sum(ratio.values())
    if randomisation.method == "permuted_blocks" and any(
        size % unit for size in randomisation.block_sizes
    ):
        return [f"randomisation.block_sizes must be multiples of {unit} (the ratio's sum)."]
    return []


def main(argv: list[str] | None = None) -> int:
    """``python -m trials.plan --schema`` prints the plan's JSON Schema (docs/plan-schema.json);
    ``python -m trials.plan FILE ...`` checks plan files' shape (what freezing checks against a
    trial comes on top, in :func:`freeze_errors`)."""
    parser = argparse.ArgumentParser(
        prog="python -m trials.plan",
        description="Print the plan's JSON Schema, or check the shape of plan files.",
    )
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema")
    parser.add_argument("plans", nargs="*", type=Path, help="plan files (JSON) to check")
    options = parser.parse_args(argv)
    if options.schema:
        sys.stdout.write(schema_text(Plan))
    failed = False
    for path in options.plans:
        try:
            plan_parse(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:  # PlanError and JSON errors are ValueErrors
            failed = True
            problems = getattr(error, "messages", [str(error)])
            print(f"{path}: not a plan", *problems, sep="\n  ", file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
