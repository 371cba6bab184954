"""The oversight bodies' own pages (dashboards.oversight): what a body needs to decide, blinded by
default and per arm unblinded for a data monitoring committee, to the bodies' members alone, and
writing nothing but the bodies' decisions."""

import pytest
from django.contrib.auth.models import Group, User

from safety.services import adverse_event_record
from trials.models import OversightBody, Suspension, Trial, TrialEvent, TrialMember
from trials.selectors import arm_labels
from trials.services import event_record, member_add, oversight_assign, trial_transition

pytestmark = pytest.mark.django_db

# What would tell a blinded reader which arm is which: the arms' names, models and prompts.
CONFIGURATION = [
    "A: helpful assistant",
    "B: flourishing-oriented assistant",
    "assistant-model",
    "2026-10-01",
    "You are a helpful assistant",
    "points from the control",
]


def _person(username: str, group: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def oversight(analysed_trial, analyst):
    """The analysed trial with a coordinator, a member of its ethics board, a member of a data
    monitoring committee assigned to it (not required), and a member of a body elsewhere."""
    trial = analysed_trial
    people = {
        "coordinator": _person("cora", "Coordinators"),
        "analyst": analyst,
        "ethics": _person("erik", "Oversight members"),
        "dmc": _person("dora", "Oversight members"),
        "elsewhere": _person("otto", "Oversight members"),
    }
    member_add(trial=trial, user=people["coordinator"], role=TrialMember.Role.COORDINATOR)
    OversightBody.objects.get(name="Ethics board").members.add(people["ethics"])
    dmc = OversightBody.objects.create(
        name="Data monitoring committee", kind=OversightBody.Kind.DATA_MONITORING_COMMITTEE
    )
    dmc.members.add(people["dmc"])
    oversight_assign(trial=trial, body=dmc, required=False)
    other = OversightBody.objects.create(name="Elsewhere board", kind="ethics_board")
    other.members.add(people["elsewhere"])
    return trial, people


def _page(client, user, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_a_blinded_body_reads_the_report_with_labels_and_no_configuration(client, oversight):
    trial, people = oversight
    page = _page(client, people["ethics"], "/dashboards/oversight/small/")
    for text in CONFIGURATION:
        assert text not in page, text
    for arm in trial.arms.all():
        assert arm.config_hash not in page
    labels = arm_labels(trial, blinded=True)
    assert sorted(labels.values()) == ["Arm 1", "Arm 2"]
    for label in labels.values():
        assert f'<th scope="row">{label}</th>' in page
    assert "Blinded:" in page
    # The CONSORT flow of the 40 simulated participants, and the golden run's guardrail.
    assert "Consented and randomised: 40: the first on " in page
    assert "in the last seven days" in page
    assert "engagement rising while flourishing does not" in page
    assert "No analysis run has finished yet." not in page


def test_a_data_monitoring_committee_reads_the_same_per_arm_unblinded(client, oversight):
    trial, people = oversight
    participant = trial.participants.filter(allocation__arm__slug="b").first()
    adverse_event_record(
        actor=people["coordinator"],
        trial=trial,
        participant=participant,
        category="distress",
        severity="severe",
        serious=True,
    )
    page = _page(client, people["dmc"], "/dashboards/oversight/small/")
    assert "Unblinded:" in page
    for arm in trial.arms.all():
        assert arm.name in page and arm.config_hash in page
    # The serious event counts in its arm, with the difference from the control.
    assert "points from the control" in page
    assert "A serious adverse event (distress)" in page
    blinded = _page(client, people["ethics"], "/dashboards/oversight/small/")
    assert "A serious adverse event (distress)" in blinded
    assert "points from the control" not in blinded


def test_the_plan_page_shows_the_document_and_the_approvals(client, oversight):
    trial, people = oversight
    page = _page(client, people["ethics"], "/dashboards/oversight/small/plan/")
    current = trial.preregistrations.get(version=1)
    assert current.sha256 in page and "### Inference criteria" in page
    assert "Ethics board approved this version already." in page
    assert "Version 1" in page and "Ethics board on" in page
    assert 'name="csrfmiddlewaretoken"' in page


@pytest.mark.parametrize("who", ["coordinator", "analyst", "elsewhere"])
def test_only_the_trial_bodies_members_may_open_the_pages(client, oversight, who):
    _, people = oversight
    client.force_login(people[who])
    for url in (
        "/dashboards/oversight/",
        "/dashboards/oversight/small/",
        "/dashboards/oversight/small/plan/",
    ):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"decision": "suspend", "note": "x"}).status_code == 403, url
    assert client.get("/dashboards/oversight/nope/").status_code == 404
    assert not Suspension.objects.exists()


