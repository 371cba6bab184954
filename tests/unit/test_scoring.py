import pytest

from surveys.registry import shipped_definitions
from surveys.scoring import score, validate_answers

pytestmark = pytest.mark.unit


def test_shipped_instruments_are_only_redistributable_ones():
    definitions = shipped_definitions()
    assert set(definitions) == {"who5", "swls"}
    for definition in definitions.values():
        assert definition["licence"] == "public-domain"


def test_who5_score_range_is_0_to_100():
    # WHO-5 manual (Topp et al. 2015): raw sum 0–25, multiplied by 4 → 0–100.
    who5 = shipped_definitions()["who5"]
    assert score(who5, {f"who5_{i}": 0 for i in range(1, 6)}) == 0
    assert score(who5, {f"who5_{i}": 5 for i in range(1, 6)}) == 100
    assert score(who5, {"who5_1": 3, "who5_2": 3, "who5_3": 2, "who5_4": 2, "who5_5": 3}) == 52


def test_swls_score_is_plain_sum_5_to_35():
    # Diener et al. (1985): sum of five 1–7 items; 20 is the neutral point.
    swls = shipped_definitions()["swls"]
    assert score(swls, {f"swls_{i}": 4 for i in range(1, 6)}) == 20
    assert score(swls, {f"swls_{i}": 7 for i in range(1, 6)}) == 35


def test_reverse_keyed_items_are_mirrored():
    definition = dict(shipped_definitions()["swls"])
    definition["items"] = [dict(definition["items"][0], reverse=True), *definition["items"][1:]]
    answers = {f"swls_{i}": 7 for i in range(1, 6)}
    assert score(definition, answers) == 35 - 7 + 1


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
    with pytest.raises(ValueError):
        score(who5, answers)


def test_unknown_items_are_rejected():
    who5 = shipped_definitions()["who5"]
    answers = {f"who5_{i}": 3 for i in range(1, 6)} | {"who5_9": 1}
    assert "who5_9" in validate_answers(who5, answers)
