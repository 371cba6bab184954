"""A participant reports a problem in a real browser, with JavaScript on and off: from "My data
and consent", a severe report shows where to get help now, and sending the form twice (a double
tap) makes one report."""

import pytest

from safety.models import AdverseEvent
from surveys.links import data_path
from tests.trials.factories import enrolling_trial
from trials.models import TrialEvent
from trials.services import participant_enrol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SUPPORT = "Call the Samaritans on 116 123, day or night."


def test_participant_reports_a_severe_problem_on_a_phone(live_server, phone, artifacts_dir):
    trial = enrolling_trial("harms")
    document = trial.consent_documents.get()
    document.support_resources = SUPPORT
    document.save()
    participant = participant_enrol(
        trial=trial, email="p@example.org", consent_document=document, scopes=["surveys"]
    )
    page = phone
    shot = f"harm-report-{'js' if page.javascript else 'nojs'}"
    page.goto(live_server.url + data_path(participant.pk))
    page.get_by_role("link", name="Report a problem").click()
    page.get_by_role("heading", name="Report a problem").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # Sent without saying how severe: the browser asks first (the choices are required; the
    # server's own message is tested in tests/safety), nothing is stored.
    page.get_by_label("The assistant said something harmful or upsetting").check()
    page.get_by_role("button", name="Send the report").click()
    assert page.locator("input[name=severity]:invalid").count() == 3
    assert not AdverseEvent.objects.exists()

    page.get_by_label("Severe: it seriously affected me").check()
    page.get_by_label("Tell us more (optional)").fill("It told me nobody would miss me.")
    page.screenshot(path=artifacts_dir / f"{shot}-1-form.png", full_page=True)
    # An impatient double tap sends the form twice, with the same idempotency key.
    page.get_by_role("button", name="Send the report").dblclick()
    page.get_by_role("heading", name="Thank you for telling us").wait_for()
    page.screenshot(path=artifacts_dir / f"{shot}-2-sent.png", full_page=True)
    assert page.get_by_text(SUPPORT).is_visible()
    assert page.get_by_text("call your local emergency number").is_visible()

    (report,) = AdverseEvent.objects.filter(participant=participant)
    assert (report.category, report.severity) == ("harmful_reply", "severe")
    assert report.description == "It told me nobody would miss me."
    (event,) = trial.events.filter(kind=TrialEvent.Kind.ADVERSE_EVENT_REPORTED)
    assert "nobody" not in str(event.detail)
