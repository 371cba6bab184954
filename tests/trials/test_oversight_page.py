"""The oversight decision page, as a member of a body sees it: the plan to approve as a document,
what changed since the version the body approved last, and the body's three decisions (approve,
ask for changes, suspend), for their own body only."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from tests.trials.factories import bodies, draft_trial, valid_plan
from trials.models import Approval, Trial, TrialEvent
from trials.selectors import missing_approvals, preregistration_current
from trials.services import (
    oversight_assign,
    preregistration_amend,
    preregistration_changes_request,
    preregistration_freeze,
    trial_transition,
)

pytestmark = pytest.mark.django_db

FIRST = "B raises mental wellbeing compared with A <script>alert(1)</script>."
SECOND = "B raises mental wellbeing more than A within six weeks."


@pytest.fixture
def registered():
    """A registered trial overseen by Ethics (whose member signs in) and Council."""
    trial = draft_trial("watched")
    preregistration_freeze(trial=trial, plan=valid_plan(hypotheses=[FIRST]))
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    ethics, council = bodies("Ethics", "Council")
    for body in (ethics, council):
        oversight_assign(trial=trial, body=body)
    member = get_user_model().objects.create_user("erik", password="pw", is_staff=True)
    member.groups.add(Group.objects.get(name="Oversight members"))
    ethics.members.add(member)
    return trial, ethics, council, member


def _review(client, trial) -> str:
    response = client.get(f"/admin/trials/trial/{trial.pk}/oversight/approve/")
    assert response.status_code == 200
    return response.content.decode()


def _decide(client, trial, body, decision: str, note: str = ""):
    return client.post(
        f"/admin/trials/trial/{trial.pk}/oversight/approve/",
        {"body": body.pk, "note": note, "decision": decision},
    )


def test_a_member_reads_the_plan_to_approve_as_an_escaped_document(client, registered):
    trial, ethics, _, member = registered
    client.force_login(member)
    page = _review(client, trial)
    current = preregistration_current(trial)
    assert current.sha256 in page
    assert "1. B raises mental wellbeing compared with A &lt;script&gt;" in page
    assert "<script>alert(1)" not in page
    assert "### Inference criteria" in page and "Holm step-down correction" in page
    assert "Ethics: this is the first version you are asked to approve." in page
    # The member's only body is chosen for them.
    assert f'<option value="{ethics.pk}" selected>Ethics</option>' in page


def test_after_an_amendment_the_page_shows_the_difference_from_the_approved_version(
    client, registered
):
    trial, ethics, _, member = registered
    client.force_login(member)
    assert _decide(client, trial, ethics, "approve").status_code == 302
    assert "Ethics approved this version already." in _review(client, trial)

    preregistration_amend(
        trial=trial, rationale="Sharper hypothesis.", plan=valid_plan(hypotheses=[SECOND])
    )
    page = _review(client, trial)
    assert "the difference from version 1, the last version you approved" in page
    assert "Why this version: Sharper hypothesis." in page
    assert '<span class="removed">-1. B raises mental wellbeing compared with A &lt;script' in page
    assert f'<span class="added">+1. {SECOND}</span>' in page
    # Only what changed and its context: the arms' configurations, unchanged, are not repeated.
    assert '<span class="same"> #### Arm a</span>' not in page


def test_a_member_asks_for_changes_with_a_note_and_nothing_is_approved(client, registered):
    trial, ethics, _, member = registered
    client.force_login(member)
    refused = _decide(client, trial, ethics, "request_changes")
    assert refused.status_code == 200 and "Say what should change." in refused.content.decode()
    assert not TrialEvent.objects.filter(kind=TrialEvent.Kind.CHANGES_REQUESTED).exists()

    response = _decide(client, trial, ethics, "request_changes", "Name the follow-up wave.")
    assert response.status_code == 302
    event = TrialEvent.objects.get(trial=trial, kind=TrialEvent.Kind.CHANGES_REQUESTED)
    current = preregistration_current(trial)
    assert event.actor == member
    assert event.detail == {
        "body": "Ethics",
        "version": 1,
        "sha256": current.sha256,
        "note": "Name the follow-up wave.",
    }
    assert not Approval.objects.exists()
    assert missing_approvals(trial) == ["Council", "Ethics"]
    trial_page = client.get(f"/admin/trials/trial/{trial.pk}/change/").content.decode()
    assert "waiting for Council, Ethics; Ethics asked for changes" in trial_page
    assert "Ethics asked for changes on" in _review(client, trial)


def test_a_member_cannot_act_for_another_body(client, registered):
    trial, _, council, member = registered
    client.force_login(member)
    for decision in ("approve", "request_changes"):
        response = _decide(client, trial, council, decision, "On Council's behalf.")
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
    assert not Approval.objects.exists()
    assert not TrialEvent.objects.filter(kind=TrialEvent.Kind.CHANGES_REQUESTED).exists()
    with pytest.raises(ValidationError, match="Only members of Council"):
        preregistration_changes_request(
            body=council,
            preregistration=preregistration_current(trial),
            actor=member,
            note="On Council's behalf.",
        )
    # A trial the member's body does not oversee is out of reach altogether.
    other = draft_trial("other")
    assert client.get(f"/admin/trials/trial/{other.pk}/oversight/approve/").status_code == 403
