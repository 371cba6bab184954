import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from surveys.links import participant_survey_path, participant_token
from surveys.models import Response, Score
from trials.models import ConsentDocument
from trials.services import participant_enrol

pytestmark = pytest.mark.django_db


@pytest.fixture
def newcomer(small_trial):
    return participant_enrol(
        trial=small_trial,
        email="new@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )


def _full_answers():
    data = {f"who5:who5_{i}": "3" for i in range(1, 6)}
    data |= {f"swls:swls_{i}": "5" for i in range(1, 6)}
    return data


def test_survey_page_shows_the_open_wave_with_labelled_choices(client: Client, newcomer):
    page = client.get(participant_survey_path(newcomer.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Survey 1 of 3" in html
    assert "I have felt cheerful and in good spirits" in html
    assert html.count('type="radio"') == 5 * 6 + 5 * 7
    assert '<label class="choice"><input type="radio" name="who5:who5_1" value="0">' in html


def test_missing_and_out_of_range_answers_get_messages_and_store_nothing(client, newcomer):
    data = _full_answers()
    del data["who5:who5_2"]
    data["swls:swls_3"] = "9"
    page = client.post(participant_survey_path(newcomer.pk), data)
    assert page.status_code == 400
    html = page.content.decode()
    assert "Please answer this question." in html
    assert "Choose one of the answers from 1 to 7." in html
    assert 'name="who5:who5_1" value="3" checked' in html  # given answers are kept
    assert not Response.objects.filter(participant=newcomer).exists()


def test_valid_submission_is_scored_once_even_when_repeated(client, newcomer):
    path = participant_survey_path(newcomer.pk)
    first = client.post(path, _full_answers())
    assert "Your answers have been saved." in first.content.decode()
    again = client.post(path, _full_answers())
    assert again.status_code == 200
    assert Response.objects.filter(participant=newcomer).count() == 1
    scores = dict(
        Score.objects.filter(response__participant=newcomer).values_list(
            "instrument__code", "value"
        )
    )
    assert scores == {"who5": 60.0, "swls": 25.0}


def test_tampered_link_gets_a_friendly_page_and_no_data(client, newcomer):
    token = participant_token(newcomer.pk)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    page = client.get(reverse("surveys:survey", kwargs={"token": tampered}))
    assert page.status_code == 404
    assert "This link is not valid" in page.content.decode()
    assert "cheerful" not in page.content.decode()


def test_expired_link_is_refused(client, newcomer, settings):
    settings.PARTICIPANT_LINK_MAX_AGE = -1
    page = client.get(participant_survey_path(newcomer.pk))
    assert page.status_code == 410
    assert "expired" in page.content.decode()


def test_link_of_a_valid_signature_for_an_unknown_participant_is_404(client, db):
    token = signing.TimestampSigner(salt="flourish.surveys.participant-link").sign("nobody")
    page = client.get(reverse("surveys:survey", kwargs={"token": token}))
    assert page.status_code == 404
