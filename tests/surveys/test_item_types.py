"""Item types beyond Likert choices (0–10 slider, bounded number, yes/no) and show-if
conditions: what a definition may say, how answers are checked, discarded and scored."""

import pytest

from surveys.exchange import codebook_frame
from surveys.instrument import DefinitionError, InstrumentDefinition
from surveys.links import survey_path
from surveys.models import Instrument, Wave
from surveys.registry import INSTRUMENT_DIR, shipped_definitions
from surveys.scoring import applicable_answers, scores, validate_answers
from surveys.services import instrument_pack_load
from tests.trials.factories import enrolling_trial
from trials.models import ConsentDocument
from trials.services import participant_enrol


def mixed(**changes) -> dict:
    """A definition with one item of each type and two conditional follow-ups."""
    return {
        "code": "mixed",
        "name": "Mixed",
        "version": "1",
        "citation": "Test.",
        "licence": "CC0-1.0",
        "validated": False,
        "recall_window_days": 1,
        "languages": {"en": {"source": "Test."}},
        "scale": {"min": 0, "max": 10, "anchors": {"en": ["Not at all", "Completely"]}},
        "stem": {"en": "Today…"},
        "items": [
            {"code": "used", "type": "yes_no", "reverse": False, "text": {"en": "Used it?"}},
            {
                "code": "hours",
                "type": "number",
                "min": 0,
                "max": 24,
                "reverse": False,
                "text": {"en": "For how many hours?"},
                "show_if": {"item": "used", "equals": "yes"},
            },
            {"code": "calm", "type": "slider", "reverse": True, "text": {"en": "Tense?"}},
            {
                "code": "why",
                "reverse": False,
                "text": {"en": "How much did work cause it?"},
                "show_if": {"item": "calm", "at_least": 7},
            },
        ],
        "scores": [
            {
                "code": "use_hours",
                "dimension": "autonomy",
                "rule": "value",
                "items": ["hours"],
                "range": [0, 24],
                "higher_is_better": False,
            },
            {
                "code": "calmness",
                "dimension": "mental_wellbeing",
                "rule": "value",
                "items": ["calm"],
                "range": [0, 10],
            },
        ],
    } | changes


@pytest.mark.unit
def test_existing_definitions_are_likert_and_write_back_without_a_type():
    for code, definition in shipped_definitions().items():
        if code in {"ons4", "daily_recall"}:
            continue
        assert {item.type for item in definition.items} == {"likert"}
        assert all("type" not in item for item in definition.to_json()["items"])
    ons4 = (INSTRUMENT_DIR / "ons4.json").read_text(encoding="utf-8")
    assert shipped_definitions()["ons4"].to_json() == __import__("json").loads(ons4)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"min": None}, "number item hours needs min and max"),
        ({"max": -1}, "number item hours: max must be above min"),
        ({"show_if": {"item": "calm", "at_least": 3}}, "show_if must name an earlier item"),
        ({"show_if": {"item": "used", "at_least": 1}}, 'uses equals "yes" or "no"'),
        ({"show_if": {"item": "used", "equals": "yes", "at_most": 1}}, "exactly one of"),
    ],
)
def test_a_faulty_item_is_refused_with_its_reason(change, problem):
    document = mixed()
    document["items"][1] = {**document["items"][1], **change}
    document["items"][1] = {k: v for k, v in document["items"][1].items() if v is not None}
    with pytest.raises(DefinitionError) as error:
        InstrumentDefinition.from_json(document)
    assert problem in " ".join(error.value.problems)


@pytest.mark.unit
def test_only_number_items_have_bounds_and_a_value_score_names_one_item():
    document = mixed()
    document["items"][2] = {**document["items"][2], "min": 0, "max": 5}
    document["scores"][1] = {**document["scores"][1], "items": ["calm", "why"]}
    with pytest.raises(DefinitionError) as error:
        InstrumentDefinition.from_json(document)
    problems = " ".join(error.value.problems)
    assert "only a number item has min and max" in problems
    assert "the value rule names exactly one item" in problems


@pytest.mark.unit
def test_out_of_range_answers_get_a_message_fitting_their_type():
    definition = InstrumentDefinition.from_json(mixed())
    errors = validate_answers(definition, {"used": 2, "hours": 25, "calm": 11, "why": "x"})
    assert errors == {
        "used": "Choose yes or no.",
        "hours": "Enter a whole number from 0 to 24.",
        "calm": "Choose one of the answers from 0 to 10.",
        "why": "Choose one of the answers from 0 to 10.",
    }
    assert validate_answers(definition, {"used": 1, "hours": 0, "calm": 10, "why": 3}) == {}


@pytest.mark.unit
def test_a_follow_up_is_required_only_when_its_condition_holds():
    definition = InstrumentDefinition.from_json(mixed())
    assert validate_answers(definition, {"used": 0, "calm": 6}) == {}
    missing = validate_answers(definition, {"used": 1, "calm": 7})
    assert set(missing) == {"hours", "why"}
    # Nothing answered: the conditions do not hold, so only the unconditional items are asked.
    assert set(validate_answers(definition, {})) == {"used", "calm"}


