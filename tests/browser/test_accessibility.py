"""Every page a participant meets has no axe-core violations (WCAG 2.x A and AA and axe's best
practices), checked along one real journey in one browser: the recruitment link, screening and
consent (with its error messages), the e-mailed confirmation, the survey's first page with its
welcome (and with a missing answer), the thank-you page, stopping a stream and starting it
again, the support page, reporting a problem, a new consent version, leaving the study, and the
message pages a closed or tampered link shows."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import ConsentDocument, ConsentScope, Participant
from trials.services import member_add

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENING = {"min_age": 18, "uses_ai_assistants": "yes"}


def _link(pattern: str) -> str:
    """The latest e-mailed link matching ``pattern``."""
    return [found[0] for m in mail.outbox if (found := re.search(pattern, m.body))][-1]


def test_every_participant_page_has_no_axe_violations(live_server, chromium, axe, settings):
    settings.SITE_URL = base = live_server.url
    trial = enrolling_trial("kind", plan=valid_plan(screening=SCREENING))
    ConsentDocument.objects.filter(trial=trial).update(
        text="You may stop at any time.", support_resources="Call 116 123, day or night."
    )
    coordinator = get_user_model().objects.create_user("ada", first_name="Ada", last_name="Byron")
    member_add(trial=trial, user=coordinator, role="coordinator")
    page = chromium.new_context(viewport={"width": 360, "height": 640}).new_page()

    def arrive(heading: str, label: str) -> None:
        page.get_by_role("heading", name=heading).first.wait_for()
        axe.check(page, label)

    page.goto(f"{base}/join/kind/")
    arrive(trial.title, "recruitment page")
    page.get_by_role("link", name="Check whether you can take part").click()
    page.get_by_role("button", name="Continue").wait_for()
    axe.check(page, "screening")
    page.get_by_label("How old are you, in years?").fill("30")
    page.get_by_label("Yes", exact=True).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Sign and send me the link").click()
    arrive("Consent form", "consent form with errors")
    page.get_by_label(re.compile("Answering short surveys")).check()
    page.get_by_label(re.compile("Private usage summaries")).check()
    page.get_by_label("Your e-mail address").fill("ann@example.org")
    page.get_by_label("Type your full name to sign").fill("Ann Smith")
    page.get_by_role("button", name="Sign and send me the link").click()
    arrive("Check your e-mail", "check your e-mail")
    page.goto(_link(r"http\S+/join/kind/confirm/\S+/"))
    page.get_by_role("button", name="Join the study").wait_for()
    axe.check(page, "confirm")
    page.get_by_role("button", name="Join the study").click()
    arrive("My data and consent", "my data")
    my_data = page.url

    survey = _link(r"http\S+/s/(?!my-data/)\S+/")
    page.goto(survey)
    arrive("Welcome", "survey, first page with welcome")
    questions = page.locator("fieldset")
    for index in range(questions.count() - 1):
        questions.nth(index).locator("label.choice").nth(3).click()
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("alert").wait_for()
    axe.check(page, "survey with a missing answer")
    questions.last.locator("label.choice").nth(3).click()
    page.get_by_role("button", name="Submit answers").click()
    arrive("Thank you!", "thank-you page")

    page.goto(my_data)
    page.get_by_role("link", name="Stop this").click()
    arrive("Stop this data stream?", "stop confirmation")
    page.get_by_role("button", name="Yes, stop it").click()
    page.get_by_text("Done: that data stream has stopped.").wait_for()
    axe.check(page, "my data, a stream stopped")
    page.get_by_role("link", name="Start this again").click()
    arrive("Start this data stream again?", "start again confirmation")
    page.get_by_role("button", name="I agree: start it again").click()
    page.get_by_text("Done: that data stream has started again.").wait_for()

    page.get_by_role("link", name="Where to get help now").click()
    arrive("Where to get help now", "support page")
    page.goto(my_data)
    page.get_by_role("link", name="Report a problem").click()
    arrive("Report a problem", "harm report")
    page.get_by_label("Severe: it seriously affected me").check()
    page.get_by_label("The assistant said something harmful or upsetting").check()
    page.get_by_role("button", name="Send the report").click()
    arrive("Thank you for telling us", "harm report sent")

    ConsentDocument.objects.create(
        trial=trial, version=2, text="Version two.", scopes=list(ConsentScope.values)
    )
    page.goto(my_data)
    arrive("The consent form has changed", "reconsent")
    page.get_by_label("Yes, I want to leave the study.").check()
    page.get_by_role("button", name="Leave the study").click()
    page.get_by_text("You left the study on").wait_for()
    axe.check(page, "my data after leaving")
    # The message pages: a survey link that no longer opens, and a tampered one.
    page.goto(survey)
    axe.check(page, "message: the survey after leaving")
    page.goto(f"{base}/s/not-a-real-link/")
    axe.check(page, "message: a tampered link")
    page.context.close()

    assert Participant.objects.get(trial=trial).withdrawn_at is not None
    assert len(axe.pages) == 19
    assert not any(axe.pages.values()), "axe-core violations:\n" + axe.report()
