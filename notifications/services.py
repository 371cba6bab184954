"""Writes of notifications: made from audit events (the listener), sent by e-mail through the
claim-then-send outbox (trials.outbox), gathered into daily digests, marked read."""

from datetime import datetime, time
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import Digest, Notification, NotificationPreference
from notifications.notices import notice_for
from trials.models import OversightBody, TrialEvent, TrialMember
from trials.outbox import outbox_send_due

# Notifications share the outbox's lease and attempts with invitations: the same mail server,
# the same sender's lifetime (config/settings/base.py).


def _lease_seconds() -> float:
    return settings.INVITATION_SEND_LEASE_SECONDS


def _recipients(event: TrialEvent, *, everyone: bool) -> dict[int, tuple[AbstractBaseUser, bool]]:
    """The people ``event`` tells, by id, each with whether they read the trial blinded: its
    coordinators (unblinded: they configure the arms), and with ``everyone`` the members of
    every body overseeing it (blinded unless their body is a data monitoring committee).
    Active accounts only; not the person whose action wrote the event."""
    users = get_user_model().objects.filter(is_active=True).exclude(pk=event.actor_id)
    coordinating = Q(trialmember__trial=event.trial, trialmember__role=TrialMember.Role.COORDINATOR)
    overseeing = Q(oversightbody__trialoversight__trial=event.trial)
    unblinded_bodies = Q(
        oversightbody__trialoversight__trial=event.trial,
        oversightbody__kind=OversightBody.Kind.DATA_MONITORING_COMMITTEE,
    )
    unblinded = set(users.filter(coordinating | unblinded_bodies).values_list("pk", flat=True))
    told = users.filter(coordinating | overseeing) if everyone else users.filter(coordinating)
    return {user.pk: (user, user.pk not in unblinded) for user in told.distinct().order_by("pk")}


def _delivery(user: AbstractBaseUser, *, urgent: bool, digesting: set[int]) -> str:
    if not user.email:
        return Notification.Delivery.ADMIN_ONLY
    if user.pk in digesting and not urgent:
        return Notification.Delivery.DIGEST
    return Notification.Delivery.IMMEDIATE


def notifications_from_event(event: TrialEvent) -> list[Notification]:
    """The audit listener (registered in notifications.apps): in the transaction that appends
    ``event``, one notification per person it tells (notifications.notices), at most once per
    event and person (the unique key). Those to e-mail at once are sent after the commit by a
    task; if the broker cannot take it, beat's sweep sends them within a minute."""
    notice = notice_for(event)
    if notice is None:
        return []
    recipients = _recipients(event, everyone=notice.everyone)
    digesting = set(
        NotificationPreference.objects.filter(
            user__in=recipients, delivery=NotificationPreference.Delivery.DAILY_DIGEST
        ).values_list("user_id", flat=True)
    )
    rows = []
    for user, blinded in recipients.values():
        delivery = _delivery(user, urgent=notice.urgent, digesting=digesting)
        rows.append(
            Notification(
                event=event,
                recipient=user,
                trial=event.trial,
                kind=event.kind,
                subject=notice.subject[:200],
                body=notice.body_for(blinded=blinded),
                link=notice.link,
                urgent=notice.urgent,
                delivery=delivery,
                due_at=event.at,
                state=(
                    Notification.State.SKIPPED
                    if delivery == Notification.Delivery.ADMIN_ONLY
                    else Notification.State.PENDING
                ),
                note="no e-mail address" if delivery == Notification.Delivery.ADMIN_ONLY else "",
            )
        )
    created = Notification.objects.bulk_create(rows, ignore_conflicts=True)
    if any(row.delivery == Notification.Delivery.IMMEDIATE for row in rows):
        # tasks imports this module.
        from notifications.tasks import notifications_send

        # robust: the event has committed; a broker that is down must not turn it into an
        # error for the person who acted (the sweep is the backstop).
        transaction.on_commit(partial(notifications_send.delay, event.pk), robust=True)
    return created


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def notification_message(notification: Notification) -> EmailMessage:
    context = {"notification": notification, "url": _absolute(notification.link)}
    return EmailMessage(
        subject=f"[Flourish] {notification.subject}",
        body=render_to_string("notifications/email/notification.txt", context),
        to=[notification.recipient.email],
    )