def test_body_members_still_get_403_on_the_analysts_dashboards(client, oversight):
    _, people = oversight
    client.force_login(people["ethics"])
    assert client.get("/dashboards/small/").status_code == 403
    # The front page sends them to their bodies' trials instead of refusing them.
    front = client.get("/dashboards/")
    assert front.status_code == 302 and front["Location"] == "/dashboards/oversight/"
    assert "Synthetic trial small" in client.get("/dashboards/oversight/").content.decode()


def test_a_body_suspends_and_lifts_from_its_page_and_the_coordinator_cannot_resume(
    client, oversight
):
    trial, people = oversight
    ethics = OversightBody.objects.get(name="Ethics board")
    client.force_login(people["ethics"])
    url = "/dashboards/oversight/small/"
    refused = client.post(url, {"body": ethics.pk, "decision": "suspend", "note": " "})
    assert "Say the reason." in refused.content.decode()
    done = client.post(url, {"body": ethics.pk, "decision": "suspend", "note": "Distress."})
    assert done.status_code == 302 and done["Location"] == url
    trial.refresh_from_db()
    assert trial.state == Trial.State.SUSPENDED
    page = client.get(url).content.decode()
    assert "Ethics board suspended the trial." in page and "Lift our suspension" in page

    with pytest.raises(Exception, match="Ethics board suspended it"):
        trial_transition(trial=trial, to=Trial.State.ENROLLING, actor=people["coordinator"])
    # The data monitoring committee's member cannot lift what is the ethics board's.
    client.force_login(people["dmc"])
    other = client.post(url, {"body": ethics.pk, "decision": "lift", "note": "Fine."})
    assert "Select a valid choice" in other.content.decode()

    client.force_login(people["ethics"])
    empty = client.post(url, {"body": ethics.pk, "decision": "lift", "note": ""})
    assert "Say why the suspension can be lifted." in empty.content.decode()
    lifted = client.post(url, {"body": ethics.pk, "decision": "lift", "note": "Assessed."})
    assert lifted.status_code == 302
    trial.refresh_from_db()
    assert trial.state == Trial.State.ENROLLING
    event = trial.events.filter(kind=TrialEvent.Kind.SUSPENSION_LIFTED).get()
    assert event.detail["body"] == "Ethics board" and event.detail["rationale"] == "Assessed."
    page = client.get(url).content.decode()
    assert "Ethics board lifted Ethics board&#x27;s suspension: Assessed." in page


def test_blinded_labels_number_the_arms_without_marking_the_control(oversight):
    trial, _ = oversight
    blinded = arm_labels(trial, blinded=True)
    assert set(blinded) == {"a", "b"} and sorted(blinded.values()) == ["Arm 1", "Arm 2"]
    assert "control" not in " ".join(blinded.values())
    assert arm_labels(trial, blinded=True) == blinded  # the same on every page
    assert arm_labels(trial, blinded=False) == {
        "a": "A: helpful assistant (control)",
        "b": "B: flourishing-oriented assistant",
    }


def test_a_crossed_harm_boundary_names_its_arm_only_to_the_data_monitoring_committee(
    client, oversight
):
    trial, people = oversight
    labels = arm_labels(trial, blinded=True)
    # As safety.harms writes it: the arm by its blinded label, the figures in the detail.
    event_record(
        trial=trial,
        kind=TrialEvent.Kind.HARM_BOUNDARY_CROSSED,
        arm=labels["b"],
        boundary={"metric": "serious_adverse_events", "max_excess": 0.05},
        arm_with_harm=4,
        arm_participants=20,
        control_with_harm=0,
        control_participants=20,
    )
    blinded = _page(client, people["ethics"], "/dashboards/oversight/small/")
    assert "An arm crossed the harm boundary on serious_adverse_events: 4 of 20" in blinded
    assert f"{labels['b']} crossed" not in blinded
    unblinded = _page(client, people["dmc"], "/dashboards/oversight/small/")
    assert "B: flourishing-oriented assistant crossed the harm boundary" in unblinded
