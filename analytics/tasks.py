"""Celery tasks: thin callers of analytics.services."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from analytics.services import (
    analysis_run_execute,
    analysis_run_fail,
    analysis_runs_requeue_stale,
)


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def analysis_run_execute_task(run_id: int) -> str:
    """Execute run ``run_id`` once, however often it is delivered (see analysis_run_execute)."""
    try:
        return analysis_run_execute(run_id=run_id).status
    except SoftTimeLimitExceeded:
        # Another attempt would be stopped at the same point; say so instead of retrying.
        return analysis_run_fail(
            run_id=run_id,
            error="The run took longer than a worker may spend on one task "
            "(CELERY_TASK_SOFT_TIME_LIMIT); it is not tried again.",
        ).status


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def analysis_runs_sweep() -> list[int]:
    """Beat runs this every ANALYSIS_RUN_SWEEP_SECONDS: re-queue the runs whose worker stopped
    heart-beating (see analysis_runs_requeue_stale); the ids re-queued."""
    return analysis_runs_requeue_stale()
