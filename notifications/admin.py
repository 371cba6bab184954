"""Each person's notifications and their choice of delivery, in the admin: everyone sees and
changes their own only — no coordinator, body member or superuser sees another's
(notifications.rules)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html

from notifications.models import Notification, NotificationPreference
from notifications.selectors import notifications_of, notifications_unread_count
from notifications.services import notification_preference_set, notifications_mark_read


class OwnOnlyAdmin(admin.ModelAdmin):
    """Rows that belong to one person (``owner_field``): every staff user has the page, lists
    their own rows, and another's row is a 403, never a redirect or a page."""

    owner_field = ""
    rule = ""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(**{self.owner_field: request.user})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        exists = str(object_id).isdigit() and self.model.objects.filter(pk=object_id).exists()
        if obj is None and exists:
            raise PermissionDenied("This belongs to someone else.")
        return obj

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request) and (
            obj is None or request.user.has_perm(self.rule, obj)
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(OwnOnlyAdmin):
    owner_field = "recipient"
    rule = "notifications.read_notification"
    list_display = ["created_at", "trial", "subject", "urgent", "delivered", "unread"]
    list_filter = ["kind", "urgent", ("read_at", admin.EmptyFieldListFilter)]
    fields = ["created_at", "trial", "subject", "body", "open_link", "delivered", "read_at"]
    readonly_fields = fields
    actions = ["mark_read"]

    def get_queryset(self, request):
        return notifications_of(request.user).select_related("trial", "digest")

    def changelist_view(self, request, extra_context=None):
        unread = notifications_unread_count(request.user)
        title = f"Your notifications ({unread} unread)"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(boolean=True)
    def unread(self, notification: Notification) -> bool:
        return notification.read_at is None

    @admin.display(description="e-mail")
    def delivered(self, notification: Notification) -> str:
        if notification.delivery == Notification.Delivery.DIGEST:
            state = notification.digest.state if notification.digest else "waiting"
            return f"{notification.get_delivery_display()}: {state}"
        return f"{notification.get_delivery_display()}: {notification.state}"

    @admin.display(description="where to act")
    def open_link(self, notification: Notification) -> str:
        return format_html('<a href="{}">{}</a>', notification.link, notification.link)

    @admin.action(description="Mark the selected notifications read")
    def mark_read(self, request, queryset) -> None:
        count = notifications_mark_read(user=request.user, notifications=queryset)
        self.message_user(request, f"{count} marked read.", messages.SUCCESS)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(OwnOnlyAdmin):
    """Each at once, or one digest a day: the signed-in person's choice, for themselves."""

    owner_field = "user"
    rule = "notifications.set_notificationpreference"
    list_display = ["user", "delivery"]
    fields = ["delivery"]

    def has_add_permission(self, request) -> bool:
        mine = NotificationPreference.objects.filter(user=request.user).exists()
        return self.has_module_permission(request) and not mine

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        saved = notification_preference_set(user=request.user, delivery=obj.delivery)
        obj.pk, obj.user = saved.pk, saved.user
