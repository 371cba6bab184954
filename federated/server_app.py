"""The Flower ServerApp: one run is one release window (``federated.window``).

Run config: ``trial`` (slug), ``window`` (index), ``timeout`` (seconds to wait for replies).
Started by the Celery task ``federated.tasks.telemetry_window_release`` (``flwr run`` against
the SuperLink) or directly on an in-process grid in tests and benchmarks. In a SuperExec process
it sets Django up itself, from ``DJANGO_SETTINGS_MODULE`` and ``DATABASE_URL``.
"""

import os

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from federated.window import telemetry_window_run
    from trials.models import Trial

    config = context.run_config
    telemetry_window_run(
        grid=grid,
        trial=Trial.objects.get(slug=str(config["trial"])),
        window_index=int(config["window"]),
        timeout=float(config.get("timeout", 60.0)),
    )
