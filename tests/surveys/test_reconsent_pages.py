"""A participant's next visit after a new consent document version: the new form comes first,
nothing is answered before it is signed, and signing restores the streams chosen."""

import pytest
from django.test import Client

from surveys.links import data_path, survey_path
from surveys.models import Response, ResponseDraft
from tests.trials.factories import enrolling_trial
from trials.models import ConsentDocument, ConsentScope, Participant
from trials.selectors import consent_active
from trials.services import participant_enrol

pytestmark = pytest.mark.django_db

SURVEYS, TELEMETRY = ConsentScope.SURVEYS, ConsentScope.TELEMETRY
WHO5 = {f"who5:who5_{i}": "3" for i in range(1, 6)}


@pytest.fixture
def person() -> Participant:
    trial = enrolling_trial()
    person = participant_enrol(
        trial=trial,
        email="a@example.org",
        consent_document=ConsentDocument.objects.get(trial=trial),
        scopes=[SURVEYS, TELEMETRY],
    )
    ConsentDocument.objects.create(
        trial=trial, version=2, text="New terms: we also ask X.", scopes=[SURVEYS, TELEMETRY]
    )
    return person


@pytest.fixture
def link(person) -> str:
    return survey_path(person.pk, person.trial.waves.get(index=0).pk)


def test_the_survey_link_shows_the_new_form_first_and_takes_none(client: Client, person, link):
    page = client.get(link)
    html = page.content.decode()
    assert page.status_code == 200
    assert "The consent form has changed" in html and "New terms: we also ask X." in html
    assert "version 2" in html and "(required)" in html and "(optional)" in html
    assert 'name="who5:who5_1"' not in html
    posted = client.post(link, {"page": 0, "action": "finish", **WHO5})
    assert "The consent form has changed" in posted.content.decode()
    assert not Response.objects.filter(participant=person).exists()
    assert not ResponseDraft.objects.filter(participant=person).exists()


def test_signing_the_new_form_restores_the_streams_chosen(client: Client, person, link):
    unsigned = client.post(link, {"action": "reconsent", "scopes": [SURVEYS, TELEMETRY]})
    assert unsigned.status_code == 400 and not consent_active(person, SURVEYS)
    signed = client.post(
        link, {"action": "reconsent", "scopes": [SURVEYS, TELEMETRY], "name": "Ada Lovelace"}
    )
    assert signed.status_code == 302 and signed.url == link
    assert consent_active(person, SURVEYS) and consent_active(person, TELEMETRY)
    assert 'name="who5:who5_1"' in client.get(link).content.decode()


def test_declining_an_optional_stream_on_the_my_data_page_leaves_it_stopped(client, person):
    path = data_path(person.pk)
    assert "The consent form has changed" in client.get(path).content.decode()
    client.post(path, {"action": "reconsent", "scopes": [SURVEYS], "name": "Ada Lovelace"})
    assert consent_active(person, SURVEYS) and not consent_active(person, TELEMETRY)
    html = client.get(path).content.decode()
    assert "My data and consent" in html and "The consent form has changed" not in html


def test_declining_the_surveys_offers_leaving_the_study(client: Client, person, link):
    declined = client.post(link, {"action": "reconsent", "scopes": [TELEMETRY], "name": "Ada"})
    html = declined.content.decode()
    assert declined.status_code == 400
    assert "you can leave the study here" in html
    assert f'action="{data_path(person.pk)}"' in html
    assert not consent_active(person, TELEMETRY)  # nothing was renewed
    client.post(data_path(person.pk), {"action": "withdraw", "confirm": "yes"})
    person.refresh_from_db()
    assert person.withdrawn_at is not None
    assert "You have left the study" in client.get(link).content.decode()
