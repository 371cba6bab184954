"""How Flower's processes are started: every task is a fresh Python process that must send its
first heartbeat within 30 s of being claimed (see federated.deployment)."""

import pytest

from federated import deployment
from federated.deployment import BYTECODE_CACHE, TASK_POLL_SECONDS, process_environment

pytestmark = pytest.mark.unit


def test_flower_processes_share_a_bytecode_cache_even_where_caching_is_off(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = process_environment({"DATABASE_URL": "postgres://x@127.0.0.1/x"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(BYTECODE_CACHE)
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert env["DATABASE_URL"] == "postgres://x@127.0.0.1/x"


def test_flower_processes_poll_for_tasks_promptly_and_send_no_telemetry(monkeypatch):
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "1")
    monkeypatch.delenv("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", raising=False)
    env = process_environment()
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert float(env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"]) == TASK_POLL_SECONDS < 1.0


def test_supernodes_and_the_superlink_run_in_process_isolation_beside_the_forking_superexec(
    tmp_path, monkeypatch
):
    started = []
    monkeypatch.setattr(
        deployment, "_start", lambda command, log_path, env: started.append(command)
    )
    deployment.superlink_start(host="0.0.0.0", port=9091, log_path=tmp_path / "l", env={})  # noqa: S104
    deployment.supernode_start(
        superlink="127.0.0.1:9091",
        runtime_port=9094,
        node_config={"event-log": "/x"},
        log_path=tmp_path / "n",
        env={},
    )
    link, node = started
    assert link[1:6] == [
        "-m",
        "federated.superexec",
        "serverapp",
        "--runtime-api-address",
        "127.0.0.1:9091",
    ]
    assert node[1:6] == [
        "-m",
        "federated.superexec",
        "clientapp",
        "--runtime-api-address",
        "127.0.0.1:9094",
    ]
    for command, flower in ((link, "flower-superlink"), (node, "flower-supernode")):
        served = command[command.index("--") + 1 :]
        assert served[0] == flower
        assert served[-2:] == ["--isolation", "process"]
