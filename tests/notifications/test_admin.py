"""In the admin, each person sees and marks read their own notifications, and sets their own
way of receiving them; nobody — a fellow coordinator, a superuser — sees another's."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification, NotificationPreference
from notifications.services import notification_preference_set
from trials.models import TrialEvent
from trials.services import event_record

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:notifications_notification_changelist"


@pytest.fixture
def told(people):
    trial, users = people
    event_record(trial=trial, kind=TrialEvent.Kind.CHANGES_REQUESTED, body="Ethics", note="A.")
    event_record(trial=trial, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED, run=4, error="Stopped.")
    return users


def _own(users, name):
    return Notification.objects.filter(recipient=users[name])


def test_each_person_lists_only_their_own_notifications(client, told):
    client.force_login(told["ethicist"])
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "N: Ethics requests changes" in page
    assert "analysis run 4 failed" not in page  # the coordinators' alone
    assert "Your notifications (1 unread)" in page
    client.force_login(told["coord1"])
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "analysis run 4 failed" in page and "Your notifications (2 unread)" in page


@pytest.mark.parametrize("who", ["coord2", "superuser"])
def test_nobody_reads_or_marks_another_s_notification(client, told, who):
    user = told.get(who) or get_user_model().objects.create_superuser("root", "r@x.org", "pw")
    theirs = _own(told, "coord1").first()
    client.force_login(user)
    change = reverse("admin:notifications_notification_change", args=[theirs.pk])
    assert client.get(change).status_code == 403
    assert theirs.subject not in client.get(reverse(CHANGELIST)).content.decode() or (
        who == "coord2"  # coord2 has a notification of the same event, with the same subject
    )
    client.post(reverse(CHANGELIST), {"action": "mark_read", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_a_person_marks_their_own_notifications_read(client, told):
    mine = _own(told, "coord1")
    client.force_login(told["coord1"])
    page = client.get(reverse("admin:notifications_notification_change", args=[mine[0].pk]))
    assert page.status_code == 200 and "Error: Stopped." in page.content.decode()
    response = client.post(
        reverse(CHANGELIST),
        {"action": "mark_read", "_selected_action": [n.pk for n in mine]},
        follow=True,
    )
    assert b"2 marked read." in response.content
    assert not mine.filter(read_at__isnull=True).exists()
    assert "Your notifications (0 unread)" in response.content.decode()
    assert _own(told, "coord2").filter(read_at__isnull=True).count() == 2


def test_a_person_sets_their_own_delivery_and_no_one_else_s(client, told):
    client.force_login(told["coord1"])
    add = reverse("admin:notifications_notificationpreference_add")
    response = client.post(add, {"delivery": "daily_digest"})
    assert response.status_code == 302
    mine = NotificationPreference.objects.get()
    assert (mine.user, mine.delivery) == (told["coord1"], "daily_digest")
    assert client.get(add).status_code == 403  # one each: change it instead
    change = reverse("admin:notifications_notificationpreference_change", args=[mine.pk])
    client.post(change, {"delivery": "immediate"})
    mine.refresh_from_db()
    assert mine.delivery == "immediate"

    client = Client()  # a browser of their own
    client.force_login(told["coord2"])
    assert client.get(change).status_code == 403
    assert client.post(change, {"delivery": "daily_digest"}).status_code == 403
    mine.refresh_from_db()
    assert mine.delivery == "immediate"
    listed = client.get(reverse("admin:notifications_notificationpreference_changelist"))
    assert "coord1" not in listed.content.decode()


def test_the_preference_applies_to_notifications_made_after_it(told):
    notification_preference_set(user=told["coord2"], delivery="daily_digest")
    before = set(_own(told, "coord2").values_list("delivery", flat=True))
    trial = _own(told, "coord2").first().trial
    event_record(trial=trial, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED, run=5, error="Again.")
    assert before == {"immediate"}
    assert _own(told, "coord2").get(subject__contains="run 5").delivery == "digest"


def test_every_admin_page_links_to_the_person_s_notifications_with_the_unread_count(client, told):
    client.force_login(told["coord1"])
    link = (
        f'<a href="{reverse(CHANGELIST)}" class="notifications-link">Notifications (2 unread)</a>'
    )
    for page in (reverse("admin:index"), reverse(CHANGELIST)):
        assert link in client.get(page).content.decode()
    Notification.objects.filter(recipient=told["coord1"]).update(read_at=timezone.now())
    page = client.get(reverse("admin:index")).content.decode()
    assert 'class="notifications-link">Notifications</a>' in page
