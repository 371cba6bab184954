"""An oversight body's journey, in a real browser: a member of a community council reads the plan
document and the safety report on the council's own pages and suspends the trial; its
coordinator cannot resume it; the council lifts its suspension with a rationale, which restores
enrolment. Screenshots of each step go to test-artifacts/."""

import pytest

from analytics.seeding import synthetic_trial_create
from tests.browser.admin_steps import action, sign_in, staff
from trials.models import OversightBody, Trial, TrialEvent, TrialMember
from trials.services import member_add

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COUNCIL = "Participants' community council"


def test_a_body_suspends_the_coordinator_cannot_resume_and_the_body_lifts(
    live_server, chromium, artifacts_dir
):
    base = live_server.url
    trial = synthetic_trial_create(slug="watched", participants=12, waves=3, effect=0.5, seed=3)
    member_add(trial=trial, user=staff("carol", "Coordinators"), role=TrialMember.Role.COORDINATOR)
    OversightBody.objects.get(name=COUNCIL).members.add(staff("cleo", "Oversight members"))

    # 1. The council's member reads the plan document, then the report.
    member = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(member, base, "cleo")
    member.goto(f"{base}/dashboards/oversight/")
    member.get_by_role("row").filter(has_text=trial.title).get_by_role("link", name="Plan").click()
    member.get_by_role("heading", name="Plan version 1").wait_for()
    document = member.locator("pre.plan-document").inner_text()
    assert trial.preregistrations.get().sha256 in document and "## Hypotheses" in document
    member.screenshot(path=artifacts_dir / "oversight-1-plan.png", full_page=True)

    member.get_by_role("link", name="Report", exact=True).click()
    member.get_by_role("heading", name="Harms").wait_for()
    harms = member.locator("#harms tbody").inner_text()
    assert "Arm 1" in harms and "Arm 2" in harms
    assert "flourishing-oriented" not in member.content()  # blinded: no arm's name
    consort = member.locator("#consort").inner_text()
    assert "Consented and randomised: 12" in consort
    member.screenshot(path=artifacts_dir / "oversight-2-report.png", full_page=True)

    # 2. It suspends the trial, saying why.
    member.get_by_label("Note / reason").fill("Two participants reported distress.")
    member.get_by_role("button", name="Suspend the trial").click()
    member.get_by_text(f"{COUNCIL} suspended the trial.").wait_for()
    member.locator("#suspension li.suspension").filter(has_text="reported distress").wait_for()

    # 3. The coordinator cannot resume it: the refusal names the council and its reason.
    coordinator = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(coordinator, base, "carol")
    action(coordinator, base, "trial", "watched", "Open / resume enrolment")
    refusal = coordinator.locator(".messagelist .error")
    refusal.filter(has_text=f"{COUNCIL} suspended it (Two participants reported").wait_for()
    coordinator.screenshot(path=artifacts_dir / "oversight-3-resume-refused.png", full_page=True)
    trial.refresh_from_db()
    assert trial.state == Trial.State.SUSPENDED
    coordinator.goto(f"{base}/admin/trials/trial/{trial.pk}/change/")
    standing = coordinator.locator("#standing-suspensions").inner_text()
    assert f"stands until lifted by {COUNCIL}" in standing

    # 4. The council lifts its suspension with a rationale; enrolment is open again.
    member.get_by_label("Note / reason").fill("Both reports assessed: unrelated to the assistant.")
    member.get_by_role("button", name="Lift our suspension").click()
    member.get_by_text("lifted its suspension; the trial is now enrolling").wait_for()
    member.screenshot(path=artifacts_dir / "oversight-4-lifted.png", full_page=True)
    trial.refresh_from_db()
    assert trial.state == Trial.State.ENROLLING
    lifted = trial.events.get(kind=TrialEvent.Kind.SUSPENSION_LIFTED)
    assert lifted.actor.username == "cleo" and lifted.detail["body"] == COUNCIL
    coordinator.goto(f"{base}/admin/trials/trial/")
    coordinator.get_by_role("row").filter(has_text="watched").get_by_text("Enrolling").wait_for()
    member.context.close()
    coordinator.context.close()
