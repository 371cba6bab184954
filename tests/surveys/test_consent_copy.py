"""The PDF copy of what a participant agreed to: what it says (read back with pypdf), that the
same stored rows always give the same bytes, so the download hashes to the SHA-256 stored at
enrolment; one e-mail per enrolment with the PDF attached, through a real SMTP server on
loopback; the download only behind the participant's own link; erasure takes the copy away."""

import email
import hashlib
import io
import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from pypdf import PdfReader

from surveys.consent_copies import consent_copy_send
from surveys.consent_copy import ConsentCopy, consent_copy_pdf
from surveys.links import data_path, data_token, survey_path
from tests.surveys import test_front_door as front_door
from tests.trials.factories import enrolling_trial
from trials.models import ConsentDocument, Participant, ParticipantContact
from trials.selectors import preregistration_in_force
from trials.services import participant_enrol, participant_withdraw

# The front door's loopback SMTP server and a trial that recruits with a screening.
smtp = front_door.smtp
trial = front_door.trial

SIGNED = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
COPY = ConsentCopy(
    trial_title="Kinder assistants",
    registration_sha256="ab" * 32,
    participant_id="p-123",
    document_version=3,
    document_locale="de",
    document_text="Ich willige ein. Über Größe und Übung: ä ö ü ß.",
    granted=("surveys", "telemetry"),
    declined=("conversation content",),
    signature_name="Zoë Ødegård Δημήτρης Иванов",
    signed_at=SIGNED,
)


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.unit
def test_the_copy_says_what_was_agreed_by_whom_when_under_which_plan():
    text = _text(consent_copy_pdf(COPY))
    assert "Kinder assistants" in text and "ab" * 32 in text and "p-123" in text
    assert "Consent document, version 3 (de)" in text
    assert "Ich willige ein. Über Größe und Übung: ä ö ü ß." in text
    agreed, declined = text.split("Data streams declined")
    assert "- surveys" in agreed and "- telemetry" in agreed
    assert "- conversation content" in declined and "telemetry" not in declined
    assert "Zoë Ødegård Δημήτρης Иванов" in text
    assert "Signed at: 2026-03-01 09:30:15 UTC" in text


@pytest.mark.unit
def test_the_same_copy_gives_the_same_bytes_and_another_name_others():
    first = consent_copy_pdf(COPY)
    assert consent_copy_pdf(COPY) == first
    reader = PdfReader(io.BytesIO(first))
    assert reader.metadata.creation_date == SIGNED
    other = consent_copy_pdf(ConsentCopy(**COPY.__dict__ | {"signature_name": "Ann Smith"}))
    assert other != first


@pytest.mark.unit
def test_a_name_the_font_cannot_draw_is_kept_exactly_in_the_metadata():
    # DejaVu Sans has no CJK glyphs (surveys/consent_copy.py).
    pdf = consent_copy_pdf(ConsentCopy(**COPY.__dict__ | {"signature_name": "Zoë Ødegård 李"}))
    subject = PdfReader(io.BytesIO(pdf)).metadata.subject
    assert subject == "Signed by Zoë Ødegård 李 at 2026-03-01 09:30:15 UTC"


@pytest.mark.unit
def test_a_time_without_a_zone_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        consent_copy_pdf(ConsentCopy(**COPY.__dict__ | {"signed_at": datetime(2026, 3, 1)}))


def _enrol(trial, address: str, name: str, **kwargs) -> Participant:
    return participant_enrol(
        trial=trial,
        email=address,
        consent_document=trial.consent_documents.order_by("pk").first(),
        scopes=["surveys", "telemetry"],
        signature_name=name,
        signed_at=SIGNED,
        **kwargs,
    )


