"""Admin forms that turn a coordinator's typing into the structures the services take."""

import re
from collections.abc import Callable
from typing import Any, get_args

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import slug_re

from trials.models import (
    Arm,
    ConsentDocument,
    ConsentScope,
    FlourishingProfile,
    OversightBody,
    PreRegistration,
    ProtocolDeviation,
    Trial,
)
from trials.plan import (
    NARRATIVE_SECTIONS,
    FactorialDesign,
    HarmMetric,
    Multiplicity,
    Outcome,
    ParticipantVariable,
    Plan,
    PlanError,
    RandomisationMethod,
    Safety,
    Screening,
    SpendingFunction,
    StratificationFactor,
    plan_parse,
)
from trials.selectors import preregistration_in_force
from trials.services import AMENDABLE_STATES, ARM_CONFIG_FIELDS, profile_weights_errors
from trials.telemetry import (
    DEFAULT_DELTA,
    DEFAULT_MIN_REPLIES_PER_ARM,
    METRICS,
    DoseSection,
    TelemetrySection,
)

LINES = forms.Textarea(attrs={"rows": 3, "cols": 80})


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for line in _lines(text):
        key, sep, value = line.partition(":")
        if not sep:
            raise ValidationError(f"Write each {what} as “name: value” (got “{line}”).")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _outcomes(text: str) -> list[dict[str, Any]]:
    outcomes = []
    for line in _lines(text):
        parts = [part.strip() for part in line.split(",")]
        if len(parts) not in (3, 4) or not parts[2].isdigit():
            raise ValidationError(
                "Write each outcome as “dimension, instrument, wave number” or "
                f"“dimension, instrument, wave number, score” (got “{line}”)."
            )
        outcome = {"dimension": parts[0], "instrument": parts[1], "wave": int(parts[2])}
        outcomes.append(outcome | ({"score": parts[3]} if len(parts) == 4 else {}))
    return outcomes


def _outcome_lines(outcomes: list[Outcome]) -> str:
    return "\n".join(
        ", ".join([o.dimension, o.instrument, str(o.wave), *([o.score] if o.score else [])])
        for o in outcomes
    )


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValidationError(f"{what}: “{value}” is not a number.") from None


def _whole(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what}: “{value}” is not a whole number.") from None


def _metric_lines(telemetry: TelemetrySection | None) -> str:
    if telemetry is None:
        return ""
    return "\n".join(f"{m.code}: {m.lower}-{m.upper}" for m in telemetry.metrics)


def _rating_lines(telemetry: TelemetrySection | None) -> str:
    if telemetry is None:
        return ""
    return "\n".join(f"{r.code} ({r.lowest}-{r.highest}): {r.question}" for r in telemetry.ratings)


def _ratings(text: str) -> list[dict[str, Any]]:
    """“code: question” (answered 1 to 5) or “code (lowest-highest): question”, one per line."""
    ratings = []
    for line in _lines(text):
        head, colon, question = (part.strip() for part in line.partition(":"))
        if not colon or not question:
            raise ValidationError(f"“{line}”: write the code, a colon and the question.")
        code, _, scale = (part.strip() for part in head.partition("("))
        rating: dict[str, Any] = {"code": code, "question": question}
        if scale:
            lowest, dash, highest = (part.strip() for part in scale.rstrip(")").partition("-"))
            if not dash:
                raise ValidationError(f"“{line}”: write the scale as (lowest-highest).")
            rating |= {"lowest": _whole(lowest, code), "highest": _whole(highest, code)}
        ratings.append(rating)
    return ratings


DOSE_FIELDS = (
    "instrument",
    "score",
    "wave",
    "usage_metric",
    "usage_days",
    "usage_upper",
    "change_bound",
    "change_step",
    "rho",
)


def _dose_initial(dose: DoseSection | None) -> dict[str, Any]:
    """The dose release as the form's ``dose_*`` fields (empty without one)."""
    if dose is None:
        return {f"dose_{name}": None for name in DOSE_FIELDS}
    flat = dose.model_dump(mode="json")
    flat |= flat.pop("outcome")
    return {f"dose_{name}": flat[name] for name in DOSE_FIELDS}


def _metrics(text: str) -> list[dict[str, Any]]:
    """“code”, “code: upper” or “code: lower-upper”, one per line."""
    metrics = []
    for line in _lines(text):
        code, _, bounds = (part.strip() for part in line.partition(":"))
        metric: dict[str, Any] = {"code": code}
        if bounds:
            lower, dash, upper = (part.strip() for part in bounds.partition("-"))
            if dash:
                metric["lower"] = _whole(lower, code)
            metric["upper"] = _whole(upper if dash else lower, code)
        metrics.append(metric)
    return metrics


def _block_sizes(text: str) -> list[int]:
    if not text.strip():
        return []
    try:
        return [int(size) for size in text.replace(" ", "").split(",")]
    except ValueError:
        raise ValidationError("Write whole numbers separated by commas.") from None


def _ratio(text: str) -> dict[str, int]:
    return {arm: _whole(weight, arm) for arm, weight in _pairs(text, "arm's weight")}


def _mids(text: str) -> dict[str, float]:
    return {key: _number(value, key) for key, value in _pairs(text, "MID")}


