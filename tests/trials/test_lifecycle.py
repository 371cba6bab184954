"""Lifecycle, polycentric oversight and amendments, through the services."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from tests.trials.factories import ARM, bodies, draft_trial, enrolling_trial, valid_plan
from trials.models import ConsentDocument, ProtocolDeviation, Trial, TrialEvent
from trials.selectors import missing_approvals, preregistration_current
from trials.services import (
    approval_record,
    arm_amend,
    arm_create,
    oversight_assign,
    participant_enrol,
    preregistration_amend,
    preregistration_freeze,
    trial_suspend,
    trial_transition,
)

pytestmark = pytest.mark.django_db


def kinds(trial) -> list[str]:
    return list(TrialEvent.objects.filter(trial=trial).values_list("kind", flat=True))


def test_arms_with_different_configuration_have_different_hashes():
    a, b = draft_trial().arms.order_by("slug")
    assert len(a.config_hash) == 64 and a.config_hash != b.config_hash


def test_register_requires_a_frozen_plan():
    with pytest.raises(ValidationError, match="Freeze a pre-registration"):
        trial_transition(trial=draft_trial(), to=Trial.State.REGISTERED)


def test_illegal_transition_gives_a_clear_message():
    with pytest.raises(ValidationError, match="cannot move from draft to enrolling"):
        trial_transition(trial=draft_trial(), to=Trial.State.ENROLLING)


def test_enrolment_opens_only_when_every_required_body_approved_the_current_version():
    trial = draft_trial()
    prereg = preregistration_freeze(trial=trial, plan=valid_plan())
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    with pytest.raises(ValidationError, match="required oversight body"):
        trial_transition(trial=trial, to=Trial.State.ENROLLING)
    ethics, council = bodies("Ethics", "Council")
    oversight_assign(trial=trial, body=ethics)
    oversight_assign(trial=trial, body=council)
    approval_record(body=ethics, preregistration=prereg)
    assert missing_approvals(trial) == ["Council"]
    with pytest.raises(ValidationError, match="missing: Council"):
        trial_transition(trial=trial, to=Trial.State.ENROLLING)
    # An amendment supersedes the version the ethics board approved.
    prereg2 = preregistration_amend(
        trial=trial, plan=valid_plan(alpha=0.01), rationale="Stricter alpha asked by the council."
    )
    assert prereg2.version == 2 and prereg2.sha256 != prereg.sha256
    assert missing_approvals(trial) == ["Council", "Ethics"]
    with pytest.raises(ValidationError, match="superseded"):
        approval_record(body=council, preregistration=prereg)
    approval_record(body=ethics, preregistration=prereg2)
    approval_record(body=council, preregistration=prereg2)
    trial = trial_transition(trial=trial, to=Trial.State.ENROLLING)
    assert trial.state == Trial.State.ENROLLING
    assert kinds(trial).count("approval_recorded") == 3


def test_a_person_approves_only_for_a_body_they_belong_to():
    User = get_user_model()
    member, outsider = User.objects.create(username="m"), User.objects.create(username="o")
    trial = draft_trial()
    prereg = preregistration_freeze(trial=trial, plan=valid_plan())
    (ethics,) = bodies("Ethics")
    ethics.members.add(member)
    oversight_assign(trial=trial, body=ethics)
    with pytest.raises(ValidationError, match="Only members of Ethics"):
        approval_record(body=ethics, preregistration=prereg, actor=outsider)
    approval = approval_record(body=ethics, preregistration=prereg, actor=member)
    assert approval.decided_by == member


def test_a_body_that_does_not_oversee_the_trial_cannot_approve_it():
    trial = draft_trial()
    prereg = preregistration_freeze(trial=trial, plan=valid_plan())
    (stranger,) = bodies("Elsewhere")
    with pytest.raises(ValidationError, match="does not oversee"):
        approval_record(body=stranger, preregistration=prereg)


def test_any_overseeing_body_can_suspend_alone_with_a_reason():
    User = get_user_model()
    trial = enrolling_trial()
    council = trial.oversight.get(body__name="Council").body
    member = User.objects.create(username="c")
    council.members.add(member)
    with pytest.raises(ValidationError, match="reason"):
        trial_suspend(trial=trial, body=council, reason=" ", actor=member)
    trial = trial_suspend(trial=trial, body=council, reason="Distress reports.", actor=member)
    assert trial.state == Trial.State.SUSPENDED
    event = TrialEvent.objects.filter(trial=trial, kind="state_changed").first()
    assert event.actor == member and "Council: Distress reports." in event.detail["reason"]


def test_arms_cannot_be_added_or_edited_after_registration():
    trial = draft_trial()
    preregistration_freeze(trial=trial, plan=valid_plan())
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    with pytest.raises(ValidationError, match="amendment"):
        arm_create(trial=trial, slug="c", name="C", **ARM)


def test_arm_amendment_makes_a_new_version_a_deviation_and_pauses_enrolment():
    trial = enrolling_trial()
    arm = trial.arms.get(slug="b")
    before = preregistration_current(trial)
    with pytest.raises(ValidationError, match="rationale"):
        arm_amend(arm=arm, changes={"model_version": "2"}, rationale="")
    prereg = arm_amend(
        arm=arm, changes={"model_version": "2"}, rationale="Provider retired version 1."
    )
    arm.refresh_from_db()
    assert prereg.version == before.version + 1
    record = prereg.frozen_record
    assert record.arms["b"] == arm.config_hash != before.frozen_record.arms["b"]
    assert record.arm_configs["b"]["model_version"] == "2"
    deviation = ProtocolDeviation.objects.get(trial=trial)
    assert deviation.kind == "arm_change" and deviation.preregistration == before
    with pytest.raises(ValidationError, match="paused"):
        participant_enrol(
            trial=trial,
            email="x@example.org",
            consent_document=ConsentDocument.objects.get(trial=trial),
            scopes=["surveys"],
        )
    assert "arm_amended" in kinds(trial) and "deviation_recorded" in kinds(trial)


def test_amendment_needs_a_registered_trial():
    trial = draft_trial()
    with pytest.raises(ValidationError, match="edit the draft"):
        preregistration_amend(trial=trial, plan=valid_plan(), rationale="Why not.")
