"""Who may read a notification or change a notification preference: only the person it belongs
to — not a coordinator of the trial, not a superuser (django-rules, asked with ``has_perm``, as in
trials.rules; registered here because trials sits below this app)."""

import rules


@rules.predicate
def is_recipient(user, notification) -> bool:
    return notification is not None and notification.recipient_id == user.pk


@rules.predicate
def is_owner(user, preference) -> bool:
    return preference is not None and preference.user_id == user.pk


rules.add_perm("notifications.read_notification", is_recipient)
rules.add_perm("notifications.set_notificationpreference", is_owner)
