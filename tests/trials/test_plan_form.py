"""The plan's admin page: the OSF template's sections in order, every field of the form in one of
them, a first plan that starts from a statistician's defaults, the power calculation's result
shown after saving, and the safety section's lines read back or refused line by line."""

from collections import Counter

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from stats.power import ancova_sample_size
from tests.trials.factories import draft_trial
from tests.trials.test_plan_document import post_data
from trials.admin import PLAN_FIELDSETS
from trials.forms import PlanForm
from trials.models import PreRegistration
from trials.plan import HarmBoundary
from trials.services import preregistration_draft_save, preregistration_freeze

SECTIONS = [
    "Study information",
    "Design plan",
    "Sampling plan",
    "Variables",
    "Analysis plan",
    "Other",
]
# Read-only displays the admin adds to the form's fields.
DISPLAYS = {"power_result"}
POWER = {"effect": 0.3, "sd": 1.0, "rho": 0.5, "follow_ups": 2, "attrition": 0.2, "power": 0.8}


@pytest.fixture
def root(django_user_model, client):
    user = django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(user)
    return user


def _first_plan(trial, **overrides) -> dict:
    """A new plan's page submitted with what a coordinator must type."""
    form = PlanForm(initial={"trial": trial.pk})
    return post_data(
        form.initial,
        trial,
        hypotheses="B raises mental wellbeing compared with A.",
        control_arm="a",
        treatment_arm="b",
        primary_outcomes="mental_wellbeing, who5, 2",
        **overrides,
    )


@pytest.mark.django_db
def test_every_field_of_the_plan_form_is_in_exactly_one_section(rf: RequestFactory, root):
    request = rf.get("/admin/trials/preregistration/add/")
    request.user = root
    fieldsets = admin.site._registry[PreRegistration].get_fieldsets(request, None)
    assert [name for name, _ in fieldsets] == SECTIONS
    assert all(options["description"] for _, options in fieldsets)
    placed = Counter(field for _, options in fieldsets for field in options["fields"])
    assert [field for field, times in placed.items() if times > 1] == []
    assert set(placed) - DISPLAYS == set(PlanForm.base_fields)
    assert [name for name, _, _ in PLAN_FIELDSETS] == SECTIONS


@pytest.mark.django_db
def test_the_page_shows_the_sections_in_the_osf_order(client, root):
    trial = draft_trial()
    page = client.get(f"/admin/trials/preregistration/add/?trial={trial.pk}").content.decode()
    assert "Shown here once the draft is saved." in page
    headings = [page.find(f">{name}</h2>") for name in SECTIONS]
    assert -1 not in headings and headings == sorted(headings)
    starts = [page.find(description) for _, description, _ in PLAN_FIELDSETS]
    assert -1 not in starts
    ends = [*starts[1:], len(page)]
    for (name, _, fields), start, end in zip(PLAN_FIELDSETS, starts, ends, strict=True):
        # Each field sits between its own section's description and the next section's.
        for field in set(fields) - DISPLAYS - {"trial"}:
            assert start < page.find(f'name="{field}"') < end, (name, field)


@pytest.mark.django_db
def test_a_first_plan_starts_from_holm_and_the_growth_models_estimand():
    trial = draft_trial()
    form = PlanForm(initial={"trial": trial.pk})
    assert form["multiplicity"].value() == "holm"
    assert "rate of change per wave" in form["estimand"].value()
    assert "arm × wave" in form["analysis_model"].value()
    assert "missing at random" in form["missing_data"].value()


@pytest.mark.django_db
def test_the_power_calculation_is_shown_after_saving(client, root):
    trial = draft_trial()
    inputs = {f"power_{k}" if k != "power" else "power_target": v for k, v in POWER.items()}
    data = _first_plan(trial, compute_sample_size="on", **{k: str(v) for k, v in inputs.items()})
    response = client.post("/admin/trials/preregistration/add/", data, follow=True)
    assert response.status_code == 200
    draft = PreRegistration.objects.get(trial=trial)
    # Back on the draft's page (not the list), whose read-only field shows the result.
    assert response.redirect_chain[-1][0] == f"/admin/trials/preregistration/{draft.pk}/change/"
    expected = ancova_sample_size(alpha=0.05, **POWER)
    page = response.content.decode()
    for shown in [
        f"Achieved power {expected.achieved_power:.3f}",
        f"{expected.n_control} per arm",
        f"{expected.n_total} in total",
        f"design multiplier {expected.design_multiplier:.3f}",
    ]:
        # Once in the message, once in the power calculation field.
        assert page.count(shown) == 2, shown
    assert draft.plan.sample_size.per_arm == expected.n_control
    assert draft.plan.sample_size.power.n_total == expected.n_total


