"""Enrolment, consent per data stream, withdrawal and erasure, and allocation under races."""

import threading
from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.conftest import as_database_owner, migrate_to_latest
from tests.trials.factories import bodies, enrolling_trial, valid_plan
from trials.models import (
    Allocation,
    AllocationStratum,
    Community,
    ConsentDocument,
    Participant,
    ParticipantContact,
    TrialEvent,
)
from trials.randomisation import block_holding, block_layout, permuted_block, permuted_block_arm
from trials.selectors import consent_active, preregistration_current
from trials.services import (
    approval_record,
    consent_grant,
    consent_revoke,
    participant_enrol,
    participant_withdraw,
    preregistration_amend,
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
def test_each_stratum_walks_on_from_its_stored_block_along_the_same_sequence():
    ratio, sizes = {"a": 1, "b": 2}, [3, 6, 9]
    trial = enrolling_trial(plan=valid_plan(randomisation={"block_sizes": sizes, "ratio": ratio}))
    north = Community.objects.create(slug="north", name="North")
    for n in range(40):
        enrol(trial, f"p{n}@example.org", community=north if n % 3 else None)
    for stratum in AllocationStratum.objects.filter(trial=trial):
        allocations = Allocation.objects.filter(stratum=stratum).order_by("position")
        assert [a.position for a in allocations] == list(range(stratum.next_position))
        assert [a.arm.slug for a in allocations] == [
            permuted_block_arm(trial.allocation_salt, stratum.key, p, ratio, sizes)
            for p in range(stratum.next_position)
        ]
        # The row remembers the block of the last position, not the first block.
        last = stratum.next_position - 1
        cursor, _arms = block_holding(trial.allocation_salt, stratum.key, last, ratio, sizes)
        assert (stratum.block_number, stratum.block_start) == (cursor.number, cursor.start)
        assert cursor.number > 0 and stratum.block_layout == block_layout(ratio, sizes)


@pytest.mark.django_db
def test_an_amended_block_layout_is_walked_again_from_the_first_block():
    # As allocation always did: the arm at a position is the amended sequence's arm there.
    trial = enrolling_trial()
    first = [enrol(trial, f"p{n}@example.org") for n in range(7)]
    preregistration_amend(
        trial=trial,
        rationale="Smaller blocks for a smaller site.",
        plan=valid_plan(randomisation={"block_sizes": [2]}),
    )
    for body in bodies("Ethics", "Council"):
        approval_record(body=body, preregistration=preregistration_current(trial))
    then = [enrol(trial, f"q{n}@example.org") for n in range(7)]
    for people, sizes in ((first, [4, 6]), (then, [2])):
        for participant in people:
            allocation = Allocation.objects.get(participant=participant)
            assert allocation.arm.slug == permuted_block_arm(
                trial.allocation_salt,
                "community=-",
                allocation.position,
                {"a": 1, "b": 1},
                sizes,
            )
    stratum = AllocationStratum.objects.get(trial=trial)
    assert stratum.next_position == 14
    assert stratum.block_layout == block_layout({"a": 1, "b": 1}, [2])


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
    # Each enrolment walked on from the block its predecessor stored, under the lock.
    stratum = AllocationStratum.objects.get(trial=trial)
    cursor, _arms = block_holding(trial.allocation_salt, stratum.key, 11, {"a": 1, "b": 1}, [4, 6])
    assert (stratum.block_number, stratum.block_start) == (cursor.number, cursor.start)


BEFORE_CURSOR = ("trials", "0007_trialevent_kind_choices")
CURSOR = ("trials", "0008_stratum_block_cursor")


def _frozen_plan(randomisation: dict) -> dict:
    # Only the section the migration reads; the rest of a record does not concern it.
    return {"plan": {"randomisation": randomisation}}


@pytest.mark.django_db(transaction=True)
def test_the_migration_finds_the_block_of_each_stratum_next_position():
    salt, ratio, sizes = "s" * 64, {"a": 1, "b": 1, "c": 1}, [3, 6]
    starts, start = [], 0
    for number in range(5):
        starts.append(start)
        start += len(permuted_block(salt, "community=north", number, ratio, sizes))
    middle = starts[3] + 1  # the second arm of block 3
    with as_database_owner():
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE_CURSOR])
        old = executor.loader.project_state([BEFORE_CURSOR]).apps
        trial = old.get_model("trials", "Trial").objects.create(
            slug="old", title="Old", allocation_salt=salt
        )
        for slug in ratio:
            old.get_model("trials", "Arm").objects.create(trial=trial, slug=slug, name=slug)
        PreRegistration = old.get_model("trials", "PreRegistration")
        # Version 2, an amendment, is what allocation reads: equal weights over the three arms.
        for version, blocks in ((1, [9]), (2, sizes)):
            PreRegistration.objects.create(
                trial=trial,
                version=version,
                record=_frozen_plan({"method": "permuted_blocks", "block_sizes": blocks}),
                frozen_at=timezone.now(),
                sha256=str(version) * 64,
            )
        Stratum = old.get_model("trials", "AllocationStratum")
        Stratum.objects.create(trial=trial, key="community=north", next_position=middle)
        Stratum.objects.create(trial=trial, key="community=south", next_position=0)

        executor = MigrationExecutor(connection)
        executor.migrate([CURSOR])
        new = executor.loader.project_state([CURSOR]).apps.get_model("trials", "AllocationStratum")
        north, south = new.objects.filter(trial_id=trial.pk).order_by("key")
        assert (north.next_position, north.block_number, north.block_start) == (
            middle,
            3,
            starts[3],
        )
        assert (south.block_number, south.block_start) == (0, 0)
        assert north.block_layout == south.block_layout == block_layout(ratio, sizes)

        migrate_to_latest()
