"""Freezing plans, and the database refusing to change what was frozen."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from tests.trials.factories import draft_trial, enrolling_trial, valid_plan
from trials.canonical import sha256_of
from trials.models import Allocation, Approval, PreRegistration, Trial, TrialEvent
from trials.randomisation import sequence_commitment
from trials.selectors import preregistration_current
from trials.services import (
    participant_enrol,
    preregistration_draft_save,
    preregistration_freeze,
    profile_create,
)

pytestmark = pytest.mark.django_db


def test_frozen_content_binds_plan_arms_and_allocation_sequence():
    trial = draft_trial()
    prereg = preregistration_freeze(trial=trial, plan=valid_plan())
    content = prereg.record
    assert prereg.sha256 == sha256_of(content) and prereg.frozen_at is not None
    assert prereg.draft_plan is None and content["plan"] == prereg.plan.canonical()
    assert content["arms"] == {a.slug: a.config_hash for a in trial.arms.all()}
    assert content["arm_configs"]["b"]["system_prompt"] == "Be kind."
    settings = {"method": "permuted_blocks", "strata": ["community"], "block_sizes": [4, 6]}
    assert content["allocation_sequence_sha256"] == sequence_commitment(
        trial.allocation_salt, settings | {"ratio": None}
    )


def test_freezing_checks_the_plan_and_lists_every_problem():
    trial = draft_trial()
    with pytest.raises(ValidationError) as error:
        preregistration_freeze(
            trial=trial,
            plan={"arms_compared": ["a", "z"], "alpha": 5, "primary_outcomes": [{"wave": 0}]},
        )
    messages = " ".join(error.value.messages)
    for expected in ["alpha", "dimension", "wave", "instrument"]:
        assert expected in messages
    assert not PreRegistration.objects.filter(trial=trial, frozen_at__isnull=False).exists()


def test_a_draft_is_saved_then_frozen_in_place():
    trial = draft_trial()
    draft = preregistration_draft_save(trial=trial, plan={"hypotheses": ["Unfinished"]})
    assert draft.version == 1 and draft.frozen_at is None
    preregistration_draft_save(trial=trial, plan=valid_plan())
    frozen = preregistration_freeze(trial=trial)
    assert frozen.pk == draft.pk and frozen.version == 1


def test_community_weights_are_copied_from_the_community_profile():
    from trials.models import Community

    community = Community.objects.create(slug="c", name="C")
    profile_create(
        community=community, weights={"meaning": 0.7, "relationships": 0.3}, authored_by="Council"
    )
    prereg = preregistration_freeze(
        trial=draft_trial(), plan=valid_plan(community_weights={"c": 1})
    )
    (weights,) = prereg.frozen_record.plan.community_weights.values()
    assert weights.profile_version == 1
    assert weights.weights == {"meaning": 0.7, "relationships": 0.3}


def refused(sql: str, params: list) -> str:
    """Run ``sql`` as a raw client would, return the database's refusal message."""
    with pytest.raises(IntegrityError) as error, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)
    return str(error.value)


def test_database_refuses_to_change_or_delete_a_frozen_preregistration():
    trial = draft_trial()
    prereg = preregistration_freeze(trial=trial, plan=valid_plan())
    message = refused(
        "UPDATE trials_preregistration SET record = '{}'::jsonb WHERE id = %s", [prereg.pk]
    )
    assert "frozen pre-registration cannot be changed" in message
    assert "cannot be deleted" in refused(
        "DELETE FROM trials_preregistration WHERE id = %s", [prereg.pk]
    )
    # Through the ORM too: the refusal does not depend on who asks.
    prereg.record = {"tampered": True}
    with pytest.raises(IntegrityError), transaction.atomic():
        prereg.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        PreRegistration.objects.filter(pk=prereg.pk).update(sha256="0" * 64)
    prereg.refresh_from_db()
    assert prereg.sha256 == sha256_of(prereg.record)


def test_database_refuses_to_change_allocations_approvals_events_and_the_secret():
    trial = enrolling_trial()
    participant = participant_enrol(
        trial=trial,
        email="p@example.org",
        consent_document=trial.consent_documents.get(),
        scopes=["surveys"],
    )
    other = trial.arms.exclude(pk=participant.allocation.arm_id).get()
    assert "allocation cannot be changed" in refused(
        "UPDATE trials_allocation SET arm_id = %s WHERE participant_id = %s",
        [other.pk, participant.pk],
    )
    approval = Approval.objects.filter(preregistration__trial=trial).first()
    assert "approval cannot be deleted" in refused(
        "DELETE FROM trials_approval WHERE id = %s", [approval.pk]
    )
    event = TrialEvent.objects.filter(trial=trial).first()
    assert "audit event cannot be changed" in refused(
        "UPDATE trials_trialevent SET kind = 'nothing' WHERE id = %s", [event.pk]
    )
    assert "allocation secret" in refused(
        "UPDATE trials_trial SET allocation_salt = 'x' WHERE id = %s", [trial.pk]
    )
    # Ordinary changes to a trial still work.
    Trial.objects.filter(pk=trial.pk).update(title="Renamed")
    assert Allocation.objects.get(pk=participant.pk).arm_id == participant.allocation.arm_id


def test_a_draft_stays_editable_until_frozen():
    trial = draft_trial()
    draft = preregistration_draft_save(trial=trial, plan={"hypotheses": ["x"]})
    PreRegistration.objects.filter(pk=draft.pk).update(draft_plan={"hypotheses": ["y"]})
    assert preregistration_current(trial) is None
