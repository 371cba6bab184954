"""One DP telemetry release window: 1,000 simulated devices on the in-process grid, and eight
SuperNodes on Flower's real deployment engine.

*In-process* runs the whole window as the ServerApp does (ledger reservation in PostgreSQL,
Flower messages to and from 1,000 ClientApps, consent and re-clamping, the OpenDP release, the
atomic store). Its baseline is the mechanism alone on the same 1,000 vectors: the noisy per-arm
counts and sums with nothing around them. The difference, divided by the clients, is the
per-client overhead of the platform. Target: a 1,000-client window under 30 s.

*Deployment* starts a SuperLink and eight SuperNodes on loopback (each a device with its own
event log, running ``federated.client.app``) and releases a window with ``flwr run``: the time
from submission to the stored release (the faster of two windows), beside the same window on
the in-process grid (the fastest of three; the first also pays the process's first use of
OpenDP). Target: within 5× of it. Its details split each window into phases on the SuperLink's
clock (``_phases``) and time what one task's process costs to start, fresh as in Flower's
``subprocess`` isolation or forked as ``federated.superexec`` starts it.

The work happens in a process of its own (Django is set up there with the test settings) on a
database created for it and dropped afterwards (Django's test-database machinery), never the
developer's data.

    python -m infra.bench federated
"""

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from infra.bench import Measurement, best_of
from infra.services import free_port

CLIENTS = 1_000
SUPERNODES = 8
REPEATS = 3
# Windows released through the deployment, after the in-process ones (the cohort has five).
DEPLOYMENT_WINDOWS = 2


def run() -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-federated-") as directory:
        out = Path(directory) / "result.json"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test")
        url = env["DATABASE_URL"]
        env["DATABASE_URL"] = url[: url.rfind("/") + 1] + "bench_federated"
        subprocess.run(
            [sys.executable, "-m", "infra.benchmarks.bench_federated", str(out)],
            env=env,
            check=True,
        )
        result = json.loads(out.read_text())
    grid, deployment = result["in_process"], result["deployment"]
    overhead = (grid["window_seconds"] - grid["mechanism_seconds"]) / CLIENTS
    return [
        Measurement(
            name=f"telemetry window, {CLIENTS} clients in process",
            seconds=grid["window_seconds"],
            baseline_name="OpenDP mechanism alone",
            baseline_seconds=grid["mechanism_seconds"],
            note=f"target < 30 s; {overhead * 1e3:.2f} ms per client around the mechanism",
            details=grid | {"per_client_overhead_seconds": overhead},
        ),
        Measurement(
            name=f"telemetry window, {SUPERNODES} SuperNodes (deployment)",
            seconds=deployment["window_seconds"],
            baseline_name=f"same {SUPERNODES} in process",
            baseline_seconds=deployment["in_process_seconds"],
            note="flwr run submission to stored release, SuperLink and SuperNodes on loopback",
            target="ratio ≥ 0.2",
            details=deployment,
        ),
    ]


def _measure(out: Path) -> None:
    import django

    django.setup()
    from django.test.utils import setup_databases, teardown_databases

    databases = setup_databases(verbosity=0, interactive=False)
    try:
        out.write_text(json.dumps({"in_process": _in_process(), "deployment": _deployment()}))
    finally:
        teardown_databases(databases, verbosity=0)


def _cohort(slug: str, participants: int):
    """A synthetic enrolling trial (two waves answered, every participant consenting to
    telemetry, enrolled five weeks ago) and its participants."""
    from analytics.seeding import synthetic_trial_create

    trial = synthetic_trial_create(slug=slug, participants=participants, waves=2, effect=0, seed=1)
    return trial, list(trial.participants.select_related("allocation__arm").order_by("pk"))


def _in_process() -> dict:
    from federated.mechanism import release, release_plan
    from federated.selectors import telemetry_schema_in_force
    from federated.simulate import simulated_devices, simulated_usage
    from federated.window import telemetry_window_run
    from trials.services import assignment_token

    trial, people = _cohort("grid", CLIENTS)
    _, schema = telemetry_schema_in_force(trial)
    arms = [p.allocation.arm.slug for p in people]
    usage = simulated_usage(arms, treated="b", minutes_effect=60, window_days=7, seed=1)
    devices = dict(zip([assignment_token(p) for p in people], usage, strict=True))
    plan = release_plan(schema)
    by_arm: dict[str, list] = {}
    for arm, vector in zip(arms, usage, strict=True):
        by_arm.setdefault(arm, []).append({m.code: vector[m.code] for m in schema.metrics})

    windows = iter(range(REPEATS))

    def one_window() -> None:
        telemetry_window_run(
            grid=simulated_devices(devices), trial=trial, window_index=next(windows)
        )

    return {
        "clients": CLIENTS,
        "window_seconds": best_of(one_window, repeat=REPEATS),
        "mechanism_seconds": best_of(
            lambda: release(plan, by_arm, reserved_nano_rho=plan.nano_rho), repeat=REPEATS
        ),
    }


