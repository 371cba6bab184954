"""Celery tasks: thin callers of surveys.services."""

from celery import shared_task
from django.db import OperationalError

from surveys.services import invitations_plan, invitations_send_due, waves_quality_refresh


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def invitations_sweep() -> dict:
    """Beat runs this every minute: plan the due rows of new participants, then send what is
    due. Overlapping or repeated sweeps never send a row twice (see invitations_send_due)."""
    return {"planned": invitations_plan(), **invitations_send_due()}


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def quality_sweep() -> list[int]:
    """Beat runs this every ten minutes: the Mahalanobis index needs the whole wave's answers,
    so it is recomputed for waves whose responses changed since the last time."""
    return waves_quality_refresh()
