"""The coordinator's participant list, invitations from an uploaded contact list, and the
responses exchange, all through the admin's pages: per trial, all or nothing, idempotent."""

import csv
import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from surveys.models import RecruitmentInvitation, Response
from surveys.services import invitations_plan, invitations_send_due, response_submit
from tests.trials.factories import draft_trial, enrolling_trial
from trials.models import Community, ConsentDocument, TrialEvent, TrialMember
from trials.services import member_add, participant_enrol, participant_withdraw

pytestmark = pytest.mark.django_db

WHO5 = {"who5": {f"who5_{i}": 3 for i in range(1, 6)}}


def _staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def _enrol(trial, email: str):
    document = ConsentDocument.objects.get(trial=trial)
    return participant_enrol(
        trial=trial, email=email, consent_document=document, scopes=["surveys", "telemetry"]
    )


@pytest.fixture
def coordinator():
    return _staff("coord", "Coordinators")


@pytest.fixture
def trial(coordinator):
    return enrolling_trial("t", actor=coordinator)


def _list(client, trial):
    return client.get(reverse("admin:surveys_wave_participants", args=[trial.pk]))


def _upload(client, trial, text: str):
    contacts = SimpleUploadedFile("contacts.csv", text.encode())
    url = reverse("admin:surveys_wave_invite", args=[trial.pk])
    return client.post(url, {"contacts": contacts})


def test_the_list_shows_each_person_s_steps_with_the_same_queries_for_any_number(
    client, coordinator, trial
):
    people = [_enrol(trial, f"p{i}@example.org") for i in range(3)]
    invitations_plan()
    invitations_send_due()
    response_submit(participant=people[0], wave=trial.waves.get(index=0), answers=WHO5)
    participant_withdraw(participant=people[2], reason="moved away")
    client.force_login(coordinator)

    with CaptureQueriesContext(connection) as few:
        page = _list(client, trial)

    assert page.status_code == 200
    rows = {row.participant.pk: row for row in page.context["rows"]}
    assert rows[people[0].pk].waves == ["answered", "not yet invited", "not yet invited"]
    assert rows[people[1].pk].waves == ["invited", "not yet invited", "not yet invited"]
    assert rows[people[1].pk].consents == "surveys, telemetry"
    assert rows[people[1].pk].arm in {"a", "b"}
    assert rows[people[2].pk].participant.withdrawn_at is not None
    assert b"p0@example.org" not in page.content  # pseudonyms only
    for i in range(3, 9):
        _enrol(trial, f"p{i}@example.org")
    with CaptureQueriesContext(connection) as many:
        assert len(_list(client, trial).context["rows"]) == 9
    assert len(many) == len(few)


def test_another_trial_s_coordinator_is_refused_everywhere(client, trial):
    other = _staff("other", "Coordinators")
    enrolling_trial("other", actor=other)
    client.force_login(other)
    for name in ("participants", "invite", "export", "import"):
        url = reverse(f"admin:surveys_wave_{name}", args=[trial.pk])
        assert client.get(url).status_code == 403, name
    assert _upload(client, trial, "new@example.org\n").status_code == 403
    assert not mail.outbox


