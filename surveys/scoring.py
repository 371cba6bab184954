"""Instrument scoring rules, as functions of an instrument definition and its answers.

Validation messages are translated into the active language (the participant's, on their pages).
"""

from collections.abc import Mapping

from django.utils.translation import gettext as _

from surveys.instrument import InstrumentDefinition


def validate_answers(
    definition: InstrumentDefinition, answers: Mapping[str, object], *, complete: bool = True
) -> dict[str, str]:
    """Per-item error messages for ``answers`` (empty when all are valid).

    With ``complete`` every item must be answered (the participant page); without it only the
    given answers are checked (a partial save, an import whose score rules allow gaps).
    """
    low, high = definition.scale.min, definition.scale.max
    errors: dict[str, str] = {}
    for code in definition.item_codes:
        value = answers.get(code)
        if value is None or value == "":
            if complete:
                errors[code] = _("Please answer this question.")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[code] = _("Choose one of the answers from %(low)s to %(high)s.") % {
                "low": low,
                "high": high,
            }
    unknown = set(answers) - set(definition.item_codes)
    for code in sorted(unknown):
        errors[code] = _("This is not a question of this questionnaire.")
    return errors


def keyed_values(definition: InstrumentDefinition, answers: Mapping[str, int]) -> dict[str, int]:
    """The answered items with reverse-keyed ones mirrored, so higher always means more."""
    low, high = definition.scale.min, definition.scale.max
    keyed = {}
    for item in definition.items:
        value = answers.get(item.code)
        if value is not None:
            keyed[item.code] = (low + high - value) if item.reverse else value
    return keyed


def scores(definition: InstrumentDefinition, answers: Mapping[str, int]) -> dict[str, float]:
    """Score code → value for every score of the instrument that ``answers`` allow.

    A score needs at least ``min_answered`` of its items (all of them by default, as the SWLS and
    WHO-5 manuals require). ``sum`` with missing items is prorated (mean × number of items) so a
    score keeps its published range; ``mean`` is the mean of the answered items. Either is then
    multiplied by ``multiplier`` (WHO-5: × 4 → 0–100). Raises ``ValueError`` on invalid answers.
    """
    errors = validate_answers(definition, answers, complete=False)
    if errors:
        raise ValueError(f"Invalid answers for {definition.code}: {errors}")
    keyed = keyed_values(definition, answers)
    result: dict[str, float] = {}
    for score in definition.scores:
        items = definition.scored_items(score)
        values = [keyed[code] for code in items if code in keyed]
        if len(values) < definition.min_answered(score):
            continue
        mean = sum(values) / len(values)
        value = mean * len(items) if score.rule == "sum" else mean
        result[score.code] = float(value * score.multiplier)
    return result
