"""Who was told what: one notification per audit event and person, delivered by e-mail (at once
or in a daily digest) through the claim-then-send outbox (trials.outbox), and listed in the
admin for its recipient alone."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from trials.models import Trial, TrialEvent
from trials.outbox import OutboxRow


class NotificationPreference(models.Model):
    """How a person wants their notifications by e-mail; without a row, at once. Serious safety
    notifications go at once whatever this says (notifications.notices)."""

    class Delivery(models.TextChoices):
        IMMEDIATE = "immediate", "each at once"
        DAILY_DIGEST = "daily_digest", "once a day, in one e-mail"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    delivery = models.CharField(max_length=20, choices=Delivery.choices, default=Delivery.IMMEDIATE)

    def __str__(self) -> str:
        return f"{self.user}: {self.get_delivery_display()}"


class Digest(OutboxRow):
    """One e-mail listing a person's notifications that waited for the day's digest; at most
    one per person and day it is composed on."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_digests"
    )
    day = models.DateField(help_text="The day it was composed; it lists what came before.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recipient", "day"], name="digest_once_a_day")
        ]
        indexes = [models.Index(fields=["state", "due_at"], name="digest_due")]

    def __str__(self) -> str:
        return f"digest of {self.day} to {self.recipient}"


class Notification(OutboxRow):
    """What one audit event tells one person. Unique per event and recipient, so no retry of
    the listener or the sender can tell anyone twice. The outbox columns (state, due_at, …)
    are those of the e-mail sent at once; a notification in a digest is sent with its digest."""

    class Delivery(models.TextChoices):
        IMMEDIATE = "immediate", "e-mail at once"
        DIGEST = "digest", "e-mail in the daily digest"
        ADMIN_ONLY = "admin_only", "the list in the admin only (no e-mail address)"

    event = models.ForeignKey(TrialEvent, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=50, choices=TrialEvent.Kind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=300, help_text="The page where the recipient can act.")
    urgent = models.BooleanField(
        default=False, help_text="A serious safety matter: sent at once whatever the preference."
    )
    delivery = models.CharField(max_length=20, choices=Delivery.choices)
    digest = models.ForeignKey(
        Digest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "recipient"], name="notification_once")
        ]
        indexes = [
            models.Index(fields=["state", "due_at"], name="notification_due"),
            models.Index(fields=["recipient", "read_at"], name="notification_unread"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject
