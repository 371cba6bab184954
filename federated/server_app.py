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

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()
logger = logging.getLogger(__name__)


@app.main()
def main(grid: Grid, context: Context) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from federated.dose import dose_release_run
    from federated.window import WindowNotReady, telemetry_window_run
    from trials.models import Trial

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
