"""Notifications on a real Celery worker, sent through a real SMTP server on loopback: a serious
adverse event reaches each inbox once although the task started by its commit, beat's sweep and
another sender all run at once; a worker killed mid-send leaves that one e-mail in doubt, never
resent, while the others go out once."""

import os
import signal
import time

import pytest

from notifications.models import Notification
from notifications.services import notifications_send_due
from notifications.tasks import notifications_sweep
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from tests.notifications.conftest import EVERYONE
from trials.models import TrialEvent
from trials.services import event_record

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 2
ADDRESSES = sorted(f"{name}@example.org" for name in EVERYONE if name != "no_mail")


@pytest.fixture
def sending_worker(artifacts_dir, smtp, notifications_queue):
    """Start (and restart) workers on the notification tasks' queue, sending through the
    loopback server."""
    workers = []

    def start():
        worker = start_celery_worker(
            artifacts_dir,
            name=f"notifications-worker-{len(workers)}",
            queue=notifications_queue,
            extra_env={
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp.port),
                "INVITATION_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
            },
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.process.poll() is None:
            stop_celery_worker(worker)


def _serious_adverse_event(trial):
    return event_record(
        trial=trial,
        kind=TrialEvent.Kind.ADVERSE_EVENT_RECORDED,
        adverse_event=1,
        category="distress",
        severity="severe",
        serious=True,
        newly_serious=True,
    )


def test_each_inbox_gets_it_once_when_task_sweeps_and_a_sender_all_run(
    people, smtp_settings, sending_worker
):
    trial, _ = people
    sending_worker()
    event = _serious_adverse_event(trial)  # its commit sends the task to the worker
    for _ in range(2):
        notifications_sweep.delay()
    notifications_send_due()
    wait_for(
        lambda: Notification.objects.filter(event=event, state="sent").count() == 6,
        what="every notification of the event marked sent",
    )
    time.sleep(1)  # any duplicate would arrive now
    assert smtp_settings.recipients() == ADDRESSES


def test_a_worker_killed_mid_send_leaves_one_e_mail_in_doubt_never_resent(
    people, smtp, sending_worker
):
    trial, _ = people
    smtp.hold = {"coord2@example.org"}
    worker = sending_worker()
    event = _serious_adverse_event(trial)
    assert smtp.holding.wait(timeout=60), "the worker never reached the held message"
    os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and its pool child, mid-send
    worker.process.wait(timeout=30)
    in_doubt = Notification.objects.get(event=event, recipient__username="coord2")
    assert in_doubt.state == "sending"

    time.sleep(LEASE_SECONDS + 1)
    sending_worker()
    notifications_sweep.delay()
    wait_for(
        lambda: Notification.objects.filter(event=event, state="sent").count() == 5,
        what="the other notifications sent by the new worker",
    )
    in_doubt.refresh_from_db()
    assert in_doubt.state == "unknown" and "may have gone out" in in_doubt.note
    notifications_sweep.delay()  # again: nothing is sent twice, the one in doubt not at all
    time.sleep(2)
    assert smtp.recipients() == [a for a in ADDRESSES if a != "coord2@example.org"]