def test_a_contact_list_is_refused_whole_then_sent_once_per_address(client, coordinator, trial):
    Community.objects.create(slug="north", name="North")
    _enrol(trial, "p0@example.org")
    mail.outbox.clear()
    client.force_login(coordinator)
    bad = (
        "email,name,community,language\n"
        "P0@example.org,Ann\n"
        "not-an-address\n"
        "x@example.org,,nowhere\n"
        "X@example.org,,,fr\n"
        "y@example.org,Yo,north,en\n"
    )

    refused = _upload(client, trial, bad)

    assert refused.status_code == 200
    text = refused.content.decode()
    assert "line 2: P0@example.org is enrolled in this trial already" in text
    assert "line 3: &#x27;not-an-address&#x27; is not an e-mail address" in text
    assert "line 4: no community &#x27;nowhere&#x27;" in text
    assert "line 5: X@example.org is listed already on line 4" in text
    assert "line 5: the consent form has no language &#x27;fr&#x27; (en)" in text
    assert "line 6" not in text
    assert not mail.outbox and not RecruitmentInvitation.objects.exists()

    good = "email,name,community,language\nx@example.org,Xa\ny@example.org,Yo,north,en\n"
    assert _upload(client, trial, good).status_code == 302

    sent = {message.to[0]: message for message in mail.outbox}
    assert sorted(sent) == ["x@example.org", "y@example.org"]
    assert "Hello Xa," in sent["x@example.org"].body
    assert "/join/t/\n" in sent["x@example.org"].body
    assert "/join/t/north/" in sent["y@example.org"].body
    assert "x@example.org" not in str(list(RecruitmentInvitation.objects.values()))
    assert _upload(client, trial, good + "z@example.org\n").status_code == 302
    assert [message.to[0] for message in mail.outbox[2:]] == ["z@example.org"]
    assert _upload(client, trial, good).status_code == 302
    assert len(mail.outbox) == 3
    events = TrialEvent.objects.filter(trial=trial, kind=TrialEvent.Kind.RECRUITMENT_INVITED)
    assert [event.detail["new"] for event in events.order_by("sequence")] == [2, 1, 0]


def test_the_export_downloads_and_its_file_imports_back_all_or_nothing(
    client, coordinator, small_trial
):
    member_add(trial=small_trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
    client.force_login(coordinator)
    download = client.get(reverse("admin:surveys_wave_export", args=[small_trial.pk]))
    assert download["Content-Type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(download.content))
    assert {"small-responses.csv", "small-scores.csv", "small-codebook.csv"} <= set(
        bundle.namelist()
    )
    exported = bundle.read("small-responses.csv").decode()
    total = Response.objects.filter(wave__trial=small_trial).count()
    first = small_trial.participants.order_by("id").first()
    removed = Response.objects.filter(participant=first).delete()[1]["surveys.Response"]
    url = reverse("admin:surveys_wave_import", args=[small_trial.pk])

    rows = list(csv.reader(io.StringIO(exported)))
    rows[1][rows[0].index("value")] = "99"
    spoilt = io.StringIO()
    csv.writer(spoilt).writerows(rows)
    refused = client.post(
        url, {"responses": SimpleUploadedFile("r.csv", spoilt.getvalue().encode())}
    )
    assert refused.status_code == 200
    assert "Nothing was imported: 1 problem(s)." in refused.content.decode()
    assert "line 2:" in refused.content.decode()
    assert Response.objects.filter(wave__trial=small_trial).count() == total - removed

    accepted = client.post(url, {"responses": SimpleUploadedFile("r.csv", exported.encode())})
    assert accepted.status_code == 302
    assert Response.objects.filter(wave__trial=small_trial).count() == total


def test_nobody_is_invited_to_a_trial_that_does_not_recruit(client, coordinator):
    draft = draft_trial("d", actor=coordinator)
    client.force_login(coordinator)
    refused = _upload(client, draft, "x@example.org\n")
    assert refused.status_code == 200
    assert "The trial does not recruit now" in refused.content.decode()
    assert not mail.outbox and not RecruitmentInvitation.objects.exists()


def test_a_contact_is_invited_in_their_language_to_the_page_in_that_language(
    client, coordinator, trial
):
    document = ConsentDocument.objects.get(trial=trial)
    ConsentDocument.objects.create(
        trial=trial,
        version=document.version,
        locale="de",
        text="Einwilligung.",
        scopes=document.scopes,
    )
    client.force_login(coordinator)
    upload = "email,name,community,language\nd@example.org,Dora,,de\ne@example.org,Eve\n"
    assert _upload(client, trial, upload).status_code == 302
    sent = {message.to[0]: message for message in mail.outbox}
    german, english = sent["d@example.org"], sent["e@example.org"]
    assert (
        german.subject.startswith("Eine Einladung zur Teilnahme") and "Hallo Dora," in german.body
    )
    assert "/join/t/?lang=de" in german.body
    assert english.subject.startswith("An invitation") and "/join/t/?lang=en" in english.body
