"""The application role's privileges, granted by the owner role after every ``migrate``.

Migrations run as an owner role that owns every table; the web processes and workers connect as
an application role (``DATABASE_APP_ROLE``) that may read and write rows and nothing more: no
ownership (so it can neither alter tables nor disable their triggers), no TRUNCATE, no TRIGGER
and no REFERENCES privilege. See infra/RUNBOOK.md for creating the two roles.
"""

from django.conf import settings
from django.db import connections

ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def application_role_grant(*, using: str = "default", **kwargs) -> None:
    """Grant the application role row access to every table and sequence the migrations made;
    idempotent, so running it after each ``migrate`` keeps new tables covered."""
    role = settings.DATABASE_APP_ROLE
    connection = connections[using]
    if not role or connection.vendor != "postgresql":
        return
    quoted = connection.ops.quote_name(role)
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT {ROW_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