@pytest.mark.django_db
def test_enrolment_stores_the_copy_s_hash_and_the_download_hashes_to_it(
    client, django_capture_on_commit_callbacks
):
    trial = enrolling_trial("copy")
    participant = _enrol(trial, "zoe@example.org", "Zoë Ødegård Δημήτρης")
    with django_capture_on_commit_callbacks(execute=True):
        assert consent_copy_send(participant=participant)
        # Again (a second click): nothing new is made or sent.
        assert not consent_copy_send(participant=participant)
    (message,) = mail.outbox
    assert message.to == ["zoe@example.org"] and "Your copy of the consent form" in message.subject
    ((filename, attached, mimetype),) = message.attachments
    assert (filename, mimetype) == ("consent.pdf", "application/pdf")
    contact = ParticipantContact.objects.get(participant=participant)
    assert contact.consent_copy_sha256 == hashlib.sha256(attached).hexdigest()
    assert contact.consent_copy_sha256 in message.body
    in_force = preregistration_in_force(trial).sha256
    assert contact.registration_sha256 == in_force and in_force in _text(attached)
    assert "- surveys" in _text(attached) and "- data sharing" in _text(attached)

    page = client.get(data_path(participant.pk)).content.decode()
    link = re.search(r'href="(/s/my-data/[^"]+/consent\.pdf)"', page)[1]
    download = client.get(link)
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert "no-store" in download["Cache-Control"]
    assert hashlib.sha256(download.content).hexdigest() == contact.consent_copy_sha256
    # Streams changed later on the my-data page do not change what was agreed at enrolment.
    stop = reverse("surveys:stream_stop", kwargs={"token": data_token(participant.pk)})
    assert client.post(stop, {"stream": "telemetry"}).url.endswith("?changed=revoked")
    assert client.get(link).content == download.content


@pytest.mark.django_db
def test_the_download_answers_only_the_participant_s_own_data_link(client):
    trial = enrolling_trial("copy")
    participant = _enrol(trial, "a@example.org", "Ann")
    consent_copy_send(participant=participant)
    other = _enrol(trial, "b@example.org", "Bob")  # enrolled without a copy
    mine = client.get(data_path(participant.pk) + "consent.pdf")
    assert mine.status_code == 200 and "Ann" in _text(mine.content)
    assert client.get(data_path(other.pk) + "consent.pdf").status_code == 404
    assert "consent.pdf" not in client.get(data_path(other.pk)).content.decode()
    forged = data_path(participant.pk).replace(":", ":x", 1) + "consent.pdf"
    assert client.get(forged).status_code == 404
    # A survey link's token is signed for another purpose.
    wave = trial.waves.first()
    survey = survey_path(participant.pk, wave.pk if wave else 1).removeprefix("/s/")
    assert client.get(f"/s/my-data/{survey}consent.pdf").status_code == 404
    assert client.post(data_path(participant.pk) + "consent.pdf").status_code == 405


@pytest.mark.django_db
def test_erasure_deletes_the_copy_with_the_contact_details(client):
    trial = enrolling_trial("copy")
    ConsentDocument.objects.filter(trial=trial).update(
        withdrawal_rule=ConsentDocument.WithdrawalRule.ERASE
    )
    participant = _enrol(trial, "a@example.org", "Ann")
    consent_copy_send(participant=participant)
    participant_withdraw(participant=participant)
    assert not ParticipantContact.objects.filter(participant=participant).exists()
    assert client.get(data_path(participant.pk) + "consent.pdf").status_code == 404


@pytest.mark.django_db
def test_joining_through_the_front_door_e_mails_the_copy_through_a_real_smtp_server(
    client, trial, smtp, django_capture_on_commit_callbacks
):
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp.port,
    ):
        screened = front_door._screen(client, front_door.ELIGIBLE, "?lang=de")
        front_door._consent(client, screened, email="zoe@example.org", name="Zoë Ødegård")
        link = re.search(r"/join/open/confirm/\S+/", smtp.messages[0])[0]
        with django_capture_on_commit_callbacks(execute=True):
            joined = client.post(link)
            client.post(link)  # a second click sends nothing more
    assert joined.status_code == 302
    # The confirmation, the baseline invitation and the copy.
    assert smtp.recipients == ["zoe@example.org"] * 3
    message = email.message_from_string(smtp.messages[2])
    (part,) = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    pdf = part.get_payload(decode=True)
    contact = ParticipantContact.objects.get()
    assert hashlib.sha256(pdf).hexdigest() == contact.consent_copy_sha256
    text = _text(pdf)
    assert "Einwilligung." in text and "Consent document, version 1 (de)" in text
    assert "Zoë Ødegård" in text and "- surveys" in text and "- telemetry" in text
    download = client.get(joined.url + "consent.pdf")
    assert hashlib.sha256(download.content).hexdigest() == contact.consent_copy_sha256
