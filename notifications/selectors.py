"""Reads of notifications: each person reads their own, nobody another's."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from notifications.models import Notification


def notifications_of(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Notification]:
    """``user``'s own notifications (none for an anonymous visitor), newest first."""
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(recipient=user)


def notifications_unread_count(user: AbstractBaseUser | AnonymousUser) -> int:
    return notifications_of(user).filter(read_at__isnull=True).count()
