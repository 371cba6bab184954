"""Celery tasks: beat's sweep for ended telemetry windows and due dose releases, and the release
of one window or of a trial's dose through the Flower SuperLink. All are idempotent: the
ledger's key pays a release once and it is stored once, however often it is enqueued or
retried."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from federated.deployment import flwr_run
from federated.models import TelemetryRelease
from federated.selectors import dose_releases_due, telemetry_schema_in_force, telemetry_windows_due
from trials.models import Trial

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def telemetry_windows_sweep() -> list[list[int]]:
    """Beat runs this hourly: enqueue every ended window that has no release yet and that the
    trial's remaining budget can pay for, and every due dose release; the windows enqueued."""
    if not settings.FLOWER_SUPERLINK:
        logger.warning("FLOWER_SUPERLINK is not set: telemetry windows wait unreleased.")
        return []
    due = telemetry_windows_due()
    for trial_id, window_index in due:
        telemetry_window_release.delay(trial_id, window_index)
    for trial_id in dose_releases_due():
        dose_release.delay(trial_id)
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


@shared_task(
    autoretry_for=(OperationalError, RuntimeError),
    max_retries=3,
    retry_backoff=60,
    soft_time_limit=settings.FLOWER_REPLY_TIMEOUT * 2 + 240,
    time_limit=settings.FLOWER_REPLY_TIMEOUT * 2 + 300,
)
def dose_release(trial_id: int) -> str:
    """Run the trial's dose release as a Flower run on the SuperLink (it asks the devices twice:
    who they are, then each its own change) and check that the release was stored."""
    trial = Trial.objects.get(pk=trial_id)
    if _dose_released(trial):
        return "already released"
    flwr_run(
        superlink=settings.FLOWER_SUPERLINK,
        trial_slug=trial.slug,
        window_index=-1,
        reply_timeout=settings.FLOWER_REPLY_TIMEOUT,
        timeout=settings.FLOWER_REPLY_TIMEOUT * 2 + 180,
        action="dose",
    )
    if not _dose_released(trial):
        raise RuntimeError(
            f"The Flower run for the dose release of {trial.slug} ended without a release (too "
            "few usable replies, or the run failed: see the SuperLink's log); it will be "
            "retried under the same reservation."
        )
    return "released"


def _dose_released(trial: Trial) -> bool:
    """Whether the plan in force has its dose release (each plan version has its own)."""
    in_force = telemetry_schema_in_force(trial)
    return in_force is not None and trial.dose_releases.filter(preregistration=in_force[0]).exists()
