"""The invitation sweep on a real Celery worker, sending through a real SMTP server on
loopback: overlapping sweeps send each invitation once, and a worker killed mid-send leaves
that one invitation in doubt (never resent) while the others go out exactly once."""

import asyncio
import os
import signal
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from django.test import override_settings

from surveys.models import Invitation
from surveys.services import invitations_plan, invitations_send_due
from surveys.tasks import invitations_sweep
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from trials.models import ConsentDocument
from trials.services import participant_enrol

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 2


class RecordingSmtp:
    """Accepts every message after ``delay`` seconds; holds those to ``hold`` until the
    sender goes away (the SMTP transaction then never completes, as when a worker dies)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.hold: set[str] = set()
        self.holding = threading.Event()
        self.recipients: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        (recipient,) = envelope.rcpt_tos
        if recipient in self.hold:
            self.holding.set()
            await asyncio.sleep(120)
        await asyncio.sleep(self.delay)
        self.recipients.append(recipient)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp():
    handler = RecordingSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop(no_assert=True)


@pytest.fixture
def sending_worker(artifacts_dir, smtp):
    """Start (and restart) workers that send through the loopback SMTP server."""
    queue = f"invitations-{os.getpid()}"
    workers = []

    def start():
        worker = start_celery_worker(
            artifacts_dir,
            name=f"invitations-worker-{len(workers)}",
            queue=queue,
            extra_env={
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp.port),
                "INVITATION_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
            },
        )
        workers.append(worker)
        return worker

    start.queue = queue
    yield start
    for worker in workers:
        if worker.process.poll() is None:
            stop_celery_worker(worker)


def _enrol_many(trial, count: int, prefix: str) -> list[str]:
    document = ConsentDocument.objects.get(trial=trial)
    emails = [f"{prefix}{number}@example.org" for number in range(count)]
    for email in emails:
        participant_enrol(trial=trial, email=email, consent_document=document, scopes=["surveys"])
    return emails


def test_overlapping_sweeps_on_a_worker_and_here_send_each_once(small_trial, smtp, sending_worker):
    emails = _enrol_many(small_trial, 20, "crowd")
    invitations_plan()
    smtp.delay = 0.05  # slow enough that the sweeps below really run at the same time
    sending_worker()
    for _ in range(3):
        invitations_sweep.apply_async(queue=sending_worker.queue)
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp.port,
    ):
        invitations_send_due()
    wait_for(
        lambda: Invitation.objects.filter(state="sent").count() == 20,
        what="every invitation marked sent",
    )
    time.sleep(1)  # any duplicate would arrive now
    assert sorted(smtp.recipients) == sorted(emails)


def test_a_worker_killed_mid_send_never_causes_a_second_message(small_trial, smtp, sending_worker):
    emails = _enrol_many(small_trial, 4, "kill")
    invitations_plan()
    smtp.hold = {emails[1]}
    worker = sending_worker()
    invitations_sweep.apply_async(queue=sending_worker.queue)
    assert smtp.holding.wait(timeout=60), "the worker never reached the held message"
    os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and its pool child, mid-send
    worker.process.wait(timeout=30)

    in_doubt = Invitation.objects.get(
        participant__contact__email=emails[1], wave__index=0, sequence=0
    )
    assert in_doubt.state == "sending"
    time.sleep(LEASE_SECONDS + 1)
    sending_worker()
    invitations_sweep.apply_async(queue=sending_worker.queue)
    wait_for(
        lambda: Invitation.objects.filter(state="sent").count() == 3,
        what="the other invitations sent by the new worker",
    )
    in_doubt.refresh_from_db()
    assert in_doubt.state == "unknown"
    assert "may have gone out" in in_doubt.note
    # Sweep again: nothing is sent twice, the one in doubt is not resent.
    invitations_sweep.apply_async(queue=sending_worker.queue)
    time.sleep(2)
    assert sorted(smtp.recipients) == sorted([emails[0], emails[2], emails[3]])