def _deployment() -> dict:
    from federated.client.app import app as device_app
    from federated.client.eventlog import EventLog
    from federated.deployment import (
        current_database_url,
        flwr_run,
        process_environment,
        stop,
        superlink_start,
        supernodes_start,
        wait_for_port,
        wait_for_supernodes,
    )
    from federated.grid import InProcessGrid
    from federated.window import telemetry_window_run
    from trials.services import assignment_token

    trial, people = _cohort("engine", SUPERNODES)
    directory = Path(tempfile.mkdtemp(prefix="bench-devices-"))
    configs = []
    for number, participant in enumerate(people):
        log = EventLog(directory / f"device-{number}.sqlite3")
        log.set_telemetry_consent(True)
        configs.append(
            {"participant-token": assignment_token(participant), "event-log": str(log.path)}
        )
    # The same window in this process: the first pays this process's first use of OpenDP (as a
    # ServerApp process does), the others not.
    in_process = []
    for window in range(REPEATS):
        started = time.perf_counter()
        telemetry_window_run(
            grid=InProcessGrid(device_app, configs), trial=trial, window_index=window
        )
        in_process.append(time.perf_counter() - started)

    env = process_environment(
        {"DATABASE_URL": current_database_url(), "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    )
    port = free_port()
    superlink_log = directory / "superlink.log"
    superlink = superlink_start(host="127.0.0.1", port=port, log_path=superlink_log, env=env)
    nodes, windows = [], []
    try:
        wait_for_port("127.0.0.1", port)
        started_nodes = time.perf_counter()
        nodes = supernodes_start(
            superlink=f"127.0.0.1:{port}",
            node_configs=configs,
            runtime_ports=[free_port() for _ in configs],
            log_dir=directory,
            env=env,
        )
        # A window asks only the devices connected when it starts: time the window, not the fleet.
        wait_for_supernodes(f"127.0.0.1:{port}", len(configs))
        nodes_online = time.perf_counter() - started_nodes
        groups = {process.pid for process in [superlink, *nodes]}
        cpu = []
        for window in range(REPEATS, REPEATS + DEPLOYMENT_WINDOWS):
            engine_before, command_before = _cpu_seconds(groups), _children_cpu_seconds()
            submitted = time.time()
            flwr_run(
                superlink=f"127.0.0.1:{port}",
                trial_slug=trial.slug,
                window_index=window,
                reply_timeout=120,
                timeout=300,
            )
            windows.append((submitted, time.time()))
            cpu.append(
                {
                    "flwr run": _children_cpu_seconds() - command_before,
                    "SuperLink, SuperNodes and their tasks": _cpu_seconds(groups) - engine_before,
                }
            )
    finally:
        for process in [*nodes, superlink]:
            stop(process)
    released = trial.telemetry_releases.filter(window_index__gte=REPEATS).count()
    if released != DEPLOYMENT_WINDOWS:
        raise RuntimeError(
            f"{released} of {DEPLOYMENT_WINDOWS} releases stored; see the logs in {directory}."
        )
    phases = [_phases(superlink_log.read_text(), *window) for window in windows]
    return {
        "supernodes": SUPERNODES,
        "window_seconds": min(end - start for start, end in windows),
        "windows_seconds": [end - start for start, end in windows],
        "in_process_seconds": min(in_process),
        "in_process_windows_seconds": in_process,
        "nodes_online_seconds": nodes_online,
        "phases_seconds": phases,
        "cpu_seconds": cpu,
        **_task_start_costs(env),
    }


# The SuperLink's access log: one line per request, with its time.
_ACCESS = re.compile(r"^(\S+Z) INFO \[uvicorn\.access\] \S+ - \"POST /v1/(\S+) ")
# What a window is made of, on the SuperLink's clock: the request that ends each phase.
PHASES = (
    ("flwr run starts and submits", "control/start-run"),
    ("ServerApp task starts", "runtime/pull-task-input"),
    ("ServerApp prepares; a device picks its query up", "fleet/get-run"),
    ("devices answer; release stored", "runtime/push-task-output"),
)


def _phases(log: str, submitted: float, returned: float) -> dict[str, float]:
    """The window submitted at ``submitted`` and returned at ``returned`` (epoch seconds), in
    phases: for each, the seconds until the first request that ends it."""
    requests = []
    for line in log.splitlines():
        if match := _ACCESS.match(line):
            moment = datetime.fromisoformat(match[1].replace("Z", "+00:00")).timestamp()
            if submitted <= moment <= returned:
                requests.append((moment, match[2]))
    phases, previous = {}, submitted
    for name, request in PHASES:
        moment = next((t for t, path in requests if path == request and t >= previous), None)
        if moment is None:
            return phases
        phases[name], previous = moment - previous, moment
    phases["the run's end reaches flwr run"] = returned - previous
    return phases


def _cpu_seconds(groups: set[int]) -> float:
    """CPU time (user and system) of the processes in the process groups ``groups`` and of their
    children that have exited and been waited for (Linux /proc): a window's work, whatever the
    host's load."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # proc(5): the fields after the command start at the 3rd (state); the 5th is the process
        # group, the 14th to 17th utime, stime, cutime and cstime.
        if int(fields[2]) in groups:
            total += sum(int(value) for value in fields[11:15])
    return total / ticks


def _children_cpu_seconds() -> float:
    """CPU time of this process's children that have exited and been waited for (``flwr run``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _task_start_costs(env: dict) -> dict[str, float]:
    """What starting one task costs: a fresh process importing what a ClientApp task imports
    (Flower's ``flwr-clientapp`` and the project's ClientApp), as in Flower's ``subprocess``
    isolation, against a fork of a process that has imported them (``federated.superexec``)."""
    imports = "import flwr.supernode.cli.flwr_clientapp, federated.client.app"
    fork = (
        "import os, time\n" + imports + "\n"
        "started = time.perf_counter()\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(time.perf_counter() - started)\n"
    )
    fresh = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", imports], env=env, check=True)
        fresh.append(time.perf_counter() - started)
    forked = subprocess.run(
        [sys.executable, "-c", fork], env=env, check=True, capture_output=True, text=True
    )
    return {
        "clientapp_process_start_seconds": min(fresh),
        "clientapp_fork_seconds": float(forked.stdout),
    }


if __name__ == "__main__":
    _measure(Path(sys.argv[1]))
