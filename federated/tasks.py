"""Celery tasks: beat's sweep for ended telemetry windows, and the release of one window through
the Flower SuperLink. Both are idempotent: the ledger's key pays a window once and its release is
stored once, however often a window is enqueued or retried."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from federated.deployment import flwr_run
from federated.models import TelemetryRelease
from federated.selectors import telemetry_windows_due
from trials.models import Trial

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def telemetry_windows_sweep() -> list[list[int]]:
    """Beat runs this hourly: enqueue every ended window that has no release yet and that the
    trial's remaining budget can pay for."""
    if not settings.FLOWER_SUPERLINK:
        logger.warning("FLOWER_SUPERLINK is not set: telemetry windows wait unreleased.")
        return []
    due = telemetry_windows_due()
    for trial_id, window_index in due:
        telemetry_window_release.delay(trial_id, window_index)
    return [list(pair) for pair in due]


@shared_task(
    autoretry_for=(OperationalError, RuntimeError),
    max_retries=3,
    retry_backoff=60,
    # Replies are awaited for FLOWER_REPLY_TIMEOUT; the run itself needs a little more.
    soft_time_limit=settings.FLOWER_REPLY_TIMEOUT + 240,
    time_limit=settings.FLOWER_REPLY_TIMEOUT + 300,
)
def telemetry_window_release(trial_id: int, window_index: int) -> str:
    """Run one window as a Flower run on the SuperLink and check that its release was stored."""
    trial = Trial.objects.get(pk=trial_id)
    if TelemetryRelease.objects.filter(trial=trial, window_index=window_index).exists():
        return "already released"
    flwr_run(
        superlink=settings.FLOWER_SUPERLINK,
        trial_slug=trial.slug,
        window_index=window_index,
        reply_timeout=settings.FLOWER_REPLY_TIMEOUT,
        timeout=settings.FLOWER_REPLY_TIMEOUT + 180,
    )
    if not TelemetryRelease.objects.filter(trial=trial, window_index=window_index).exists():
        raise RuntimeError(
            f"The Flower run for window {window_index} of {trial.slug} ended without a release "
            "(too few usable replies, or the run failed: see the SuperLink's log); it will be "
            "retried under the same reservation."
        )
    return "released"
