"""A loopback SMTP server (aiosmtpd) that records every message it accepts, and a trial with
coordinators, an analyst and the members of three bodies, one a data monitoring committee."""

import asyncio
import os
import socket
import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from tests.trials.factories import bodies, enrolling_trial
from trials.models import OversightBody, TrialMember
from trials.services import member_add, oversight_assign

NOTIFICATION_TASKS = "notifications.tasks.*"


@pytest.fixture(autouse=True)
def notifications_queue():
    """The notification tasks go to a queue of these tests' own while they run: the suite's
    worker (tests.conftest.celery_worker_process), started by an earlier test, would otherwise
    take the task a committed event sends and deliver it through its own mail settings. A test
    that wants a worker starts one on this queue (test_delivery_worker.py)."""
    from celery.app import routes

    from config.celery import app

    queue = f"{django_settings.CELERY_TASK_DEFAULT_QUEUE}-notifications-{os.getpid()}"
    router = app.amqp.router
    app.amqp.router = routes.Router(
        [*routes.prepare([{NOTIFICATION_TASKS: {"queue": queue}}]), *app.amqp.routes],
        app.amqp.queues,
        True,
        app=app,
    )
    yield queue
    app.amqp.router = router
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue)


class Inbox:
    """What the SMTP server accepted: (recipient, subject, body) per delivered copy. A message to
    an address in ``hold`` is held until the sender goes away (the SMTP transaction then never
    completes, as when a worker dies mid-send)."""

    def __init__(self):
        self.messages: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.hold: set[str] = set()
        self.holding = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if self.hold & set(envelope.rcpt_tos):
            self.holding.set()
            await asyncio.sleep(120)
        message = message_from_bytes(envelope.content)
        body = message.get_payload(decode=True).decode()
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.messages.append((recipient, str(message["Subject"]), body))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        with self.lock:
            return sorted(recipient for recipient, _, _ in self.messages)

    def of(self, recipient: str) -> list[tuple[str, str]]:
        with self.lock:
            return [(s, b) for r, s, b in self.messages if r == recipient]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop(no_assert=True)


@pytest.fixture
def smtp_settings(settings, smtp):
    """This process sends through the loopback server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    return smtp


def _user(username: str, email: str = ""):
    return get_user_model().objects.create_user(
        username=username, password="pw", email=email, is_staff=True
    )


@pytest.fixture
def people(db):
    """An enrolling trial (arms A, the control, and B) with two coordinators, an analyst, and
    the members of its two approving bodies (ethics board, community council) and of a data
    monitoring committee; ``both`` sits on two bodies, ``no_mail`` has no address."""
    trial = enrolling_trial("n")
    users = {
        name: _user(name, f"{name}@example.org")
        for name in ("coord1", "coord2", "analyst", "ethicist", "councillor", "both", "monitor")
    }
    users["no_mail"] = _user("no_mail")
    member_add(trial=trial, user=users["coord1"], role=TrialMember.Role.COORDINATOR)
    member_add(trial=trial, user=users["coord2"], role=TrialMember.Role.COORDINATOR)
    member_add(trial=trial, user=users["analyst"], role=TrialMember.Role.ANALYST)
    ethics, council = bodies("Ethics", "Council")
    ethics.members.add(users["ethicist"], users["both"], users["no_mail"])
    council.members.add(users["councillor"], users["both"])
    committee = OversightBody.objects.create(
        name="Monitoring committee", kind=OversightBody.Kind.DATA_MONITORING_COMMITTEE
    )
    committee.members.add(users["monitor"])
    oversight_assign(trial=trial, body=committee, required=False)
    return trial, users


# Who a notice for everyone reaches, and who one for the coordinators alone.
EVERYONE = ["both", "coord1", "coord2", "councillor", "ethicist", "monitor", "no_mail"]
COORDINATORS = ["coord1", "coord2"]