@pytest.mark.unit
def test_answers_to_items_not_asked_are_discarded_along_a_chain():
    document = mixed()
    # "why" now follows "hours", which follows "used": no use, so neither is asked.
    document["items"][3]["show_if"] = {"item": "hours", "at_least": 1}
    definition = InstrumentDefinition.from_json(document)
    given = {"used": 0, "hours": 5, "calm": 9, "why": 4}
    assert applicable_answers(definition, given) == {"used": 0, "calm": 9}
    assert applicable_answers(definition, {**given, "used": 1}) == {**given, "used": 1}


@pytest.mark.unit
def test_value_scores_take_one_item_mirrored_within_its_own_answers():
    definition = InstrumentDefinition.from_json(mixed())
    # "calm" is reverse-keyed on 0–10: 2 → 8. "hours" is not asked when "used" is no.
    assert scores(definition, {"used": 1, "hours": 3, "calm": 2}) == {"use_hours": 3, "calmness": 8}
    assert scores(definition, {"used": 0, "hours": 3, "calm": 2}) == {"calmness": 8}


@pytest.mark.unit
def test_ons4_scores_each_question_and_anxiety_is_lower_is_better():
    # ONS personal well-being guidance: four single 0–10 items, each reported on its own.
    ons4 = shipped_definitions()["ons4"]
    answers = {"ons4_life": 7, "ons4_worth": 8, "ons4_happy": 6, "ons4_anxious": 3}
    assert scores(ons4, answers) == {
        "ons4_life_satisfaction": 7,
        "ons4_worthwhile": 8,
        "ons4_happiness": 6,
        "ons4_anxiety": 3,
    }
    better = {score.code: score.higher_is_better for score in ons4.scores}
    assert better == {
        "ons4_life_satisfaction": True,
        "ons4_worthwhile": True,
        "ons4_happiness": True,
        "ons4_anxiety": False,
    }
    assert {item.type for item in ons4.items} == {"slider"}
    assert validate_answers(ons4, {**answers, "ons4_anxious": 11}) == {
        "ons4_anxious": "Choose one of the answers from 0 to 10."
    }


def mixed_wave_link(slug: str = "mixed") -> tuple[str, object]:
    """An enrolling trial whose extra wave asks the ``mixed`` instrument (loaded as a pack),
    open now, and a participant's link to it."""
    trial = enrolling_trial(slug)
    instrument_pack_load(pack={"instruments": [mixed()]})
    wave = Wave.objects.create(trial=trial, index=5, day_offset=0, window_days=30)
    wave.instruments.set(Instrument.objects.filter(code="mixed"))
    participant = participant_enrol(
        trial=trial,
        email=f"{slug}@example.org",
        consent_document=ConsentDocument.objects.get(trial=trial),
        scopes=["surveys"],
    )
    return survey_path(participant.pk, wave.pk), participant


@pytest.mark.django_db
def test_the_page_refuses_an_out_of_range_number_and_keeps_the_other_answers(client):
    link, participant = mixed_wave_link()
    page = client.get(link).content.decode()
    assert 'type="number"' in page and 'min="0" max="24"' in page
    assert "Answer this only if your answer to “Used it?” was “Yes”." in page
    # The progress bar counts the questions asked so far: the two follow-ups wait on answers.
    assert 'max="2" value="0"' in page
    posted = {"mixed:used": "1", "mixed:hours": "25", "mixed:calm": "8", "action": "finish"}
    refused = client.post(link, posted)
    text = refused.content.decode()
    assert 'max="4"' in text
    assert refused.status_code == 400 and "Enter a whole number from 0 to 24." in text
    assert 'value="25"' in text and 'value="8" checked' in text and 'value="1" checked' in text
    assert not participant.responses.exists()
    # "No" to the first question: the typed hours are not asked, so they are discarded.
    done = client.post(link, {**posted, "mixed:used": "0", "mixed:hours": "3", "mixed:why": "2"})
    assert done.status_code == 302
    assert participant.responses.get().answers == {"mixed": {"used": 0, "calm": 8, "why": 2}}
    assert dict(participant.responses.get().scores.values_list("code", "value")) == {"calmness": 2}


@pytest.mark.django_db
def test_the_codebook_describes_each_item_type_and_condition():
    _, participant = mixed_wave_link("codebook")
    codebook = codebook_frame(participant.trial).set_index("Variable / Field Name")
    rows = codebook.loc[["used", "hours", "calm", "why"]]
    assert list(rows["Field Type"]) == ["yesno", "text", "radio", "radio"]
    assert tuple(
        rows.loc[
            "hours",
            [
                "Text Validation Type OR Show Slider Number",
                "Text Validation Min",
                "Text Validation Max",
            ],
        ]
    ) == ("integer", "0", "24")
    assert list(rows["Branching Logic (Show field only if...)"]) == [
        "",
        "[used] = '1'",
        "",
        "[calm] >= 7",
    ]
    assert list(rows["Required Field?"]) == ["y", "", "y", ""]
    # "calm" is reverse-keyed within 0–10; its score is its one mirrored answer.
    assert codebook.loc["calm", "Choices, Calculations, OR Slider Labels"].startswith("0, Not")
    calcs = codebook[(codebook["Field Type"] == "calc") & (codebook["Form Name"] == "mixed")]
    assert list(calcs["Choices, Calculations, OR Slider Labels"]) == ["[hours]", "(10 - [calm])"]
