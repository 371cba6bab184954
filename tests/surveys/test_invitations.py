"""Invitations and reminders as due rows: planned once, sent at most once, only to people whose
survey consent is active, and never resent after a sender died mid-send."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from surveys.models import Invitation, Wave
from surveys.services import (
    invitation_release,
    invitations_plan,
    invitations_send_due,
    response_submit,
)
from trials.models import ConsentDocument, ConsentGrant, Participant
from trials.services import participant_enrol

pytestmark = pytest.mark.django_db


def _enrol(trial, email, **kwargs):
    return participant_enrol(
        trial=trial,
        email=email,
        consent_document=ConsentDocument.objects.get(trial=trial),
        scopes=["surveys"],
        **kwargs,
    )


@pytest.fixture
def newcomers(small_trial):
    Wave.objects.filter(trial=small_trial, index=0).update(reminder_days=[2, 5])
    return [_enrol(small_trial, f"n{i}@example.org") for i in range(3)]


def test_plan_makes_one_row_per_participant_wave_and_reminder_once(small_trial, newcomers):
    created = invitations_plan()
    everyone = small_trial.participants.filter(withdrawn_at__isnull=True).count()
    # Wave 0 has an invitation and two reminders; waves 1 and 2 an invitation each.
    assert created == everyone * (3 + 1 + 1)
    assert invitations_plan() == 0
    rows = Invitation.objects.filter(participant=newcomers[0]).order_by("wave__index", "sequence")
    enrolled = newcomers[0].enrolled_at
    assert [(r.wave.index, r.sequence, r.due_at - enrolled) for r in rows] == [
        (0, 0, timedelta(0)),
        (0, 1, timedelta(days=2)),
        (0, 2, timedelta(days=5)),
        (1, 0, timedelta(days=14)),
        (2, 0, timedelta(days=28)),
    ]


def test_due_invitations_are_sent_once_with_a_personal_link(small_trial, newcomers):
    invitations_plan()
    outcome = invitations_send_due()
    assert outcome["sent"] == 3
    assert sorted(m.to[0] for m in mail.outbox) == [f"n{i}@example.org" for i in range(3)]
    message = next(m for m in mail.outbox if m.to == ["n0@example.org"])
    assert "is open" in message.subject and small_trial.title in message.subject
    assert "http://localhost:8000/s/" in message.body
    assert "/s/my-data/" in message.body
    # The seeded cohort's waves closed long ago: skipped with the reason, not sent.
    assert Invitation.objects.filter(state="skipped", note="the wave has closed").exists()
    assert invitations_send_due()["sent"] == 0
    assert len(mail.outbox) == 3


def test_reminders_go_only_to_those_who_have_not_answered(small_trial, newcomers):
    invitations_plan()
    invitations_send_due()
    answered = newcomers[0]
    answers = {
        "who5": {f"who5_{i}": 3 for i in range(1, 6)},
        "swls": {f"swls_{i}": 4 for i in range(1, 6)},
    }
    response_submit(participant=answered, wave=small_trial.waves.get(index=0), answers=answers)
    mail.outbox.clear()
    outcome = invitations_send_due(now=timezone.now() + timedelta(days=2, minutes=1))
    assert outcome["sent"] == 2
    assert all("Reminder" in m.subject for m in mail.outbox)
    assert "n0@example.org" not in [m.to[0] for m in mail.outbox]
    reminder = Invitation.objects.get(participant=answered, wave__index=0, sequence=1)
    assert (reminder.state, reminder.note) == ("skipped", "already answered")


def test_only_participants_with_active_survey_consent_are_invited(small_trial, newcomers):
    ConsentGrant.objects.filter(participant=newcomers[1], scope="surveys").update(
        revoked_at=timezone.now()
    )
    invitations_plan()
    # Withdrawn after the rows were planned (nobody withdrawn is planned at all).
    Participant.objects.filter(pk=newcomers[2].pk).update(withdrawn_at=timezone.now())
    invitations_send_due()
    assert [m.to for m in mail.outbox] == [["n0@example.org"]]
    notes = dict(
        Invitation.objects.filter(
            participant__in=newcomers[1:], sequence=0, wave__index=0
        ).values_list("participant__contact__email", "note")
    )
    assert notes == {
        "n1@example.org": "no active consent to surveys",
        "n2@example.org": "withdrawn",
    }


def test_invitations_speak_the_participant_s_language(small_trial):
    _enrol(small_trial, "de@example.org", locale="de")
    invitations_plan()
    invitations_send_due()
    (message,) = [m for m in mail.outbox if m.to == ["de@example.org"]]
    assert "Ihre Umfrage für" in message.subject
    assert "Eine neue Umfrage ist für Sie geöffnet." in message.body
    # The time it takes is the wave's estimate (surveys.duration), as its first page says.
    assert "Sie dauert etwa 2 Minuten." in message.body


def test_a_row_left_sending_by_a_dead_sender_is_never_resent(small_trial, newcomers, settings):
    invitations_plan()
    row = Invitation.objects.get(participant=newcomers[0], wave__index=0, sequence=0)
    # What a worker killed between claiming and marking sent leaves behind.
    Invitation.objects.filter(pk=row.pk).update(
        state="sending", claimed_at=timezone.now() - timedelta(hours=1), attempts=1
    )
    outcome = invitations_send_due()
    assert outcome["abandoned"] == 1
    assert "n0@example.org" not in [m.to[0] for m in mail.outbox]
    row.refresh_from_db()
    assert row.state == "unknown"
    invitations_send_due()
    assert "n0@example.org" not in [m.to[0] for m in mail.outbox]
    # A coordinator who checked that it never arrived lets it go again.
    invitation_release(invitation=row)
    invitations_send_due()
    assert [m.to[0] for m in mail.outbox].count("n0@example.org") == 1


def test_a_refused_connection_is_retried_then_marked_failed(small_trial, newcomers, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    invitations_plan()
    now = timezone.now()
    assert invitations_send_due(now=now)["retry"] == 3
    row = Invitation.objects.get(participant=newcomers[0], wave__index=0, sequence=0)
    assert (row.state, row.attempts) == ("pending", 1)
    for attempt in range(2, settings.INVITATION_MAX_ATTEMPTS + 1):
        invitations_send_due(now=now + timedelta(hours=attempt))
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", 3)


@pytest.mark.django_db(transaction=True)
def test_overlapping_sweeps_send_each_invitation_once(small_trial):
    for number in range(30):
        _enrol(small_trial, f"crowd{number}@example.org")
    invitations_plan()
    barrier = threading.Barrier(4)
    errors = []

    def sweep():
        try:
            barrier.wait()
            invitations_send_due()
        except Exception as error:  # noqa: BLE001 — reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    invitations_send_due()
    assert errors == []
    recipients = [m.to[0] for m in mail.outbox]
    assert len(recipients) == len(set(recipients)) == 30
    assert Invitation.objects.filter(sequence=0, wave__index=0, state="sent").count() == 30


def test_people_paused_by_a_new_consent_version_are_still_invited(small_trial, newcomers):
    # The invitation's link opens the new version first: it is their next visit, where they
    # consent again (surveys.views); skipping them would leave them paused for good.
    first = ConsentDocument.objects.get(trial=small_trial)
    ConsentDocument.objects.create(
        trial=small_trial,
        version=first.version + 1,
        locale=first.locale,
        text="New terms.",
        scopes=first.scopes,
    )
    invitations_plan()
    assert invitations_send_due()["sent"] == 3
    assert not Invitation.objects.filter(note="no active consent to surveys").exists()
