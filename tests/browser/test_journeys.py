"""The participant and analyst journeys in a real browser; screenshots go to test-artifacts/."""

import pytest
from django.contrib.auth.models import Group, User

from analytics.services import analysis_run_create, analysis_run_execute
from surveys.links import participant_survey_path
from surveys.models import Response
from trials.models import ConsentDocument, TrialMember
from trials.services import member_add, participant_enrol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_participant_answers_a_survey_on_a_phone(live_server, phone, small_trial, artifacts_dir):
    participant = participant_enrol(
        trial=small_trial,
        email="phone@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )
    page = phone
    page.goto(live_server.url + participant_survey_path(participant.pk))
    page.screenshot(path=artifacts_dir / "participant-1-survey.png", full_page=True)
    # Nothing fits sideways: the page must not scroll horizontally on a 360 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # Submitting with one question unanswered keeps the answers and says what is missing.
    skipped = "I have felt active and vigorous"
    questions = page.locator("fieldset")
    for index in range(questions.count()):
        if skipped not in questions.nth(index).inner_text():
            questions.nth(index).locator("label.choice").nth(3).click()
    page.get_by_role("button", name="Submit answers").click()
    page.screenshot(path=artifacts_dir / "participant-2-validation.png", full_page=True)
    assert page.get_by_role("alert").is_visible()
    assert page.locator(".error", has_text="Please answer this question.").count() == 1
    assert not Response.objects.filter(participant=participant).exists()

    page.get_by_role("group", name=skipped).get_by_label("Most of the time").check()
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("heading", name="Thank you").wait_for()
    page.screenshot(path=artifacts_dir / "participant-3-thanks.png", full_page=True)
    response = Response.objects.get(participant=participant)
    assert response.answers["who5"]["who5_3"] == 4


def test_analyst_signs_in_and_reads_the_result(live_server, laptop, small_trial, artifacts_dir):
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    analyst = User.objects.create_user("ana", password="a-long-password")
    analyst.groups.add(Group.objects.get(name="Analysts"))
    member_add(trial=small_trial, user=analyst, role=TrialMember.Role.ANALYST)

    page = laptop
    page.goto(f"{live_server.url}/dashboards/{small_trial.slug}/")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill("a-long-password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Result").wait_for()
    page.screenshot(path=artifacts_dir / "analyst-1-result.png", full_page=True)
    primary = run.results["outcomes"][0]
    row = page.get_by_role("row").filter(has_text="mental_wellbeing")
    assert f"{primary['estimate']:.2f}" in row.inner_text()
