"""The SuperExec that forks Flower's tasks (federated.superexec): each task is a child process
that runs Flower's entry point with the arguments Flower's own SubprocessExecutor would have
started it with, and the SuperExec lives as long as the SuperNode or SuperLink it serves. The
real engine runs it in tests/federated/test_deployment.py."""

import json
import os
import sys
import time

import pytest
from flwr.supercore.constant import TaskType
from flwr.supercore.superexec.executor import ExecutionSpec, LaunchResultStatus

from federated import superexec
from federated.superexec import ForkExecutor

pytestmark = pytest.mark.unit


def _spec(task_type: TaskType, **overrides) -> ExecutionSpec:
    fields = {
        "task_type": task_type,
        "runtime_api_address": "127.0.0.1:9094",
        "token": "ab" * 16,
        "insecure": True,
        "root_certificates_path": None,
        "runtime_dependency_install": False,
        "parent_pid": 4321,
        "suppress_output": False,
        "task_id": 7,
    }
    return ExecutionSpec(**(fields | overrides))


def _wait_reaped(executor: ForkExecutor, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while executor.children:
        assert time.monotonic() < deadline, "the forked task did not exit"
        executor.reconcile()
        time.sleep(0.01)


def test_a_task_is_a_forked_child_running_flowers_entry_point_with_its_arguments(tmp_path):
    record = tmp_path / "argv.json"

    def entry_point() -> None:
        record.write_text(json.dumps({"argv": sys.argv, "pid": os.getpid()}))
        sys.exit(0)

    executor = ForkExecutor(TaskType.CLIENT_APP, entry_point, "flwr-clientapp")
    result = executor.launch(_spec(TaskType.CLIENT_APP))
    assert result.status == LaunchResultStatus.ACCEPTED
    _wait_reaped(executor)
    ran = json.loads(record.read_text())
    # The command line Flower's SubprocessExecutor builds for the same task.
    assert ran["argv"] == [
        "flwr-clientapp",
        "--runtime-api-address",
        "127.0.0.1:9094",
        "--token",
        "ab" * 16,
        "--insecure",
        "--parent-pid",
        "4321",
    ]
    assert ran["pid"] != os.getpid()


def test_a_failing_task_ends_its_child_only_and_the_executor_goes_on(tmp_path):
    marks = tmp_path / "marks"

    def entry_point() -> None:
        with marks.open("a") as out:
            out.write("ran\n")
        raise RuntimeError("the ClientApp crashed")

    executor = ForkExecutor(TaskType.CLIENT_APP, entry_point, "flwr-clientapp")
    for task_id in (1, 2):
        executor.launch(_spec(TaskType.CLIENT_APP, task_id=task_id))
    _wait_reaped(executor)
    assert marks.read_text().splitlines() == ["ran", "ran"]


def test_it_asks_only_for_the_kind_of_task_it_has_imported():
    executor = ForkExecutor(TaskType.SERVER_APP, lambda: None, "flwr-serverapp")
    eligible, _ = executor.get_eligible_capacity(set(TaskType))
    assert eligible == {TaskType.SERVER_APP}
    refused = executor.launch(_spec(TaskType.CLIENT_APP))
    assert refused.status == LaunchResultStatus.FAILED
    assert not executor.children


def test_it_ends_when_the_process_it_serves_ends(monkeypatch):
    monkeypatch.setattr(superexec, "_entry_point", lambda task: (lambda: None, "flwr-clientapp"))
    # Nothing listens there: it waits for the Runtime API while its SuperNode runs.
    with pytest.raises(SystemExit) as ended:
        superexec.main(
            ["clientapp", "--runtime-api-address", "127.0.0.1:9", "--", sys.executable, "-c", ""]
        )
    assert ended.value.code == 0


def test_it_needs_the_command_it_serves():
    with pytest.raises(SystemExit) as refused:
        superexec.main(["clientapp", "--runtime-api-address", "127.0.0.1:9"])
    assert refused.value.code == 2


def test_tasks_forked_from_one_process_draw_independent_noise(tmp_path):
    """Every ServerApp task is forked from the same SuperExec, which has loaded OpenDP: the
    noise each task draws must still be its own (OpenDP samples from the operating system's
    entropy, not from a generator state a fork would copy), even after this process has drawn."""
    from federated.mechanism import _opendp

    dp = _opendp()
    gaussian = dp.m.make_gaussian(dp.atom_domain(T="i64"), dp.absolute_distance(T="i64"), 1e6)
    parent = [gaussian(0) for _ in range(4)]

    def entry_point() -> None:
        draws = tmp_path / f"draws-{os.getpid()}.json"
        draws.write_text(json.dumps([gaussian(0) for _ in range(4)]))

    executor = ForkExecutor(TaskType.SERVER_APP, entry_point, "flwr-serverapp")
    for task_id in (1, 2, 3):
        executor.launch(_spec(TaskType.SERVER_APP, task_id=task_id))
    _wait_reaped(executor)
    children = [json.loads(path.read_text()) for path in tmp_path.glob("draws-*.json")]
    assert len(children) == 3
    # Four draws of a Gaussian of scale 10⁶ coincide by chance with probability ~10⁻²⁴.
    assert len({tuple(draws) for draws in [parent, *children]}) == 4
