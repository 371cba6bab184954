"""A Flower SuperExec whose task processes are forked from a process that has imported them.

Flower runs every task (a device's ClientApp, a window's ServerApp) as a fresh process: in its
default ``subprocess`` isolation the SuperNode or SuperLink starts ``flower-superexec``, which
starts ``flwr-clientapp`` or ``flwr-serverapp`` per task (``SubprocessExecutor``), and each of
those imports Flower (FastAPI, SQLAlchemy, Alembic, gRPC among its imports), the ServerApp also
Django and the project, before it can answer. In Flower's ``process`` isolation the SuperNode or
SuperLink starts no SuperExec and serves the same Runtime API to one started beside it: this is
that SuperExec. It is Flower's own loop (``run_superexec``: acquire a task, launch it) with an
executor (Flower's ``Executor`` protocol) that forks the task from this process, whose imports
are done once, and runs Flower's own entry point (``flwr-clientapp``/``flwr-serverapp``) in the
child. Each task is still a process of its own with its own task token, heartbeat and exit, as
in ``subprocess`` isolation; nothing of one task's state reaches another, since each is forked
from this process, which runs no task itself.

    python -m federated.superexec {clientapp|serverapp} --runtime-api-address HOST:PORT \
        -- flower-supernode … --isolation process

starts the command after ``--`` (the SuperNode or SuperLink) as its child in its own process
group and serves its Runtime API until that child exits; stopping the group stops all of them.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

# Set before NumPy loads (Flower imports it): a forked child inherits no threads, and a process
# that forks should have none (OpenBLAS starts a pool per core on import).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

TASKS = ("clientapp", "serverapp")


def _entry_point(task: str) -> tuple[Callable[[], None], str]:
    """Flower's command line entry point for ``task``, imported, and its command name."""
    if task == "clientapp":
        from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

        import federated.client.app  # noqa: F401 - what every ClientApp task loads

        return flwr_clientapp, "flwr-clientapp"
    from flwr.superlink.cli.flwr_serverapp import flwr_serverapp

    import federated.server_app  # noqa: F401 - what every ServerApp task loads

    _django_preload()
    return flwr_serverapp, "flwr-serverapp"


def _django_preload() -> None:
    """What the ServerApp's ``main`` imports (``federated.server_app``), done here once. Without
    Django's settings in the environment the ServerApp sets Django up itself, as it would in a
    process of its own."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    import django

    django.setup()
    from django.db import connections

    import federated.dose  # noqa: F401
    import federated.window  # noqa: F401
    from federated.mechanism import _opendp

    _opendp()  # OpenDP's core modules, which every window's calibration and draw use

    # A forked child must open its own connections, never share one with its siblings.
    connections.close_all()


class ForkExecutor:
    """Flower's ``Executor`` protocol (``flwr.supercore.superexec.executor.types``): each task is
    a child forked from this process that runs Flower's entry point for it, with the arguments
    ``SubprocessExecutor`` would have started that command with."""

    def __init__(self, task_type: str, entry_point: Callable[[], None], command: str) -> None:
        self.task_type = task_type
        self.entry_point = entry_point
        self.command = command
        self.children: set[int] = set()
        self.owner = os.getpid()

    def get_eligible_capacity(
        self, supported_task_types: set, *, insecure: bool = False, root_certificates_path=None
    ) -> tuple[set, set[str]]:
        del insecure, root_certificates_path
        return {t for t in supported_task_types if t == self.task_type}, set()

    def wait_for_capacity(self, task_type=None, **kwargs) -> None:
        """Forking has no capacity gate."""

    def launch(self, spec):
        from flwr.supercore.constant import TASK_TYPE_TO_APPIO_API_ADDRESS_ARG
        from flwr.supercore.superexec.executor import LaunchResult

        if spec.task_type != self.task_type:
            return LaunchResult.failed(f"This SuperExec runs {self.task_type} tasks only.")
        argv = [
            self.command,
            TASK_TYPE_TO_APPIO_API_ADDRESS_ARG[spec.task_type],
            spec.runtime_api_address,
            "--token",
            spec.token,
        ]
        if spec.insecure:
            argv.append("--insecure")
        elif spec.root_certificates_path is not None:
            argv += ["--root-certificates", spec.root_certificates_path]
        if spec.parent_pid is not None:
            argv += ["--parent-pid", str(spec.parent_pid)]
        if spec.runtime_dependency_install:
            argv.append("--allow-runtime-dependency-installation")
        pid = os.fork()
        if pid == 0:
            self._run_child(argv, suppress_output=spec.suppress_output)
        self.children.add(pid)
        return LaunchResult.accepted()

    def _run_child(self, argv: list[str], *, suppress_output: bool) -> None:
        """The task, in the forked child; never returns."""
        code = 1
        try:
            self.children = set()
            if suppress_output:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            sys.argv = argv
            self.entry_point()
            code = 0
        except SystemExit as exiting:
            code = exiting.code if isinstance(exiting.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child reports and exits, whatever happened
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reconcile(self) -> None:
        """Reap the children that have exited."""
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)

    def close(self) -> None:
        """Flower's exit handlers run in a forked child too: only this process reaps."""
        if os.getpid() == self.owner:
            self.reconcile()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--runtime-api-address", required=True)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("the SuperNode or SuperLink command to start follows --")
    split = argv.index("--")
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]

    from flwr.supercore.constant import TaskType
    from flwr.supercore.superexec import run_superexec as superexec

    entry_point, name = _entry_point(args.task)
    task_type = TaskType.CLIENT_APP if args.task == "clientapp" else TaskType.SERVER_APP
    executor = ForkExecutor(task_type, entry_point, name)
    # The SuperNode or SuperLink, in this process group: stopping the group stops it, this
    # process and every task.
    served = subprocess.Popen(command)  # noqa: S603 - the caller's own command
    # This process ends with the process it serves (checked at every poll).
    reconcile = executor.reconcile

    def reconcile_while_served() -> None:
        if served.poll() is not None:
            sys.exit(served.returncode)
        reconcile()

    executor.reconcile = reconcile_while_served
    # Flower's client backs off ever longer while nothing listens: ask once the API is up.
    host, _, port = args.runtime_api_address.rpartition(":")
    while not _listening(host.strip("[]"), int(port)):
        reconcile_while_served()
        time.sleep(0.1)
    # Flower's SuperExec loop with this executor: ``run_superexec`` builds its executor from
    # ``get_executor``, which knows only its own kinds.
    superexec.get_executor = lambda *args, **kwargs: executor
    superexec.run_superexec(
        runtime_api_address=args.runtime_api_address,
        insecure=True,
        runtime_dependency_install=False,
    )


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        return probe.connect_ex((host, port)) == 0


if __name__ == "__main__":
    main()
