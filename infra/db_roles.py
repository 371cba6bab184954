"""Create Flourish's two database roles and its database, idempotently (docs/architecture.md,
"The database").

    DATABASE_ADMIN_URL=postgres://postgres@host:5432/postgres \
    DATABASE_OWNER_URL=postgres://flourish_owner:PASSWORD@host:5432/flourish \
    DATABASE_URL=postgres://flourish_app:PASSWORD@host:5432/flourish \
    python infra/db_roles.py

The role names, passwords and database come from the two URLs the deployment uses anyway (from
the environment, so that no password shows in a process list); ``DATABASE_ADMIN_URL`` is a
superuser's (or a role with CREATEROLE and CREATEDB) connection to the server. The owner role
owns the database and runs ``manage.py migrate``; the application role, which the web processes
and workers use, gets no privilege here at all: ``migrate`` grants it row access to the tables
it creates (``DATABASE_APP_ROLE``, trials/database_roles.py), and nothing else. Neither role is
a superuser, so neither can switch triggers off with ``session_replication_role``; the
application role owns nothing, so it cannot alter a table, disable its triggers or truncate.
Used by ``make stack`` (infra/stack.sh) and the docker-compose file; the runbook shows it by hand.
"""

import os
import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def role_ensure(conn: psycopg.Connection, name: str, password: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    verb = "ALTER" if exists else "CREATE"
    options = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
    conn.execute(
        sql.SQL("{} ROLE {} {} PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(name), sql.SQL(options), sql.Literal(password or None)
        )
    )


def database_roles_ensure(
    admin_url: str, *, database: str, owner: str, owner_password: str, app: str, app_password: str
) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        role_ensure(conn, owner, owner_password)
        role_ensure(conn, app, app_password)
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(owner)
                )
            )
    # Inside the database: only the owner creates objects in the public schema (PostgreSQL 15
    # already has it so; older servers let every role create there).
    database_url = make_conninfo(admin_url, dbname=database)
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def main() -> int:
    try:
        admin_url = os.environ["DATABASE_ADMIN_URL"]
        owner = conninfo_to_dict(os.environ["DATABASE_OWNER_URL"])
        app = conninfo_to_dict(os.environ["DATABASE_URL"])
    except KeyError as missing:
        print(f"db_roles: set {missing.args[0]}.\n{__doc__}", file=sys.stderr)
        return 2
    if owner.get("dbname") != app.get("dbname") or not owner.get("dbname"):
        print("db_roles: both URLs must name the same database.", file=sys.stderr)
        return 2
    try:
        database_roles_ensure(
            admin_url,
            database=owner["dbname"],
            owner=owner["user"],
            owner_password=owner.get("password", ""),
            app=app["user"],
            app_password=app.get("password", ""),
        )
    except psycopg.Error as error:
        print(f"db_roles: {error}".strip(), file=sys.stderr)
        return 1
    print(
        f"db_roles: database {owner['dbname']} owned by {owner['user']}; application role "
        f"{app['user']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
