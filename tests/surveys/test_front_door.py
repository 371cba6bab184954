"""The front door through Django's test client, from a trial nobody has joined: the recruitment
link, screening (only the outcome kept, counted by CONSORT), e-consent per data stream, the
e-mail confirmation that alone enrols, the baseline invitation at once, one enrolment per
address, and the same journey through a real SMTP server on loopback."""

import re
import socket
import threading
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from analytics.selectors import consort_counts
from surveys.links import data_path
from surveys.models import FrontDoorAttempt, Invitation
from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import (
    Allocation,
    Community,
    ConsentDocument,
    EligibilityScreening,
    Participant,
    ParticipantContact,
    Trial,
)
from trials.selectors import recruitment_link
from trials.services import member_add, trial_transition

pytestmark = pytest.mark.django_db

SCREENING = {
    "min_age": 18,
    "max_age": 80,
    "languages": ["en", "de"],
    "countries": ["GB", "DE"],
    "uses_ai_assistants": "yes",
    "questions": [{"text": "Do you have a smartphone?", "required_answer": "yes"}],
}
ELIGIBLE = {
    "age": "30",
    "languages": ["de"],
    "country": "GB",
    "uses_ai": "yes",
    "question_1": "yes",
}


class Mailbox:
    """A loopback SMTP server's handler: keeps each message's recipient and text."""

    def __init__(self):
        self.recipients: list[str] = []
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.recipients += envelope.rcpt_tos
        self.messages.append(envelope.content.decode())
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    with socket.socket() as probe:  # a free port: the controller checks it can connect
        probe.bind(("127.0.0.1", 0))
        mailbox.port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop(no_assert=True)


@pytest.fixture
def trial() -> Trial:
    trial = enrolling_trial("open", plan=valid_plan(screening=SCREENING))
    trial.description = "Does a kinder assistant help people flourish?"
    trial.save(update_fields=["description"])
    ConsentDocument.objects.create(
        trial=trial,
        version=1,
        locale="de",
        text="Einwilligung.",
        scopes=["surveys", "telemetry"],
    )
    Community.objects.create(slug="leeds", name="Leeds")
    coordinator = get_user_model().objects.create_user("ada", first_name="Ada", last_name="Byron")
    member_add(trial=trial, user=coordinator, role="coordinator")
    return trial


def _screen(client: Client, answers: dict, query: str = ""):
    return client.post(f"/join/open/screening{query}", answers)


def _consent(client: Client, screened, **fields):
    data = {"scopes": ["surveys"], "email": "ann@example.org", "name": "Ann Smith"} | fields
    return client.post(screened.url, data)


def _confirmation_link(message) -> str:
    return re.search(r"http://localhost:8000(/join/open/confirm/\S+/)", message.body)[1]


def test_the_recruitment_page_says_what_who_how_long_and_what_is_asked(client, trial):
    page = client.get("/join/open/")
    html = page.content.decode()
    assert page.status_code == 200
    assert trial.title in html and "Does a kinder assistant help people flourish?" in html
    assert "The study team: Ada Byron." in html and "Approved by: Council, Ethics." in html
    # Three waves of WHO-5 (five items each): a minute each.
    assert html.count("about 1 minute<") == 3 and "After 14 days" in html
    assert "(required)" in html and "The content of your conversations (optional)" in html
    assert 'href="/join/open/?lang=de"' in html and "<script" not in html
    assert 'href="/join/open/screening?lang=en"' in html
    community = client.get("/join/open/leeds/").content.decode()
    assert "Leeds" in community and "/join/open/screening?lang=en&amp;community=leeds" in community
    german = client.get("/join/open/?lang=de").content.decode()
    assert '<html lang="de">' in german and "Private Nutzungszusammenfassungen" in german
    assert "Inhalt" not in german  # the German form does not ask for conversation content
    assert "Nach 14 Tagen: etwa 1 Minute" in german and "Prüfen, ob Sie teilnehmen" in german


def test_unknown_trials_and_communities_are_not_found_and_others_not_recruiting(client, trial):
    assert client.get("/join/nothing/").status_code == 404
    assert client.get("/join/open/nowhere/").status_code == 404
    assert client.get("/join/open/screening?community=nowhere").status_code == 404
    trial_transition(trial=trial, to=Trial.State.SUSPENDED)
    for path in ("/join/open/", "/join/open/screening"):
        page = client.get(path)
        assert page.status_code == 200 and "This study is not recruiting" in page.content.decode()
    assert not EligibilityScreening.objects.exists()


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ({"age": "17"}, "age outside 18-80"),
        ({"languages": []}, "reads none of the study's languages"),
        ({"country": "other"}, "lives outside the study's countries"),
        ({"uses_ai": "no"}, "does not use an AI assistant"),
        ({"question_1": "no"}, "screening question 1"),
    ],
)
def test_ineligible_people_get_a_polite_page_and_only_the_reason_is_kept(
    client, trial, answers, reason
):
    page = _screen(client, ELIGIBLE | answers)
    assert page.status_code == 200
    assert "None of your answers have been kept." in page.content.decode()
    (row,) = EligibilityScreening.objects.values("eligible", "exclusion_reason", "participant")
    assert row == {"eligible": False, "exclusion_reason": reason, "participant": None}


