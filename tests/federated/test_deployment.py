"""One release window on Flower's real deployment engine over loopback: a SuperLink, four
SuperNodes (devices) and ``flwr run``; the ServerApp runs in Flower's own process and writes to
this test's PostgreSQL database. Everything is stopped, process groups included."""

import os
import shutil
from pathlib import Path

import pytest

from federated.deployment import (
    current_database_url,
    process_environment,
    stop,
    superlink_start,
    supernodes_start,
    wait_for_port,
)
from federated.models import PrivacyBudget, ReleasedAggregate, TelemetryRelease
from federated.tasks import telemetry_window_release
from infra.services import free_port
from tests.conftest import wait_for
from tests.federated.conftest import enrol_with_device, telemetry_trial, use_in_window

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_window_released_through_superlink_and_supernodes(tmp_path, artifacts_dir, settings):
    trial = telemetry_trial("loopback")
    devices = [enrol_with_device(trial, n, tmp_path) for n in range(4)]
    for number, device in enumerate(devices):
        use_in_window(device, trial, minutes=45 + number, sessions=3)
    env = process_environment(
        {
            "DATABASE_URL": current_database_url(),
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "config.settings.test"
            ),
        }
    )
    logs = artifacts_dir / "flower-loopback"
    shutil.rmtree(logs, ignore_errors=True)  # the processes append to their logs
    logs.mkdir()
    port = free_port()
    superlink = superlink_start(
        host="127.0.0.1", port=port, log_path=logs / "superlink.log", env=env
    )
    nodes = []
    try:
        wait_for_port("127.0.0.1", port)
        nodes = supernodes_start(
            superlink=f"127.0.0.1:{port}",
            node_configs=[device.node_config for device in devices],
            log_dir=logs,
            env=env,
        )
        settings.FLOWER_SUPERLINK, settings.FLOWER_REPLY_TIMEOUT = f"127.0.0.1:{port}", 60.0
        # The task's body, in this process: it submits the run with `flwr run` and checks that
        # the release was stored.
        assert telemetry_window_release(trial.pk, 0) == "released"
        assert telemetry_window_release(trial.pk, 0) == "already released"
        release = TelemetryRelease.objects.get(trial=trial)
        assert ReleasedAggregate.objects.filter(release=release).count() == 2 * 4
        assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == release.charge.nano_rho
    finally:
        for process in [*nodes, superlink]:
            stop(process)
    assert all(p.poll() is not None for p in [*nodes, superlink])
    # SuperExec children run in sessions of their own and exit when their parent has gone.
    wait_for(lambda: not _running_with(f"127.0.0.1:{port}"), timeout=30, what="Flower to exit")


def _running_with(argument: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``argument`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if argument in command and state != "Z":
            found.append(int(entry.name))
    return found
