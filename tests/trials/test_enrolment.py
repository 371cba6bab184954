"""Enrolment, consent per data stream, withdrawal and erasure, and allocation under races."""

import threading
from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import (
    Allocation,
    Community,
    ConsentDocument,
    Participant,
    ParticipantContact,
    TrialEvent,
)
from trials.randomisation import permuted_block_arm
from trials.selectors import consent_active
from trials.services import (
    consent_grant,
    consent_revoke,
    participant_enrol,
    participant_withdraw,
    screening_record,
)


def enrol(trial, email="p@example.org", scopes=("surveys",), **extra) -> Participant:
    return participant_enrol(
        trial=trial,
        email=email,
        consent_document=trial.consent_documents.get(),
        scopes=list(scopes),
        **extra,
    )


@pytest.mark.django_db
def test_allocation_follows_the_concealed_sequence_of_the_stratum():
    trial = enrolling_trial()
    north = Community.objects.create(slug="north", name="North")
    people = [enrol(trial, f"p{n}@example.org", community=north) for n in range(10)]
    for position, participant in enumerate(people):
        allocation = participant.allocation
        assert allocation.stratum.key == "community=north" and allocation.position == position
        expected = permuted_block_arm(
            trial.allocation_salt, "community=north", position, {"a": 1, "b": 1}, [4, 6]
        )
        assert allocation.arm.slug == expected
    assert len(people[0].id) >= 22  # 128 random bits, URL-safe


@pytest.mark.django_db
def test_salted_hash_option():
    trial = enrolling_trial(plan=valid_plan(randomisation={"method": "salted_hash"}))
    participant = enrol(trial)
    assert participant.allocation.stratum is None and participant.allocation.position is None


@pytest.mark.django_db
def test_enrolment_needs_survey_consent_and_writes_nothing_otherwise():
    trial = enrolling_trial()
    with pytest.raises(ValidationError, match="consent to the surveys"):
        enrol(trial, scopes=["telemetry"])
    assert not Participant.objects.filter(trial=trial).exists()


@pytest.mark.django_db
def test_same_address_cannot_enrol_twice_in_one_trial():
    trial = enrolling_trial()
    enrol(trial, "Same@Example.org")
    with pytest.raises(ValidationError, match="already enrolled"):
        enrol(trial, "same@example.org")
    assert Participant.objects.filter(trial=trial).count() == 1


@pytest.mark.django_db
def test_ineligible_screening_cannot_be_enrolled():
    trial = enrolling_trial()
    with pytest.raises(ValidationError, match="why"):
        screening_record(trial=trial, eligible=False)
    screening = screening_record(trial=trial, eligible=False, exclusion_reason="Under 18")
    with pytest.raises(ValidationError, match="eligible"):
        enrol(trial, screening=screening)


@pytest.mark.django_db
def test_each_stream_is_granted_and_revoked_on_its_own_and_audited():
    trial = enrolling_trial()
    participant = enrol(trial, scopes=["surveys", "telemetry"])
    consent_revoke(participant=participant, scope="telemetry")
    assert not consent_active(participant, "telemetry") and consent_active(participant, "surveys")
    consent_grant(
        participant=participant,
        scope="conversation_content",
        document=ConsentDocument.objects.get(trial=trial),
    )
    assert consent_active(participant, "conversation_content")
    with pytest.raises(ValidationError, match="withdraw"):
        consent_revoke(participant=participant, scope="surveys")
    kinds = set(TrialEvent.objects.filter(trial=trial).values_list("kind", flat=True))
    assert {"consent_revoked", "consent_granted"} <= kinds


@pytest.mark.django_db
def test_withdrawal_keeps_or_erases_as_the_consent_document_says():
    trial = enrolling_trial()
    kept = enrol(trial, "keep@example.org", scopes=["surveys", "telemetry"])
    participant_withdraw(participant=kept, reason="Too busy")
    kept.refresh_from_db()
    assert kept.withdrawn_at and kept.erased_at is None and kept.withdrawal_reason == "Too busy"
    assert not kept.consents.filter(revoked_at__isnull=True).exists()
    assert ParticipantContact.objects.filter(pk=kept.pk).exists()

    ConsentDocument.objects.filter(trial=trial).update(withdrawal_rule="erase")
    erased = enrol(trial, "erase@example.org")
    participant_withdraw(participant=erased, reason="Changed my mind")
    erased.refresh_from_db()
    assert erased.erased_at is not None
    assert not ParticipantContact.objects.filter(pk=erased.pk).exists()
    # The pseudonym and allocation stay, so the CONSORT flow still counts the person.
    assert Allocation.objects.filter(pk=erased.pk).exists()


def _race(target, n: int) -> list:
    """Run ``target(i)`` in ``n`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as error:  # collected and asserted on by the test
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_the_same_person_enrolling_in_parallel_gets_one_allocation():
    trial = enrolling_trial()
    results = _race(lambda i: enrol(trial, "twice@example.org").pk, 8)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, ValidationError)]
    assert len(winners) == 1 and len(losers) == 7, results
    assert all("already enrolled" in str(error) for error in losers)
    assert Participant.objects.filter(trial=trial).count() == 1
    assert Allocation.objects.filter(arm__trial=trial).count() == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_enrolments_take_each_sequence_position_exactly_once():
    trial = enrolling_trial()
    results = _race(lambda i: enrol(trial, f"p{i}@example.org").pk, 12)
    assert all(isinstance(r, str) for r in results), results
    allocations = Allocation.objects.filter(arm__trial=trial).select_related("arm", "stratum")
    positions = sorted(a.position for a in allocations)
    assert positions == list(range(12))
    # Whatever order the requests won the lock in, the arms follow the registered sequence.
    for allocation in allocations:
        assert allocation.arm.slug == permuted_block_arm(
            trial.allocation_salt,
            allocation.stratum.key,
            allocation.position,
            {"a": 1, "b": 1},
            [4, 6],
        )
    counts = Counter(a.arm.slug for a in allocations)
    assert abs(counts["a"] - counts["b"]) <= 3