def _profile_versions(text: str) -> dict[str, int]:
    return {slug: _whole(version, slug) for slug, version in _pairs(text, "community weight")}


def _fractions(text: str) -> list[float]:
    return [_number(f, "interim look") for f in text.split(",") if f.strip()]


SCREENING_HELP = (
    "One criterion per line, each optional: “age: 18-99” (or “age: 18-”), “languages: en, de”, "
    "“countries: GB, DE”, “uses AI assistants: yes” (or no, any), and any number of "
    "“question: Do you live with your family? = yes” (the answer needed to take part)."
)


def _screening_lines(screening: Screening) -> str:
    lines = []
    if screening.min_age is not None or screening.max_age is not None:
        ages = (screening.min_age, screening.max_age)
        low, high = ("" if age is None else age for age in ages)
        lines.append(f"age: {low}-{high}")
    if screening.languages:
        lines.append(f"languages: {', '.join(screening.languages)}")
    if screening.countries:
        lines.append(f"countries: {', '.join(screening.countries)}")
    if screening.uses_ai_assistants != "any":
        lines.append(f"uses AI assistants: {screening.uses_ai_assistants}")
    lines += [f"question: {q.text} = {q.required_answer}" for q in screening.questions]
    return "\n".join(lines)


def _age_bound(value: str, line: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ValidationError(f"“{line}”: “{value}” is not an age in whole years.")
    return int(value)


def _screening(text: str) -> dict[str, Any]:
    """The screening criteria from ``_screening_lines``' format; every bad line is reported."""
    criteria: dict[str, Any] = {"questions": []}
    seen: set[str] = set()
    problems: list[str] = []
    for line in _lines(text):
        key, sep, value = (part.strip() for part in line.partition(":"))
        key = key.lower()
        try:
            if not sep or key not in SCREENING_KEYS:
                raise ValidationError(
                    f"“{line}”: start the line with one of {', '.join(SCREENING_KEYS)} and a colon."
                )
            if key in seen and key != "question":
                raise ValidationError(f"“{line}”: {key} is given twice.")
            seen.add(key)
            parsed = SCREENING_KEYS[key](value, line)
        except ValidationError as error:
            problems += error.messages
            continue
        if key == "question":
            criteria["questions"].append(parsed)
        else:
            criteria |= parsed
    if problems:
        raise ValidationError(problems)
    try:  # the section's own rules (codes, ages in order), reported on this field too
        plan_parse({"screening": criteria})
    except PlanError as error:
        raise ValidationError(error.messages) from None
    return criteria


def _screening_age(value: str, line: str) -> dict[str, Any]:
    low, dash, high = (part.strip() for part in value.partition("-"))
    if not dash:
        raise ValidationError(f"“{line}”: write the ages as “18-99”, “18-” or “-65”.")
    return {"min_age": _age_bound(low, line), "max_age": _age_bound(high, line)}


def _screening_codes(field: str) -> Callable[[str, str], dict[str, Any]]:
    def parse(value: str, line: str) -> dict[str, Any]:
        return {field: [code.strip() for code in value.split(",") if code.strip()]}

    return parse


def _screening_ai_use(value: str, line: str) -> dict[str, Any]:
    if value.lower() not in ("yes", "no", "any"):
        raise ValidationError(f"“{line}”: answer yes, no or any.")
    return {"uses_ai_assistants": value.lower()}


def _screening_question(value: str, line: str) -> dict[str, Any]:
    text, sep, answer = (part.strip() for part in value.rpartition("="))
    if not sep or not text or answer.lower() not in ("yes", "no"):
        raise ValidationError(f"“{line}”: write “question: the question? = yes” (or = no).")
    return {"text": text, "required_answer": answer.lower()}


SCREENING_KEYS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "age": _screening_age,
    "languages": _screening_codes("languages"),
    "countries": _screening_codes("countries"),
    "uses ai assistants": _screening_ai_use,
    "question": _screening_question,
}


HARM_METRICS = get_args(HarmMetric)
HARM_BOUNDARY_HELP = (
    "One per line: “metric: excess above 0.05 at 90% after 10 per arm”; what follows the "
    "metric may be left out (excess above 0, at 90%, after 10 per arm). Metrics: "
    f"{', '.join(HARM_METRICS)}. A boundary is crossed for an arm when the lower end of the "
    "interval (at that confidence) for its share of participants with the harm minus the "
    "control's is above the excess, that is when the data rule out an excess that small. "
    "Crossing it notifies every oversight body; it does not suspend the trial: the bodies decide."
)
# What follows the metric in a harm boundary's line, each part optional (the model's defaults).
HARM_BOUNDARY_TERMS = re.compile(
    r"(?:excess above (?P<excess>\S+))?\s*(?:at (?P<confidence>[^\s%]+) ?%)?\s*"
    r"(?:after (?P<minimum>\S+) per arm)?",
    re.IGNORECASE,
)
CANARY_PROMPTS_HELP = (
    "One per line: “arm slug: prompt”, one to five per arm. The drift watch sends them to the "
    "arm's endpoint and records the model (and fingerprint) it answers with, so a model changed "
    "behind the endpoint is noticed."
)
# trials.plan.Safety allows one to five prompts per arm; the form names the arm with too many.
CANARY_PROMPTS_PER_ARM = 5
SUSPENSION_LIFTED_BY = {
    "suspending_body": "The body that suspended the trial",
    "every_required_body": "Every required oversight body",
}


