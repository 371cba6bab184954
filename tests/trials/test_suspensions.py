"""Suspensions belong to the bodies: a body's suspension stands until that body (or, if the plan
says so, every required body) lifts it with a rationale, and no coordinator moves the trial out
of suspension meanwhile."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.trials.factories import bodies, enrolling_trial, valid_plan
from trials.audit import audit_chain_verify
from trials.models import Suspension, SuspensionLift, Trial, TrialEvent
from trials.selectors import suspensions_standing
from trials.services import suspension_lift, trial_suspend, trial_transition

pytestmark = pytest.mark.django_db
State = Trial.State


def _member(username: str, body):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Oversight members"))
    body.members.add(user)
    return user


@pytest.fixture
def watched():
    """An enrolling trial overseen by Ethics and Council (both required), a member of each and
    a coordinator."""
    coordinator = get_user_model().objects.create_user("cora", password="pw", is_staff=True)
    trial = enrolling_trial("watched", actor=coordinator)
    ethics, council = bodies("Ethics", "Council")
    return trial, ethics, council, _member("erik", ethics), _member("cleo", council), coordinator


def _events(trial, kind):
    return list(trial.events.filter(kind=kind).order_by("sequence"))


def test_the_coordinator_cannot_resume_while_a_body_suspension_stands(watched):
    trial, _, council, _, cleo, coordinator = watched
    trial_suspend(trial=trial, body=council, reason="Two harm reports.", actor=cleo)
    trial.refresh_from_db()
    assert trial.state == State.SUSPENDED
    suspension = Suspension.objects.get(trial=trial)
    assert (suspension.body, suspension.state_before) == (council, State.ENROLLING)
    event = _events(trial, TrialEvent.Kind.STATE_CHANGED)[-1]
    assert event.detail["body"] == "Council" and event.detail["to"] == State.SUSPENDED

    for to in (State.ENROLLING, State.FOLLOW_UP):
        with pytest.raises(ValidationError) as refused:
            trial_transition(trial=trial, to=to, actor=coordinator)
        message = " ".join(refused.value.messages)
        assert "Council suspended it (Two harm reports.)" in message
        assert "until lifted by Council" in message
    trial.refresh_from_db()
    assert trial.state == State.SUSPENDED


def test_only_the_suspending_body_lifts_with_a_rationale_and_the_trial_returns(watched):
    trial, ethics, council, erik, cleo, _ = watched
    trial_suspend(trial=trial, body=council, reason="Two harm reports.", actor=cleo)

    # A member of another body cannot act for Council, nor lift as Ethics what is Council's.
    with pytest.raises(ValidationError, match="Only members of Council"):
        suspension_lift(trial=trial, body=council, rationale="Fine now.", actor=erik)
    with pytest.raises(ValidationError, match="Ethics has no suspension to lift"):
        suspension_lift(trial=trial, body=ethics, rationale="Fine now.", actor=erik)
    with pytest.raises(ValidationError, match="Say why"):
        suspension_lift(trial=trial, body=council, rationale="  ", actor=cleo)
    assert not SuspensionLift.objects.exists()

    suspension_lift(trial=trial, body=council, rationale="Reports assessed: unrelated.", actor=cleo)
    trial.refresh_from_db()
    assert trial.state == State.ENROLLING
    lifted = _events(trial, TrialEvent.Kind.SUSPENSION_LIFTED)
    assert len(lifted) == 1 and lifted[0].actor == cleo
    assert lifted[0].detail | {"record": None} == {
        "body": "Council",
        "rationale": "Reports assessed: unrelated.",
        "suspended_by": "Council",
        "reason": "Two harm reports.",
        "waiting_for": [],
        "record": None,
    }
    back = _events(trial, TrialEvent.Kind.STATE_CHANGED)[-1]
    assert (back.detail["previous"], back.detail["to"]) == (State.SUSPENDED, State.ENROLLING)
    assert Suspension.objects.get().lifted_at is not None
    assert audit_chain_verify(trial).intact
    with pytest.raises(ValidationError, match="No oversight body's suspension"):
        suspension_lift(trial=trial, body=council, rationale="Again.", actor=cleo)


def test_bodies_suspend_independently_and_the_last_lift_restores(watched):
    trial, ethics, council, erik, cleo, coordinator = watched
    trial_transition(trial=trial, to=State.FOLLOW_UP, actor=coordinator)
    trial_suspend(trial=trial, body=council, reason="Harm reports.", actor=cleo)
    trial_suspend(trial=trial, body=ethics, reason="Consent wording.", actor=erik)
    with pytest.raises(ValidationError, match="stands already"):
        trial_suspend(trial=trial, body=ethics, reason="Twice.", actor=erik)
    assert [s.suspension.body for s in suspensions_standing(trial)] == [council, ethics]

    suspension_lift(trial=trial, body=council, rationale="Assessed.", actor=cleo)
    trial.refresh_from_db()
    assert trial.state == State.SUSPENDED
    with pytest.raises(ValidationError) as refused:
        trial_transition(trial=trial, to=State.FOLLOW_UP, actor=coordinator)
    assert "Ethics suspended it (Consent wording.)" in refused.value.messages[0]
    assert "Council suspended" not in refused.value.messages[0]

    suspension_lift(trial=trial, body=ethics, rationale="Wording fixed.", actor=erik)
    trial.refresh_from_db()
    assert trial.state == State.FOLLOW_UP
    assert audit_chain_verify(trial).intact


def test_under_every_required_body_each_required_body_must_lift(watched):
    coordinator = get_user_model().objects.create_user("carl", password="pw", is_staff=True)
    plan = valid_plan(safety={"suspension_lifted_by": "every_required_body"})
    trial = enrolling_trial("strict", plan=plan, actor=coordinator)
    _, ethics, council, erik, cleo, _ = watched
    trial_suspend(trial=trial, body=council, reason="Harm reports.", actor=cleo)

    suspension_lift(trial=trial, body=council, rationale="Assessed.", actor=cleo)
    trial.refresh_from_db()
    assert trial.state == State.SUSPENDED
    waiting = _events(trial, TrialEvent.Kind.SUSPENSION_LIFTED)[-1].detail["waiting_for"]
    assert waiting == ["Ethics"]
    with pytest.raises(ValidationError, match="until lifted by Ethics"):
        trial_transition(trial=trial, to=State.ENROLLING, actor=coordinator)
    with pytest.raises(ValidationError, match="Council has no suspension to lift"):
        suspension_lift(trial=trial, body=council, rationale="Again.", actor=cleo)

    suspension_lift(trial=trial, body=ethics, rationale="Agreed.", actor=erik)
    trial.refresh_from_db()
    assert trial.state == State.ENROLLING
    assert audit_chain_verify(trial).intact


def test_terminating_stays_open_and_a_lift_then_changes_no_state(watched):
    trial, _, council, _, cleo, coordinator = watched
    trial_suspend(trial=trial, body=council, reason="Harm reports.", actor=cleo)
    trial_transition(trial=trial, to=State.TERMINATED, actor=coordinator)
    suspension_lift(trial=trial, body=council, rationale="Stopped anyway.", actor=cleo)
    trial.refresh_from_db()
    assert trial.state == State.TERMINATED


def test_the_database_refuses_to_delete_or_rewrite_a_suspension(watched):
    trial, _, council, _, cleo, _ = watched
    trial_suspend(trial=trial, body=council, reason="Harm reports.", actor=cleo)
    suspension_lift(trial=trial, body=council, rationale="Assessed.", actor=cleo)
    suspension, lift = Suspension.objects.get(), SuspensionLift.objects.get()
    for write in (
        lambda: Suspension.objects.filter(pk=suspension.pk).update(reason="Nothing."),
        lambda: Suspension.objects.filter(pk=suspension.pk).update(lifted_at=None),
        lambda: Suspension.objects.filter(pk=suspension.pk).delete(),
        lambda: SuspensionLift.objects.filter(pk=lift.pk).update(rationale="Other."),
        lambda: SuspensionLift.objects.filter(pk=lift.pk).delete(),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            write()


def test_in_the_admin_the_resume_button_is_refused_and_the_body_lifts_from_its_page(
    client, watched
):
    trial, _, council, _, cleo, coordinator = watched
    coordinator.groups.add(Group.objects.get(name="Coordinators"))
    trial_suspend(trial=trial, body=council, reason="Two harm reports.", actor=cleo)

    client.force_login(coordinator)
    response = client.post(
        "/admin/trials/trial/",
        {"action": "move_to_enrolling", "_selected_action": [trial.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Council suspended it (Two harm reports.)" in page
    trial_page = client.get(f"/admin/trials/trial/{trial.pk}/change/").content.decode()
    assert "stands until lifted by Council" in trial_page
    trial.refresh_from_db()
    assert trial.state == State.SUSPENDED

    client.force_login(cleo)
    url = f"/admin/trials/trial/{trial.pk}/oversight/suspend/"
    assert "Lift our suspension" in client.get(url).content.decode()
    empty = client.post(url, {"body": council.pk, "decision": "lift", "note": ""})
    assert "Say why the suspension can be lifted." in empty.content.decode()
    lifted = client.post(url, {"body": council.pk, "decision": "lift", "note": "Assessed."})
    assert lifted.status_code == 302
    trial.refresh_from_db()
    assert trial.state == State.ENROLLING
    # With nothing standing that waits for Council, lifting is no longer offered.
    assert "Lift our suspension" not in client.get(url).content.decode()
