"""The participant pages through Django's test client: paging, partial save and resume,
validation, double submission, languages, and links that are tampered, expired or reused."""

import re
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from surveys.links import data_path, data_token, survey_path, survey_token
from surveys.models import Response, ResponseDraft, Score
from trials.models import ConsentDocument, ConsentGrant, Participant
from trials.services import participant_enrol

pytestmark = pytest.mark.django_db

SWLS = {f"swls:swls_{i}": "5" for i in range(1, 6)}
WHO5 = {f"who5:who5_{i}": "3" for i in range(1, 6)}


@pytest.fixture
def newcomer(small_trial):
    return participant_enrol(
        trial=small_trial,
        email="new@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys", "telemetry"],
    )


@pytest.fixture
def link(newcomer):
    return survey_path(newcomer.pk, newcomer.trial.waves.get(index=0).pk)


def _post(client, link, page, answers, action="next"):
    """Answer a page as a browser would: load it, then post its form with the answers."""
    html = client.get(f"{link}?page={page}").content.decode()
    shown = re.search(r'name="shown" value="([^"]*)"', html)
    form = {"page": page, "action": action, "shown": shown.group(1) if shown else "", **answers}
    return client.post(link, form)


def test_first_page_shows_one_questionnaire_with_progress_and_labelled_choices(client, link):
    page = client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Survey 1 of 3" in html
    assert "Part 1 of 2" in html
    # Nothing answered yet: the bar starts empty, out of the wave's ten questions.
    assert 'max="10" value="0"' in html
    # Before the first answer: who runs the study and how long this wave takes.
    welcome = re.search(r'<section class="welcome".*?</section>', html, re.S)[0]
    assert "Approved by: Ethics board, Participants&#x27; community council." in welcome
    assert "This survey takes about 2 minutes." in welcome
    # Questionnaires come in code order: the SWLS page first, WHO-5 on the next.
    assert "In most ways my life is close to my ideal." in html
    assert "cheerful" not in html
    assert html.count('type="radio"') == 5 * 7
    assert '<input type="radio" name="swls:swls_1" value="1">' in html


def test_pages_move_on_and_submit_once_with_scores(client: Client, link, newcomer):
    moved = _post(client, link, 0, SWLS)
    assert moved.status_code == 302 and moved.url.endswith("?page=1")
    page = client.get(moved.url).content.decode()
    assert "Part 2 of 2" in page and "I have felt cheerful and in good spirits" in page
    # The five answers of the first page fill half the bar; the welcome is not shown again.
    assert 'max="10" value="5" data-answered-elsewhere="5"' in page
    assert 'class="welcome"' not in page
    done = _post(client, link, 1, WHO5, action="finish")
    assert done.status_code == 302
    thanks = client.get(done.url)
    assert "Your answers have been saved." in thanks.content.decode()
    assert data_path(newcomer.pk) in thanks.content.decode()
    again = _post(client, link, 1, WHO5, action="finish")  # a second click, a retried request
    assert again.status_code == 302
    assert Response.objects.filter(participant=newcomer).count() == 1
    response = Response.objects.get(participant=newcomer)
    assert response.languages == {"swls": "en", "who5": "en"}
    assert set(response.timings["pages"]) == {"swls", "who5"}
    assert set(response.quality) == {"swls", "who5"}
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()
    scores = dict(Score.objects.filter(response=response).values_list("code", "value"))
    assert scores == {"who5": 60.0, "swls": 25.0}


def test_a_one_page_wave_is_answered_in_one_post(client, link, newcomer, small_trial):
    small_trial.waves.filter(index=0).update(one_page=True)
    html = client.get(link).content.decode()
    assert "Part 1 of 1" in html and "cheerful" in html and "ideal" in html
    incomplete = _post(client, link, 0, SWLS, action="finish")
    assert incomplete.status_code == 400
    assert incomplete.content.decode().count("Please answer this question.") == 5
    done = _post(client, link, 0, SWLS | WHO5, action="finish")
    assert done.status_code == 302 and done.url.endswith("/done/")
    response = Response.objects.get(participant=newcomer)
    assert response.answers["who5"]["who5_1"] == 3 and response.answers["swls"]["swls_1"] == 5
    # The page's seconds are shared by item count: both questionnaires have five items.
    assert response.timings["pages"]["who5"] == pytest.approx(response.timings["pages"]["swls"])
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()


def test_a_reused_link_shows_the_thank_you_page_and_no_answers(client, link, newcomer):
    _post(client, link, 0, SWLS)
    _post(client, link, 1, WHO5, action="finish")
    reused = Client().get(link, follow=True)
    html = reused.content.decode()
    assert "Thank you!" in html
    assert 'type="radio"' not in html and "checked" not in html


