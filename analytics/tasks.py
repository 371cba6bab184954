"""Celery tasks: thin callers of analytics.services."""

from celery import shared_task
from django.db import OperationalError

from analytics.services import analysis_run_execute


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def analysis_run_execute_task(run_id: int) -> str:
    return analysis_run_execute(run_id=run_id).status
