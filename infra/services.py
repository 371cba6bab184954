"""Find or start the PostgreSQL and broker the tests need, run a command against them, and stop
whatever was started.

    python infra/services.py [--roles] -- pytest -q

With ``--roles`` (``make test``) the command runs as an application role of this run's own, with
the migrations run by an owner role (``DATABASE_OWNER_URL``).

Discovery, in order:
1. ``DATABASE_URL`` / ``CELERY_BROKER_URL`` from the environment;
2. local servers that answer: PostgreSQL on 127.0.0.1:5432, RabbitMQ on 5672, Redis on 6379;
3. throwaway servers started from the system's binaries (``initdb``/``pg_ctl``, ``redis-server``)
   in a temporary directory, stopped afterwards;
4. otherwise a message naming the package to install.
"""

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
LOCAL_BROKERS = ("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/0")


class ServiceError(RuntimeError):
    """A service could neither be found nor started; the message says what to install."""


def say(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def broker_answers(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception:  # any failure to connect means "not this one"
        return False
    return True


def _unprivileged_runner(owner_dir: Path) -> list[str]:
    """PostgreSQL refuses to run as root: when we are root, run it as the ``postgres`` (or
    ``nobody``) user, owning its data directory."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        for path in [owner_dir, *owner_dir.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        return ["runuser", "-u", name, "--"]
    raise ServiceError("Running as root with no 'postgres' or 'nobody' user to run PostgreSQL as.")


def find_postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def start_postgres(stack: ExitStack) -> str:
    initdb, pg_ctl = find_postgres_bin("initdb"), find_postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise ServiceError(
            "No PostgreSQL answers on 127.0.0.1:5432 and no server binaries were found. Install "
            "them (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install "
            "postgresql@16`) or set DATABASE_URL=postgres://user@host:5432/db."
        )
    root = Path(tempfile.mkdtemp(prefix="flourish-pg-"))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    as_user = _unprivileged_runner(root)
    port = free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stack.callback(
        subprocess.run,
        [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
        stdout=subprocess.DEVNULL,
    )
    say(f"started a throwaway PostgreSQL on port {port}")
    return f"postgres://postgres@127.0.0.1:{port}/postgres"


def start_redis(stack: ExitStack) -> str:
    server = shutil.which("redis-server")
    if not server:
        raise ServiceError(
            "No broker answers (RabbitMQ on 5672, Redis on 6379) and redis-server is not "
            "installed. Install it (Debian/Ubuntu: `apt-get install redis-server`; macOS: "
            "`brew install redis`) or set CELERY_BROKER_URL=amqp://… or redis://…."
        )
    root = Path(tempfile.mkdtemp(prefix="flourish-redis-"))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
    )
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if broker_answers(url):
            say(f"started a throwaway Redis on port {port}")
            return url
        time.sleep(0.1)
    raise ServiceError("redis-server started but did not answer within 10 s.")


def database_url(stack: ExitStack) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if postgres_answers(LOCAL_POSTGRES):
        say("using the local PostgreSQL on 127.0.0.1:5432")
        return LOCAL_POSTGRES
    return start_postgres(stack)


def broker_url(stack: ExitStack) -> str:
    if os.environ.get("CELERY_BROKER_URL"):
        return os.environ["CELERY_BROKER_URL"]
    for url in LOCAL_BROKERS:
        if broker_answers(url):
            say(f"using the local broker {url.split('@')[-1]}")
            return url
    return start_redis(stack)


def provision_roles(stack: ExitStack, admin_url: str) -> dict[str, str]:
    """Two roles of this run's own on the server ``admin_url`` names (infra/RUNBOOK.md, *Database
    roles*): an owner that creates the test database and runs the migrations, and an application
    role that the suite, its workers and its web servers use, with no ownership, no TRUNCATE and
    no trigger control. Dropped afterwards with the test database. Returns the environment that
    points the suite at them; empty (with a message) when ``admin_url``'s user may not create
    roles."""
    import psycopg
    from psycopg import sql

    run = secrets.token_hex(4)
    owner, app = f"flourish_owner_{run}", f"flourish_app_{run}"
    passwords = {owner: secrets.token_hex(16), app: secrets.token_hex(16)}
    database = f"flourish_{run}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(owner), sql.Literal(passwords[owner])
                )
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(app), sql.Literal(passwords[app])
                )
            )
    except psycopg.Error as error:
        say(
            f"could not create the owner and application roles ({error}); the suite runs as "
            "the given user and the database-role tests are skipped"
        )
        return {}

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            # The names are this run's own: nobody else can be using them.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(f"test_{database}")
                )
            )
            for role in (app, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    stack.callback(drop)

    def url(role: str) -> str:
        parts = urlsplit(admin_url)
        netloc = f"{role}:{passwords[role]}@{parts.hostname}:{parts.port or 5432}"
        return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))

    say(f"the suite runs as the application role {app}; migrations run as {owner}")
    return {"DATABASE_URL": url(app), "DATABASE_OWNER_URL": url(owner), "DATABASE_APP_ROLE": app}


def queues_delete(broker_url: str, names: list[str]) -> None:
    """Delete this run's queues from the broker, so runs leave nothing behind on a shared one."""
    from kombu import Connection  # Celery's messaging library, installed with it

    try:
        with Connection(broker_url, connect_timeout=5) as connection:
            channel = connection.default_channel
            for name in names:
                channel.queue_delete(name)
    except Exception as error:  # the run's result stands; a queue left behind is only untidy
        say(f"could not delete the queues {', '.join(names)}: {error}")


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    with_roles = "--roles" in argv[: argv.index("--")]
    command = argv[argv.index("--") + 1 :]
    # Stop started servers on Ctrl-C or a CI time-out too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        try:
            run = secrets.token_hex(4)
            env = dict(
                os.environ,
                DATABASE_URL=database_url(stack),
                CELERY_BROKER_URL=broker_url(stack),
                # Queues of this run's own, so parallel runs on one broker never share tasks.
                CELERY_TASK_DEFAULT_QUEUE=f"flourish-test-{run}",
                CELERY_ANALYSIS_QUEUE=f"analyses-test-{run}",
            )
        except ServiceError as error:
            print(f"\n{error}\n", file=sys.stderr)
            return 3
        stack.callback(
            queues_delete,
            env["CELERY_BROKER_URL"],
            [env["CELERY_TASK_DEFAULT_QUEUE"], env["CELERY_ANALYSIS_QUEUE"]],
        )
        if with_roles:
            env.update(provision_roles(stack, env["DATABASE_URL"]))
        try:
            return subprocess.run(command, env=env).returncode
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
