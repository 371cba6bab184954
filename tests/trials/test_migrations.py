"""Migrations that touch the record: frozen versions keep their hashes through them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.conftest import as_database_owner, migrate_to_latest
from trials.canonical import sha256_of

BEFORE = ("trials", "0005_audit_chain")
SPLIT = ("trials", "0006_plan_apart_from_frozen_record")

# A frozen version as stored before the split: one column held the whole hashed record.
FROZEN = {
    "trial": "old",
    "plan": {
        "hypotheses": ["B raises mental wellbeing."],
        "arms_compared": ["a", "b"],
        "primary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2}],
        "alpha": 0.05,
        "multiplicity": "holm",
        "community_weights": {},
    },
    "arms": {"a": "a" * 64, "b": "b" * 64},
    "arm_configs": {"a": {"slug": "a"}, "b": {"slug": "b"}},
    "allocation_sequence_sha256": "c" * 64,
}
DRAFT = {"hypotheses": ["Unfinished."], "alpha": 0.05}


@pytest.mark.django_db(transaction=True)
def test_the_split_keeps_every_frozen_version_verifiable_and_moves_drafts():
    with as_database_owner():
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        old = executor.loader.project_state([BEFORE]).apps
        Trial, PreRegistration = (
            old.get_model("trials", "Trial"),
            old.get_model("trials", "PreRegistration"),
        )
        trial = Trial.objects.create(slug="old", title="Old", allocation_salt="s" * 64)
        PreRegistration.objects.create(
            trial=trial, version=1, plan=FROZEN, frozen_at=timezone.now(), sha256=sha256_of(FROZEN)
        )
        PreRegistration.objects.create(trial=trial, version=2, plan=DRAFT)

        executor = MigrationExecutor(connection)
        executor.migrate([SPLIT])
        new = executor.loader.project_state([SPLIT]).apps.get_model("trials", "PreRegistration")
        frozen, draft = new.objects.filter(trial_id=trial.pk).order_by("version")
        assert frozen.record == FROZEN and sha256_of(frozen.record) == frozen.sha256
        assert frozen.draft_plan is None
        assert draft.draft_plan == DRAFT and draft.record == {}

        # And back: the draft's plan returns to the one column, the frozen row is untouched.
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        back = executor.loader.project_state([BEFORE]).apps.get_model("trials", "PreRegistration")
        assert back.objects.get(trial_id=trial.pk, version=2).plan == DRAFT
        assert back.objects.get(trial_id=trial.pk, version=1).plan == FROZEN

        migrate_to_latest()


@pytest.mark.django_db(transaction=True)
def test_the_split_stops_and_changes_nothing_when_a_frozen_version_does_not_verify():
    with as_database_owner():
        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        old = executor.loader.project_state([BEFORE]).apps
        trial = old.get_model("trials", "Trial").objects.create(
            slug="old", title="Old", allocation_salt="s" * 64
        )
        old.get_model("trials", "PreRegistration").objects.create(
            trial=trial, version=1, plan=FROZEN, frozen_at=timezone.now(), sha256="0" * 64
        )
        executor = MigrationExecutor(connection)
        with pytest.raises(RuntimeError, match="no longer verifies"):
            executor.migrate([SPLIT])
        executor = MigrationExecutor(connection)
        assert (SPLIT[0], SPLIT[1]) not in executor.loader.applied_migrations
        # The owner removes the broken row (below the triggers that refuse it to everyone else)
        # and brings the schema back to the latest migrations for the tests that follow.
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE trials_preregistration DISABLE TRIGGER USER")
            cursor.execute("DELETE FROM trials_preregistration")
            cursor.execute("ALTER TABLE trials_preregistration ENABLE TRIGGER USER")
        migrate_to_latest()
