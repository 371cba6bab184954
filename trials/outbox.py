"""E-mail sent at most once: the outbox that invitations (surveys) and notifications share.

A message to send is a row (a model with the fields of :class:`OutboxRow`). A sender claims the
next due row — ``pending`` → ``sending`` — in a transaction of its own that commits *before* it
talks to the mail server, so a row is handed to the mail server at most once, however many
senders (a beat sweep, a task, a request) run at the same time: ``select_for_update`` with
``skip_locked`` lets them share the work without ever taking the same row. One row per
transaction means a sender that dies mid-send leaves at most one row in doubt; that row stays in
``sending`` until its lease runs out and then becomes ``unknown``, which no sender takes again by
itself (a person decides: the message may have gone out).

An error from the mail server means it did not take the message (a refused connection, a
rejected recipient), so such a row goes back to ``pending`` to be tried again later, until its
attempts are used up (``failed``).
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.core.mail import EmailMessage, get_connection
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)

ABANDONED_NOTE = "The sender stopped mid-send; it may have gone out, so it is not resent."


class OutboxRow(models.Model):
    """The columns the outbox needs; ``surveys.models.Invitation`` declares the same ones."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"
        UNKNOWN = "unknown", "unknown (the sender stopped mid-send)"

    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        abstract = True


def _claim_next(
    model: type[models.Model],
    *,
    now: datetime,
    scope: Q,
    related: tuple[str, ...],
    skip_reason: Callable[[models.Model, datetime], str] | None,
) -> models.Model | None:
    """Take the next due row and commit its new state before any mail is sent: ``sending``,
    or ``skipped`` with the reason ``skip_reason`` gives. None when nothing is due."""
    due = model._default_manager.filter(scope, state="pending", due_at__lte=now)
    with transaction.atomic():
        row = (
            due.select_for_update(skip_locked=True, of=("self",))
            # What the message needs, read with the row.
            .select_related(*related)
            .order_by("due_at", "pk")
            .first()
        )
        if row is None:
            return None
        reason = skip_reason(row, now) if skip_reason else ""
        if reason:
            row.state, row.note = "skipped", reason
        else:
            row.state, row.claimed_at = "sending", now
            row.attempts += 1
        row.save(update_fields=["state", "note", "claimed_at", "attempts"])
    return row


def _send(row, message: Callable[[models.Model], EmailMessage], connection, max_attempts) -> str:
    """Hand one claimed row's message to the mail server; ``sent``, ``retry`` or ``failed``."""
    rows = type(row)._default_manager.filter(pk=row.pk)
    try:
        connection.send_messages([message(row)])
    except Exception as error:  # noqa: BLE001 — any mail failure is recorded on the row
        logger.warning("%s %s not sent: %s", type(row).__name__, row.pk, error)
        connection.close()  # a broken session is reopened for the next message
        retry = row.attempts < max_attempts
        rows.update(
            state="pending" if retry else "failed",
            due_at=timezone.now() + timedelta(minutes=5 * row.attempts),
            note=str(error)[:200],
        )
        return "retry" if retry else "failed"
    rows.update(state="sent", sent_at=timezone.now())
    return "sent"


def outbox_send_due(
    model: type[models.Model],
    *,
    message: Callable[[models.Model], EmailMessage],
    lease_seconds: float,
    max_attempts: int,
    now: datetime | None = None,
    scope: Q | None = None,
    related: tuple[str, ...] = (),
    skip_reason: Callable[[models.Model, datetime], str] | None = None,
) -> dict[str, int]:
    """Send every due row of ``model`` (within ``scope``) at most once; returns what happened.

    First, every row of ``model`` claimed more than ``lease_seconds`` ago and still ``sending``
    becomes ``unknown`` (its sender died). Then due rows are claimed one at a time and their
    ``message(row)`` sent through one connection."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=lease_seconds)
    abandoned = model._default_manager.filter(state="sending", claimed_at__lt=stale).update(
        state="unknown", note=ABANDONED_NOTE
    )
    counts = {"abandoned": abandoned, "skipped": 0, "sent": 0, "retry": 0, "failed": 0}
    connection = get_connection()
    try:
        while (
            row := _claim_next(
                model, now=now, scope=scope or Q(), related=related, skip_reason=skip_reason
            )
        ) is not None:
            if row.state == "skipped":
                counts["skipped"] += 1
            else:
                counts[_send(row, message, connection, max_attempts)] += 1
    finally:
        connection.close()
    return counts
