"""The plan as a typed document: its shape, what freezing refuses, the admin form round trip."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from tests.trials.factories import draft_trial, enrolling_trial, valid_plan
from trials.documents import schema_text
from trials.forms import PlanForm
from trials.models import Community, PreRegistration
from trials.plan import Plan, PlanError, plan_parse
from trials.plan import main as plan_main
from trials.selectors import preregistration_in_force
from trials.services import (
    preregistration_draft_save,
    preregistration_freeze,
    profile_create,
)

# Every section set to something other than its default, so the round trip covers them all.
TELEMETRY = {
    "window_days": 7,
    "rho_total": 0.5,
    "rho_per_window": 0.0125,
    "delta": 1e-6,
    "min_replies_per_arm": 5,
    "metrics": [{"code": "minutes", "lower": 0, "upper": 4200}, {"code": "sessions", "upper": 90}],
}
EVERY_SECTION = {
    "hypotheses": ["B raises mental wellbeing compared with A.", "B does not lower autonomy."],
    "arms_compared": ["a", "b"],
    "randomisation": {
        "method": "permuted_blocks",
        "strata": ["community", "locale"],
        "block_sizes": [3, 6],
        "ratio": {"a": 1, "b": 2},
    },
    "factorial": {
        "factors": [{"name": "mode", "levels": ["text", "voice"]}],
        "cells": {"a": {"mode": "text"}, "b": {"mode": "voice"}},
        "contrasts": [{"kind": "main_effect", "factor": "mode"}],
    },
    "covariates": [{"kind": "baseline_score", "score": "who5"}],
    "moderators": [{"kind": "community"}],
    "primary_outcomes": [
        {"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2, "score": "who5"}
    ],
    "secondary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 1}],
    "alpha": 0.025,
    "multiplicity": "bh",
    "interim_looks": [
        {"information_fraction": 0.5, "spending": "pocock"},
        {"information_fraction": 0.75, "spending": "pocock"},
    ],
    "minimal_important_differences": {"mental_wellbeing": 10.0},
    "sample_size": {
        "per_arm": 120,
        "rationale": "Two waves of follow-up.",
        "power": {
            "method": "ANCOVA of the follow-up mean adjusted for baseline",
            "effect": 7.5,
            "sd": 15.0,
            "rho": 0.5,
            "follow_ups": 1,
            "attrition": 0.2,
            "power": 0.8,
            "alpha": 0.025,
            "design_multiplier": 0.75,
            "n_per_arm": 120,
            "n_total": 240,
            "achieved_power": 0.81,
        },
    },
    "guardrails": ["Engagement rising while flourishing does not."],
    "community_weights": {"c": {"profile_version": 1, "weights": {}}},
    "telemetry": TELEMETRY,
    "screening": {
        "min_age": 18,
        "max_age": 99,
        "languages": ["en", "de"],
        "countries": ["GB", "DE"],
        "uses_ai_assistants": "yes",
        "questions": [{"text": "Do you live in the UK = Britain?", "required_answer": "no"}],
    },
    "safety": {
        "suspension_lifted_by": "every_required_body",
        "harm_boundaries": [
            {
                "metric": "serious_adverse_events",
                "max_excess": 0.0,
                "confidence": 0.9,
                "min_participants_per_arm": 10,
            },
            {
                "metric": "reliable_deterioration",
                "max_excess": 0.05,
                "confidence": 0.975,
                "min_participants_per_arm": 25,
            },
        ],
        "canary_prompts": {
            "a": ["What is 17 × 23?"],
            "b": ["Name a colour.", "Translate: good morning: bonjour?"],
        },
    },
    "study_type": "Experiment",
    "blinding": "Participants do not know which assistant is which.",
    "design": "Two-arm parallel trial.",
    "data_collection_procedures": "Surveys by e-mailed link.",
    "estimand": "Intention-to-treat difference in growth per wave.",
    "analysis_model": "Mixed-effects growth model.",
    "transformations": "None.",
    "stopping_rule": "O'Brien-Fleming boundaries.",
    "exclusions": "None.",
    "missing_data": "Missing at random given the model.",
    "exploratory_analyses": "Per community.",
    "other": "Nothing else.",
}


def post_data(form_initial: dict, trial, **overrides) -> dict:
    """What a browser submits for a form showing ``form_initial``."""
    data = {"trial": trial.pk, "rationale": ""}
    for name, value in form_initial.items():
        if value is None:
            continue
        data[name] = value if isinstance(value, list) else str(value)
    return data | overrides


@pytest.mark.unit
def test_the_example_sets_every_section_away_from_its_default():
    plan = plan_parse(EVERY_SECTION)
    assert plan.model_fields_set == set(Plan.model_fields)
    for name, field in Plan.model_fields.items():
        assert getattr(plan, name) != field.get_default(call_default_factory=True), name


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alpha": 5}, "alpha: Input should be less than 1"),
        ({"alpha": "0.05"}, "alpha: Input should be a valid number"),
        ({"multiplicity": "bonferroni"}, "multiplicity: Input should be 'holm', 'bh' or 'none'"),
        (
            {"primary_outcomes": [{"dimension": "joy", "instrument": "who5", "wave": 2}]},
            "dimension: Input should be 'life_satisfaction'",
        ),
        ({"primary_outcomes": [{"dimension": "meaning", "instrument": "x", "wave": 0}]}, "wave"),
        ({"randomisation": {"ratio": {"a": 0, "b": 1}}}, "positive whole number"),
        ({"minimal_important_differences": {"meaning": -1}}, "positive number"),
        ({"interim_looks": [{"information_fraction": 0.7}, {"information_fraction": 0.5}]}, "incr"),
        ({"hypothesis": ["typo"]}, "hypothesis: not a known field"),
    ],
)
def test_shape_errors_name_the_place_and_the_valid_choices(change, message):
    with pytest.raises(PlanError) as error:
        plan_parse(valid_plan(**change))
    assert any(message in line for line in error.value.messages), error.value.messages


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "primary_outcomes": [
                    {"dimension": "mental_wellbeing", "instrument": "WHO-5", "wave": 2}
                ]
            },
            "no instrument has the code 'WHO-5' (instruments: ",
        ),
        (
            {"primary_outcomes": [{"dimension": "meaning", "instrument": "who5", "wave": 2}]},
            "who5 does not measure meaning (it measures mental_wellbeing)",
        ),
        (
            {
                "primary_outcomes": [
                    {"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2, "score": "x"}
                ]
            },
            "who5 has no score 'x' on mental_wellbeing (scores: who5)",
        ),
        (
            {
                "secondary_outcomes": [
                    {"dimension": "mental_wellbeing", "instrument": "phq9", "wave": 2}
                ]
            },
            "on phq9 lower is better, and the analyses read a rise as benefit",
        ),
        (
            {
                "primary_outcomes": [
                    {"dimension": "mental_wellbeing", "instrument": "who5", "wave": 9}
                ]
            },
            "the trial's schedule has no wave 9 (waves: 0, 1, 2)",
        ),
        (
            {"arms_compared": ["a", "z"]},
            "two different arms of this trial, control first (arms: a, b)",
        ),
        ({"minimal_important_differences": {"meaning": 3.0}}, "meaning is not an outcome"),
        ({"randomisation": {"ratio": {"a": 1}}}, "every arm of this trial a weight (arms: a, b)"),
        ({"randomisation": {"ratio": {"a": 1, "b": 2}}}, "multiples of 3"),
        ({"hypotheses": []}, "State at least one hypothesis"),
        ({"community_weights": {"nowhere": 1}}, "Community nowhere has no flourishing profile"),
    ],
)
def test_freezing_refuses_a_plan_that_names_what_the_trial_does_not_have(change, message):
    trial = draft_trial()
    with pytest.raises(ValidationError) as error:
        preregistration_freeze(trial=trial, plan=valid_plan(**change))
    assert any(message in line for line in error.value.messages), error.value.messages
    assert not trial.preregistrations.filter(frozen_at__isnull=False).exists()


@pytest.mark.django_db
def test_every_section_survives_freezing_and_reads_back_typed():
    trial = draft_trial()
    community = Community.objects.create(slug="c", name="C")
    profile_create(community=community, weights={"mental_wellbeing": 1.0}, authored_by="Council")
    frozen = preregistration_freeze(trial=trial, plan=EVERY_SECTION)
    plan = frozen.plan
    assert plan.telemetry.metrics[1].upper == 90 and plan.randomisation.ratio == {"a": 1, "b": 2}
    assert plan.community_weights["c"].weights == {"mental_wellbeing": 1.0}
    assert frozen.record["plan"] == plan.canonical()


@pytest.mark.django_db
def test_the_plan_form_round_trips_every_section(client, django_user_model):
    trial = draft_trial()
    Community.objects.create(slug="c", name="C")
    draft = preregistration_draft_save(trial=trial, plan=EVERY_SECTION)
    form = PlanForm(instance=draft)
    submitted = PlanForm(post_data(form.initial, trial), instance=draft)
    assert submitted.is_valid(), submitted.errors
    assert submitted.plan == draft.plan
    # Through the admin page too: saving the page unchanged keeps the plan as it was.
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin)
    response = client.post(
        f"/admin/trials/preregistration/{draft.pk}/change/", post_data(form.initial, trial)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert draft.plan == plan_parse(EVERY_SECTION)


@pytest.mark.django_db
def test_an_amendment_starts_from_the_version_in_force(client, django_user_model):
    trial = enrolling_trial(plan=valid_plan(telemetry=TELEMETRY, guardrails=["Watch usage."]))
    in_force = preregistration_in_force(trial)
    admin = django_user_model.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin)
    page = client.get(f"/admin/trials/preregistration/add/?trial={trial.pk}").content.decode()
    assert "Watch usage." in page and "minutes: 0-4200" in page
    form = PlanForm(initial={"trial": trial.pk})
    data = post_data(form.initial, trial, rationale="A second guardrail.")
    data["guardrails"] = "Watch usage.\nWatch late-night use."
    response = client.post("/admin/trials/preregistration/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    draft = PreRegistration.objects.get(trial=trial, frozen_at__isnull=True)
    assert draft.plan.telemetry == in_force.plan.telemetry
    assert draft.plan.guardrails == ["Watch usage.", "Watch late-night use."]
    assert draft.plan.model_copy(update={"guardrails": in_force.plan.guardrails}) == in_force.plan


@pytest.mark.unit
def test_the_published_schema_is_the_generated_one():
    # Regenerate with: python -m trials.plan --schema > docs/plan-schema.json
    published = Path(__file__).resolve().parents[2] / "docs" / "plan-schema.json"
    assert published.read_text(encoding="utf-8") == schema_text(Plan)
    schema = json.loads(published.read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    assert schema["properties"]["multiplicity"]["enum"] == ["holm", "bh", "none"]


@pytest.mark.unit
def test_the_command_checks_plan_files(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(EVERY_SECTION), encoding="utf-8")
    bad.write_text(json.dumps(valid_plan(alpha=2)), encoding="utf-8")
    assert plan_main([str(good)]) == 0
    assert plan_main([str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.json: not a plan" in err and "alpha: Input should be less than 1" in err
