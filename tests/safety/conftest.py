"""A simulated trial for the safety tests: participants enrolled and allocated through the
services (permuted blocks of the factories' plan), with harm boundaries in the plan."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import Participant, TrialMember
from trials.services import member_add, participant_enrol

SERIOUS_BOUNDARY = {
    "metric": "serious_adverse_events",
    "max_excess": 0.0,
    "confidence": 0.9,
    "min_participants_per_arm": 10,
}


def enrol(trial, count: int, start: int = 0) -> dict[str, list[Participant]]:
    """``count`` participants enrolled in ``trial``; arm slug → its participants."""
    by_arm: dict[str, list[Participant]] = {}
    document = trial.consent_documents.get()
    for number in range(start, start + count):
        participant = participant_enrol(
            trial=trial,
            email=f"p{number}@example.org",
            consent_document=document,
            scopes=["surveys"],
        )
        by_arm.setdefault(participant.allocation.arm.slug, []).append(participant)
    return by_arm


def coordinator_of(trial, username: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Coordinators"))
    member_add(trial=trial, user=user, role=TrialMember.Role.COORDINATOR)
    return user


@pytest.fixture
def guarded_trial(db):
    """An enrolling two-arm trial ("a" the control, "b" the other) whose plan stops for
    harm on serious adverse events (any excess, 90%, at least 10 per arm)."""
    plan = valid_plan(safety={"harm_boundaries": [SERIOUS_BOUNDARY]})
    return enrolling_trial("guarded", plan=plan)
