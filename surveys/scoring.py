"""Instrument scoring rules, as pure functions of an instrument definition and its answers."""

from collections.abc import Mapping


def validate_answers(definition: Mapping, answers: Mapping[str, object]) -> dict[str, str]:
    """Per-item error messages for ``answers`` (empty when all are valid)."""
    low, high = definition["scale"]["min"], definition["scale"]["max"]
    errors: dict[str, str] = {}
    for item in definition["items"]:
        value = answers.get(item["code"])
        if value is None or value == "":
            if definition["scoring"]["require_all_items"]:
                errors[item["code"]] = "Please answer this question."
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[item["code"]] = f"Choose one of the answers from {low} to {high}."
    unknown = set(answers) - {item["code"] for item in definition["items"]}
    for code in sorted(unknown):
        errors[code] = "This is not a question of this questionnaire."
    return errors


def score(definition: Mapping, answers: Mapping[str, int]) -> float:
    """The instrument's score: reverse-keyed items mirrored, then summed and multiplied.

    Raises ``ValueError`` when the answers are invalid for the instrument.
    """
    errors = validate_answers(definition, answers)
    if errors:
        raise ValueError(f"Invalid answers for {definition['code']}: {errors}")
    rule = definition["scoring"]
    if rule["rule"] != "sum":
        raise ValueError(f"Unknown scoring rule {rule['rule']!r} for {definition['code']}.")
    low, high = definition["scale"]["min"], definition["scale"]["max"]
    total = 0
    for item in definition["items"]:
        value = answers[item["code"]]
        total += (low + high - value) if item["reverse"] else value
    return float(total * rule["multiplier"])
