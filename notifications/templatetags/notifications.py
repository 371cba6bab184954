"""The admin header's link to the signed-in person's own notifications, with how many are
unread (config/templates/admin/base_site.html puts it beside the user links)."""

from django import template
from django.urls import reverse

from notifications.selectors import notifications_unread_count

register = template.Library()


@register.inclusion_tag("notifications/header_link.html", takes_context=True)
def notifications_link(context) -> dict:
    user = context["request"].user
    if not (user.is_authenticated and user.is_staff):
        return {"url": None}
    return {
        "url": reverse("admin:notifications_notification_changelist"),
        "unread": notifications_unread_count(user),
    }
