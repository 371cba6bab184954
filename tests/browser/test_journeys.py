"""The participant's journey in a real browser; screenshots go to test-artifacts/. The
coordinator's and the analyst's journeys are in test_coordinator.py and test_dashboard.py."""

import pytest

from surveys.links import survey_path
from surveys.models import Response
from trials.models import ConsentDocument
from trials.services import participant_enrol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_participant_answers_a_survey_on_a_phone(live_server, phone, small_trial, artifacts_dir):
    participant = participant_enrol(
        trial=small_trial,
        email="phone@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys", "telemetry"],
    )
    page = phone
    shot = f"participant-{'js' if page.javascript else 'nojs'}"
    link = live_server.url + survey_path(participant.pk, small_trial.waves.get(index=0).pk)
    page.goto(link)
    page.screenshot(path=artifacts_dir / f"{shot}-1-survey.png", full_page=True)
    # Nothing fits sideways: the page must not scroll horizontally on a 360 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.get_by_text("Part 1 of 2").is_visible()

    # Part 1 (SWLS): two answers, then "save and finish later".
    questions = page.locator("fieldset")
    questions.nth(0).get_by_label("Agree", exact=True).check()
    questions.nth(1).get_by_label("Slightly agree").check()
    page.get_by_role("button", name="Save and finish later").click()
    page.get_by_role("heading", name="Your answers are saved").wait_for()

    # Resuming with the same link (in German, switched on the page) keeps those answers.
    page.goto(link)
    page.get_by_role("button", name="Deutsch").click()
    page.get_by_text("Teil 1 von 2").wait_for()
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("fieldset").nth(0).get_by_label("Stimme zu", exact=True).is_checked()
    for index in range(2, 5):
        page.locator("fieldset").nth(index).locator("label.choice").nth(4).click()
    page.get_by_role("button", name="Weiter").click()

    # Part 2 (WHO-5): one question left out gets a message; answers given are kept.
    page.get_by_text("Teil 2 von 2").wait_for()
    skipped = "… habe ich mich energisch und aktiv gefühlt"
    questions = page.locator("fieldset")
    for index in range(questions.count()):
        if skipped not in questions.nth(index).inner_text():
            questions.nth(index).locator("label.choice").nth(3).click()
    page.get_by_role("button", name="Antworten absenden").click()
    page.screenshot(path=artifacts_dir / f"{shot}-2-validation.png", full_page=True)
    assert page.get_by_role("alert").is_visible()
    assert page.locator(".error", has_text="Bitte beantworten Sie diese Frage.").count() == 1
    assert not Response.objects.filter(participant=participant).exists()

    page.get_by_role("group", name=skipped).get_by_label("Meistens").check()
    page.get_by_role("button", name="Antworten absenden").click()
    page.get_by_role("heading", name="Vielen Dank!").wait_for()
    page.screenshot(path=artifacts_dir / f"{shot}-3-thanks.png", full_page=True)
    response = Response.objects.get(participant=participant)
    assert response.answers["who5"]["who5_3"] == 4
    assert response.answers["swls"]["swls_1"] == 6
    assert response.languages == {"swls": "de", "who5": "de"}
    # Per-item timing comes from the script; page timing from the server, with or without it.
    assert set(response.timings["pages"]) == {"swls", "who5"}
    assert ("items" in response.timings) is page.javascript

    # "My data and consent": stop telemetry, then leave the study.
    page.get_by_role("link", name="Ihre Daten und Einwilligungen ansehen").click()
    page.get_by_role("heading", name="Meine Daten und Einwilligungen").wait_for()
    page.get_by_role("link", name="Beenden", exact=True).click()
    page.get_by_role("heading", name="Diesen Datenstrom beenden?").wait_for()
    page.get_by_role("button", name="Ja, beenden").click()
    page.get_by_text("Erledigt: Dieser Datenstrom ist beendet.").wait_for()
    page.get_by_label("Ja, ich möchte die Studie verlassen.").check()
    page.get_by_role("button", name="Die Studie verlassen").click()
    page.get_by_text("Sie haben die Studie am").wait_for()
    page.screenshot(path=artifacts_dir / f"{shot}-4-withdrawn.png", full_page=True)
    participant.refresh_from_db()
    assert participant.withdrawn_at is not None
