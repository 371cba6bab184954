import pytest

from surveys.instrument import REDISTRIBUTABLE_LICENCES, InstrumentDefinition
from surveys.registry import shipped_definitions
from surveys.scoring import scores, validate_answers

pytestmark = pytest.mark.unit


def test_shipped_instruments_are_only_redistributable_ones():
    definitions = shipped_definitions()
    assert set(definitions) == {
        *("who5", "swls", "flourishing_scale", "ai_assistant", "phq9", "gad7"),
        *("ons4", "ons_loneliness", "daily_recall"),
    }
    for definition in definitions.values():
        assert definition.licence in REDISTRIBUTABLE_LICENCES
        # The symptom scales ship in English only (docs/instruments.md, "Symptom scales").
        expected = {"en"} if definition.code in {"phq9", "gad7"} else {"en", "de"}
        assert set(definition.languages) == expected
    # The project's own items say they are not validated yet.
    not_validated = [d.code for d in definitions.values() if not d.validated]
    assert not_validated == ["ai_assistant", "daily_recall"]


def test_who5_score_range_is_0_to_100():
    # WHO-5 manual (Topp et al. 2015): raw sum 0–25, multiplied by 4 → 0–100.
    who5 = shipped_definitions()["who5"]
    assert scores(who5, {f"who5_{i}": 0 for i in range(1, 6)}) == {"who5": 0}
    assert scores(who5, {f"who5_{i}": 5 for i in range(1, 6)}) == {"who5": 100}
    answers = {"who5_1": 3, "who5_2": 3, "who5_3": 2, "who5_4": 2, "who5_5": 3}
    assert scores(who5, answers) == {"who5": 52}


def test_swls_score_is_plain_sum_5_to_35_and_needs_every_item():
    # Diener et al. (1985): sum of five 1–7 items; 20 is the neutral point; all five answered.
    swls = shipped_definitions()["swls"]
    assert scores(swls, {f"swls_{i}": 4 for i in range(1, 6)}) == {"swls": 20}
    assert scores(swls, {f"swls_{i}": 7 for i in range(1, 6)}) == {"swls": 35}
    assert scores(swls, {f"swls_{i}": 7 for i in range(1, 5)}) == {}


def test_flourishing_scale_is_a_sum_8_to_56():
    # Diener et al. (2010): eight 1–7 items, all positively keyed, summed.
    fs = shipped_definitions()["flourishing_scale"]
    assert scores(fs, {f"fs_{i}": 1 for i in range(1, 9)}) == {"flourishing_scale": 8}
    assert scores(fs, {f"fs_{i}": 7 for i in range(1, 9)}) == {"flourishing_scale": 56}


def test_own_items_score_two_means_with_reverse_keys_and_one_gap_allowed():
    items = shipped_definitions()["ai_assistant"]
    # Full reliance: agrees with every reliance statement, disagrees with every independent one.
    reliant = {"rel_1": 5, "rel_2": 5, "rel_3": 1, "rel_4": 5, "rel_5": 1}
    candid = {"syc_1": 1, "syc_2": 1, "syc_3": 5, "syc_4": 1, "syc_5": 5}
    result = scores(items, reliant | candid)
    assert result == {"ai_independence": 1.0, "ai_candour": 5.0}
    # One item missing: the mean of the other four (min_answered 4); two missing: no score.
    one_gap = {k: v for k, v in candid.items() if k != "syc_5"}
    assert scores(items, one_gap) == {"ai_candour": 5.0}
    two_gaps = {k: v for k, v in candid.items() if k not in ("syc_4", "syc_5")}
    assert scores(items, two_gaps) == {}


def test_reverse_keyed_items_are_mirrored_and_a_prorated_sum_keeps_the_range():
    swls = shipped_definitions()["swls"].to_json()
    swls["items"][0]["reverse"] = True
    answers = {f"swls_{i}": 7 for i in range(1, 6)}
    assert scores(InstrumentDefinition.from_json(swls), answers) == {"swls": 35 - 7 + 1}
    swls["scores"][0]["min_answered"] = 4
    four = {f"swls_{i}": 6 for i in range(2, 6)}
    assert scores(InstrumentDefinition.from_json(swls), four) == {"swls": 30.0}  # mean 6 × 5


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "Please answer"),
        (6, "from 0 to 5"),
        (-1, "from 0 to 5"),
        ("3", "from 0 to 5"),
        (True, "from 0 to 5"),
    ],
)
def test_invalid_answers_are_reported_per_item(value, message):
    who5 = shipped_definitions()["who5"]
    answers = {f"who5_{i}": 3 for i in range(1, 6)}
    answers["who5_2"] = value
    errors = validate_answers(who5, answers)
    assert list(errors) == ["who5_2"]
    assert message in errors["who5_2"]
    if value is not None:
        with pytest.raises(ValueError):
            scores(who5, answers)


def test_unknown_items_are_rejected():
    who5 = shipped_definitions()["who5"]
    answers = {f"who5_{i}": 3 for i in range(1, 6)} | {"who5_9": 1}
    assert "who5_9" in validate_answers(who5, answers)
