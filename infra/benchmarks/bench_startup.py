"""How long a process of the platform takes to start: ``manage.py check`` (settings, every app,
the admin's autodiscovery, the URL conf and the system checks, as every management command that
checks does) and gunicorn's first ``200`` from ``/healthz`` (one sync worker: boot, WSGI
application, URL conf, a database and a broker round trip).

The baseline is the same command with the numerical stack imported first (:data:`STACK`: JAX,
numpyro, OpenDP with the scikit-learn it loads, statsmodels, arviz_stats, Dash), which is what
start-up imported while the apps imported those libraries at module level; now they load in the
functions that use them (``tests/config/test_startup_imports.py``). Baseline and measured runs
alternate, best of ``REPEATS`` each, with the test settings against the PostgreSQL and broker
``make bench`` provides; every timing and the machine's load average go in the details.

    make bench BENCH_ARGS=startup
"""

import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path

from infra.bench import Measurement, gunicorn
from infra.services import free_port

REPO_DIR = Path(__file__).resolve().parents[2]
REPEATS = 3
STACK = (
    "jax",
    "numpyro",
    "opendp.prelude",
    "sklearn",
    "statsmodels.api",
    "statsmodels.formula.api",
    "arviz_stats",
    "dash",
)
STACK_IMPORT = f"import {', '.join(STACK)}"
# manage.py run as a script, after the stack is imported.
CHECK_WITH_STACK = (
    f"{STACK_IMPORT}; import runpy, sys; sys.argv = ['manage.py', 'check']; "
    "runpy.run_path('manage.py', run_name='__main__')"
)
APP = "config.wsgi:application"
APP_WITH_STACK = "infra.benchmarks.bench_startup:application_with_stack()"


def application_with_stack():
    """The WSGI application with :data:`STACK` imported first: the baseline server's app, a
    factory gunicorn calls in its worker after the fork, where ``config.wsgi`` loads too."""
    for name in STACK:
        importlib.import_module(name)
    from config.wsgi import application

    return application


def _command_seconds(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_DIR, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _first_answer_seconds(app: str, env: dict) -> float:
    """From gunicorn's start to its first answer on ``/healthz``, which must be a 200."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        with gunicorn(port, env=env, log=log, workers=1, app=app, start_timeout=300):
            seconds = time.perf_counter() - started
            probe = HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                probe.request("GET", "/healthz")
                answer = probe.getresponse()
                status, body = answer.status, answer.read()
            finally:
                probe.close()
    if status != 200:
        raise RuntimeError(f"/healthz answered {status}: {body[:500]!r}")
    return seconds


def _alternating(baseline: Callable[[], float], measured: Callable[[], float]):
    """Timings of both, one after the other, ``REPEATS`` times: a change in the machine's load
    falls on both sides alike."""
    timings: dict[str, list[float]] = {"baseline": [], "measured": []}
    for _ in range(REPEATS):
        timings["baseline"].append(baseline())
        timings["measured"].append(measured())
    return timings


def run() -> list[Measurement]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test")
    load_before = os.getloadavg()[0]
    stack_alone = [
        _command_seconds([sys.executable, "-c", STACK_IMPORT], env) for _ in range(REPEATS)
    ]
    check = _alternating(
        lambda: _command_seconds([sys.executable, "-c", CHECK_WITH_STACK], env),
        lambda: _command_seconds([sys.executable, "manage.py", "check"], env),
    )
    server = _alternating(
        lambda: _first_answer_seconds(APP_WITH_STACK, env),
        lambda: _first_answer_seconds(APP, env),
    )
    details = {
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "stack": list(STACK),
        "stack_import_alone_seconds": stack_alone,
        "check_seconds": check["measured"],
        "check_with_stack_seconds": check["baseline"],
        "first_answer_seconds": server["measured"],
        "first_answer_with_stack_seconds": server["baseline"],
    }
    note = "baseline: the same with the numerical stack imported first, as start-up did before"
    return [
        Measurement(
            name="startup: manage.py check",
            seconds=min(check["measured"]),
            baseline_name="stack imported first",
            baseline_seconds=min(check["baseline"]),
            note=note,
            details=details,
        ),
        Measurement(
            name="startup: gunicorn to first /healthz 200",
            seconds=min(server["measured"]),
            baseline_name="stack imported first",
            baseline_seconds=min(server["baseline"]),
            note=note,
            details=details,
        ),
    ]
