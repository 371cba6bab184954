"""Celery tasks of the safety app: beat's sweep of the arms' canary prompts (safety.canary)."""

from celery import shared_task
from django.db import OperationalError

from safety.canary import canary_sweep as sweep_arms


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def canary_sweep(self) -> dict[str, int]:
    """Beat runs this hourly (``CANARY_SWEEP_SECONDS``). The sweep is keyed by the task's id,
    which a re-delivered or retried message keeps, so it records each prompt once."""
    return sweep_arms(sweep=self.request.id)
