"""The privacy ledger in the database itself: charges are append-only, spent budget is monotone,
and each charge is vouched for by the trial's audit chain (trials.audit).

A charge may only move from reserved to released (its key, size, measurements and reservation
time never change) and is never deleted; a budget's spent amount never decreases, its total and
δ never change, and it is never deleted; neither table can be truncated. These are the rules
``federated.services`` follows; the triggers make them hold for raw SQL by any non-superuser.
Written for PostgreSQL and SQLite (the demo), like trials' 0003.
"""

from django.db import migrations, models

from trials.audit import record_chained_link, record_content

# A snapshot of PrivacyCharge.audit_fields as of this migration.
CHARGE_FIELDS = ("budget_id", "key", "nano_rho", "measurements", "d_in", "reserved_at")

# (table, event, condition over OLD/NEW or None for always, message)
RULES = [
    (
        "federated_privacybudget",
        "UPDATE",
        "NEW.spent_nano_rho < OLD.spent_nano_rho"
        " OR NEW.total_nano_rho IS DISTINCT FROM OLD.total_nano_rho"
        " OR NEW.delta IS DISTINCT FROM OLD.delta"
        " OR NEW.trial_id IS DISTINCT FROM OLD.trial_id",
        "Spent privacy budget is never refunded or reset, and a budget's size never changes.",
    ),
    ("federated_privacybudget", "DELETE", None, "A privacy budget cannot be deleted."),
    (
        "federated_privacycharge",
        "UPDATE",
        "NEW.budget_id IS DISTINCT FROM OLD.budget_id"
        " OR NEW.key IS DISTINCT FROM OLD.key"
        " OR NEW.nano_rho IS DISTINCT FROM OLD.nano_rho"
        " OR NEW.measurements IS DISTINCT FROM OLD.measurements"
        " OR NEW.d_in IS DISTINCT FROM OLD.d_in"
        " OR NEW.reserved_at IS DISTINCT FROM OLD.reserved_at"
        " OR OLD.status = 'released'",
        "A privacy charge cannot be changed, only released once.",
    ),
    ("federated_privacycharge", "DELETE", None, "A privacy charge cannot be deleted."),
]
TRUNCATE_PROTECTED = ["federated_privacybudget", "federated_privacycharge"]


def _name(table: str, event: str) -> str:
    return f"{table}_refuse_{event.lower()}"


def _chain_existing(apps, schema_editor):
    """Existing charges get a ``record_chained`` event each, appended to their trial's chain."""
    PrivacyCharge = apps.get_model("federated", "PrivacyCharge")
    TrialEvent = apps.get_model("trials", "TrialEvent")
    for charge in PrivacyCharge.objects.select_related("budget").order_by("pk"):
        trial_id = charge.budget.trial_id
        head = TrialEvent.objects.filter(trial_id=trial_id).order_by("-sequence").first()
        link = record_chained_link(
            trial_id=trial_id,
            sequence=head.sequence + 1,
            previous_hash=head.hash,
            label="federated.privacycharge",
            pk=charge.pk,
            content=record_content(charge, CHARGE_FIELDS),
        )
        TrialEvent.objects.create(**link)
        PrivacyCharge.objects.filter(pk=charge.pk).update(chain_hash=link["hash"])


def _install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, event, condition, message in RULES:
        quoted = message.replace("'", "''")
        if vendor == "postgresql":
            when = f"WHEN ({condition})" if condition else ""
            # flourish_refuse_change() is defined by trials' 0003.
            schema_editor.execute(
                f"CREATE TRIGGER {_name(table, event)} BEFORE {event} ON {table} FOR EACH ROW "
                f"{when} EXECUTE FUNCTION flourish_refuse_change('{quoted}')",
                None,
            )
        else:
            when = f"WHEN {condition.replace('IS DISTINCT FROM', 'IS NOT')}" if condition else ""
            schema_editor.execute(
                f"CREATE TRIGGER {_name(table, event)} BEFORE {event} ON {table} FOR EACH ROW "
                f"{when} BEGIN SELECT RAISE(ABORT, '{quoted}'); END",
                None,
            )
    if vendor == "postgresql":
        for table in TRUNCATE_PROTECTED:
            # flourish_refuse_truncate() is defined by trials' 0004.
            schema_editor.execute(
                f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION flourish_refuse_truncate()"
            )


def _remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, event, _condition, _message in RULES:
        suffix = f" ON {table}" if vendor == "postgresql" else ""
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {_name(table, event)}{suffix}")
    if vendor == "postgresql":
        for table in TRUNCATE_PROTECTED:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("federated", "0001_initial"),
        ("trials", "0005_audit_chain"),
    ]

    operations = [
        migrations.AddField(
            model_name="privacycharge",
            name="chain_hash",
            field=models.CharField(
                blank=True,
                help_text="The hash of the audit event that recorded it.",
                max_length=64,
            ),
        ),
        migrations.RunPython(_chain_existing, migrations.RunPython.noop),
        migrations.RunPython(_install, _remove),
    ]
