"""Celery tasks: thin callers of notifications.services."""

from celery import shared_task
from django.db import OperationalError

from notifications.services import digests_compose, digests_send_due, notifications_send_due
from trials.models import TrialEvent


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def notifications_send(event_id: int) -> dict:
    """Sent when an event that notifies commits: e-mail its notifications due at once."""
    event = TrialEvent.objects.filter(pk=event_id).first()
    return notifications_send_due(event=event) if event is not None else {}


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def notifications_sweep() -> dict:
    """Beat runs this every minute, the backstop of ``notifications_send``: send what is due
    at once, gather the day's digests once the day is over, send them. Running alongside the
    task, or twice, sends nothing twice (trials.outbox)."""
    return {
        "notifications": notifications_send_due(),
        "digests_composed": digests_compose(),
        "digests": digests_send_due(),
    }
