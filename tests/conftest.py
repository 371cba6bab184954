"""Shared fixtures: a real Celery worker process, test artefacts, and small factories."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dj_database_url
import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_DIR / "test-artifacts"


@contextmanager
def as_database_owner():
    """Connect as the owner role (``DATABASE_OWNER_URL``, set by ``make test``) inside the block:
    it creates, migrates and drops the test database; everything else runs as the application
    role ``DATABASE_URL`` names."""
    from django.db import connection

    owner_url = os.environ.get("DATABASE_OWNER_URL")
    if not owner_url:
        yield
        return
    owner = dj_database_url.parse(owner_url)
    settings = connection.settings_dict
    app_credentials = settings["USER"], settings["PASSWORD"]
    # The connection pool keeps its connections' credentials: close it with each switch.
    connection.close()
    connection.close_pool()
    settings["USER"], settings["PASSWORD"] = owner["USER"], owner["PASSWORD"]
    try:
        yield
    finally:
        connection.close()
        connection.close_pool()
        settings["USER"], settings["PASSWORD"] = app_credentials


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """pytest-django's test database, created and migrated by the owner role."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock(), as_database_owner():
        databases = setup_databases(verbosity=0, interactive=False)
    yield
    with django_db_blocker.unblock(), as_database_owner():
        teardown_databases(databases, verbosity=0)


def migrate_to_latest() -> None:
    """After a test of a migration (inside ``as_database_owner``): migrate every app forward
    again and give the application role its grants on the tables that were dropped and made
    again; ``migrate`` grants them on its ``post_migrate`` signal, which the executor does not
    send."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from trials.database_roles import application_role_grant

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    application_role_grant()


TABLES_WITH_TRIGGERS = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
      AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
"""


def _flush_as_owner(operations, sql_list) -> None:
    """Empty the test database between transactional tests, as the owner with the record's
    triggers off for the moment: the application role may not truncate (that is the point), and
    the triggers refuse it to the owner too. The whole flush is one transaction, so the triggers
    are back on even if it fails."""
    from django.db import transaction

    with as_database_owner(), transaction.atomic(using=operations.connection.alias):
        with operations.connection.cursor() as cursor:
            cursor.execute(TABLES_WITH_TRIGGERS)
            tables = [operations.quote_name(name) for (name,) in cursor.fetchall()]
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for statement in sql_list:
                cursor.execute(statement)
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture(scope="session", autouse=True)
def flush_as_owner():
    from django.db.backends.postgresql.operations import DatabaseOperations

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "execute_sql_flush", _flush_as_owner)
        yield


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Logs of the worker processes this session started, summarised at the end of the run.
_worker_logs: list[Path] = []


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_celery_process(
    artifacts_dir: Path, *, name: str, arguments: list[str], env: dict[str, str]
) -> WorkerProcess:
    """``celery -A config <arguments>`` with the test settings and ``env``, in its own process
    group (so a test can kill it whole), logging to ``artifacts_dir/<name>.log``; returns once it
    says it is ready (a worker's "ready.", beat's "Starting...")."""
    log_path = artifacts_dir / f"{name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *arguments, "-l", "INFO"],
            cwd=REPO_DIR,
            env=dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test", **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = WorkerProcess(process, log_path)
    deadline = time.monotonic() + 90
    while not any(sign in started.log() for sign in (" ready.", "beat: Starting...")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"celery {arguments[0]} did not start:\n{started.log()[-3000:]}")
        time.sleep(0.2)
    return started


def start_celery_worker(
    artifacts_dir: Path,
    *,
    name: str,
    queue: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """``celery worker`` in its own process (group), consuming ``queue`` on the real broker and
    writing to the test database; returns once it is ready. Without ``queue`` it consumes every
    queue the settings declare (CELERY_TASK_QUEUES), as the stack's workers do."""
    from django.db import connection

    test_db = dict(connection.settings_dict)
    url = dj_database_url.parse(os.environ["DATABASE_URL"])
    worker_db_url = (
        f"postgres://{url['USER']}:{url['PASSWORD'] or ''}@{url['HOST']}:{url['PORT']}"
        f"/{test_db['NAME']}"
    )
    env = {"DATABASE_URL": worker_db_url, **(extra_env or {})}
    arguments = ["worker", "-c", "1", "-n", f"{name}-{os.getpid()}@%h"]
    arguments += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    arguments += ["-Q", queue] if queue else []
    worker = start_celery_process(artifacts_dir, name=name, arguments=arguments, env=env)
    _worker_logs.append(worker.log_path)
    return worker


def stop_celery_worker(worker: WorkerProcess) -> None:
    worker.process.terminate()
    try:
        worker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.process.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, artifacts_dir):
    """The suite's worker, started as the stack starts its workers: on this run's queues (the
    default one and the analyses'; ``make test`` names them). Tests using it need
    ``django_db(transaction=True)`` so their rows are committed where the worker can see them."""
    worker = start_celery_worker(artifacts_dir, name="celery-worker")
    yield worker
    stop_celery_worker(worker)


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.")


@pytest.fixture
def small_trial(db):
    """A registered, approved, enrolling two-arm trial with 40 simulated participants."""
    from analytics.seeding import synthetic_trial_create

    return synthetic_trial_create(slug="small", participants=40, waves=3, effect=0.5, seed=7)


def pytest_collection_modifyitems(items):
    """Mark every test that touches the database ``db``, so ``-m db`` / ``-m 'not db'`` select
    by what a test really needs."""
    for item in items:
        if item.get_closest_marker("django_db") or "db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def _gpu_present() -> bool:
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:  # JAX raises when no GPU backend is available
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") and not _gpu_present():
        pytest.skip("No GPU here: the GPU path is checked on a machine with one.")


def pytest_terminal_summary(terminalreporter):
    """Show, from the worker's own log, that the task tests really ran on a worker process."""
    for log_path in _worker_logs:
        lines = log_path.read_text(errors="replace").splitlines()
        done = [line for line in lines if "succeeded in" in line]
        terminalreporter.section("celery worker")
        terminalreporter.write_line(
            f"{len(done)} task(s) succeeded on the worker process; full log: "
            f"{log_path.relative_to(REPO_DIR)}"
        )
        for line in done[-5:]:
            terminalreporter.write_line(line)
