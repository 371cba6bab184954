"""Flower's deployment engine, driven from Python: the SuperLink, SuperNodes and ``flwr run``.

Used by the Celery task that releases a window (``flwr run`` against the configured SuperLink),
by ``infra/stack.sh`` (which starts the SuperLink) and by the loopback test. Facts this relies on
(Flower 1.41, checked here): the SuperLink serves the Fleet, Control and runtime APIs over HTTP on
one ``--port``; each SuperNode needs its own runtime ``--port``; Flower starts its commands
(``flower-superexec``, ``flwr``) by name, so the environment's ``bin`` must be on ``PATH``;
offline, the SuperLink must not install app dependencies at run time; stopping them leaves task
processes behind, so whole process groups are killed. The SuperLink runs without
``--database``: its state, message contents included, stays in memory and never reaches a disk.

Every task (a device's ClientApp, a window's ServerApp) is a new process, and Flower gives it
HEARTBEAT_DEFAULT_INTERVAL (30 s) from the moment its SuperExec claims it to its first
heartbeat; a process that starts later finds its task token expired and every call it makes is
refused with ``401 Runtime task-token authentication failed`` (Flower then starts the task
again, often after the window's reply timeout). In Flower's default ``subprocess`` isolation each
task is a fresh interpreter that imports Flower (and the ServerApp Django and the project)
before it can answer: seconds of CPU per task, and a fleet on one host starts all its ClientApps
at once. The SuperLink and SuperNodes therefore run in Flower's ``process`` isolation beside
``federated.superexec``, which forks each task from a process that has done those imports once
(each task still a process of its own); Flower's processes also share a bytecode cache, since
without one (``PYTHONDONTWRITEBYTECODE``, a virtual environment installed without compiled
files) every start compiles Flower again.

What a window still waits on that Flower fixes: ``flwr run`` is a process that imports Flower's
command line before it submits; a SuperNode with nothing to do asks the SuperLink for messages
every 3 s (``flwr.supernode.start_client_internal``), so a query waits for it; and each query
round is a task per device.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = Path(__file__).resolve().parent / "flower_app"
SUPERLINK_NAME = "flourish"
# Compiled bytecode of every module Flower's processes import, outside the source tree.
BYTECODE_CACHE = ROOT / "var" / "pycache"
# How often a SuperExec asks for a task (Flower's default: every second). Each ask is a request
# to its SuperNode's or the SuperLink's Runtime API, which all of them make whether or not a
# window runs: asking every 0.1 s took more of a small host's CPU during a window than all the
# window's own work (infra/benchmarks/bench_federated.py reports it as cpu_seconds).
TASK_POLL_SECONDS = 0.5


def process_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """What Flower's processes need: this environment's ``bin`` on ``PATH``, the project on
    ``PYTHONPATH`` (the ServerApp imports Django and the project) and a bytecode cache they
    share, so that a task's process starts inside its claim (see above)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(BYTECODE_CACHE))
    # A SuperExec asks its Runtime API for a task every second by default; a task waits for it.
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", str(TASK_POLL_SECONDS))
    # Flower's processes report each start and exit to telemetry.flower.ai unless told not to
    # (flwr.supercore.telemetry), and wait for the report before exiting.
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    return env | (extra or {})


