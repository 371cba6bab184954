"""The assignment API answers one participant's own arm, and nothing else."""

import pytest
from django.core import signing

from tests.trials.factories import enrolling_trial
from trials.models import Arm, Trial, TrialEvent
from trials.selectors import preregistration_in_force, preregistrations_pending
from trials.services import (
    ASSIGNMENT_TOKEN_SALT,
    approval_record,
    arm_amend,
    assignment_token,
    participant_enrol,
    participant_withdraw,
    trial_transition,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def participant():
    trial = enrolling_trial()
    return participant_enrol(
        trial=trial,
        email="p@example.org",
        consent_document=trial.consent_documents.get(),
        scopes=["surveys"],
    )


def url(token: str) -> str:
    return f"/api/v1/assignment/{token}/"


def test_returns_the_participants_arm_configuration_and_hash(client, participant):
    response = client.get(url(assignment_token(participant)))
    assert response.status_code == 200
    body = response.json()
    arm = participant.allocation.arm
    assert body["config_hash"] == arm.config_hash
    assert body["configuration"]["system_prompt"] == arm.system_prompt
    assert body["preregistration"]["version"] == 1
    # Nothing about the other arm, the allocation sequence or the participant.
    other = Arm.objects.filter(trial=arm.trial).exclude(pk=arm.pk).get()
    text = response.content.decode()
    assert other.config_hash not in text and other.system_prompt not in text
    assert participant.id not in text and "salt" not in text
    assert response["Cache-Control"].startswith("max-age=0")


def test_tampered_forged_or_unknown_tokens_get_the_same_404(client, participant):
    token = assignment_token(participant)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    forged_with_wrong_salt = signing.dumps(participant.id, salt="something-else")
    unsigned_id = participant.id
    other_participant = signing.dumps("x" * 22, salt=ASSIGNMENT_TOKEN_SALT)
    for bad in [tampered, forged_with_wrong_salt, unsigned_id, other_participant, "nothing"]:
        response = client.get(url(bad))
        assert response.status_code == 404, bad


def test_only_get_is_allowed(client, participant):
    assert client.post(url(assignment_token(participant))).status_code == 405


def test_withdrawn_participants_and_suspended_trials_get_404(client, participant):
    token = assignment_token(participant)
    trial = trial_transition(trial=participant.trial, to=Trial.State.SUSPENDED)
    assert client.get(url(token)).status_code == 404
    trial_transition(trial=trial, to=Trial.State.ENROLLING)
    assert client.get(url(token)).status_code == 200
    participant_withdraw(participant=participant)
    assert client.get(url(token)).status_code == 404


def test_an_arm_changed_behind_the_services_back_is_not_served(client, participant):
    arm = participant.allocation.arm
    Arm.objects.filter(pk=arm.pk).update(system_prompt="Maximise time on app.")
    response = client.get(url(assignment_token(participant)))
    assert response.status_code == 503
    assert "Maximise" not in response.content.decode()
    event = TrialEvent.objects.get(trial=arm.trial, kind="arm_integrity_failure")
    assert event.detail["registered_hash"] == arm.config_hash


def test_an_amendment_reaches_participants_only_once_every_required_body_approved_it(
    client, participant
):
    """End to end through the API: the approved version stays in force while an amendment is
    pending, and the amendment is served from the moment the last required body approves."""
    trial, arm = participant.trial, participant.allocation.arm
    token = assignment_token(participant)
    approved_prompt = arm.system_prompt
    amended = arm_amend(
        arm=arm,
        changes={"system_prompt": "Be kind, and brief."},
        rationale="Shorter answers.",
    )
    in_force = preregistration_in_force(trial)
    assert in_force.version == 1
    assert [p.version for p in preregistrations_pending(trial, in_force)] == [amended.version]
    body = client.get(url(token)).json()
    assert body["configuration"]["system_prompt"] == approved_prompt
    assert body["preregistration"]["version"] == 1
    first, second = [link.body for link in trial.oversight.filter(required=True)]
    approval_record(body=first, preregistration=amended)
    assert client.get(url(token)).json()["configuration"]["system_prompt"] == approved_prompt
    approval_record(body=second, preregistration=amended)
    body = client.get(url(token)).json()
    assert body["configuration"]["system_prompt"] == "Be kind, and brief."
    assert body["preregistration"] == {"version": amended.version, "sha256": amended.sha256}
    assert body["config_hash"] == Arm.objects.get(pk=arm.pk).config_hash
    assert preregistrations_pending(trial, preregistration_in_force(trial)) == []
