"""The coordinator admin: per-trial object permissions, the workflow through the services, and
refusals with an audit row."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.trials.factories import ARM, bodies, draft_trial, enrolling_trial
from trials.models import PreRegistration, Trial, TrialEvent

pytestmark = pytest.mark.django_db


def staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def alice():
    return staff("alice", "Coordinators")


@pytest.fixture
def bob():
    return staff("bob", "Coordinators")


def test_a_coordinator_sees_and_changes_only_their_own_trials(client, alice, bob):
    mine = draft_trial("mine", actor=alice)
    theirs = draft_trial("theirs", actor=bob)
    client.force_login(alice)
    listing = client.get("/admin/trials/trial/").content.decode()
    assert "mine" in listing and "theirs" not in listing
    assert client.get(f"/admin/trials/trial/{mine.pk}/change/").status_code == 200
    refused = client.get(f"/admin/trials/trial/{theirs.pk}/change/")
    assert refused.status_code == 403
    event = TrialEvent.objects.get(trial=theirs, kind="access_refused")
    assert event.actor == alice
    # Other trials' arms, plans and history are out of reach too.
    arm = theirs.arms.first()
    assert client.get(f"/admin/trials/arm/{arm.pk}/change/").status_code == 403
    assert client.get(f"/admin/trials/arm/{arm.pk}/history/").status_code == 403
    assert "theirs" not in client.get("/admin/trials/arm/").content.decode()


def test_a_coordinator_creates_a_trial_and_becomes_its_coordinator(client, alice):
    client.force_login(alice)
    response = client.post(
        "/admin/trials/trial/add/",
        {
            "slug": "new",
            "title": "New trial",
            "description": "",
            "arms-TOTAL_FORMS": "0",
            "arms-INITIAL_FORMS": "0",
            "oversight-TOTAL_FORMS": "0",
            "oversight-INITIAL_FORMS": "0",
            "members-TOTAL_FORMS": "0",
            "members-INITIAL_FORMS": "0",
            "deviations-TOTAL_FORMS": "0",
            "deviations-INITIAL_FORMS": "0",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    trial = Trial.objects.get(slug="new")
    assert trial.members.get().user == alice
    assert TrialEvent.objects.filter(trial=trial, kind="trial_created", actor=alice).exists()


def plan_post(trial, **overrides) -> dict:
    return {
        "trial": trial.pk,
        "rationale": "",
        "hypotheses": "B raises mental wellbeing.",
        "study_type": "Experiment",
        "control_arm": "a",
        "treatment_arm": "b",
        "randomisation_method": "permuted_blocks",
        "strata": ["community"],
        "block_sizes": "4, 6",
        "primary_outcomes": "mental_wellbeing, who5, 2",
        "secondary_outcomes": "",
        "alpha": "0.05",
        "multiplicity": "holm",
        "minimal_important_differences": "mental_wellbeing: 10",
        "compute_sample_size": "on",
        "power_effect": "7.5",
        "power_sd": "15",
        "power_rho": "0.5",
        "power_follow_ups": "1",
        "power_attrition": "0.2",
        "power_target": "0.8",
        "interim_looks": "0.5",
        "spending": "obrien_fleming",
    } | overrides


def test_plan_form_runs_the_power_calculation_and_freezes(client, alice):
    trial = draft_trial("p", actor=alice)
    client.force_login(alice)
    response = client.post("/admin/trials/preregistration/add/", plan_post(trial))
    assert response.status_code == 302, response.content.decode()[:3000]
    draft = PreRegistration.objects.get(trial=trial)
    sample = draft.plan.sample_size
    # 2·(1.96+0.8416)²·(1−0.5²)/(0.5)² = 47.1 → 48 evaluable, /(1−0.2) → 60 per arm.
    assert sample.per_arm == 60 and sample.power.design_multiplier == 0.75
    response = client.post(
        "/admin/trials/preregistration/",
        {"action": "freeze", "_selected_action": [draft.pk], "post": "yes"},
    )
    draft.refresh_from_db()
    assert draft.frozen_at is not None and len(draft.sha256) == 64
    # The frozen version is read-only in the admin, and a forced POST is refused and audited.
    page = client.get(f"/admin/trials/preregistration/{draft.pk}/change/").content.decode()
    assert 'name="hypotheses"' not in page and draft.sha256 in page
    refused = client.post(f"/admin/trials/preregistration/{draft.pk}/change/", plan_post(trial))
    assert refused.status_code == 403
    assert TrialEvent.objects.filter(trial=trial, kind="edit_refused", actor=alice).exists()
    exported = client.get(f"/admin/trials/preregistration/{draft.pk}/export/osf/")
    assert exported.json()["provenance"]["sha256"] == draft.sha256


def test_a_malformed_plan_form_says_what_is_wrong_and_saves_nothing(client, alice):
    trial = draft_trial("p", actor=alice)
    client.force_login(alice)
    response = client.post(
        "/admin/trials/preregistration/add/",
        plan_post(trial, primary_outcomes="wellbeing at the end", block_sizes="four"),
    )
    assert response.status_code == 200
    text = response.content.decode()
    # Every mistake is reported on its field at once.
    assert "Write each outcome as “dimension, instrument, wave number”" in text
    assert "Write whole numbers separated by commas." in text
    assert not PreRegistration.objects.filter(trial=trial).exists()


def test_illegal_transition_from_the_admin_gives_a_clear_message(client, alice):
    trial = draft_trial("d", actor=alice)
    client.force_login(alice)
    response = client.post(
        "/admin/trials/trial/",
        {"action": "move_to_enrolling", "_selected_action": [trial.pk]},
        follow=True,
    )
    assert "cannot move from draft to enrolling" in response.content.decode()


def test_oversight_members_see_only_assigned_trials_and_approve_or_suspend(client):
    member = staff("eve", "Oversight members")
    watched = enrolling_trial("watched")
    other = enrolling_trial("other")
    (ethics,) = bodies("Ethics")
    ethics.members.add(member)
    (elsewhere,) = bodies("Elsewhere")
    from trials.services import oversight_assign

    oversight_assign(trial=other, body=elsewhere)
    other.oversight.filter(body=ethics).delete()
    client.force_login(member)
    listing = client.get("/admin/trials/trial/").content.decode()
    assert "watched" in listing and ">other<" not in listing
    assert client.get(f"/admin/trials/trial/{other.pk}/oversight/suspend/").status_code == 403
    response = client.post(
        f"/admin/trials/trial/{watched.pk}/oversight/suspend/",
        {"body": ethics.pk, "note": "Participants report distress."},
    )
    assert response.status_code == 302
    watched.refresh_from_db()
    assert watched.state == Trial.State.SUSPENDED
    # Members read the trial but cannot edit it.
    page = client.get(f"/admin/trials/trial/{watched.pk}/change/").content.decode()
    assert 'name="title"' not in page


def test_registered_arm_change_needs_a_rationale_and_becomes_an_amendment(client, alice):
    trial = enrolling_trial("r", actor=alice)
    arm = trial.arms.get(slug="b")
    client.force_login(alice)
    form = {
        "endpoint_url": ARM["endpoint_url"],
        "name": arm.name,
        "model_id": "m",
        "model_version": "2",
        "system_prompt": arm.system_prompt,
        "memory_policy": "none",
        "parameters": "{}",
        "amendment_rationale": "",
        # What the page posts for its read-only list of drift-watch incidents (an inline).
        "canary_checks-TOTAL_FORMS": "0",
        "canary_checks-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/trials/arm/{arm.pk}/change/", form)
    assert response.status_code == 200 and "give the rationale" in response.content.decode()
    form["amendment_rationale"] = "Version 1 retired by the provider."
    response = client.post(f"/admin/trials/arm/{arm.pk}/change/", form)
    assert response.status_code == 302
    assert trial.preregistrations.filter(frozen_at__isnull=False).count() == 2
    assert trial.deviations.get().kind == "arm_change"


def test_every_trials_admin_page_renders(client):
    root = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    trial = enrolling_trial("x")
    prereg = PreRegistration.objects.get(trial=trial)
    client.force_login(root)
    for url in [
        "/admin/trials/trial/",
        f"/admin/trials/trial/{trial.pk}/change/",
        f"/admin/trials/trial/{trial.pk}/history/",
        f"/admin/trials/trial/{trial.pk}/consort/",
        f"/admin/trials/trial/{trial.pk}/oversight/approve/",
        "/admin/trials/preregistration/",
        "/admin/trials/preregistration/add/",
        f"/admin/trials/preregistration/{prereg.pk}/change/",
        f"/admin/trials/preregistration/{prereg.pk}/export/markdown/",
        "/admin/trials/arm/",
        f"/admin/trials/arm/{trial.arms.first().pk}/change/",
        "/admin/trials/participant/",
        "/admin/trials/consentdocument/",
        "/admin/trials/protocoldeviation/add/",
        "/admin/trials/flourishingprofile/add/",
        "/admin/trials/community/",
        "/admin/trials/approval/",
    ]:
        assert client.get(url).status_code == 200, url
