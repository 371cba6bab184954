"""The plan's admin page: the OSF template's sections in order, every field of the form in one of
them, a first plan that starts from a statistician's defaults, and the power calculation's result
shown after saving."""

from collections import Counter

import pytest
from django.contrib import admin
from django.test import RequestFactory

from stats.power import ancova_sample_size
from tests.trials.factories import draft_trial
from tests.trials.test_plan_document import post_data
from trials.admin import PLAN_FIELDSETS
from trials.forms import PlanForm
from trials.models import PreRegistration

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