def test_missing_and_out_of_range_answers_get_messages_and_store_nothing(client, link, newcomer):
    answers = dict(SWLS)
    del answers["swls:swls_2"]
    answers["swls:swls_3"] = "9"
    page = _post(client, link, 0, answers)
    assert page.status_code == 400
    html = page.content.decode()
    assert "Please answer this question." in html
    assert "Choose one of the answers from 1 to 7." in html
    assert 'aria-invalid="true"' in html
    assert 'name="swls:swls_1" value="5" checked' in html  # given answers are kept
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()
    assert not Response.objects.filter(participant=newcomer).exists()


def test_save_and_resume_keeps_partial_answers(client, link, newcomer):
    partial = {"swls:swls_1": "2", "swls:swls_2": "6"}
    saved = _post(client, link, 0, partial, action="save")
    assert "Your answers are saved" in saved.content.decode()
    draft = ResponseDraft.objects.get(participant=newcomer)
    assert draft.answers == {"swls": {"swls_1": 2, "swls_2": 6}}
    # Later, on another device: the same link opens where they stopped, answers filled in.
    resumed = Client().get(link).content.decode()
    assert 'name="swls:swls_1" value="2" checked' in resumed
    assert 'name="swls:swls_2" value="6" checked' in resumed
    _post(client, link, 0, SWLS)
    resumed = Client().get(link).content.decode()
    assert "Part 2 of 2" in resumed


def test_pages_beyond_the_furthest_reached_cannot_be_skipped_to(client, link, newcomer):
    page = client.get(link + "?page=1").content.decode()
    assert "Part 1 of 2" in page
    skipped = _post(client, link, 1, WHO5, action="finish")
    assert skipped.status_code == 400  # posted as page 0: its questions are unanswered
    assert not Response.objects.filter(participant=newcomer).exists()


def test_a_tampered_timing_field_is_ignored(client, link, newcomer):
    html = client.get(link).content.decode()
    shown = re.search(r'name="shown" value="([^"]*)"', html).group(1)
    form = {"page": 0, "action": "next", "shown": shown, "item_seconds": "[1, 2]", **SWLS}
    assert client.post(link, form).status_code == 302
    draft = ResponseDraft.objects.get(participant=newcomer)
    assert "items" not in draft.timings and set(draft.timings["pages"]) == {"swls"}


def test_tampered_answers_values_are_refused(client, link, newcomer):
    page = _post(client, link, 0, {**SWLS, "swls:swls_4": "<script>"})
    assert page.status_code == 400
    assert "<script>" not in page.content.decode()
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()


def test_pages_speak_german_after_switching_language(client, link, newcomer):
    switched = client.post(link, {"language": "de"})
    assert switched.status_code == 302
    newcomer.refresh_from_db()
    assert newcomer.locale == "de"
    html = client.get(link).content.decode()
    assert '<html lang="de">' in html
    assert "Umfrage 1 von 3" in html and "Teil 1 von 2" in html
    assert "In den meisten Dingen ist mein Leben nahezu ideal." in html
    assert "Weiter" in html
    answers = dict(SWLS)
    del answers["swls:swls_1"]
    assert "Bitte beantworten Sie diese Frage." in _post(client, link, 0, answers).content.decode()
    _post(client, link, 0, SWLS)
    _post(client, link, 1, WHO5, action="finish")
    assert Response.objects.get(participant=newcomer).languages == {"swls": "de", "who5": "de"}


def test_tampered_link_gets_a_friendly_page_and_no_data(client, newcomer, link):
    token = link.rstrip("/").rsplit("/", 1)[1]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    page = client.get(reverse("surveys:survey", kwargs={"token": tampered}))
    assert page.status_code == 404
    assert "This link is not valid" in page.content.decode()
    assert "ideal" not in page.content.decode()


def test_expired_link_is_refused(client, link, settings):
    settings.PARTICIPANT_LINK_MAX_AGE = -1
    page = client.get(link)
    assert page.status_code == 410
    assert "expired" in page.content.decode()


def test_a_validly_signed_link_to_someone_else_s_wave_is_not_valid(client, newcomer, small_trial):
    token = survey_token("nobody", small_trial.waves.get(index=0).pk)
    assert client.get(reverse("surveys:survey", kwargs={"token": token})).status_code == 404
    foreign = signing.TimestampSigner(salt="flourish.surveys.my-data-link").sign(newcomer.pk)
    assert client.get(reverse("surveys:survey", kwargs={"token": foreign})).status_code == 404


