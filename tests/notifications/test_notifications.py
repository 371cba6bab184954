"""Notifications are made from audit events, in the event's transaction, once per event and
person; they reach the right people, say nothing of an arm to those who read blinded, and go out
by e-mail (through a real SMTP server on loopback) at most once, at once or in a daily digest as
each person chose."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from notifications.models import Digest, Notification, NotificationPreference
from notifications.notices import NOTICES
from notifications.services import (
    digests_compose,
    digests_send_due,
    notification_preference_set,
    notifications_send_due,
)
from safety.services import adverse_event_assess, adverse_event_record, adverse_event_report
from tests.notifications.conftest import COORDINATORS, EVERYONE
from trials.models import OversightBody, TrialEvent
from trials.services import event_record, participant_enrol, suspension_lift, trial_suspend

pytestmark = pytest.mark.django_db

Kind = TrialEvent.Kind


def _serious_adverse_event(trial, **detail):
    return event_record(
        trial=trial,
        kind=Kind.ADVERSE_EVENT_RECORDED,
        adverse_event=1,
        participant=1,
        category="distress",
        severity="severe",
        serious=True,
        newly_serious=True,
        relatedness="possibly",
        expected=False,
        outcome="recovering",
        **detail,
    )


def _told(event) -> list[str]:
    rows = Notification.objects.filter(event=event)
    return sorted(rows.values_list("recipient__username", flat=True))


def test_a_serious_adverse_event_tells_every_body_member_and_coordinator(people):
    trial, users = people
    event = _serious_adverse_event(trial)
    assert _told(event) == EVERYONE  # not the analyst; the member of two bodies once
    notification = Notification.objects.get(event=event, recipient=users["ethicist"])
    assert notification.urgent
    assert "serious adverse event" in notification.subject
    assert "Severity: severe" in notification.body
    assert notification.delivery == Notification.Delivery.IMMEDIATE
    no_mail = Notification.objects.get(event=event, recipient=users["no_mail"])
    assert no_mail.delivery == Notification.Delivery.ADMIN_ONLY


def test_events_that_do_not_notify_make_nothing(people):
    trial, users = people
    quiet = [
        event_record(trial=trial, kind=Kind.ADVERSE_EVENT_RECORDED, serious=False),
        # A reassessment of an event that was serious already is not announced again.
        event_record(
            trial=trial, kind=Kind.ADVERSE_EVENT_ASSESSED, serious=True, newly_serious=False
        ),
        event_record(trial=trial, kind=Kind.ADVERSE_EVENT_REPORTED, severity="mild"),
        event_record(trial=trial, kind=Kind.STATE_CHANGED, previous="enrolling", to="follow_up"),
        event_record(trial=trial, kind=Kind.MEMBER_ADDED, user="x", role="analyst"),
    ]
    assert not Notification.objects.filter(event__in=quiet).exists()


def test_a_participant_s_severe_report_tells_everyone(people):
    trial, _ = people
    event = event_record(
        trial=trial, kind=Kind.ADVERSE_EVENT_REPORTED, category="distress", severity="severe"
    )
    assert _told(event) == EVERYONE


def test_the_person_who_acted_is_not_told_of_their_own_act(people):
    trial, users = people
    ethics = OversightBody.objects.get(name="Ethics")
    trial_suspend(trial=trial, body=ethics, reason="Two serious events.", actor=users["ethicist"])
    event = trial.events.get(kind=Kind.STATE_CHANGED, detail__to="suspended")
    assert _told(event) == [name for name in EVERYONE if name != "ethicist"]
    notification = Notification.objects.get(event=event, recipient=users["coord1"])
    assert notification.subject == "N: suspended by Ethics"
    assert "Two serious events." in notification.body


def test_flags_on_participants_and_failed_runs_go_to_the_coordinators_alone(people):
    trial, _ = people
    deterioration = event_record(
        trial=trial, kind=Kind.DETERIORATION_FLAGGED, run=3, participants=2, flags=2, outcomes=[]
    )
    crisis = event_record(
        trial=trial, kind=Kind.SAFETY_ANSWER_FLAGGED, participant=5, instrument="phq9", item="9"
    )
    assert _told(deterioration) == _told(crisis) == COORDINATORS
    assert Notification.objects.filter(event=crisis, urgent=True).count() == 2


def test_no_notice_names_an_arm_to_a_blinded_reader(people):
    trial, users = people
    event = event_record(
        trial=trial,
        kind=Kind.ARM_INTEGRITY_FAILURE,
        arm="b",
        source="canary",
        expected_model="m",
        served_model="m-2025-preview",
        expected_fingerprint="fp_1",
        served_fingerprint="fp_2",
    )
    assert _told(event) == EVERYONE
    blinded = Notification.objects.get(event=event, recipient=users["ethicist"]).body
    assert blinded.startswith("Arm ") and "B" not in blinded.split()
    assert "m-2025-preview" not in blinded and "fp_" not in blinded
    # The coordinators and the data monitoring committee read it unblinded.
    for name in ("coord1", "monitor"):
        unblinded = Notification.objects.get(event=event, recipient=users[name]).body
        assert unblinded.startswith("B ") and "Served model: m-2025-preview" in unblinded
    # No notice carries any part of an arm's configuration.
    for body in Notification.objects.values_list("body", flat=True):
        assert "Be kind." not in body and "127.0.0.1:9000" not in body


def test_a_harm_boundary_crossed_gives_the_figures(people):
    trial, users = people
    event = event_record(
        trial=trial,
        kind=Kind.HARM_BOUNDARY_CROSSED,
        boundary={"metric": "serious_adverse_events", "max_excess": 0.05, "confidence": 0.95},
        arm="Arm 2",
        arm_participants=20,
        arm_with_harm=8,
        control_participants=20,
        control_with_harm=1,
        difference=0.35,
        lower=0.11,
        upper=0.56,
    )
    assert _told(event) == EVERYONE
    for name in EVERYONE:
        body = Notification.objects.get(event=event, recipient=users[name]).body
        assert "8 of 20" in body and "1 of 20" in body and "0.35 (0.11 to 0.56)" in body
    # Only compared arms cross, so the arm's label would tell blinded readers which is the
    # control: they are not told it; the coordinators and the committee are.
    assert "Arm 2" not in Notification.objects.get(event=event, recipient=users["ethicist"]).body
    for name in ("coord1", "monitor"):
        assert "Arm: Arm 2" in Notification.objects.get(event=event, recipient=users[name]).body


def test_the_privacy_budget_tells_once_when_nearly_spent_and_once_per_refused_window(people):
    trial, _ = people

    def reserved(spent):
        return event_record(
            trial=trial,
            kind=Kind.PRIVACY_BUDGET_RESERVED,
            key=f"w{spent}",
            nano_rho=10,
            spent_nano_rho=spent,
            total_nano_rho=100,
        )

    quiet, crossing, after = reserved(70), reserved(80), reserved(90)
    assert _told(quiet) == _told(after) == []
    assert _told(crossing) == EVERYONE
    assert "80% of the privacy budget" in Notification.objects.filter(event=crossing)[0].subject
    first = event_record(trial=trial, kind=Kind.PRIVACY_BUDGET_REFUSED, key="w9", nano_rho=10)
    again = event_record(trial=trial, kind=Kind.PRIVACY_BUDGET_REFUSED, key="w9", nano_rho=10)
    assert _told(first) == EVERYONE and _told(again) == []


def test_notifications_stand_or_fall_with_their_event(people):
    trial, _ = people
    with pytest.raises(RuntimeError), transaction.atomic():
        _serious_adverse_event(trial)
        assert Notification.objects.count() == len(EVERYONE)
        raise RuntimeError("the change the event recorded failed")
    assert not Notification.objects.exists()


def test_one_notification_per_event_and_person(people):
    trial, users = people
    event = _serious_adverse_event(trial)
    duplicate = Notification.objects.get(event=event, recipient=users["coord1"])
    duplicate.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_each_inbox_gets_a_serious_event_once_however_often_senders_run(people, smtp_settings):
    trial, users = people
    _serious_adverse_event(trial)
    _serious_adverse_event(trial)
    first = notifications_send_due()
    again = notifications_send_due()
    assert first["sent"] == 12 and again["sent"] == 0
    expected = sorted(f"{name}@example.org" for name in EVERYONE if name != "no_mail") * 2
    assert smtp_settings.recipients() == sorted(expected)
    subject, body = smtp_settings.of("ethicist@example.org")[0]
    assert subject == "[Flourish] N: a serious adverse event was recorded"
    assert f"/admin/trials/trial/{trial.pk}/change/" in body


@pytest.mark.django_db(transaction=True)
def test_senders_running_at_once_send_each_notification_once(people, smtp_settings):
    trial, _ = people
    for _ in range(3):
        _serious_adverse_event(trial)
    barrier = threading.Barrier(4)
    errors = []

    def sender():
        # Each claims and sends through its own connections, as the task and the sweep do.
        try:
            barrier.wait()
            notifications_send_due()
        except Exception as error:  # noqa: BLE001 — reported below
            errors.append(error)
        finally:
            connection.close()

    senders = [threading.Thread(target=sender) for _ in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    assert errors == []
    expected = sorted(f"{name}@example.org" for name in EVERYONE if name != "no_mail") * 3
    assert smtp_settings.recipients() == sorted(expected)
    assert set(Notification.objects.values_list("state", flat=True)) == {"sent", "skipped"}


def test_a_send_left_in_doubt_is_never_resent(people, smtp_settings, settings):
    trial, users = people
    event = _serious_adverse_event(trial)
    long_ago = timezone.now() - timedelta(seconds=settings.INVITATION_SEND_LEASE_SECONDS + 1)
    in_doubt = Notification.objects.get(event=event, recipient=users["coord1"])
    # A sender claimed it and died before the mail server answered.
    Notification.objects.filter(pk=in_doubt.pk).update(state="sending", claimed_at=long_ago)
    notifications_send_due()
    notifications_send_due()
    in_doubt.refresh_from_db()
    assert in_doubt.state == "unknown" and "may have gone out" in in_doubt.note
    assert "coord1@example.org" not in smtp_settings.recipients()
    assert len(smtp_settings.recipients()) == 5


def test_a_refused_connection_is_retried_then_failed(people, settings):
    trial, users = people
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there
    event = _serious_adverse_event(trial)
    assert notifications_send_due()["retry"] == 6
    row = Notification.objects.get(event=event, recipient=users["coord1"])
    assert row.state == "pending" and row.due_at > timezone.now()


def test_a_daily_digest_gathers_the_day_s_notifications_in_one_e_mail(people, smtp_settings):
    trial, users = people
    notification_preference_set(
        user=users["coord1"], delivery=NotificationPreference.Delivery.DAILY_DIGEST
    )
    changes = event_record(
        trial=trial, kind=Kind.CHANGES_REQUESTED, body="Ethics", version=1, note="Add a wave."
    )
    failed = event_record(trial=trial, kind=Kind.ANALYSIS_RUN_FAILED, run=7, error="Diverged.")
    serious = _serious_adverse_event(trial)
    notifications_send_due()
    # Serious safety matters go at once whatever the preference; the rest wait.
    assert [s for s, _ in smtp_settings.of("coord1@example.org")] == [
        "[Flourish] N: a serious adverse event was recorded"
    ]
    waiting = Notification.objects.filter(recipient=users["coord1"], event__in=[changes, failed])
    assert {n.delivery for n in waiting} == {Notification.Delivery.DIGEST}
    assert Notification.objects.get(event=serious, recipient=users["coord1"]).urgent

    assert digests_compose() == 0  # today's notifications wait for the day's end
    tomorrow = timezone.now() + timedelta(days=1)
    assert digests_compose(now=tomorrow) == 1
    assert digests_compose(now=tomorrow) == 0
    assert digests_send_due(now=tomorrow)["sent"] == 1
    assert digests_send_due(now=tomorrow)["sent"] == 0
    digests = smtp_settings.of("coord1@example.org")[1:]
    assert len(digests) == 1
    subject, body = digests[0]
    assert subject.startswith("[Flourish] Your notifications until")
    assert "N: Ethics requests changes" in body and "Add a wave." in body
    assert "N: analysis run 7 failed" in body and "Diverged." in body
    assert "serious adverse event" not in body
    assert Digest.objects.get().notifications.count() == 2
    # The other coordinator chose nothing: each went to them at once.
    assert len(smtp_settings.of("coord2@example.org")) == 3


def test_a_flagged_guardrail_gives_each_flagged_comparison(people):
    trial, users = people
    event = event_record(
        trial=trial,
        kind=Kind.GUARDRAIL_FLAGGED,
        run=9,
        flagged=[
            {
                "arm": "Arm 1",
                "engagement_source": "telemetry",
                "flourishing_source": "mental_wellbeing",
                "probability": 0.97,
                "threshold": 0.95,
            }
        ],
    )
    assert _told(event) == EVERYONE
    body = Notification.objects.get(event=event, recipient=users["coord1"]).body
    assert "Arm 1: telemetry engagement rises while mental_wellbeing does not" in body
    assert "probability 0.97, threshold 0.95" in body
    blinded = Notification.objects.get(event=event, recipient=users["ethicist"]).body
    assert "Arm 1" not in blinded and "probability 0.97, threshold 0.95" in blinded


def test_lifting_a_suspension_tells_who_lifted_it_and_why(people):
    trial, users = people
    ethics = OversightBody.objects.get(name="Ethics")
    trial_suspend(trial=trial, body=ethics, reason="Two serious events.", actor=users["ethicist"])
    suspension_lift(trial=trial, body=ethics, rationale="Both resolved.", actor=users["both"])
    event = trial.events.get(kind=Kind.SUSPENSION_LIFTED)
    assert _told(event) == [name for name in EVERYONE if name != "both"]
    body = Notification.objects.get(event=event, recipient=users["ethicist"]).body
    assert "Rationale: Both resolved." in body and "Suspended because: Two serious events." in body
    assert "Still waiting for: nobody" in body


def test_adverse_events_through_the_safety_services_tell_as_their_seriousness_says(people):
    trial, users = people
    participant = participant_enrol(
        trial=trial,
        email="p@example.org",
        consent_document=trial.consent_documents.get(),
        scopes=["surveys"],
    )
    adverse_event_report(
        participant=participant, category="distress", severity="moderate", report_key="a" * 32
    )
    assert not Notification.objects.exists()
    recorded = adverse_event_record(
        actor=users["coord1"],
        trial=trial,
        participant=participant,
        category="harmful_reply",
        severity="severe",
        serious=True,
        description="Told them to stop their medication.",
    )
    event = trial.events.get(kind=Kind.ADVERSE_EVENT_RECORDED)
    assert _told(event) == [name for name in EVERYONE if name != "coord1"]
    body = Notification.objects.filter(event=event).first().body
    assert "What happened: harmful_reply" in body and "medication" not in body
    # Assessed again, still serious: not announced a second time.
    adverse_event_assess(
        actor=users["coord2"],
        adverse_event=recorded,
        serious=True,
        relatedness="probably",
        expected=False,
        outcome="recovering",
    )
    assert not Notification.objects.filter(event__kind=Kind.ADVERSE_EVENT_ASSESSED).exists()


@pytest.mark.parametrize("kind", sorted(NOTICES))
def test_an_event_with_a_sparse_detail_is_still_recorded(people, kind):
    """A notice is made in the event's transaction: a detail without the keys it reads must not
    stop the event (and the change it records) from being written."""
    trial, _ = people
    event = event_record(trial=trial, kind=kind)
    for notification in Notification.objects.filter(event=event):
        assert "None" not in notification.body