@pytest.mark.django_db
def test_saving_without_a_power_calculation_returns_to_the_list(client, root):
    trial = draft_trial()
    response = client.post("/admin/trials/preregistration/add/", _first_plan(trial))
    assert response.status_code == 302
    assert response["Location"] == "/admin/trials/preregistration/"
    page = client.get(f"/admin/trials/preregistration/{trial.preregistrations.get().pk}/change/")
    assert "Not computed" in page.content.decode()


@pytest.mark.django_db
def test_the_safety_lines_read_back_with_the_defaults_for_what_they_leave_out():
    trial = draft_trial()
    form = PlanForm(
        _first_plan(
            trial,
            safety_harm_boundaries="Serious adverse events\n"
            "reliable deterioration: excess above 0.1 at 97.5 %\n"
            "adverse_events: after 30 per arm",
            safety_suspension_lifted_by="every_required_body",
            safety_canary_prompts="b: Translate: good morning\na: What is 17 × 23?\nb: Hello",
        )
    )
    assert form.is_valid(), form.errors
    safety = form.plan.safety
    assert safety.harm_boundaries == [
        HarmBoundary(metric="serious_adverse_events"),
        HarmBoundary(metric="reliable_deterioration", max_excess=0.1, confidence=0.975),
        HarmBoundary(metric="adverse_events", min_participants_per_arm=30),
    ]
    assert safety.suspension_lifted_by == "every_required_body"
    assert safety.canary_prompts == {
        "b": ["Translate: good morning", "Hello"],
        "a": ["What is 17 × 23?"],
    }
    # Shown again as every term written out.
    shown = PlanForm.initial_from(form.plan)["safety_harm_boundaries"].splitlines()
    assert shown[1] == "reliable_deterioration: excess above 0.1 at 97.5% after 10 per arm"


@pytest.mark.django_db
def test_every_bad_safety_line_is_reported_on_its_field_at_once():
    trial = draft_trial()
    form = PlanForm(
        _first_plan(
            trial,
            safety_harm_boundaries="joy: excess above 0.05\n"
            "adverse_events: excess above 1.5\n"
            "adverse_events: excess above -0.1\n"
            "serious_adverse_events: at 40%\n"
            "serious_adverse_events: after 0 per arm\n"
            "reliable_deterioration: beyond 0.1\n"
            "adverse_events: excess above 0.05 at 90%",
            safety_canary_prompts="a: one\na: two\na: three\na: four\na: five\na: six\n"
            "no colon here\nArm B: hello\nb:",
        )
    )
    assert not form.is_valid()
    assert form.errors["safety_harm_boundaries"] == [
        "“joy: excess above 0.05”: start the line with a metric: serious_adverse_events, "
        "adverse_events, reliable_deterioration.",
        "“adverse_events: excess above 1.5”: the excess is a share from 0 up to (not "
        "including) 1, e.g. 0.05.",
        "“adverse_events: excess above -0.1”: the excess is a share from 0 up to (not "
        "including) 1, e.g. 0.05.",
        "“serious_adverse_events: at 40%”: the confidence is above 50% and below 100%.",
        "“serious_adverse_events: after 0 per arm”: check after at least 1 participant per arm.",
        "“reliable_deterioration: beyond 0.1”: after the metric write “excess above 0.05 at 90% "
        "after 10 per arm”.",
    ]
    assert form.errors["safety_canary_prompts"] == [
        "“no colon here”: write “arm slug: prompt”.",
        "“Arm B: hello”: Arm B is not an arm slug (letters, digits, - and _).",
        "“b:”: write “arm slug: prompt”.",
        "Arm a has 6 canary prompts: give at most 5.",
    ]


@pytest.mark.django_db
def test_a_canary_prompt_for_an_arm_the_trial_lacks_is_refused_at_freezing():
    # As with the arms compared, a draft may name an arm not yet added; freezing may not.
    trial = draft_trial()
    form = PlanForm(_first_plan(trial, safety_canary_prompts="z: Hello?"))
    assert form.is_valid(), form.errors
    preregistration_draft_save(trial=trial, plan=form.plan)
    with pytest.raises(ValidationError) as error:
        preregistration_freeze(trial=trial)
    assert "safety.canary_prompts: z is not an arm of this trial (arms: a, b)." in (
        error.value.messages
    )
