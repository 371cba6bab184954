import pytest
from django.core.exceptions import ValidationError

from trials.models import Allocation, ConsentDocument, OversightBody, Trial, TrialEvent
from trials.services import (
    allocate_salted_hash,
    approval_record,
    arm_create,
    missing_approvals,
    oversight_assign,
    participant_enrol,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

pytestmark = pytest.mark.django_db
ARM = {
    "endpoint_url": "http://127.0.0.1:9000/v1",
    "model_id": "m",
    "model_version": "1",
    "system_prompt": "Be helpful.",
}


@pytest.fixture
def draft(db):
    trial = trial_create(slug="t", title="T")
    arm_create(trial=trial, slug="a", name="A", is_control=True, **ARM)
    arm_create(trial=trial, slug="b", name="B", **ARM | {"system_prompt": "Be kind."})
    return trial


def test_arms_with_different_configuration_have_different_hashes(draft):
    a, b = draft.arms.order_by("slug")
    assert len(a.config_hash) == 64 and a.config_hash != b.config_hash


def test_register_requires_a_frozen_plan(draft):
    with pytest.raises(ValidationError, match="Freeze a pre-registration"):
        trial_transition(trial=draft, to=Trial.State.REGISTERED)


def test_illegal_transition_gives_a_clear_message(draft):
    with pytest.raises(ValidationError, match="cannot move from draft to enrolling"):
        trial_transition(trial=draft, to=Trial.State.ENROLLING)


def test_enrolment_opens_only_when_every_required_body_approved(draft):
    prereg = preregistration_freeze(trial=draft, plan={"alpha": 0.05})
    trial = trial_transition(trial=draft, to=Trial.State.REGISTERED)
    ethics = OversightBody.objects.create(name="Ethics", kind=OversightBody.Kind.ETHICS_BOARD)
    council = OversightBody.objects.create(
        name="Council", kind=OversightBody.Kind.COMMUNITY_COUNCIL
    )
    oversight_assign(trial=trial, body=ethics)
    oversight_assign(trial=trial, body=council)
    approval_record(body=ethics, preregistration=prereg)
    assert missing_approvals(trial) == ["Council"]
    with pytest.raises(ValidationError, match="missing: Council"):
        trial_transition(trial=trial, to=Trial.State.ENROLLING)
    approval_record(body=council, preregistration=prereg)
    # A new plan version needs approving again.
    prereg2 = preregistration_freeze(trial=trial, plan={"alpha": 0.01})
    assert prereg2.version == 2 and prereg2.sha256 != prereg.sha256
    assert missing_approvals(trial) == ["Council", "Ethics"]
    approval_record(body=ethics, preregistration=prereg2)
    approval_record(body=council, preregistration=prereg2)
    trial = trial_transition(trial=trial, to=Trial.State.ENROLLING)
    assert trial.state == Trial.State.ENROLLING
    kinds = list(TrialEvent.objects.filter(trial=trial).values_list("kind", flat=True))
    assert kinds.count("state_changed") == 2 and kinds.count("approval_recorded") == 4


def test_plan_hash_binds_the_arm_configurations(draft):
    prereg = preregistration_freeze(trial=draft, plan={"alpha": 0.05})
    assert prereg.plan["arms"] == {a.slug: a.config_hash for a in draft.arms.all()}


def test_arms_cannot_be_added_after_registration(draft):
    preregistration_freeze(trial=draft, plan={})
    trial = trial_transition(trial=draft, to=Trial.State.REGISTERED)
    with pytest.raises(ValidationError, match="draft"):
        arm_create(trial=trial, slug="c", name="C", **ARM)


def test_enrolment_allocates_deterministically_and_records_consent(small_trial):
    document = ConsentDocument.objects.get(trial=small_trial)
    participant = participant_enrol(
        trial=small_trial,
        email="p@example.org",
        consent_document=document,
        scopes=["surveys", "data_sharing"],
    )
    arms = list(small_trial.arms.order_by("slug"))
    assert participant.allocation.arm == allocate_salted_hash(small_trial, participant.id, arms)
    assert set(participant.consents.values_list("scope", flat=True)) == {"surveys", "data_sharing"}
    assert len(participant.id) >= 22  # 128 random bits, URL-safe


def test_enrolment_needs_survey_consent_and_writes_nothing_otherwise(small_trial):
    document = ConsentDocument.objects.get(trial=small_trial)
    before = Allocation.objects.count()
    with pytest.raises(ValidationError, match="consent to the surveys"):
        participant_enrol(
            trial=small_trial,
            email="p@example.org",
            consent_document=document,
            scopes=["telemetry"],
        )
    assert Allocation.objects.count() == before


def test_salted_hash_allocation_is_roughly_balanced(small_trial):
    arms = list(small_trial.arms.order_by("slug"))
    counts = {arm.slug: 0 for arm in arms}
    for number in range(2000):
        counts[allocate_salted_hash(small_trial, f"id-{number}", arms).slug] += 1
    # Binomial(2000, 0.5): 4 SD ≈ 89.
    assert abs(counts["a"] - 1000) < 90
