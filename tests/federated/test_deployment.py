"""One release window and the dose release on Flower's real deployment engine over loopback: a
SuperLink, a SuperNode per device (at least two in each arm) and ``flwr run``; the ServerApp runs
in Flower's own process and writes to this test's PostgreSQL database. While one arm's devices
are offline the window waits; once they connect, every device answers, and each device is sent
its own outcome change for the dose. Everything is stopped, process groups included."""

import os
import shutil
from pathlib import Path
from unittest import mock

import pytest

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
from federated.models import (
    DoseAggregate,
    DoseRelease,
    PrivacyBudget,
    PrivacyCharge,
    ReleasedAggregate,
    TelemetryRelease,
)
from federated.tasks import dose_release, telemetry_window_release
from infra.services import free_port
from tests.conftest import wait_for
from tests.federated.conftest import (
    DOSE_TELEMETRY,
    enrol_devices,
    record_change,
    telemetry_trial,
    use_in_window,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# Three Flower runs (the waiting window, the window, the dose), each starting a process per task.
@pytest.mark.timeout(540)
def test_a_window_waits_for_every_arm_then_is_released_through_superlink_and_supernodes(
    tmp_path, artifacts_dir, settings
):
    trial = telemetry_trial("loopback", DOSE_TELEMETRY)
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    for number, device in enumerate(devices):
        use_in_window(device, trial, minutes=45 + number, sessions=3)
        record_change(device.participant, baseline=50.0, follow_up=52.0 + number)
    early = [d.node_config for d in devices if d.participant.allocation.arm.slug == "a"]
    late = [d.node_config for d in devices if d.participant.allocation.arm.slug != "a"]
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
    superlink_address = f"127.0.0.1:{port}"
    superlink = superlink_start(
        host="127.0.0.1", port=port, log_path=logs / "superlink.log", env=env
    )
    settings.FLOWER_SUPERLINK, settings.FLOWER_REPLY_TIMEOUT = superlink_address, 120.0
    logs_of_runs = []

    def submit(**kwargs) -> str:
        logs_of_runs.append(flwr_run(**kwargs))
        return logs_of_runs[-1]

    nodes = []
    try:
        wait_for_port("127.0.0.1", port)
        # Only arm a's devices are online: the window must wait, holding its reservation.
        nodes = supernodes_start(
            superlink=superlink_address,
            node_configs=early,
            runtime_ports=[free_port() for _ in early],
            log_dir=logs,
            env=env,
        )
        # A window asks the devices connected when it starts: wait until they all are.
        wait_for_supernodes(superlink_address, len(early))
        # The task's body, in this process: it submits the run with `flwr run` and checks that
        # the release was stored.
        with (
            mock.patch("federated.tasks.flwr_run", side_effect=submit),
            pytest.raises(RuntimeError, match="without a release"),
        ):
            telemetry_window_release(trial.pk, 0)
        assert "arm(s) b have fewer than 2 usable replies" in logs_of_runs[0]
        assert not TelemetryRelease.objects.filter(trial=trial).exists()
        reserved = PrivacyCharge.objects.get(budget__trial=trial)

        nodes += supernodes_start(
            superlink=superlink_address,
            node_configs=late,
            runtime_ports=[free_port() for _ in late],
            log_dir=logs,
            env=env,
            log_prefix="supernode-late",
        )
        wait_for_supernodes(superlink_address, len(devices))
        with mock.patch("federated.tasks.flwr_run", side_effect=submit):
            assert telemetry_window_release(trial.pk, 0) == "released"
            assert telemetry_window_release(trial.pk, 0) == "already released"
        # Every device answered, and every answer counted (the ServerApp's own log, streamed).
        total = len(devices)
        assert f"{total} of {total} nodes replied" in logs_of_runs[1]
        assert f"{total} usable replies of {total}" in logs_of_runs[1]
        release = TelemetryRelease.objects.get(trial=trial)
        # Per arm: the count, three metrics, the rating question's mean and raters.
        assert ReleasedAggregate.objects.filter(release=release).count() == 2 * 6
        # Released under the reservation the waiting run took, paid once.
        assert release.charge.pk == reserved.pk
        assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == reserved.nano_rho

        # The dose: every device is identified and sent its own change, and answers.
        with mock.patch("federated.tasks.flwr_run", side_effect=submit):
            assert dose_release(trial.pk) == "released"
        assert (
            f"Dose release of {trial}: {total} usable replies of {total} asked" in (logs_of_runs[2])
        )
        dose = DoseRelease.objects.get(trial=trial)
        assert DoseAggregate.objects.filter(release=dose).count() == 2 * 6
        assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == (
            reserved.nano_rho + dose.charge.nano_rho
        )
    finally:
        for process in [*nodes, superlink]:
            stop(process)
    assert all(p.poll() is not None for p in [*nodes, superlink])
    # SuperExec children run in sessions of their own and exit when their parent has gone.
    wait_for(lambda: not _running_with(superlink_address), timeout=30, what="Flower to exit")


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
