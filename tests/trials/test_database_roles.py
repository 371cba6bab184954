"""The suite runs as the application role; that role cannot disable a trigger, truncate the
record, or reset or rewrite the privacy ledger, and the owner cannot truncate the record either."""

import os

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from federated.models import PrivacyBudget, PrivacyCharge
from tests.trials.factories import enrolling_trial

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_OWNER_URL"),
        reason="make test could not create the owner and application roles on this server "
        "(its user may not create roles); see its first lines of output",
    ),
]

PROTECTED = [
    "trials_preregistration",
    "trials_allocation",
    "trials_approval",
    "trials_protocoldeviation",
    "trials_trialevent",
    "federated_privacybudget",
    "federated_privacycharge",
]


def refused(statement: str) -> str:
    """Run ``statement`` as the application role; the database's error message."""
    with pytest.raises(DatabaseError) as raised, transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement)
    return str(raised.value)


@pytest.fixture
def ledger():
    trial = enrolling_trial()
    budget = PrivacyBudget.objects.create(
        trial=trial, total_nano_rho=10**9, spent_nano_rho=400, delta=1e-7
    )
    PrivacyCharge.objects.create(budget=budget, key="w0", nano_rho=400, measurements={})
    return budget


def test_the_suite_runs_as_an_application_role_that_is_no_superuser():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        user, superuser, bypass = cursor.fetchone()
    assert user == settings.DATABASE_APP_ROLE
    assert not superuser and not bypass


def test_the_application_role_cannot_switch_triggers_off():
    for table in PROTECTED:
        assert "must be owner" in refused(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    assert "permission denied" in refused("SET session_replication_role = replica")


def test_the_application_role_cannot_truncate_the_record():
    for table in PROTECTED:
        assert "permission denied" in refused(f"TRUNCATE {table} CASCADE")


def test_the_ledger_cannot_be_reset_rewritten_or_deleted(ledger):
    charge = ledger.charges.get()
    assert "never refunded" in refused(
        f"UPDATE federated_privacybudget SET spent_nano_rho = 0 WHERE id = {ledger.pk}"
    )
    assert "never refunded" in refused(
        f"UPDATE federated_privacybudget SET total_nano_rho = total_nano_rho * 2 "
        f"WHERE id = {ledger.pk}"
    )
    assert "cannot be deleted" in refused(
        f"DELETE FROM federated_privacycharge WHERE id = {charge.pk}"
    )
    assert "cannot be deleted" in refused(
        f"DELETE FROM federated_privacybudget WHERE id = {ledger.pk}"
    )
    assert "only released once" in refused(
        f"UPDATE federated_privacycharge SET nano_rho = 1 WHERE id = {charge.pk}"
    )
    # What the services do stays possible: spending more, and releasing a reservation once.
    PrivacyBudget.objects.filter(pk=ledger.pk).update(spent_nano_rho=500)
    PrivacyCharge.objects.filter(pk=charge.pk).update(status="released")
    assert "only released once" in refused(
        f"UPDATE federated_privacycharge SET status = 'reserved' WHERE id = {charge.pk}"
    )


def test_the_application_role_cannot_create_tables():
    assert "permission denied" in refused("CREATE TABLE shadow (id int)")


@pytest.mark.django_db(transaction=True)
def test_even_the_owner_cannot_truncate_the_record_without_switching_triggers_off():
    owner = dict(psycopg.conninfo.conninfo_to_dict(os.environ["DATABASE_OWNER_URL"]))
    owner["dbname"] = connection.settings_dict["NAME"]
    with psycopg.connect(**owner, autocommit=True) as conn:
        for table in PROTECTED:
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="truncated"):
                conn.execute(f"TRUNCATE {table} CASCADE")