def test_a_wave_not_open_yet_or_closed_says_so(client, newcomer, small_trial):
    later = survey_path(newcomer.pk, small_trial.waves.get(index=1).pk)
    assert "Not open yet" in client.get(later).content.decode()
    Participant.objects.filter(pk=newcomer.pk).update(
        enrolled_at=newcomer.enrolled_at - timedelta(days=8)
    )
    closed = client.get(survey_path(newcomer.pk, small_trial.waves.get(index=0).pk))
    assert closed.status_code == 410 and "This survey has closed" in closed.content.decode()


def test_stopping_a_stream_asks_first_then_it_can_be_started_again(client, newcomer):
    path = data_path(newcomer.pk)
    html = client.get(path).content.decode()
    assert "What you agreed to" in html and "Private usage summaries" in html
    stop = re.search(r'href="([^"]*/stop/\?stream=telemetry)"', html)[1]
    confirm = client.get(stop)
    assert "Stop this data stream?" in confirm.content.decode()
    telemetry = ConsentGrant.objects.get(participant=newcomer, scope="telemetry")
    assert telemetry.revoked_at is None  # opening the confirmation stops nothing
    stopped = client.post(stop.split("?")[0], {"stream": "telemetry"})
    # Back to the page the link came from (its token is signed with the time it was made).
    from_page = stop.split("stop/")[0]
    assert stopped.status_code == 302 and stopped.url == f"{from_page}?changed=revoked"
    telemetry.refresh_from_db()
    assert telemetry.revoked_at is not None
    surveys = ConsentGrant.objects.get(participant=newcomer, scope="surveys")
    assert surveys.revoked_at is None
    html = client.get(stopped.url).content.decode()
    assert "Done: that data stream has stopped." in html and "/stop/" not in html

    resume = re.search(r'href="([^"]*/resume/\?stream=telemetry)"', html)[1]
    page = client.get(resume).content.decode()
    document = ConsentDocument.objects.get(trial=newcomer.trial)
    assert "Start this data stream again?" in page and document.text.splitlines()[0] in page
    resumed = client.post(resume.split("?")[0], {"stream": "telemetry"})
    assert resumed.url == f"{resume.split('resume/')[0]}?changed=resumed"
    # Consent is given anew, under the document in force, and audited as a grant.
    grants = ConsentGrant.objects.filter(participant=newcomer, scope="telemetry")
    assert grants.count() == 2
    latest = grants.get(revoked_at__isnull=True)
    assert latest.document == document and latest.granted_at > telemetry.revoked_at
    kinds = list(newcomer.trial.events.order_by("sequence").values_list("kind", "detail"))
    assert [k for k, d in kinds if d.get("scope") == "telemetry"] == [
        "consent_revoked",
        "consent_granted",
    ]
    assert "Done: that data stream has started again." in client.get(resumed.url).content.decode()


@pytest.mark.parametrize(
    ("route", "stream"),
    [
        ("surveys:stream_stop", "surveys"),  # leaving the study is the way to stop surveys
        ("surveys:stream_stop", "data_sharing"),  # never agreed to
        ("surveys:stream_resume", "telemetry"),  # still running
        ("surveys:stream_stop", "nonsense"),
    ],
)
def test_a_stream_that_cannot_change_that_way_goes_back_to_my_data(client, newcomer, route, stream):
    token = data_token(newcomer.pk)  # signed with the time: one token for the whole test
    address, my_data = (
        reverse(name, kwargs={"token": token}) for name in (route, "surveys:my_data")
    )
    asked = {"stream": stream}
    for answer in (client.get(address, asked), client.post(address, asked)):
        assert answer.status_code == 302 and answer.url == my_data
    assert not ConsentGrant.objects.filter(participant=newcomer, revoked_at__isnull=False).exists()


def test_a_forged_stream_link_reveals_nothing(client, newcomer):
    forged = reverse("surveys:stream_stop", kwargs={"token": "forged"})
    page = client.post(forged, {"stream": "telemetry"})
    assert page.status_code == 404 and "telemetry" not in page.content.decode()


def test_withdrawal_needs_confirmation_then_stops_everything(client, newcomer, link):
    path = data_path(newcomer.pk)
    refused = client.post(path, {"action": "withdraw"})
    assert refused.status_code == 400
    assert "Tick the box" in refused.content.decode()
    newcomer.refresh_from_db()
    assert newcomer.withdrawn_at is None
    client.post(path, {"action": "withdraw", "confirm": "yes"})
    newcomer.refresh_from_db()
    assert newcomer.withdrawn_at is not None
    assert not ConsentGrant.objects.filter(participant=newcomer, revoked_at__isnull=True).exists()
    assert "You left the study" in client.get(path).content.decode()
    assert "nothing more to answer" in client.get(link).content.decode()


