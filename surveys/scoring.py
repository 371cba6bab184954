"""Instrument scoring rules, as functions of an instrument definition and its answers.

Validation messages are translated into the active language (the participant's, on their pages).
"""

from collections.abc import Mapping

import numpy as np
from django.utils.translation import gettext as _

from surveys.instrument import InstrumentDefinition, Item


def applicable_answers(
    definition: InstrumentDefinition, answers: Mapping[str, object]
) -> dict[str, object]:
    """``answers`` less those to items not asked (an unmet show_if condition), which are
    discarded: a participant who first said yes, answered the follow-up and then changed to no
    has not answered it."""
    shown = {item.code for item in definition.shown_items(answers)}
    known = set(definition.item_codes)
    return {code: value for code, value in answers.items() if code in shown or code not in known}


def _answer_error(definition: InstrumentDefinition, item: Item, value: object) -> str | None:
    low, high = definition.answer_range(item)
    if not isinstance(value, bool) and isinstance(value, int) and low <= value <= high:
        return None
    if item.type == "number":
        return _("Enter a whole number from %(low)s to %(high)s.") % {"low": low, "high": high}
    if item.type == "yes_no":
        return _("Choose yes or no.")
    return _("Choose one of the answers from %(low)s to %(high)s.") % {"low": low, "high": high}


def validate_answers(
    definition: InstrumentDefinition, answers: Mapping[str, object], *, complete: bool = True
) -> dict[str, str]:
    """Per-item error messages for ``answers`` (empty when all are valid).

    With ``complete`` every item asked must be answered (the participant page); without it only
    the given answers are checked (a partial save, an import whose score rules allow gaps). An
    item whose show_if condition the answers do not meet is not asked, so not required.
    """
    errors: dict[str, str] = {}
    shown = {item.code for item in definition.shown_items(answers)}
    for item in definition.items:
        value = answers.get(item.code)
        if value is None or value == "":
            if complete and item.code in shown:
                errors[item.code] = _("Please answer this question.")
            continue
        error = _answer_error(definition, item, value)
        if error is not None:
            errors[item.code] = error
    unknown = set(answers) - set(definition.item_codes)
    for code in sorted(unknown):
        errors[code] = _("This is not a question of this questionnaire.")
    return errors


def keyed_values(definition: InstrumentDefinition, answers: Mapping[str, int]) -> dict[str, int]:
    """The answered items with reverse-keyed ones mirrored within their own answers, so higher
    always means more."""
    keyed = {}
    for item in definition.items:
        value = answers.get(item.code)
        if value is not None:
            low, high = definition.answer_range(item)
            keyed[item.code] = (low + high - value) if item.reverse else value
    return keyed


def scores(definition: InstrumentDefinition, answers: Mapping[str, int]) -> dict[str, float]:
    """Score code → value for every score of the instrument that ``answers`` allow.

    A score needs at least ``min_answered`` of its items (all of them by default, as the SWLS and
    WHO-5 manuals require). ``sum`` with missing items is prorated (mean × number of items) so a
    score keeps its published range; ``mean`` is the mean of the answered items. Either is then
    multiplied by ``multiplier`` (WHO-5: × 4 → 0–100); ``value`` is its one item's answer.
    Answers to items not asked (show_if) are left out. Raises ``ValueError`` on invalid answers.
    """
    errors = validate_answers(definition, answers, complete=False)
    if errors:
        raise ValueError(f"Invalid answers for {definition.code}: {errors}")
    keyed = keyed_values(definition, applicable_answers(definition, answers))
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


def scores_rows(definition: InstrumentDefinition, answers: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`scores` of every row of a respondents × items matrix at once (for an import of
    thousands of responses, ``surveys.exchange``): score code → one value per row, ``NaN`` where
    :func:`scores` leaves the score out.

    ``answers`` holds the items in the definition's order, ``NaN`` for an unanswered item. The
    rules are those of :func:`scores`, step for step: items a show_if condition does not ask are
    left out (:meth:`InstrumentDefinition.shown_items`), reverse-keyed items are mirrored
    (:func:`keyed_values`), and each value is computed with the same floating-point operations
    in the same order, so the two agree exactly (tests/surveys/test_scoring_rows.py). Raises
    ``ValueError`` on answers :func:`validate_answers` refuses.
    """
    matrix = np.asarray(answers, dtype=float)
    items = definition.items
    if matrix.ndim != 2 or matrix.shape[1] != len(items):
        raise ValueError(f"answers must be a respondents × {len(items)} items matrix.")
    answered = ~np.isnan(matrix)
    keyed = matrix.copy()
    shown = np.ones(matrix.shape, dtype=bool)
    position: dict[str, int] = {}
    for column, item in enumerate(items):
        low, high = definition.answer_range(item)
        given = matrix[answered[:, column], column]
        if np.any((given != np.floor(given)) | (given < low) | (given > high)):
            raise ValueError(
                f"Invalid answers for {definition.code}: {item.code} takes whole numbers from "
                f"{low} to {high}."
            )
        if item.reverse:
            keyed[:, column] = low + high - matrix[:, column]
        condition = item.show_if
        if condition is not None:
            # As shown_items: the earlier item must itself be asked and answered as wanted.
            earlier = position.get(condition.item)
            if earlier is None:
                shown[:, column] = False
            else:
                answer = matrix[:, earlier]
                if condition.equals is not None:
                    holds = answer == condition.wanted
                elif condition.at_least is not None:
                    holds = answer >= condition.at_least
                else:
                    holds = answer <= condition.at_most
                shown[:, column] = shown[:, earlier] & answered[:, earlier] & holds
        position[item.code] = column
    usable = answered & shown
    result: dict[str, np.ndarray] = {}
    for score in definition.scores:
        columns = [position[code] for code in definition.scored_items(score)]
        taken = usable[:, columns]
        count = taken.sum(axis=1)
        total = np.where(taken, keyed[:, columns], 0.0).sum(axis=1)
        enough = count >= definition.min_answered(score)
        mean = np.divide(total, count, out=np.full(len(matrix), np.nan), where=enough)
        value = mean * len(columns) if score.rule == "sum" else mean
        result[score.code] = value * score.multiplier
    return result