def current_database_url() -> str:
    """The URL of the database this process uses, for a ServerApp started by Flower to use too
    (e.g. a test database)."""
    from django.db import connection

    db = connection.settings_dict
    credentials = db["USER"] + (f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _start(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - the child process owns it from here
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _with_forking_superexec(task: str, runtime_api: str, command: list[str]) -> list[str]:
    """``command`` (a SuperLink or SuperNode) in Flower's ``process`` isolation, started by the
    SuperExec that forks its tasks (``federated.superexec``), which serves its Runtime API."""
    return [
        sys.executable,
        "-m",
        "federated.superexec",
        task,
        "--runtime-api-address",
        runtime_api,
        "--",
        *command,
        "--isolation",
        "process",
    ]


def superlink_start(*, host: str, port: int, log_path: Path, env: dict) -> subprocess.Popen:
    """The SuperLink; its ServerApp tasks are forked by ``federated.superexec``."""
    command = [
        "flower-superlink",
        "--insecure",
        "--disable-runtime-dependency-installation",
        "--host",
        host,
        "--port",
        str(port),
    ]
    runtime_api = f"{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"  # noqa: S104
    return _start(_with_forking_superexec("serverapp", runtime_api, command), log_path, env)


def _toml_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def supernode_start(
    *, superlink: str, runtime_port: int, node_config: dict, log_path: Path, env: dict
) -> subprocess.Popen:
    """A SuperNode, i.e. one device: ``node_config`` is what its ClientApp reads."""
    config = " ".join(f"{key}={_toml_value(value)}" for key, value in node_config.items())
    command = [
        "flower-supernode",
        "--insecure",
        "--superlink",
        superlink,
        "--port",
        str(runtime_port),
        "--node-config",
        config,
    ]
    return _start(
        _with_forking_superexec("clientapp", f"127.0.0.1:{runtime_port}", command), log_path, env
    )


def supernodes_start(
    *,
    superlink: str,
    node_configs: list[dict],
    runtime_ports: list[int],
    log_dir: Path,
    env: dict,
    log_prefix: str = "supernode",
) -> list[subprocess.Popen]:
    """One SuperNode per node configuration, each on its own runtime port (the caller's free
    ports), logging to ``log_dir/<log_prefix>-N.log``: a fleet of devices on one host."""
    if len(runtime_ports) != len(node_configs):
        raise ValueError(
            f"{len(node_configs)} node configurations need as many runtime ports, "
            f"not {len(runtime_ports)}."
        )
    return [
        supernode_start(
            superlink=superlink,
            runtime_port=port,
            node_config=config,
            log_path=log_dir / f"{log_prefix}-{number}.log",
            env=env,
        )
        for number, (config, port) in enumerate(zip(node_configs, runtime_ports, strict=True))
    ]


def stop(process: subprocess.Popen, *, grace: float = 10.0) -> None:
    """Stop a Flower process and every child it spawned (SuperExec, app processes)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def _flwr_home(superlink: str) -> Iterator[dict[str, str]]:
    """The environment of a ``flwr`` command that addresses ``superlink`` as SUPERLINK_NAME."""
    with tempfile.TemporaryDirectory(prefix="flwr-home-") as home:
        Path(home, "config.toml").write_text(
            f'[superlink.{SUPERLINK_NAME}]\naddress = "{superlink}"\ninsecure = true\n'
        )
        yield process_environment({"FLWR_HOME": home})


def flwr_run(
    *,
    superlink: str,
    trial_slug: str,
    window_index: int,
    reply_timeout: float,
    timeout: float,
    action: str = "window",
) -> str:
    """Submit one release window (or, with ``action="dose"``, the trial's dose release) to the
    SuperLink at ``superlink`` and wait for it to finish; its log. The release itself (or its
    absence) is what the caller checks in the database."""
    run_config = (
        f'trial="{trial_slug}" action="{action}" window={window_index} timeout={reply_timeout}'
    )
    with _flwr_home(superlink) as env:
        completed = subprocess.run(
            [
                "flwr",
                "run",
                str(APP_DIR),
                SUPERLINK_NAME,
                "--run-config",
                run_config,
                "--stream",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"flwr run failed ({completed.returncode}): {output[-2000:]}")
    return output


def supernodes_online(superlink: str) -> int:
    """How many SuperNodes the SuperLink at ``superlink`` counts online now."""
    with _flwr_home(superlink) as env:
        completed = subprocess.run(
            ["flwr", "supernode", "list", SUPERLINK_NAME, "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    nodes = json.loads(completed.stdout)["nodes"]
    return sum(node["status"] == "online" for node in nodes)


def wait_for_supernodes(superlink: str, count: int, *, timeout: float = 120.0) -> None:
    """Return once ``count`` SuperNodes are online: a window asks only the devices connected
    when it starts."""
    deadline = time.monotonic() + timeout
    while (online := supernodes_online(superlink)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{online} of {count} SuperNodes online after {timeout:.0f} s.")
        time.sleep(1.0)


def wait_for_port(host: str, port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"Nothing listens on {host}:{port} after {timeout:.0f} s.")