def test_tampered_my_data_link_reveals_nothing(client, newcomer):
    page = client.get(data_path(newcomer.pk)[:-4] + "xyz/")
    assert page.status_code == 404
    assert "telemetry" not in page.content.decode()


def _shown(client, link, page: int = 0) -> str:
    html = client.get(f"{link}?page={page}").content.decode()
    return re.search(r'name="shown" value="([^"]*)"', html).group(1)


@pytest.mark.parametrize(
    "item_seconds",
    [
        '{"swls_1": NaN}',  # PostgreSQL's jsonb refuses NaN
        '{"swls_1": Infinity, "swls_2": 2}',
        '{"swls_1": -Infinity}',
        '{"swls_1": -3}',
        '{"swls_1": 1' + "0" * 5000 + "}",  # an integer beyond Python's int-parsing limit
        '{"swls_1": 1e999}',
        '{"swls_1": "12"}',
        '{"swls_1": true}',
        '{"swls_1": {"nested": 1}}',
        '{"not_an_item": 2}',
        "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
        "[" * 4_900 + "]" * 4_900,  # as deep, within the length the page reads
        '{"swls_1": 1}' + " " * 10_000,  # longer than any page's timings
    ],
    ids=lambda raw: raw[:24],
)
def test_hostile_item_timings_are_dropped_and_the_answers_kept(
    client, link, newcomer, item_seconds
):
    form = {"page": 0, "action": "next", "shown": _shown(client, link), **SWLS}
    moved = client.post(link, {**form, "item_seconds": item_seconds})
    assert moved.status_code == 302 and moved.url.endswith("?page=1")
    draft = ResponseDraft.objects.get(participant=newcomer)
    assert draft.answers == {"swls": {f"swls_{n}": 5 for n in range(1, 6)}}
    assert "items" not in draft.timings and set(draft.timings["pages"]) == {"swls"}
    # The last page, with the same field: the response is stored, with no per-item timing.
    form = {"page": 1, "action": "finish", "shown": _shown(client, link, 1), **WHO5}
    done = client.post(link, {**form, "item_seconds": item_seconds.replace("swls", "who5")})
    assert done.status_code == 302 and done.url.endswith("/done/")
    response = Response.objects.get(participant=newcomer)
    assert "items" not in response.timings
    assert response.answers["swls"]["swls_1"] == 5 and response.answers["who5"]["who5_1"] == 3


def test_item_timings_as_the_script_writes_them_are_kept_and_capped(client, link, newcomer):
    form = {"page": 0, "action": "next", "shown": _shown(client, link), **SWLS}
    seconds = '{"swls_1": 2.5, "swls_2": 0, "swls_3": 99999}'
    assert client.post(link, {**form, "item_seconds": seconds}).status_code == 302
    draft = ResponseDraft.objects.get(participant=newcomer)
    assert draft.timings["items"] == {"swls_1": 2.5, "swls_2": 0.0, "swls_3": 3600.0}


@pytest.mark.parametrize("value", ["٣", "３", "1_0", "3.0", "1" * 5000, "0x3", " "])
def test_answers_that_are_not_plain_digits_are_refused_with_a_message(
    client, link, newcomer, value
):
    page = _post(client, link, 0, {**SWLS, "swls:swls_2": value})
    assert page.status_code == 400
    assert "Choose one of the answers from 1 to 7." in page.content.decode()
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()


def test_the_services_refuse_timings_that_are_not_finite_seconds(newcomer, small_trial):
    from django.core.exceptions import ValidationError

    from surveys.services import draft_save, response_submit

    wave = small_trial.waves.get(index=0)
    answers = {"swls": {f"swls_{n}": 5 for n in range(1, 6)}}
    for bad in [float("nan"), float("inf"), -1.0, "3", True, 10**400]:
        with pytest.raises(ValidationError, match="not a finite number of seconds"):
            draft_save(
                participant=newcomer,
                wave=wave,
                answers=answers,
                page=0,
                timings={"items": {"x": bad}},
            )
        with pytest.raises(ValidationError, match="not a finite number of seconds"):
            response_submit(
                participant=newcomer,
                wave=wave,
                answers={**answers, "who5": {f"who5_{n}": 3 for n in range(1, 6)}},
                timings={"pages": {"swls": bad}},
            )
    assert not ResponseDraft.objects.filter(participant=newcomer).exists()
    assert not Response.objects.filter(participant=newcomer).exists()
