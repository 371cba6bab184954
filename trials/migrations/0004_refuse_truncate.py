"""Statement-level triggers that refuse TRUNCATE on every table of a trial's record.

Row triggers (0003) do not fire for TRUNCATE, and TRUNCATE needs only a privilege, not ownership.
The application role has no TRUNCATE privilege at all; these triggers also stop the owner role,
which would have to disable them first (an ALTER TABLE, which the audit chain then exposes).
SQLite, the demo's database, has no TRUNCATE.
"""

from django.db import migrations

TABLES = [
    "trials_preregistration",
    "trials_allocation",
    "trials_approval",
    "trials_protocoldeviation",
    "trials_trialevent",
]


def _install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        """
        CREATE OR REPLACE FUNCTION flourish_refuse_truncate() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'The record in % cannot be truncated.', TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation';
        END;
        $$ LANGUAGE plpgsql;
        """,
        None,  # the % above is PL/pgSQL's, not a placeholder
    )
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION flourish_refuse_truncate()"
        )


def _remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table}")


class Migration(migrations.Migration):
    dependencies = [("trials", "0003_immutability_triggers")]

    operations = [migrations.RunPython(_install, _remove)]