def _decimal(value: float) -> str:
    # Ten significant digits: what a coordinator typed reads back the same (90, not 90.00000001).
    return f"{value:.10g}"


def _harm_boundary_lines(safety: Safety) -> str:
    return "\n".join(
        f"{b.metric}: excess above {_decimal(b.max_excess)} at {_decimal(b.confidence * 100)}% "
        f"after {b.min_participants_per_arm} per arm"
        for b in safety.harm_boundaries
    )


def _harm_boundary(line: str) -> dict[str, Any]:
    """One boundary from ``_harm_boundary_lines``' format (what it leaves out takes the
    defaults of ``trials.plan.HarmBoundary``), each range checked and said in the line's words."""
    metric, _, terms = (part.strip() for part in line.partition(":"))
    metric = "_".join(metric.lower().split())
    if metric not in HARM_METRICS:
        raise ValidationError(f"“{line}”: start the line with a metric: {', '.join(HARM_METRICS)}.")
    match = HARM_BOUNDARY_TERMS.fullmatch(" ".join(terms.split()))
    if match is None:
        raise ValidationError(
            f"“{line}”: after the metric write “excess above 0.05 at 90% after 10 per arm”."
        )
    boundary: dict[str, Any] = {"metric": metric}
    if match["excess"] is not None:
        boundary["max_excess"] = _number(match["excess"], f"“{line}”")
        if not 0 <= boundary["max_excess"] < 1:
            raise ValidationError(
                f"“{line}”: the excess is a share from 0 up to (not including) 1, e.g. 0.05."
            )
    if match["confidence"] is not None:
        boundary["confidence"] = _number(match["confidence"], f"“{line}”") / 100
        if not 0.5 < boundary["confidence"] < 1:
            raise ValidationError(f"“{line}”: the confidence is above 50% and below 100%.")
    if match["minimum"] is not None:
        boundary["min_participants_per_arm"] = _whole(match["minimum"], f"“{line}”")
        if boundary["min_participants_per_arm"] < 1:
            raise ValidationError(f"“{line}”: check after at least 1 participant per arm.")
    return boundary


def _harm_boundaries(text: str) -> list[dict[str, Any]]:
    """Every boundary of the field; every bad line is reported."""
    boundaries, problems = [], []
    for line in _lines(text):
        try:
            boundaries.append(_harm_boundary(line))
        except ValidationError as error:
            problems += error.messages
    if problems:
        raise ValidationError(problems)
    return boundaries


def _canary_prompt_lines(safety: Safety) -> str:
    return "\n".join(
        f"{slug}: {prompt}" for slug, prompts in safety.canary_prompts.items() for prompt in prompts
    )


def _canary_prompts(text: str) -> dict[str, list[str]]:
    """Arm slug → its prompts, in the order written; every bad line and every arm with too many
    prompts is reported. Whether the slugs are the trial's arms is checked when freezing
    (``trials.plan.freeze_errors``), as for the arms compared: arms may come after the plan."""
    prompts: dict[str, list[str]] = {}
    problems = []
    for line in _lines(text):
        slug, sep, prompt = (part.strip() for part in line.partition(":"))
        if not (sep and slug and prompt):
            problems.append(f"“{line}”: write “arm slug: prompt”.")
        elif not slug_re.fullmatch(slug):
            problems.append(f"“{line}”: {slug} is not an arm slug (letters, digits, - and _).")
        else:
            prompts.setdefault(slug, []).append(prompt)
    problems += [
        f"Arm {slug} has {len(texts)} canary prompts: give at most {CANARY_PROMPTS_PER_ARM}."
        for slug, texts in prompts.items()
        if len(texts) > CANARY_PROMPTS_PER_ARM
    ]
    if problems:
        raise ValidationError(problems)
    return prompts


FACTORS_HELP = (
    "One factor per line: “name: reference level, other level, …” (e.g. “mode: text, voice”); "
    "the first level is the control's. Leave the three factorial fields empty for a trial "
    "whose arms are not the cells of a factorial design."
)
CELLS_HELP = "One arm per line: “arm slug: factor=level, factor=level” (every factor named)."
CONTRASTS_HELP = (
    "One per line: “main effect: mode” (each level against the reference, averaged over the "
    "other factors), “interaction: mode × type” (differences of differences; x works for ×), or "
    "“levels: mode voice vs text”. They are the confirmatory family with the outcomes."
)
VARIABLES_HELP = (
    "One per line: “baseline score: who5” (any score's code, read at wave 0), “community” or "
    "“language”."
)


