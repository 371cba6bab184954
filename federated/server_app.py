"""The Flower ServerApp: one run is one release window (``federated.window``), or a trial's dose
release (``federated.dose``).

Run config: ``trial`` (slug), ``action`` (``window`` or ``dose``), ``window`` (index, for a
window), ``timeout`` (seconds to wait for replies).
Started by the Celery task ``federated.tasks.telemetry_window_release`` (``flwr run`` against
the SuperLink) or directly on an in-process grid in tests and benchmarks. In a SuperExec process
it sets Django up itself, from ``DJANGO_SETTINGS_MODULE`` and ``DATABASE_URL``.
"""

import logging
import os
import time
from collections.abc import Iterable

from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp

app = ServerApp()
logger = logging.getLogger(__name__)
# How often the ServerApp asks the SuperLink for replies while it waits for them.
REPLY_POLL_SECONDS = 0.1


class PromptGrid(Grid):
    """Flower's grid, whose ``send_and_receive`` asks for replies every ``REPLY_POLL_SECONDS``
    rather than every 3 s (``flwr.superlink.grid.http_grid.HttpGrid``): a window waits on it once
    per round of asking, the dose release twice. Everything else is the wrapped grid's."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    @property
    def run(self):
        return self.grid.run

    def set_run(self, run) -> None:
        self.grid.set_run(run)

    def create_message(self, *args, **kwargs) -> Message:
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self):
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """The replies to ``messages`` that arrive within ``timeout`` seconds (all of them,
        however long it takes, without one), as Flower's own ``send_and_receive``."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            arrived = list(self.pull_messages(pending))
            replies += arrived
            pending -= {reply.metadata.reply_to_message_id for reply in arrived}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(REPLY_POLL_SECONDS)
        return replies


@app.main()
def main(grid: Grid, context: Context) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    # Django's logging sends the root's INFO to the console, and Flower mirrors the ServerApp's
    # output to the SuperLink with one HTTP request per batch (flwr.supercore.logger), which
    # httpx logs at INFO: each upload queues another, and the run's end waits for the queue to
    # empty until its 3 s limit (flush_logs). Flower's own HTTP requests stay out of the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from federated.dose import dose_release_run
    from federated.window import WindowNotReady, telemetry_window_run
    from trials.models import Trial

    grid = PromptGrid(grid)
    config = context.run_config
    trial = Trial.objects.get(slug=str(config["trial"]))
    timeout = float(config.get("timeout", 60.0))
    try:
        if str(config.get("action", "window")) == "dose":
            dose_release_run(grid=grid, trial=trial, timeout=timeout)
        else:
            telemetry_window_run(
                grid=grid, trial=trial, window_index=int(config["window"]), timeout=timeout
            )
    except WindowNotReady as waiting:
        # An expected outcome, not a failure: the task finds no release and asks again later.
        logger.warning("%s", waiting)
