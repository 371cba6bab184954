"""The plan's eligibility screening: its shape, the admin form's compact text, the OSF export."""

import pytest
from django.utils import timezone

from tests.trials.factories import draft_trial, valid_plan
from trials.forms import PlanForm, _screening, _screening_lines
from trials.plan import PlanError, plan_parse
from trials.registry_export import osf_preregistration

SCREENING = {
    "min_age": 18,
    "max_age": None,
    "languages": ["en", "pt-br"],
    "countries": ["GB"],
    "uses_ai_assistants": "no",
    "questions": [
        {"text": "Do you live with your family?", "required_answer": "yes"},
        {"text": "Is 1 + 1 = 3?", "required_answer": "no"},
    ],
}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("screening", "message"),
    [
        ({"min_age": 70, "max_age": 18}, "the minimum age is above the maximum age"),
        ({"languages": ["English"]}, "not language codes like en or pt-br: English"),
        ({"countries": ["uk", "DE"]}, "not two-letter country codes like GB: uk"),
        ({"uses_ai_assistants": "sometimes"}, "Input should be 'yes', 'no' or 'any'"),
        ({"questions": [{"text": "Adult?", "required_answer": "maybe"}]}, "'yes' or 'no'"),
        ({"questions": [{"text": "", "required_answer": "yes"}]}, "questions → 1 → text"),
    ],
)
def test_screening_shape_errors_name_the_place(screening, message):
    with pytest.raises(PlanError) as error:
        plan_parse(valid_plan(screening=screening))
    assert any(message in line for line in error.value.messages), error.value.messages


@pytest.mark.unit
def test_the_compact_text_round_trips():
    screening = plan_parse(valid_plan(screening=SCREENING)).screening
    text = _screening_lines(screening)
    assert text.splitlines() == [
        "age: 18-",
        "languages: en, pt-br",
        "countries: GB",
        "uses AI assistants: no",
        "question: Do you live with your family? = yes",
        "question: Is 1 + 1 = 3? = no",
    ]
    assert plan_parse(valid_plan(screening=_screening(text))).screening == screening
    assert _screening("") == {"questions": []}


@pytest.mark.django_db
def test_every_screening_mistake_is_reported_on_its_field():
    fields = {
        "trial": draft_trial().pk,
        "hypotheses": "B helps.",
        "control_arm": "a",
        "treatment_arm": "b",
        "randomisation_method": "permuted_blocks",
        "block_sizes": "4",
        "primary_outcomes": "mental_wellbeing, who5, 2",
        "alpha": "0.05",
        "multiplicity": "holm",
    }
    form = PlanForm(
        fields
        | {
            "screening": "age: eighteen-99\nlanguage: en\nuses AI assistants: often\n"
            "question: Adult?\nage: 18-\ncountries: Germany"
        }
    )
    assert not form.is_valid()
    errors = form.errors["screening"]
    assert any("“age: eighteen-99”: “eighteen” is not an age" in e for e in errors), errors
    assert any("“language: en”: start the line with one of age, languages" in e for e in errors)
    assert any("“uses AI assistants: often”: answer yes, no or any" in e for e in errors)
    assert any("“question: Adult?”: write “question: the question? = yes”" in e for e in errors)
    assert any("“age: 18-”: age is given twice" in e for e in errors)
    # The section's own rules are checked once the lines read well.
    form = PlanForm(fields | {"screening": "countries: Germany"})
    assert not form.is_valid()
    assert any(
        "not two-letter country codes like GB: Germany" in e for e in form.errors["screening"]
    )


@pytest.mark.unit
def test_the_osf_export_states_the_eligibility_criteria():
    content = {
        "trial": "t",
        "plan": plan_parse(valid_plan(screening=SCREENING)).canonical(),
        "arms": {"a": "0" * 64, "b": "1" * 64},
        "arm_configs": {"a": {}, "b": {}},
        "allocation_sequence_sha256": "2" * 64,
    }
    osf = osf_preregistration(
        trial_slug="t",
        title="T",
        version=1,
        frozen_at=timezone.now(),
        sha256="3" * 64,
        content=content,
    )
    question = osf["sampling_plan"]["data_collection_procedures"]
    assert (
        "Eligibility, screened before consent (only the outcome and the reason are kept): "
        "aged at least 18; speaks one of en, pt-br; lives in one of GB; does not currently use "
        "an AI assistant; answers yes to “Do you live with your family?”; answers no to "
        "“Is 1 + 1 = 3?”." in question["answer"]
    )
    assert question["data"]["questions"][1] == {"text": "Is 1 + 1 = 3?", "required_answer": "no"}
    content["plan"] = plan_parse(valid_plan()).canonical()
    osf = osf_preregistration(
        trial_slug="t",
        title="T",
        version=1,
        frozen_at=timezone.now(),
        sha256="3" * 64,
        content=content,
    )
    answer = osf["sampling_plan"]["data_collection_procedures"]["answer"]
    assert "Eligibility: everyone who consents; no screening criteria." in answer