def _factorial_lines(design: FactorialDesign | None) -> tuple[str, str, str]:
    """The three factorial fields' text: factors, cells, contrasts."""
    if design is None:
        return "", "", ""
    factors = "\n".join(f"{f.name}: {', '.join(f.levels)}" for f in design.factors)
    cells = "\n".join(
        f"{arm}: {', '.join(f'{name}={level}' for name, level in cell.items())}"
        for arm, cell in design.cells.items()
    )
    contrasts = []
    for contrast in design.contrasts:
        if contrast.kind == "main_effect":
            contrasts.append(f"main effect: {contrast.factor}")
        elif contrast.kind == "interaction":
            contrasts.append(f"interaction: {' × '.join(contrast.factors)}")
        else:
            versus = f" vs {contrast.versus}" if contrast.versus else ""
            contrasts.append(f"levels: {contrast.factor} {contrast.level}{versus}")
    return factors, cells, "\n".join(contrasts)


def _factors(text: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "levels": [level.strip() for level in levels.split(",") if level.strip()]}
        for name, levels in _pairs(text, "factor")
    ]


def _cells(text: str) -> dict[str, dict[str, str]]:
    cells = {}
    for arm, assignments in _pairs(text, "arm's cell"):
        cell = {}
        for part in filter(None, (p.strip() for p in assignments.split(","))):
            name, sep, level = (piece.strip() for piece in part.partition("="))
            if not (sep and name and level):
                raise ValidationError(f"{arm}: write each factor as “factor=level” (got “{part}”).")
            cell[name] = level
        cells[arm] = cell
    return cells


def _contrasts(text: str) -> list[dict[str, Any]]:
    contrasts = []
    for kind, terms in _pairs(text, "contrast"):
        kind = "_".join(kind.lower().split())
        if kind == "main_effect":
            contrasts.append({"kind": kind, "factor": terms})
        elif kind == "interaction":
            factors = [f.strip() for f in re.split(r"[×x*]", terms) if f.strip()]
            contrasts.append({"kind": kind, "factors": factors})
        elif kind == "levels":
            match = re.fullmatch(r"(\S+)\s+(\S+)(?:\s+vs\s+(\S+))?", terms)
            if match is None:
                raise ValidationError(f"Write “levels: factor level vs level” (got “{terms}”).")
            factor, level, versus = match.groups()
            contrasts.append(
                {"kind": kind, "factor": factor, "level": level}
                | ({"versus": versus} if versus else {})
            )
        else:
            raise ValidationError(
                f"A contrast starts with “main effect”, “interaction” or “levels” (got “{kind}”)."
            )
    return contrasts


def _variable_lines(variables: list[ParticipantVariable]) -> str:
    return "\n".join(
        f"baseline score: {v.score}" if v.kind == "baseline_score" else v.kind for v in variables
    )


def _variables(text: str) -> list[dict[str, Any]]:
    variables = []
    for line in _lines(text):
        kind, sep, score = (part.strip() for part in line.partition(":"))
        kind = "_".join(kind.lower().split())
        if kind == "baseline_score" and sep and score:
            variables.append({"kind": kind, "score": score})
        elif kind in ("community", "language") and not sep:
            variables.append({"kind": kind})
        else:
            raise ValidationError(
                f"Write “baseline score: score code”, “community” or “language” (got “{line}”)."
            )
    return variables


def _choices(values: Any) -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ")) for value in get_args(values)]


def plan_to_start_from(trial: Trial | None) -> Plan:
    """What a new plan version starts as: the open draft, else the version in force (so an
    amendment changes only what it means to change), else the latest frozen one, else empty."""
    if trial is None:
        return Plan()
    draft = trial.preregistrations.filter(frozen_at__isnull=True).first()
    latest = draft or preregistration_in_force(trial) or trial.preregistrations.first()
    return latest.plan if latest is not None else Plan()


