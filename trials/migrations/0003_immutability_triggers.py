"""Database triggers that make the record of a trial append-only below the ORM and the admin.

Frozen pre-registrations, allocations, approvals, protocol deviations and audit events cannot be
changed or deleted by any client, including raw SQL; a trial's allocation secret cannot be
changed. Columns that only ``on_delete=SET_NULL`` touches (who decided, who recorded) stay
writable so deleting a user account still works. Written for PostgreSQL (the system of record)
and SQLite (the demo); both raise an integrity error that Django reports as ``IntegrityError``.
"""

from django.db import migrations

# (table, event, condition over OLD/NEW or None for always, message)
RULES = [
    (
        "trials_preregistration",
        "UPDATE",
        "OLD.frozen_at IS NOT NULL",
        "A frozen pre-registration cannot be changed; amend the plan to make a new version.",
    ),
    (
        "trials_preregistration",
        "DELETE",
        "OLD.frozen_at IS NOT NULL",
        "A frozen pre-registration cannot be deleted.",
    ),
    (
        "trials_trial",
        "UPDATE",
        "OLD.allocation_salt IS DISTINCT FROM NEW.allocation_salt",
        "A trial's concealed allocation secret cannot be changed.",
    ),
    ("trials_allocation", "UPDATE", None, "An allocation cannot be changed."),
    ("trials_allocation", "DELETE", None, "An allocation cannot be deleted."),
    (
        "trials_approval",
        "UPDATE",
        "OLD.body_id IS DISTINCT FROM NEW.body_id"
        " OR OLD.preregistration_id IS DISTINCT FROM NEW.preregistration_id"
        " OR OLD.decided_at IS DISTINCT FROM NEW.decided_at"
        " OR OLD.note IS DISTINCT FROM NEW.note",
        "An approval cannot be changed.",
    ),
    ("trials_approval", "DELETE", None, "An approval cannot be deleted."),
    (
        "trials_protocoldeviation",
        "UPDATE",
        "OLD.trial_id IS DISTINCT FROM NEW.trial_id"
        " OR OLD.preregistration_id IS DISTINCT FROM NEW.preregistration_id"
        " OR OLD.kind IS DISTINCT FROM NEW.kind"
        " OR OLD.description IS DISTINCT FROM NEW.description"
        " OR OLD.recorded_at IS DISTINCT FROM NEW.recorded_at",
        "A recorded protocol deviation cannot be changed.",
    ),
    ("trials_protocoldeviation", "DELETE", None, "A protocol deviation cannot be deleted."),
    (
        "trials_trialevent",
        "UPDATE",
        "OLD.trial_id IS DISTINCT FROM NEW.trial_id"
        " OR OLD.kind IS DISTINCT FROM NEW.kind"
        " OR OLD.at IS DISTINCT FROM NEW.at"
        " OR OLD.detail IS DISTINCT FROM NEW.detail",
        "An audit event cannot be changed.",
    ),
    ("trials_trialevent", "DELETE", None, "An audit event cannot be deleted."),
]


def _name(table: str, event: str) -> str:
    return f"{table}_refuse_{event.lower()}"


def _install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            """
            CREATE OR REPLACE FUNCTION flourish_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation';
            END;
            $$ LANGUAGE plpgsql;
            """,
            None,  # no parameters: the % above is PL/pgSQL's, not a placeholder
        )
    for table, event, condition, message in RULES:
        name = _name(table, event)
        if vendor == "postgresql":
            when = f"WHEN ({condition})" if condition else ""
            quoted = message.replace("'", "''")
            schema_editor.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {when} "
                f"EXECUTE FUNCTION flourish_refuse_change('{quoted}')",
                None,
            )
        elif vendor == "sqlite":
            # SQLite spells null-safe inequality IS NOT.
            when = f"WHEN {condition.replace('IS DISTINCT FROM', 'IS NOT')}" if condition else ""
            quoted = message.replace("'", "''")
            schema_editor.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {when} "
                f"BEGIN SELECT RAISE(ABORT, '{quoted}'); END",
                None,
            )
        else:
            raise NotImplementedError(f"No immutability triggers for {vendor}.")


def _remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, event, _condition, _message in RULES:
        suffix = f" ON {table}" if vendor == "postgresql" else ""
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {_name(table, event)}{suffix}")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS flourish_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("trials", "0002_participants_roles_history")]

    operations = [migrations.RunPython(_install, _remove)]
