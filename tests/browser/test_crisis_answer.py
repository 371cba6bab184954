"""A participant's crisis answer in a real browser: PHQ-9's item 9 answered "Several days" leads
straight to the trial's support page with its resources, which stays reachable from "My data
and consent"; the coordinators' flag is raised with the answers."""

import pytest

from safety.models import SafetyFlag
from surveys.links import survey_path
from surveys.models import Instrument
from trials.models import ConsentDocument
from trials.services import participant_enrol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESOURCES = "Samaritans: call 116 123, free, day or night."
ITEM_9 = "Thoughts that you would be better off dead, or of hurting yourself in some way"


def test_item_9_answered_several_days_shows_the_support_page(
    live_server, laptop, small_trial, artifacts_dir
):
    small_trial.waves.get(index=0).instruments.add(Instrument.objects.get(code="phq9"))
    small_trial.waves.filter(index=0).update(one_page=True)
    document = ConsentDocument.objects.get(trial=small_trial)
    ConsentDocument.objects.filter(pk=document.pk).update(support_resources=RESOURCES)
    participant = participant_enrol(
        trial=small_trial,
        email="crisis@example.org",
        consent_document=document,
        scopes=["surveys", "telemetry"],
    )
    page = laptop
    page.goto(live_server.url + survey_path(participant.pk, small_trial.waves.get(index=0).pk))
    questions = page.locator("fieldset")
    for index in range(questions.count()):
        if ITEM_9 not in questions.nth(index).inner_text():
            questions.nth(index).locator("label.choice").nth(0).click()
    page.get_by_role("group", name=ITEM_9).get_by_label("Several days").check()
    page.get_by_role("button", name="Submit answers").click()

    page.get_by_role("heading", name="Thank you: your answers have been saved").wait_for()
    page.screenshot(path=artifacts_dir / "crisis-answer-support.png", full_page=True)
    resources = page.get_by_role("region", name="Support resources")
    assert RESOURCES in resources.inner_text()
    assert SafetyFlag.objects.filter(participant=participant).count() == 1

    page.get_by_role("link", name="See your data and consent").click()
    page.get_by_role("link", name="Where to get help now").click()
    page.get_by_role("heading", name="Where to get help now").wait_for()
    assert RESOURCES in page.get_by_role("region", name="Support resources").inner_text()
