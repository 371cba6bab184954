"""The PHQ-9 and the GAD-7: their published wording and scale, their scores against sums worked
out by hand, the direction in which they are better, and the safety item of the PHQ-9."""

import json

import pytest

from surveys.instrument import DefinitionError, InstrumentDefinition
from surveys.registry import INSTRUMENT_DIR, shipped_definitions
from surveys.scoring import scores, validate_answers

pytestmark = pytest.mark.unit

RESPONSES = ["Not at all", "Several days", "More than half the days", "Nearly every day"]


def _file(code: str) -> dict:
    return json.loads((INSTRUMENT_DIR / f"{code}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("code", "items", "top"), [("phq9", 9, 27), ("gad7", 7, 21)])
def test_the_symptom_scales_are_0_to_3_over_two_weeks_and_lower_is_better(code, items, top):
    definition = shipped_definitions()[code]
    assert definition.to_json() == _file(code)  # stored exactly as written
    assert definition.recall_window_days == 14
    assert definition.stem["en"].startswith("Over the last 2 weeks, how often have you been")
    assert definition.scale.labels == {"en": RESPONSES}
    assert list(definition.scale.points) == [0, 1, 2, 3]
    assert len(definition.items) == items and not any(i.reverse for i in definition.items)
    (score,) = definition.scores
    assert (score.rule, tuple(score.range)) == ("sum", (0, top))
    assert score.dimension == "mental_wellbeing"
    assert score.higher_is_better is False
    assert definition.licence == "free-with-attribution"
    assert "No permission is required to reproduce, translate, display or distribute" in (
        definition.licence_note
    )
    assert set(definition.languages) == {"en"}


def test_phq9_scores_are_the_sum_of_the_answers():
    phq9 = shipped_definitions()["phq9"]
    answers = dict(zip(phq9.item_codes, [0, 1, 2, 3, 0, 1, 2, 3, 1], strict=True))
    # 0+1+2+3+0+1+2+3+1 = 13
    assert scores(phq9, answers) == {"phq9": 13}
    assert scores(phq9, dict.fromkeys(phq9.item_codes, 3)) == {"phq9": 27}
    assert scores(phq9, dict.fromkeys(phq9.item_codes, 0)) == {"phq9": 0}
    # Every item is needed: a score with a gap is not given.
    assert scores(phq9, {code: 1 for code in phq9.item_codes[:-1]}) == {}
    assert validate_answers(phq9, {"phq9_1": 4}, complete=False)


def test_gad7_scores_are_the_sum_of_the_answers():
    gad7 = shipped_definitions()["gad7"]
    answers = dict(zip(gad7.item_codes, [3, 2, 2, 1, 0, 1, 3], strict=True))
    # 3+2+2+1+0+1+3 = 12
    assert scores(gad7, answers) == {"gad7": 12}
    assert scores(gad7, dict.fromkeys(gad7.item_codes, 3)) == {"gad7": 21}


def test_phq9_item_9_is_a_safety_item_for_any_answer_from_several_days():
    phq9 = shipped_definitions()["phq9"]
    item = next(i for i in phq9.items if i.code == "phq9_9")
    assert item.text["en"] == (
        "Thoughts that you would be better off dead, or of hurting yourself in some way"
    )
    answers = dict.fromkeys(phq9.item_codes, 0)
    assert phq9.safety_answers(answers) == {}
    for answer in (1, 2, 3):
        assert phq9.safety_answers(answers | {"phq9_9": answer}) == {"phq9_9": answer}
    # The other items, however high, are not safety items; GAD-7 has none.
    assert phq9.safety_answers(dict.fromkeys(phq9.item_codes[:-1], 3)) == {}
    assert shipped_definitions()["gad7"].safety_items == []


def test_a_safety_item_must_name_an_item_and_answers_on_the_scale():
    document = _file("phq9") | {
        "safety_items": [
            {"item": "phq9_10", "answers": [1]},
            {"item": "phq9_9", "answers": [2, 4]},
        ]
    }
    with pytest.raises(DefinitionError) as error:
        InstrumentDefinition.from_json(document)
    problems = " ".join(error.value.problems)
    assert "safety item phq9_10 is not an item" in problems
    assert "safety item phq9_9: answers 4 are not on the scale (0 to 3)" in problems
    with pytest.raises(DefinitionError):
        InstrumentDefinition.from_json(_file("phq9") | {"safety_items": [{"item": "phq9_9"}]})
