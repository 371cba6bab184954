"""How Flower's processes are started: every task is a fresh Python process that must send its
first heartbeat within 30 s of being claimed (see federated.deployment)."""

import pytest

from federated.deployment import BYTECODE_CACHE, process_environment

pytestmark = pytest.mark.unit


def test_flower_processes_share_a_bytecode_cache_even_where_caching_is_off(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = process_environment({"DATABASE_URL": "postgres://x@127.0.0.1/x"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(BYTECODE_CACHE)
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert env["DATABASE_URL"] == "postgres://x@127.0.0.1/x"