class PlanForm(forms.ModelForm):
    """A draft plan, section by section (the OSF Preregistration template's order).

    Every section of ``trials.plan.Plan`` has a field here (a test checks it); what the form
    builds starts from the plan it was opened with, so nothing it does not show is dropped."""

    hypotheses = forms.CharField(widget=LINES, help_text="One hypothesis per line.")
    study_type = forms.CharField(required=False, initial="Experiment: randomised field trial")
    blinding = forms.CharField(required=False, widget=LINES)
    design = forms.CharField(required=False, widget=LINES, label="Study design")
    data_collection_procedures = forms.CharField(required=False, widget=LINES)
    control_arm = forms.SlugField(help_text="Slug of the control arm.")
    treatment_arm = forms.SlugField(
        required=False,
        help_text="Slug of the arm compared with it (a factorial design may leave it empty).",
    )
    randomisation_method = forms.ChoiceField(choices=_choices(RandomisationMethod))
    strata = forms.MultipleChoiceField(
        choices=_choices(StratificationFactor),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    block_sizes = forms.CharField(initial="4, 6", help_text="Comma-separated, e.g. 4, 6.")
    randomisation_ratio = forms.CharField(
        required=False,
        widget=LINES,
        label="Allocation ratio",
        help_text="One per line: arm slug: weight (e.g. a: 1 and b: 2). Empty: equal allocation.",
    )
    factorial_factors = forms.CharField(
        required=False, widget=LINES, label="Factorial factors", help_text=FACTORS_HELP
    )
    factorial_cells = forms.CharField(
        required=False, widget=LINES, label="Factorial cells", help_text=CELLS_HELP
    )
    factorial_contrasts = forms.CharField(
        required=False, widget=LINES, label="Factorial contrasts", help_text=CONTRASTS_HELP
    )
    covariates = forms.CharField(
        required=False,
        widget=LINES,
        label="Baseline covariates",
        help_text="Adjusted for in every growth model, for precision. " + VARIABLES_HELP,
    )
    moderators = forms.CharField(
        required=False,
        widget=LINES,
        label="Moderators",
        help_text="Their interaction with the arm on growth is confirmatory. " + VARIABLES_HELP,
    )
    primary_outcomes = forms.CharField(
        widget=LINES,
        help_text="One per line: dimension, instrument code, wave number[, score code].",
    )
    secondary_outcomes = forms.CharField(widget=LINES, required=False)
    estimand = forms.CharField(
        required=False,
        widget=LINES,
        initial="Intention-to-treat difference between arms in the rate of change per wave "
        "(the growth model's arm × wave interaction)",
    )
    analysis_model = forms.CharField(
        required=False,
        widget=LINES,
        # What analytics.analysis fits for every outcome (stats.growth.mixedlm_growth).
        initial="Linear mixed model of the score on arm, wave and arm × wave with random "
        "intercepts and slopes per participant (REML); sensitivity analyses: GEE growth model, "
        "ANCOVA of the outcome wave adjusted for baseline",
    )
    transformations = forms.CharField(required=False, widget=LINES)
    alpha = forms.FloatField(initial=0.05, min_value=0.0001, max_value=0.5)
    multiplicity = forms.ChoiceField(choices=_choices(Multiplicity), initial="holm")
    minimal_important_differences = forms.CharField(
        widget=LINES, required=False, help_text="One per line: dimension: difference."
    )
    sample_size_per_arm = forms.IntegerField(required=False, min_value=1)
    sample_size_rationale = forms.CharField(required=False, widget=LINES)
    compute_sample_size = forms.BooleanField(
        required=False,
        help_text="Compute the per-arm size from the power inputs below "
        "(ANCOVA of the follow-up mean, Frison & Pocock 1992).",
    )
    power_effect = forms.FloatField(required=False, help_text="Smallest effect worth detecting.")
    power_sd = forms.FloatField(required=False, min_value=0, help_text="Between-person SD.")
    power_rho = forms.FloatField(
        required=False, min_value=0, max_value=0.99, help_text="Correlation between waves."
    )
    power_follow_ups = forms.IntegerField(required=False, min_value=1, initial=1)
    power_attrition = forms.FloatField(required=False, min_value=0, max_value=0.9, initial=0.2)
    power_target = forms.FloatField(required=False, min_value=0.5, max_value=0.99, initial=0.8)
    interim_looks = forms.CharField(
        required=False, help_text="Information fractions of the interim looks, e.g. 0.5."
    )
    spending = forms.ChoiceField(choices=_choices(SpendingFunction), required=False)
    stopping_rule = forms.CharField(required=False, widget=LINES)
    exclusions = forms.CharField(required=False, widget=LINES)
    missing_data = forms.CharField(
        required=False,
        widget=LINES,
        initial="Every observed wave enters the mixed model's likelihood, which is valid when "
        "data are missing at random; no imputation",
    )
    guardrails = forms.CharField(required=False, widget=LINES, help_text="One per line.")
    community_weights = forms.CharField(
        required=False, widget=LINES, help_text="One per line: community slug: profile version."
    )
    telemetry_window_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=366,
        label="Telemetry window (days)",
        help_text="Leave the telemetry fields empty for a trial without telemetry.",
    )
    telemetry_rho_total = forms.FloatField(
        required=False, min_value=0, label="Telemetry budget ρ (zCDP, whole trial)"
    )
    telemetry_rho_per_window = forms.FloatField(
        required=False, min_value=0, label="Telemetry ρ per window"
    )
    telemetry_delta = forms.FloatField(
        required=False, initial=DEFAULT_DELTA, label="Telemetry δ (for the (ε, δ) report)"
    )
    telemetry_min_replies_per_arm = forms.IntegerField(
        required=False, min_value=1, initial=DEFAULT_MIN_REPLIES_PER_ARM
    )
    telemetry_metrics = forms.CharField(
        required=False,
        widget=LINES,
        help_text=f"One per line: code, code: upper or code: lower-upper (per window). Codes: "
        f"{', '.join(METRICS)}.",
    )
    telemetry_ratings = forms.CharField(
        required=False,
        widget=LINES,
        label="Per-conversation rating questions",
        help_text="One per line: code (lowest-highest): the question the assistant app asks "
        "after a conversation, e.g. “thinking (1-5): Did this conversation help you think for "
        "yourself?” Released only as per-arm DP means.",
    )
    dose_instrument = forms.CharField(
        required=False,
        label="Dose release: instrument",
        help_text="The usage-outcome slope under DP (exploratory, not causal): leave the dose "
        "fields empty for none. The outcome is this instrument's score, changed from baseline.",
    )
    dose_score = forms.CharField(required=False, label="Dose release: score")
    dose_wave = forms.IntegerField(required=False, min_value=1, label="Dose release: wave")
    dose_usage_metric = forms.ChoiceField(
        required=False,
        choices=[("", "—")] + [(code, code) for code in METRICS],
        label="Dose release: usage metric",
    )
    dose_usage_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=366,
        label="Dose release: usage days",
        help_text="Usage is the metric's total over this many days after enrolment.",
    )
    dose_usage_upper = forms.IntegerField(
        required=False, min_value=1, label="Dose release: usage clipped at"
    )
    dose_change_bound = forms.FloatField(
        required=False, min_value=0, label="Dose release: change clipped at ± (score points)"
    )
    dose_change_step = forms.FloatField(
        required=False, min_value=0, label="Dose release: change sent in steps of"
    )
    dose_rho = forms.FloatField(required=False, min_value=0, label="Dose release: ρ (zCDP)")
    screening = forms.CharField(
        required=False,
        widget=LINES,
        label="Eligibility screening",
        help_text=SCREENING_HELP,
    )
    safety_harm_boundaries = forms.CharField(
        required=False, widget=LINES, label="Harm boundaries", help_text=HARM_BOUNDARY_HELP
    )
    safety_suspension_lifted_by = forms.ChoiceField(
        choices=[
            (value, SUSPENSION_LIFTED_BY[value])
            for value in get_args(Safety.model_fields["suspension_lifted_by"].annotation)
        ],
        initial="suspending_body",
        # Left out (a form posted by an older page or a script), the plan's default stands.
        required=False,
        label="Who lifts a suspension",
        help_text="Any oversight body of the trial may suspend it; this says who must lift "
        "the suspension before the trial goes on.",
    )
    safety_canary_prompts = forms.CharField(
        required=False, widget=LINES, label="Canary prompts", help_text=CANARY_PROMPTS_HELP
    )
    exploratory_analyses = forms.CharField(required=False, widget=LINES)
    other = forms.CharField(required=False, widget=LINES)

    class Meta:
        model = PreRegistration
        fields = ["trial", "rationale"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        trial = self.instance.trial if self.instance.pk else self._initial_trial()
        self.start = self.instance.plan if self.instance.pk else plan_to_start_from(trial)
        if self.instance.pk or trial is not None:
            initial = self.initial_from(self.start)
            if not self.instance.pk and self.start == Plan():
                # A trial's first plan: what it leaves empty starts from the fields' defaults
                # (Holm, the growth model's estimand), not from blanks.
                initial = {k: v for k, v in initial.items() if v not in ("", None)}
            self.initial.update(initial)

    def _initial_trial(self) -> Trial | None:
        pk = self.initial.get("trial")
        return Trial.objects.filter(pk=pk).first() if str(pk or "").isdigit() else None

    @staticmethod
    def initial_from(plan: Plan) -> dict[str, Any]:
        """The form's fields for ``plan``: submitting them unchanged gives ``plan`` back."""
        randomisation, sample, telemetry = plan.randomisation, plan.sample_size, plan.telemetry
        power = sample.power if sample else None
        compared = [*plan.arms_compared, "", ""][:2]
        initial = {section: getattr(plan, section) for section in NARRATIVE_SECTIONS}
        factors, cells, contrasts = _factorial_lines(plan.factorial)
        return initial | {
            "factorial_factors": factors,
            "factorial_cells": cells,
            "factorial_contrasts": contrasts,
            "covariates": _variable_lines(plan.covariates),
            "moderators": _variable_lines(plan.moderators),
            "hypotheses": "\n".join(plan.hypotheses),
            "control_arm": compared[0],
            "treatment_arm": compared[1],
            "randomisation_method": randomisation.method,
            "strata": randomisation.strata,
            "block_sizes": ", ".join(str(s) for s in randomisation.block_sizes),
            "randomisation_ratio": "\n".join(
                f"{arm}: {weight}" for arm, weight in (randomisation.ratio or {}).items()
            ),
            "primary_outcomes": _outcome_lines(plan.primary_outcomes),
            "secondary_outcomes": _outcome_lines(plan.secondary_outcomes),
            "alpha": plan.alpha,
            "multiplicity": plan.multiplicity,
            "minimal_important_differences": "\n".join(
                f"{k}: {v:g}" for k, v in plan.minimal_important_differences.items()
            ),
            "sample_size_per_arm": sample.per_arm if sample else None,
            "sample_size_rationale": sample.rationale if sample else "",
            "power_effect": power.effect if power else None,
            "power_sd": power.sd if power else None,
            "power_rho": power.rho if power else None,
            "power_follow_ups": power.follow_ups if power else 1,
            "power_attrition": power.attrition if power else 0.2,
            "power_target": power.power if power else 0.8,
            "interim_looks": ", ".join(
                f"{look.information_fraction:g}" for look in plan.interim_looks
            ),
            "spending": plan.interim_looks[0].spending if plan.interim_looks else "obrien_fleming",
            "guardrails": "\n".join(plan.guardrails),
            "community_weights": "\n".join(
                f"{slug}: {w.profile_version}" for slug, w in plan.community_weights.items()
            ),
            "telemetry_window_days": telemetry.window_days if telemetry else None,
            "telemetry_rho_total": telemetry.rho_total if telemetry else None,
            "telemetry_rho_per_window": telemetry.rho_per_window if telemetry else None,
            "telemetry_delta": telemetry.delta if telemetry else DEFAULT_DELTA,
            "telemetry_min_replies_per_arm": (
                telemetry.min_replies_per_arm if telemetry else DEFAULT_MIN_REPLIES_PER_ARM
            ),
            "telemetry_metrics": _metric_lines(telemetry),
            "telemetry_ratings": _rating_lines(telemetry),
            **_dose_initial(telemetry.dose if telemetry else None),
            "screening": _screening_lines(plan.screening),
            "safety_harm_boundaries": _harm_boundary_lines(plan.safety),
            "safety_suspension_lifted_by": plan.safety.suspension_lifted_by,
            "safety_canary_prompts": _canary_prompt_lines(plan.safety),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        if not self.instance.pk:
            self.start = plan_to_start_from(data.get("trial"))
        plan: dict[str, Any] = self.start.canonical()
        plan |= {section: data.get(section, "") for section in NARRATIVE_SECTIONS}
        plan["hypotheses"] = _lines(data["hypotheses"])
        plan["arms_compared"] = [data["control_arm"], *filter(None, [data.get("treatment_arm")])]
        ratio = self._parsed("randomisation_ratio", _ratio, data)
        plan["randomisation"] = {
            "method": data["randomisation_method"],
            "strata": data["strata"],
            "block_sizes": self._parsed("block_sizes", _block_sizes, data),
            "ratio": ratio or None,
        }
        plan["factorial"] = self._factorial(data)
        plan["covariates"] = self._parsed("covariates", _variables, data)
        plan["moderators"] = self._parsed("moderators", _variables, data)
        plan["primary_outcomes"] = self._parsed("primary_outcomes", _outcomes, data)
        plan["secondary_outcomes"] = self._parsed("secondary_outcomes", _outcomes, data)
        plan["alpha"] = data["alpha"]
        plan["multiplicity"] = data["multiplicity"]
        plan["minimal_important_differences"] = self._parsed(
            "minimal_important_differences", _mids, data
        )
        plan["guardrails"] = _lines(data.get("guardrails", ""))
        plan["community_weights"] = self._parsed("community_weights", _profile_versions, data)
        fractions = self._parsed("interim_looks", _fractions, data)
        plan["interim_looks"] = [
            {"information_fraction": f, "spending": data.get("spending") or "obrien_fleming"}
            for f in fractions
        ]
        plan["sample_size"] = self._sample_size(data)
        plan["telemetry"] = self._telemetry(data)
        plan["screening"] = self._parsed("screening", _screening, data)
        plan["safety"] = {
            "suspension_lifted_by": data["safety_suspension_lifted_by"] or "suspending_body",
            "harm_boundaries": self._parsed("safety_harm_boundaries", _harm_boundaries, data),
            "canary_prompts": self._parsed("safety_canary_prompts", _canary_prompts, data),
        }
        if self.errors:
            return data
        try:
            self.plan = plan_parse(plan)
        except PlanError as error:
            raise ValidationError(error.messages) from None
        return data

    def _parsed(self, field: str, parse: Callable[[str], Any], data: dict[str, Any]) -> Any:
        """``parse`` of the field's text; a mistake is reported on the field and parsing goes
        on, so the coordinator sees every mistake at once."""
        try:
            return parse(data.get(field) or "")
        except ValidationError as error:
            self.add_error(field, error)
            return parse("")

    def _factorial(self, data: dict[str, Any]) -> dict[str, Any] | None:
        fields = {
            "factors": self._parsed("factorial_factors", _factors, data),
            "cells": self._parsed("factorial_cells", _cells, data),
            "contrasts": self._parsed("factorial_contrasts", _contrasts, data),
        }
        return fields if any(fields.values()) else None

    def _telemetry(self, data: dict[str, Any]) -> dict[str, Any] | None:
        fields = {
            "window_days": data.get("telemetry_window_days"),
            "rho_total": data.get("telemetry_rho_total"),
            "rho_per_window": data.get("telemetry_rho_per_window"),
            "metrics": self._parsed("telemetry_metrics", _metrics, data),
            "ratings": self._parsed("telemetry_ratings", _ratings, data),
        }
        dose = {name: data.get(f"dose_{name}") for name in DOSE_FIELDS}
        if any(value not in (None, "") for value in dose.values()):
            outcome = {name: dose.pop(name) for name in ("instrument", "score", "wave")}
            fields["dose"] = dose | {"outcome": outcome}
        # Ratings or a dose without the budget fields are refused by the plan's validation,
        # naming what is missing, rather than dropped.
        if not any(fields.values()):
            return None
        fields["delta"] = data.get("telemetry_delta") or DEFAULT_DELTA
        fields["min_replies_per_arm"] = (
            data.get("telemetry_min_replies_per_arm") or DEFAULT_MIN_REPLIES_PER_ARM
        )
        return fields

    def _sample_size(self, data: dict[str, Any]) -> dict[str, Any] | None:
        inputs = {
            "effect": data.get("power_effect"),
            "sd": data.get("power_sd"),
            "rho": data.get("power_rho"),
            "follow_ups": data.get("power_follow_ups"),
            "attrition": data.get("power_attrition"),
            "power": data.get("power_target"),
        }
        per_arm = data.get("sample_size_per_arm")
        power = None
        if data.get("compute_sample_size"):
            missing = [k for k, v in inputs.items() if v is None]
            if missing:
                raise ValidationError(f"To compute the sample size, fill in: {', '.join(missing)}.")
            # Imported here: the web process starts without SciPy (tests/config/
            # test_startup_imports.py); only this form's power calculation needs it.
            from stats.power import ancova_sample_size

            try:
                result = ancova_sample_size(alpha=data["alpha"], **inputs)
            except ValueError as error:
                raise ValidationError(f"Power calculation: {error}") from None
            per_arm = result.n_control
            power = {
                "method": "ANCOVA of the follow-up mean adjusted for baseline "
                "(Frison & Pocock 1992), normal approximation",
                **inputs,
                "alpha": data["alpha"],
                "design_multiplier": result.design_multiplier,
                "n_per_arm": result.n_control,
                "n_total": result.n_total,
                "achieved_power": result.achieved_power,
            }
        elif self.start.sample_size and self.start.sample_size.power:
            power = self.start.sample_size.power.model_dump(mode="json")
        if per_arm is None:
            return None
        return {
            "per_arm": per_arm,
            "rationale": data.get("sample_size_rationale", ""),
            "power": power,
        }


class ArmForm(forms.ModelForm):
    """An arm; after registration, saving it is an amendment and needs a rationale."""

    endpoint_url = forms.URLField(
        assume_scheme="https", help_text="OpenAI-compatible chat completions base URL."
    )
    amendment_rationale = forms.CharField(
        required=False,
        widget=LINES,
        help_text="Required once the trial is registered: the change becomes a new plan "
        "version and a recorded protocol deviation, and needs new approvals.",
    )

    class Meta:
        model = Arm
        fields = [
            "trial",
            "slug",
            "name",
            "is_control",
            "endpoint_url",
            "model_id",
            "model_version",
            "system_prompt",
            "flourishing_profile",
            "memory_policy",
            "parameters",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        arm, trial = self.instance, data.get("trial") or getattr(self.instance, "trial", None)
        if trial is None or trial.state == Trial.State.DRAFT or arm.pk is None:
            return data
        if set(self.changed_data) & ARM_CONFIG_FIELDS:
            if trial.state not in AMENDABLE_STATES:
                raise ValidationError(f"A {trial.get_state_display()} trial cannot be amended.")
            if not data.get("amendment_rationale", "").strip():
                raise ValidationError(
                    {"amendment_rationale": "This trial is registered: give the rationale."}
                )
        return data


class ProfileForm(forms.ModelForm):
    class Meta:
        model = FlourishingProfile
        fields = ["community", "weights", "priorities", "locale", "authored_by"]

    def clean_weights(self) -> dict[str, float]:
        weights = self.cleaned_data["weights"]
        errors = profile_weights_errors(weights)
        if errors:
            raise ValidationError(errors)
        return weights


class DeviationForm(forms.ModelForm):
    class Meta:
        model = ProtocolDeviation
        fields = ["trial", "description"]

    def clean_trial(self) -> Trial:
        trial = self.cleaned_data["trial"]
        if not trial.preregistrations.filter(frozen_at__isnull=False).exists():
            raise ValidationError("Deviations are recorded against a registered protocol.")
        return trial


class ConsentDocumentForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ConsentScope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ConsentDocument
        fields = ["trial", "version", "locale", "text", "scopes", "withdrawal_rule"]

    def clean_scopes(self) -> list[str]:
        scopes = self.cleaned_data["scopes"]
        if ConsentScope.SURVEYS not in scopes:
            raise ValidationError("Taking part means answering surveys: include that scope.")
        return scopes


class OversightDecisionForm(forms.Form):
    """An oversight body's decision: on the approval page, approve the version to approve or ask
    for changes to it; on the suspension page, suspend the trial or lift the body's own
    suspension. Asking for changes, suspending and lifting say why."""

    APPROVE, REQUEST_CHANGES, SUSPEND, LIFT = "approve", "request_changes", "suspend", "lift"
    LABELS = {
        APPROVE: "Approve this version",
        REQUEST_CHANGES: "Ask for changes",
        SUSPEND: "Suspend the trial",
        LIFT: "Lift our suspension",
    }
    REASONS = {
        REQUEST_CHANGES: "what should change",
        SUSPEND: "the reason",
        LIFT: "why the suspension can be lifted",
    }

    body = forms.ModelChoiceField(queryset=OversightBody.objects.none())
    note = forms.CharField(widget=LINES, required=False, label="Note / reason")
    # The submit button pressed; without one (Enter in a field), the page's first decision.
    decision = forms.ChoiceField(choices=LABELS.items(), required=False)

    def __init__(self, *args, bodies, decisions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["body"].queryset = bodies
        if len(bodies) == 1:
            self.fields["body"].initial = bodies[0]
        self.fields["decision"].choices = [(d, self.LABELS[d]) for d in decisions]
        self.decisions = decisions

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        decision = data["decision"] = data.get("decision") or self.decisions[0]
        if decision in self.REASONS and not data.get("note", "").strip():
            self.add_error("note", f"Say {self.REASONS[decision]}.")
        return data