def digest_message(digest: Digest) -> EmailMessage:
    listed = digest.notifications.select_related("trial").order_by("created_at", "pk")
    context = {
        "digest": digest,
        "notifications": [(n, _absolute(n.link)) for n in listed],
    }
    return EmailMessage(
        subject=f"[Flourish] Your notifications until {digest.day:%d %B %Y}",
        body=render_to_string("notifications/email/digest.txt", context),
        to=[digest.recipient.email],
    )


def _recipient_unreachable(row: Notification | Digest, now: datetime) -> str:
    if not row.recipient.is_active:
        return "the account is inactive"
    if not row.recipient.email:
        return "no e-mail address"
    return ""


def notifications_send_due(
    *, now: datetime | None = None, event: TrialEvent | None = None
) -> dict[str, int]:
    """E-mail every notification due at once, each at most once (trials.outbox); with
    ``event``, only that event's (the task started when it committed). The task and the sweep
    may run together: neither takes a row the other took."""
    scope = Q(delivery=Notification.Delivery.IMMEDIATE)
    if event is not None:
        scope &= Q(event=event)
    return outbox_send_due(
        Notification,
        message=notification_message,
        lease_seconds=_lease_seconds(),
        max_attempts=settings.INVITATION_MAX_ATTEMPTS,
        now=now,
        scope=scope,
        related=("recipient", "trial"),
        skip_reason=_recipient_unreachable,
    )


def digests_compose(*, now: datetime | None = None) -> int:
    """Gather each person's notifications that wait for a digest and were made before today
    (local time) into today's digest, one per person and day; returns how many digests got
    notifications. A notification that arrives after today's digest has gone out waits for
    tomorrow's."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    today_starts = timezone.make_aware(datetime.combine(today, time.min))
    waiting = Notification.objects.filter(
        delivery=Notification.Delivery.DIGEST, digest__isnull=True, created_at__lt=today_starts
    )
    composed = 0
    recipients = waiting.order_by("recipient_id").values_list("recipient_id", flat=True)
    for recipient_id in recipients.distinct():
        with transaction.atomic():
            digest, _ = Digest.objects.get_or_create(
                recipient_id=recipient_id, day=today, defaults={"due_at": now}
            )
            digest = Digest.objects.select_for_update().get(pk=digest.pk)
            if digest.state != Digest.State.PENDING:
                continue  # taken by a sender already
            composed += bool(waiting.filter(recipient_id=recipient_id).update(digest=digest))
    return composed


def digests_send_due(*, now: datetime | None = None) -> dict[str, int]:
    """E-mail every composed digest at most once (trials.outbox)."""
    return outbox_send_due(
        Digest,
        message=digest_message,
        lease_seconds=_lease_seconds(),
        max_attempts=settings.INVITATION_MAX_ATTEMPTS,
        now=now,
        related=("recipient",),
        skip_reason=_recipient_unreachable,
    )


def notifications_mark_read(*, user: AbstractBaseUser, notifications: QuerySet) -> int:
    """Mark ``user``'s own notifications among ``notifications`` read; returns how many."""
    return notifications.filter(recipient=user, read_at__isnull=True).update(read_at=timezone.now())


def notification_preference_set(*, user: AbstractBaseUser, delivery: str) -> NotificationPreference:
    """``user``'s choice: each notification at once, or one digest a day. It applies to the
    notifications made from now on; urgent ones go at once regardless."""
    if delivery not in NotificationPreference.Delivery.values:
        raise ValueError(f"{delivery!r} is not a way of delivering notifications.")
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user, defaults={"delivery": delivery}
    )
    return preference
