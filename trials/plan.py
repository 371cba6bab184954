"""The shape of a pre-registered plan, and the checks a plan must pass before it can be frozen.

A plan is a JSON object whose sections follow the OSF Preregistration template and DESIGN.md §2:
hypotheses; design and randomisation; outcomes bound to instruments, dimensions and waves; the
estimand and analysis model; alpha and multiplicity correction; sample size with its power
calculation; interim looks and stopping rule; exclusions; missing data; minimal important
differences; guardrails; community weights; the telemetry schema (``federated.schema``).
``trials.registry_export`` turns a frozen one into OSF JSON and Markdown.
"""

from typing import Any

from federated.schema import telemetry_errors

MULTIPLICITY_CORRECTIONS = {"holm", "bh", "none"}
RANDOMISATION_METHODS = {"permuted_blocks", "salted_hash"}
STRATIFICATION_FACTORS = {"community", "locale"}
SPENDING_FUNCTIONS = {"obrien_fleming", "pocock"}

# Narrative sections: free text the coordinator writes, exported as they stand.
NARRATIVE_SECTIONS = [
    "study_type",
    "blinding",
    "design",
    "estimand",
    "analysis_model",
    "stopping_rule",
    "exclusions",
    "missing_data",
    "exploratory_analyses",
    "other",
]

DEFAULT_RANDOMISATION = {
    "method": "permuted_blocks",
    "strata": ["community"],
    "block_sizes": [4, 6],
    "ratio": None,  # None: equal allocation across every arm
}


def randomisation_settings(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's randomisation section with defaults filled in."""
    return DEFAULT_RANDOMISATION | (plan.get("randomisation") or {})


def plan_errors(plan: Any, *, arm_slugs: list[str], dimensions: set[str]) -> list[str]:
    """Everything that stops ``plan`` from being frozen, as messages a coordinator can act on."""
    if not isinstance(plan, dict):
        return ["The plan must be a JSON object."]
    errors: list[str] = []
    hypotheses = plan.get("hypotheses")
    if not (
        isinstance(hypotheses, list)
        and hypotheses
        and all(isinstance(h, str) and h.strip() for h in hypotheses)
    ):
        errors.append("State at least one hypothesis.")
    compared = plan.get("arms_compared")
    if not (
        isinstance(compared, list)
        and len(compared) == 2
        and set(compared) <= set(arm_slugs)
        and compared[0] != compared[1]
    ):
        errors.append(
            "arms_compared must name two different arms of this trial, control first "
            f"(arms: {', '.join(arm_slugs) or 'none yet'})."
        )
    for role in ("primary_outcomes", "secondary_outcomes"):
        outcomes = plan.get(role, [])
        if role == "primary_outcomes" and not outcomes:
            errors.append("Name at least one primary outcome.")
        if not isinstance(outcomes, list):
            errors.append(f"{role} must be a list.")
            continue
        for number, outcome in enumerate(outcomes, start=1):
            errors += _outcome_errors(role, number, outcome, dimensions)
    alpha = plan.get("alpha")
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        errors.append("alpha must be a number between 0 and 1.")
    if plan.get("multiplicity") not in MULTIPLICITY_CORRECTIONS:
        errors.append(f"multiplicity must be one of {', '.join(sorted(MULTIPLICITY_CORRECTIONS))}.")
    errors += _randomisation_errors(randomisation_settings(plan), arm_slugs)
    errors += _interim_errors(plan.get("interim_looks", []))
    mids = plan.get("minimal_important_differences", {})
    if not isinstance(mids, dict) or not all(
        isinstance(v, int | float) and v > 0 for v in mids.values()
    ):
        errors.append("minimal_important_differences maps dimensions to positive numbers.")
    sample = plan.get("sample_size")
    if sample is not None and not (
        isinstance(sample, dict)
        and isinstance(sample.get("per_arm"), int)
        and sample["per_arm"] > 0
    ):
        errors.append("sample_size.per_arm must be a positive whole number.")
    if "telemetry" in plan:
        errors += telemetry_errors(plan["telemetry"])
    for section in NARRATIVE_SECTIONS:
        if section in plan and not isinstance(plan[section], str):
            errors.append(f"{section} must be text.")
    return errors


def _outcome_errors(role: str, number: int, outcome: Any, dimensions: set[str]) -> list[str]:
    where = f"{role.replace('_', ' ')[:-1]} {number}"
    if not isinstance(outcome, dict):
        return [f"{where} must be an object with dimension, instrument and wave."]
    errors = []
    if outcome.get("dimension") not in dimensions:
        errors.append(
            f"{where}: dimension must be one of {', '.join(sorted(dimensions)) or '(none)'}."
        )
    if not isinstance(outcome.get("instrument"), str):
        errors.append(f"{where}: name the instrument.")
    wave = outcome.get("wave")
    if not (isinstance(wave, int) and wave >= 1):
        errors.append(f"{where}: wave must be a follow-up wave number (1 or more).")
    return errors


def _randomisation_errors(settings: dict[str, Any], arm_slugs: list[str]) -> list[str]:
    errors = []
    if settings["method"] not in RANDOMISATION_METHODS:
        errors.append(
            f"randomisation.method must be one of {', '.join(sorted(RANDOMISATION_METHODS))}."
        )
        return errors
    if not set(settings["strata"]) <= STRATIFICATION_FACTORS:
        errors.append(f"randomisation.strata may use {', '.join(sorted(STRATIFICATION_FACTORS))}.")
    ratio = settings["ratio"] or dict.fromkeys(arm_slugs, 1)
    if set(ratio) != set(arm_slugs) or not all(
        isinstance(v, int) and v > 0 for v in ratio.values()
    ):
        errors.append("randomisation.ratio must give every arm a positive whole number.")
        return errors
    unit = sum(ratio.values())
    sizes = settings["block_sizes"]
    if settings["method"] == "permuted_blocks" and not (
        isinstance(sizes, list)
        and sizes
        and all(isinstance(s, int) and s > 0 and s % unit == 0 for s in sizes)
    ):
        errors.append(f"randomisation.block_sizes must be multiples of {unit} (the ratio's sum).")
    return errors


def _interim_errors(looks: Any) -> list[str]:
    if not isinstance(looks, list):
        return ["interim_looks must be a list."]
    fractions = [look.get("information_fraction") for look in looks if isinstance(look, dict)]
    if (
        len(fractions) != len(looks)
        or not all(isinstance(f, int | float) and 0 < f < 1 for f in fractions)
        or fractions != sorted(set(fractions))
    ):
        return ["interim_looks need increasing information fractions between 0 and 1."]
    if any(look.get("spending", "obrien_fleming") not in SPENDING_FUNCTIONS for look in looks):
        return [f"interim_looks spending must be one of {', '.join(sorted(SPENDING_FUNCTIONS))}."]
    return []
