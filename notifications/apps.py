from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from notifications import rules  # noqa: F401 — registers the rules
        from notifications.services import notifications_from_event
        from trials.audit import register_event_listener

        # Each audit event that notifies writes its notifications in its own transaction.
        register_event_listener(notifications_from_event)
