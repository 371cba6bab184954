"""The Celery application shared by web processes, workers and beat.

Settings come from Django's settings under the ``CELERY_`` namespace, so the broker is chosen by
the same environment variables as everything else (see ``config/settings/base.py``). What is
added here is the machinery that makes an analysis run finish after a worker dies, whatever the
broker (``analytics.services``):

``ANALYSIS_RUN_STALE_SECONDS`` (300)
    a run whose worker has not reported for this long is re-queued by beat's sweep; the worker
    executing a run reports ten times in that span.
``ANALYSIS_RUN_SWEEP_SECONDS`` (60)
    how often beat sweeps for such runs.
"""

import os
from datetime import timedelta
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

RUN_STALE_AFTER = timedelta(seconds=float(os.environ.get("ANALYSIS_RUN_STALE_SECONDS", "300")))
RUN_HEARTBEAT_SECONDS = RUN_STALE_AFTER.total_seconds() / 10
RUN_SWEEP_SECONDS = float(os.environ.get("ANALYSIS_RUN_SWEEP_SECONDS", "60"))
# Redis re-delivers a message not acknowledged within its visibility timeout, even to a second
# worker while the first still executes it; it must outlast the longest task (hard time limit).
VISIBILITY_MARGIN_SECONDS = 600

# DjangoTask adds delay_on_commit(): tasks are enqueued only once the transaction commits.
app = Celery("flourish", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _finish_after_a_fault(sender: Celery, **kwargs: Any) -> None:
    # In place: a key assigned on a namespaced conf is shadowed by the CELERY_ setting.
    conf = sender.conf
    if conf.broker_url.startswith(("redis://", "rediss://")):
        conf.broker_transport_options.setdefault(
            "visibility_timeout", conf.task_time_limit + VISIBILITY_MARGIN_SECONDS
        )
    # Runs whose worker stopped heart-beating; cheap when there are none.
    conf.beat_schedule.setdefault(
        "analysis-runs-sweep",
        {"task": "analytics.tasks.analysis_runs_sweep", "schedule": RUN_SWEEP_SECONDS},
    )
