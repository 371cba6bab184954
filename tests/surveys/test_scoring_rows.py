"""The import's vectorised scorer (``surveys.scoring.scores_rows``) against the one that scores
each submission (``surveys.scoring.scores``): the same values, bit for bit, on every shipped
instrument and on one with every item type, show_if conditions and a fractional multiplier."""

import math

import numpy as np
import pytest

from surveys.instrument import InstrumentDefinition
from surveys.registry import shipped_definitions
from surveys.scoring import scores, scores_rows
from tests.surveys.test_item_types import mixed

pytestmark = pytest.mark.unit


def _mixed_with_gaps() -> InstrumentDefinition:
    """``mixed`` plus a reverse-keyed sum over three items that may have one gap, multiplied by
    a fraction, and a mean over conditional items."""
    document = mixed()
    document["scores"] += [
        {
            "code": "prorated",
            "dimension": "mental_wellbeing",
            "rule": "sum",
            "items": ["calm", "why", "hours"],
            "min_answered": 2,
            "multiplier": 0.35,
            "range": [0, 30],
        },
        {
            "code": "asked_mean",
            "dimension": "mental_wellbeing",
            "rule": "mean",
            "items": ["hours", "why"],
            "min_answered": 1,
            "range": [0, 24],
        },
    ]
    return InstrumentDefinition.from_json(document)


def _answer_matrix(definition: InstrumentDefinition, rng: np.random.Generator) -> np.ndarray:
    """Random answers over each item's whole range (ends included), a fifth of them missing,
    and rows that give one answer throughout."""
    rows = 400
    columns = []
    for item in definition.items:
        low, high = definition.answer_range(item)
        column = rng.integers(low, high + 1, size=rows).astype(float)
        column[rng.random(rows) < 0.2] = np.nan
        columns.append(column)
    matrix = np.column_stack(columns)
    low = max(definition.answer_range(item)[0] for item in definition.items)
    matrix[:20] = low
    return matrix


def _row_answers(definition: InstrumentDefinition, row: np.ndarray) -> dict[str, int]:
    return {
        item.code: int(value)
        for item, value in zip(definition.items, row, strict=True)
        if not math.isnan(value)
    }


@pytest.mark.parametrize(
    "definition",
    [*shipped_definitions().values(), _mixed_with_gaps()],
    ids=lambda definition: definition.code,
)
def test_scores_rows_equals_scores_row_by_row(definition):
    matrix = _answer_matrix(definition, np.random.default_rng(11))
    computed = scores_rows(definition, matrix)
    assert set(computed) == {score.code for score in definition.scores}
    seen = set()
    for number, row in enumerate(matrix):
        expected = scores(definition, _row_answers(definition, row))
        got = {code: float(values[number]) for code, values in computed.items()}
        assert {code for code, value in got.items() if not math.isnan(value)} == set(expected)
        # Exact equality: the import must store what the participant pages store.
        assert {code: got[code] for code in expected} == expected
        seen |= set(expected)
    # Every score was computed for some row and left out for some other (the gaps).
    assert seen == set(computed)


def test_scores_rows_refuses_answers_scores_refuses():
    who5 = shipped_definitions()["who5"]
    with pytest.raises(ValueError, match="who5_1"):
        scores_rows(who5, np.array([[6.0, 1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="who5_2"):
        scores_rows(who5, np.array([[1.0, 2.5, 1, 1, 1]]))
    with pytest.raises(ValueError, match="5 items"):
        scores_rows(who5, np.ones((2, 4)))
