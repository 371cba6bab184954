"""The coordinator's journey in the admin, in a real browser: create a trial, add its arms,
write and freeze the plan, register, have an oversight body approve, open enrolment.
Screenshots of each step go to test-artifacts/."""

import pytest

from tests.browser.admin_steps import action, sign_in, staff
from trials.models import OversightBody, Trial, TrialEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _checklist(page) -> list[str]:
    """The trial page's setup checklist, a line per item."""
    return [
        " ".join(line.split()) for line in page.locator("#setup-checklist li").all_inner_texts()
    ]


def test_coordinator_registers_a_trial_through_to_open_enrolment(
    live_server, chromium, artifacts_dir
):
    base = live_server.url
    staff("carol", "Coordinators")
    member = staff("erik", "Oversight members")
    ethics = OversightBody.objects.create(name="Ethics board", kind="ethics_board")
    ethics.members.add(member)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # 1. Create the trial.
    sign_in(page, base, "carol")
    page.goto(f"{base}/admin/trials/trial/add/")
    page.get_by_label("Slug").fill("journey")
    page.get_by_label("Title").fill("Journey trial")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("was added successfully").wait_for()
    page.screenshot(path=artifacts_dir / "coordinator-1-trial-created.png", full_page=True)
    trial = Trial.objects.get(slug="journey")
    assert trial.state == Trial.State.DRAFT and trial.members.get().user.username == "carol"

    # 2. Its two arms (assistant configurations), each added from the trial's page.
    trial_page = f"{base}/admin/trials/trial/{trial.pk}/change/"
    for slug, name, control, prompt in [
        ("a", "A: helpful assistant", True, "Be helpful."),
        ("b", "B: flourishing-oriented assistant", False, "Support the user's own judgement."),
    ]:
        page.goto(trial_page)
        page.get_by_role("link", name="Add an arm").click()
        assert page.get_by_label("Trial").input_value() == str(trial.pk)
        page.get_by_label("Slug").fill(slug)
        page.get_by_label("Name").fill(name)
        if control:
            page.get_by_label("Is control").check()
        page.get_by_label("Endpoint url").fill("https://assistant.example.org/v1")
        page.get_by_label("Model id").fill("assistant")
        page.get_by_label("Model version").fill("2026-01")
        page.get_by_label("System prompt").fill(prompt)
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_text("was added successfully").wait_for()
    assert trial.arms.count() == 2
    # The draft trial's page, arms listed, still saves: a new title and its oversight body.
    page.goto(trial_page)
    page.get_by_label("Title").fill("Journey trial (pilot)")
    page.locator("#oversight-group .add-row a").click()
    page.locator("select[name='oversight-0-body']").select_option(label="Ethics board")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("was changed successfully").wait_for()
    page.screenshot(path=artifacts_dir / "coordinator-2-arms.png", full_page=True)
    trial.refresh_from_db()
    assert trial.title == "Journey trial (pilot)" and trial.oversight.get().body == ethics

    # 3. The schedule: a baseline and a follow-up wave of WHO-5, a fortnight apart.
    for index, day in [(0, 0), (1, 14)]:
        page.goto(f"{base}/admin/surveys/wave/add/")
        page.locator("select[name=trial]").select_option(label="journey")
        page.get_by_label("Index").fill(str(index))
        page.get_by_label("Day offset").fill(str(day))
        page.locator("select[name=instruments]").select_option(label="who5")
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_text("was added successfully").wait_for()
    assert trial.waves.count() == 2

    # 4. The plan, from the trial's page. A slip in the outcome (an
    # instrument written as its printed name, a wave the schedule does not have) is refused when
    # freezing, with the valid choices named; corrected, the draft freezes.
    page.goto(trial_page)
    page.get_by_role("link", name="Write the plan").click()
    assert page.locator("select[name=trial]").input_value() == str(trial.pk)
    page.get_by_label("Hypotheses").fill("B raises mental wellbeing compared with A.")
    page.get_by_label("Control arm").fill("a")
    page.get_by_label("Treatment arm").fill("b")
    page.get_by_label("Randomisation method").select_option("permuted_blocks")
    page.get_by_label("Primary outcomes").fill("mental_wellbeing, WHO-5, 3")
    page.get_by_label("Multiplicity").select_option("holm")
    page.get_by_label("Minimal important differences").fill("mental_wellbeing: 10")
    page.screenshot(path=artifacts_dir / "coordinator-3-plan.png", full_page=True)
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    freeze = "Freeze the selected draft (an amendment once registered)"
    # Freezing asks first; a draft that cannot be frozen says why, with nothing to confirm.
    action(page, base, "preregistration", "journey", freeze)
    page.get_by_text("no instrument has the code 'WHO-5'").wait_for()
    assert page.get_by_role("button", name="Yes, freeze").count() == 0
    assert trial.preregistrations.get().frozen_at is None
    page.goto(trial_page)
    page.get_by_role("link", name="Write the plan").click()
    assert page.get_by_label("Hypotheses").input_value() == (
        "B raises mental wellbeing compared with A."
    )
    page.get_by_label("Primary outcomes").fill("mental_wellbeing, who5, 3")
    page.get_by_role("button", name="Save", exact=True).click()
    action(page, base, "preregistration", "journey", freeze)
    page.get_by_text("the trial's schedule has no wave 3 (waves: 0, 1)").wait_for()
    page.goto(trial_page)
    page.get_by_role("link", name="Write the plan").click()
    page.get_by_label("Primary outcomes").fill("mental_wellbeing, who5, 1")
    page.get_by_role("button", name="Save", exact=True).click()
    action(page, base, "preregistration", "journey", freeze)
    page.get_by_text("cannot be changed afterwards").wait_for()
    hash_to_be = page.get_by_text("Freezes as SHA-256").inner_text().split()[-1].rstrip(".")
    page.screenshot(path=artifacts_dir / "coordinator-4-confirm-freeze.png", full_page=True)
    page.get_by_role("button", name="Yes, freeze").click()
    page.get_by_text("journey v1 frozen").wait_for()
    page.screenshot(path=artifacts_dir / "coordinator-4-frozen.png", full_page=True)
    prereg = trial.preregistrations.get()
    assert prereg.frozen_at is not None and prereg.sha256 == hash_to_be

    # 5. Register.
    action(page, base, "trial", "journey", "Register (the frozen plan is in force)")
    page.get_by_text("Registration cannot be undone").wait_for()
    page.get_by_role("button", name="Yes, register").click()
    page.get_by_text("journey: now registered").wait_for()
    page.goto(trial_page)
    # The checklist: done up to the approval and the consent document, each a link.
    assert _checklist(page) == [
        "✓ Arms: a (control), b",
        f"✓ Plan: version 1 frozen (SHA-256 {prereg.sha256[:12]}…); no version in force "
        "until every required body approves one.",
        "✗ Oversight: version 1 awaits approval by Ethics board.",
        "✓ Waves: waves 0, 1",
        "✗ Consent document: none written yet.",
        "✗ Recruitment link: not yet available.",
    ]
    page.screenshot(path=artifacts_dir / "coordinator-5-registered.png", full_page=True)

    # Enrolment cannot open before the body approves this version.
    action(page, base, "trial", "journey", "Open / resume enrolment")
    page.get_by_text("missing: Ethics board").wait_for()

    # 6. A member of the body approves the frozen version in their own session.
    reviewer = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(reviewer, base, "erik")
    reviewer.goto(f"{base}/admin/trials/trial/{trial.pk}/oversight/approve/")
    reviewer.get_by_label("Body").select_option(label="Ethics board")
    reviewer.get_by_label("Note / reason").fill("Risks are proportionate; consent is clear.")
    reviewer.get_by_role("button", name="Approve").click()
    reviewer.get_by_text("Ethics board approved plan version 1.").wait_for()
    reviewer.screenshot(path=artifacts_dir / "coordinator-6-approved.png", full_page=True)
    reviewer.context.close()

    # 7. The consent document, from the checklist's link; then open enrolment.
    page.goto(trial_page)
    page.locator("#setup-checklist").get_by_role("link", name="Consent document").click()
    assert page.locator("select[name=trial]").input_value() == str(trial.pk)
    page.get_by_label("Version").fill("1")
    page.get_by_label("Text").fill("You may stop at any time; your answers stay pseudonymous.")
    page.get_by_label("Surveys").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    action(page, base, "trial", "journey", "Open / resume enrolment")
    page.get_by_text("journey: now enrolling").wait_for()
    page.screenshot(path=artifacts_dir / "coordinator-7-enrolling.png", full_page=True)
    trial.refresh_from_db()
    assert trial.state == Trial.State.ENROLLING
    moves = TrialEvent.objects.filter(trial=trial, kind="state_changed").order_by("at")
    assert [e.detail["to"] for e in moves] == ["registered", "enrolling"]
    assert all(e.actor.username == "carol" for e in moves)
    context.close()