def test_an_unanswered_screening_is_asked_again_and_records_nothing(client, trial):
    page = _screen(client, {"age": "30"})
    assert page.status_code == 400 and "Please answer every question." in page.content.decode()
    assert not EligibilityScreening.objects.exists()


def test_the_whole_journey_enrols_only_when_the_e_mail_link_is_opened(client, trial):
    screened = _screen(client, ELIGIBLE, "?lang=en&community=leeds")
    assert screened.status_code == 302 and screened.url.startswith("/join/open/consent?pass=")
    form = client.get(screened.url).content.decode()
    assert "Consent." in form and 'type="checkbox" name="scopes" value="telemetry"' in form
    refused = _consent(client, screened, scopes=["telemetry"], email="not-an-address", name=" ")
    errors = refused.content.decode()
    assert refused.status_code == 400
    assert "Taking part means answering the surveys: tick that box." in errors
    assert "Enter a valid email address." in errors and "This field is required." in errors
    sent = _consent(client, screened, scopes=["surveys", "telemetry"], email="Ann@Example.org")
    assert "We have sent a link to Ann@Example.org." in sent.content.decode()
    (confirmation,) = mail.outbox
    assert confirmation.to == ["Ann@Example.org"] and "Confirm your e-mail" in confirmation.subject
    assert "Hello Ann Smith," in confirmation.body
    # Nothing is enrolled, allocated or invited before the link is opened.
    assert not Participant.objects.exists() and not Invitation.objects.exists()

    # Opening the link (as a mail scanner might) shows a button and enrols nobody.
    shown = client.get(_confirmation_link(confirmation)).content.decode()
    assert "Join the study" in shown and 'method="post"' in shown
    assert not Participant.objects.exists()
    opened = client.post(_confirmation_link(confirmation))
    assert opened.status_code == 302 and opened.url.startswith("/s/my-data/")
    participant = Participant.objects.get()
    assert (participant.community.slug, participant.locale) == ("leeds", "en")
    assert sorted(participant.consents.values_list("scope", flat=True)) == ["surveys", "telemetry"]
    contact = ParticipantContact.objects.get()
    assert (contact.email, contact.signature_name) == ("Ann@Example.org", "Ann Smith")
    assert timezone.now() - contact.signed_at < timedelta(minutes=1)
    allocation = Allocation.objects.get(participant=participant)
    assert allocation.stratum.key == "community=leeds"
    assert EligibilityScreening.objects.get().participant == participant
    # The baseline wave's invitation went out at once; the later waves' rows wait.
    invitation = mail.outbox[1]
    assert invitation.to == ["Ann@Example.org"] and "is open" in invitation.subject
    states = Invitation.objects.filter(participant=participant).order_by("wave__index")
    assert list(states.values_list("wave__index", "state")) == [
        (0, "sent"),
        (1, "pending"),
        (2, "pending"),
    ]
    my_data = client.get(opened.url).content.decode()
    assert "You have a survey to answer now." in my_data

    # A second click of the link, and a second sign-up of the same address in other letters.
    again = client.post(_confirmation_link(confirmation))
    assert "You have already joined" in again.content.decode()
    second = _consent(client, _screen(client, ELIGIBLE), email="ann@EXAMPLE.org")
    assert second.status_code == 200
    other = client.post(_confirmation_link(mail.outbox[-1]))
    assert "This e-mail address is already taking part" in other.content.decode()
    assert Participant.objects.count() == 1 and len(mail.outbox) == 3
    _screen(client, ELIGIBLE | {"age": "90"})
    counts = consort_counts(trial)
    assert (counts["assessed"], counts["eligible"], counts["consented"]) == (3, 2, 1)
    assert counts["excluded_reasons"] == {"age outside 18-80": 1}
    assert [arm["allocated"] for arm in counts["arms"]] in ([1, 0], [0, 1])


def test_a_german_speaker_signs_the_german_form_and_is_invited_in_german(
    client, trial, django_capture_on_commit_callbacks
):
    screened = _screen(client, ELIGIBLE, "?lang=de")
    assert "Einwilligung." in client.get(screened.url).content.decode()
    _consent(client, screened, email="de@example.org")
    assert "Bestätigen Sie Ihre E-Mail-Adresse" in mail.outbox[0].subject
    assert (
        "An der Studie teilnehmen"
        in client.get(_confirmation_link(mail.outbox[0])).content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):  # the copy is e-mailed on commit
        client.post(_confirmation_link(mail.outbox[0]))
    participant = Participant.objects.get()
    assert participant.locale == "de"
    assert participant.consents.get().document.locale == "de"
    subjects = [message.subject for message in mail.outbox[1:]]
    assert any("Ihre Umfrage für" in subject for subject in subjects)
    assert any("Ihre Kopie der Einwilligung" in subject for subject in subjects)
    my_data = client.get(data_path(participant.pk)).content.decode()
    assert "Eine Kopie der unterschriebenen Einwilligung herunterladen (PDF)" in my_data


def test_a_pass_is_used_once_and_forged_or_foreign_links_enrol_nobody(client, trial):
    screened = _screen(client, ELIGIBLE)
    _consent(client, screened, email="one@example.org")
    _consent(client, screened, email="two@example.org")
    first, second = (_confirmation_link(message) for message in mail.outbox)
    client.post(first)
    assert "You have already joined" in client.post(second).content.decode()
    assert "You have already joined" in client.get(screened.url).content.decode()
    forged = client.get(first.replace("/confirm/", "/confirm/x"))
    assert forged.status_code == 404 and "This link is not valid" in forged.content.decode()
    assert client.get("/join/open/consent?pass=forged").status_code == 404
    enrolling_trial("other")
    assert client.get(first.replace("/join/open/", "/join/other/")).status_code == 404
    assert Participant.objects.count() == 1


def test_the_link_expires(client, trial, settings):
    _consent(client, _screen(client, ELIGIBLE))
    link = _confirmation_link(mail.outbox[0])
    later = timezone.now() + timedelta(days=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("time.time", lambda: later.timestamp())
        expired = client.get(link)
    assert expired.status_code == 410 and "This link has expired" in expired.content.decode()
    assert not Participant.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_the_link_enrols_once(trial):
    _consent(Client(), _screen(Client(), ELIGIBLE))
    link = _confirmation_link(mail.outbox[0])
    barrier = threading.Barrier(2)
    statuses = []

    def click():
        try:
            barrier.wait()
            statuses.append(Client().post(link).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 302]
    assert Participant.objects.count() == Allocation.objects.count() == 1
    assert [m.subject for m in mail.outbox].count(mail.outbox[-1].subject) == 1


def test_both_e_mails_reach_a_real_smtp_server(client, trial, smtp):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp.port,
    ):
        _consent(client, _screen(client, ELIGIBLE), email="real@example.org")
        assert smtp.recipients == ["real@example.org"]
        link = re.search(r"/join/open/confirm/\S+/", smtp.messages[0])[0]
        client.post(link)
    assert smtp.recipients == ["real@example.org", "real@example.org"]
    assert Invitation.objects.get(wave__index=0).state == "sent"


def test_the_trial_page_s_checklist_gets_the_link_while_the_trial_recruits(trial):
    assert recruitment_link(trial) == "http://localhost:8000/join/open/"
    suspended = trial_transition(trial=trial, to=Trial.State.SUSPENDED)
    assert recruitment_link(suspended) is None


def test_screenings_are_limited_per_client_with_a_clear_message(client, trial):
    for _ in range(20):
        assert _screen(client, ELIGIBLE).status_code == 302
    refused = _screen(client, ELIGIBLE)
    assert refused.status_code == 429
    assert "too many tries from your connection" in refused.content.decode()
    assert EligibilityScreening.objects.count() == 20
    # Another client, and the same one an hour later, may go on.
    assert Client(REMOTE_ADDR="192.0.2.7").post("/join/open/screening", ELIGIBLE).status_code == 302
    with pytest.MonkeyPatch.context() as patch:
        later = timezone.now() + timedelta(hours=1, minutes=1)
        patch.setattr("django.utils.timezone.now", lambda: later)
        assert _screen(client, ELIGIBLE).status_code == 302
    # Only keyed hashes of who tried are kept, never the address.
    assert not FrontDoorAttempt.objects.filter(key__contains="127.0.0.1").exists()


def test_confirmation_e_mails_are_limited_per_address(client, trial):
    screened = _screen(client, ELIGIBLE)
    for _ in range(3):
        assert _consent(client, screened, email="pat@example.org").status_code == 200
    refused = _consent(client, screened, email="PAT@example.org")
    assert refused.status_code == 429
    assert "several links to this address today" in refused.content.decode()
    assert len(mail.outbox) == 3
    assert _consent(client, screened, email="sam@example.org").status_code == 200
    assert len(mail.outbox) == 4
