"""From an empty database (only the accounts) to CONSORT, in a real browser: the site's
administrator adds two oversight bodies, a coordinator sets a two-arm trial up in the admin
(arms, waves, a plan with eligibility screening, consent document), both bodies approve, two
dozen people come through the recruitment link (some ineligible, some declining telemetry, some
never confirming their e-mail), some answer the baseline wave through their e-mailed links, two
leave later, and the participant list and CONSORT count exactly that. Screenshots of the key
steps go to test-artifacts/."""

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.core import mail

from surveys.models import Response
from tests.browser.admin_steps import PASSWORD, action, sign_in, staff
from trials.models import ConsentGrant, Participant, ParticipantContact, Trial

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Each body: its name, its kind as the admin shows it, and its one member.
BODIES = [
    ("Ethics board", "ethics board", "erik"),
    ("Community council", "community council", "fatima"),
]
SURVEYS = re.compile("Answering short surveys")
TELEMETRY = re.compile("Private usage summaries")


@dataclass
class Person:
    """One visitor and what they do at the front door."""

    number: int
    age: int = 30
    uses_ai: str = "Yes"
    telemetry: bool = True
    confirms: bool = True
    answers_baseline: bool = False
    withdraws: bool = False

    @property
    def email(self) -> str:
        return f"person{self.number}@example.org"


def _people() -> list[Person]:
    """24 visitors: 4 ineligible (2 too young, 2 not using an AI assistant); of the 20
    eligible, 4 decline telemetry and 3 never open the confirmation link; of the 17 who join,
    6 answer the baseline wave and 2 later leave the study."""
    people = [Person(n) for n in range(24)]
    for person in people[:2]:
        person.age = 16
    for person in people[2:4]:
        person.uses_ai = "No"
    for person in people[4:8]:
        person.telemetry = False
    for person in people[8:11]:
        person.confirms = False
    for person in people[4:24:3]:  # 4, 7, 10, 13, 16, 19, 22: 10 never confirms
        person.answers_baseline = person.confirms
    people[5].withdraws = people[20].withdraws = True
    return people


def _link(email: str, pattern: str) -> str:
    """The link matching ``pattern`` in the latest message to ``email`` that has one."""
    links = [re.search(pattern, m.body) for m in mail.outbox if m.to == [email]]
    return [link[0] for link in links if link][-1]


def _add_oversight_bodies(page, base: str) -> None:
    """The site's administrator adds the bodies, each with its member."""
    sign_in(page, base, "root")
    for name, kind, member in BODIES:
        page.goto(f"{base}/admin/trials/oversightbody/add/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Kind").select_option(label=kind)
        # The members widget (filter_horizontal): pick from the left box, then "Choose".
        page.locator("#id_members_from").select_option(label=member)
        page.locator("#id_members_add").click()
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_text("was added successfully").wait_for()
    page.context.clear_cookies()


def _set_up_trial(page, chromium, base: str, artifacts_dir) -> Trial:
    """The coordinator's steps in the admin, those test_coordinator.py checks one by one, with
    screening criteria in the plan and a consent document offering telemetry."""
    sign_in(page, base, "carol")
    page.goto(f"{base}/admin/trials/trial/add/")
    page.get_by_label("Slug").fill("door")
    page.get_by_label("Title").fill("Kinder assistants")
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("was added successfully").wait_for()
    trial = Trial.objects.get(slug="door")
    trial_page = f"{base}/admin/trials/trial/{trial.pk}/change/"
    for slug, control in [("a", True), ("b", False)]:
        page.goto(trial_page)
        page.get_by_role("link", name="Add an arm").click()
        page.get_by_label("Slug").fill(slug)
        page.get_by_label("Name").fill(f"Assistant {slug.upper()}")
        if control:
            page.get_by_label("Is control").check()
        page.get_by_label("Endpoint url").fill("https://assistant.example.org/v1")
        page.get_by_label("Model id").fill("assistant")
        page.get_by_label("Model version").fill("2026-01")
        page.get_by_label("System prompt").fill(f"Prompt {slug}.")
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_text("was added successfully").wait_for()
    page.goto(trial_page)
    for index, (body, _, _) in enumerate(BODIES):
        page.locator("#oversight-group .add-row a").click()
        page.locator(f"select[name='oversight-{index}-body']").select_option(label=body)
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("was changed successfully").wait_for()
    for index, day in [(0, 0), (1, 14)]:
        page.goto(f"{base}/admin/surveys/wave/add/")
        page.locator("select[name=trial]").select_option(label="door")
        page.get_by_label("Index").fill(str(index))
        page.get_by_label("Day offset").fill(str(day))
        page.locator("select[name=instruments]").select_option(label="who5")
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_text("was added successfully").wait_for()

    page.goto(trial_page)
    page.get_by_role("link", name="Write the plan").click()
    page.get_by_label("Hypotheses").fill("B raises mental wellbeing compared with A.")
    page.get_by_label("Control arm").fill("a")
    page.get_by_label("Treatment arm").fill("b")
    page.get_by_label("Randomisation method").select_option("permuted_blocks")
    page.get_by_label("Primary outcomes").fill("mental_wellbeing, who5, 1")
    page.get_by_label("Minimal important differences").fill("mental_wellbeing: 10")
    page.get_by_label("Eligibility screening").fill("age: 18-\nuses AI assistants: yes")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    action(
        page,
        base,
        "preregistration",
        "door",
        "Freeze the selected draft (an amendment once registered)",
    )
    page.get_by_role("button", name="Yes, freeze").click()
    page.get_by_text("door v1 frozen").wait_for()
    action(page, base, "trial", "door", "Register (the frozen plan is in force)")
    page.get_by_role("button", name="Yes, register").click()
    page.get_by_text("door: now registered").wait_for()

    for body, _, member in BODIES:  # each body's member, in their own session
        reviewer = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(reviewer, base, member)
        reviewer.goto(f"{base}/admin/trials/trial/{trial.pk}/oversight/approve/")
        reviewer.get_by_label("Body").select_option(label=body)
        reviewer.get_by_role("button", name="Approve").click()
        reviewer.get_by_text(f"{body} approved plan version 1.").wait_for()
        reviewer.context.close()

    page.goto(trial_page)
    page.locator("#setup-checklist").get_by_role("link", name="Consent document").click()
    page.get_by_label("Version").fill("1")
    page.get_by_label("Text").fill("You may stop at any time; your answers stay pseudonymous.")
    page.get_by_label("Surveys").check()
    page.get_by_label("Telemetry").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    action(page, base, "trial", "door", "Open / resume enrolment")
    page.get_by_text("door: now enrolling").wait_for()
    page.goto(trial_page)
    page.screenshot(path=artifacts_dir / "front-door-1-enrolling.png", full_page=True)
    return trial


def _come_through_the_door(chromium, base: str, person: Person, artifacts_dir) -> str:
    """The person's visit, from the recruitment link to the my-data page; returns that page's
    address (empty for those who are not enrolled)."""
    # Each person from their own connection, as the front door's per-client limits assume.
    context = chromium.new_context(
        viewport={"width": 360, "height": 640},
        extra_http_headers={"X-Forwarded-For": f"192.0.2.{person.number + 1}"},
    )
    page = context.new_page()
    shots = person.number in (0, 4)
    try:
        page.goto(f"{base}/join/door/")
        page.get_by_role("link", name="Check whether you can take part").click()
        page.get_by_label("How old are you, in years?").fill(str(person.age))
        page.get_by_label(person.uses_ai, exact=True).check()
        page.get_by_role("button", name="Continue").click()
        if person.age < 18 or person.uses_ai == "No":
            page.get_by_role("heading", name="Thank you for your interest").wait_for()
            if shots:
                page.screenshot(path=artifacts_dir / "front-door-2-ineligible.png")
            return ""
        page.get_by_role("heading", name="Consent form").wait_for()
        page.get_by_label(SURVEYS).check()
        if person.telemetry:
            page.get_by_label(TELEMETRY).check()
        page.get_by_label("Your e-mail address").fill(person.email)
        page.get_by_label("Type your full name to sign").fill(f"Person {person.number}")
        if shots:
            page.screenshot(path=artifacts_dir / "front-door-3-consent.png", full_page=True)
        page.get_by_role("button", name="Sign and send me the link").click()
        page.get_by_role("heading", name="Check your e-mail").wait_for()
        if not person.confirms:
            return ""
        page.goto(_link(person.email, r"http\S+/join/door/confirm/\S+/"))
        page.get_by_role("button", name="Join the study").click()
        page.get_by_role("heading", name="My data and consent").wait_for()
        if shots:
            page.screenshot(path=artifacts_dir / "front-door-4-joined.png", full_page=True)
        return page.url
    finally:
        context.close()


def _answer_baseline(page, person: Person) -> None:
    page.goto(_link(person.email, r"http\S+/s/(?!my-data/)\S+/"))
    questions = page.locator("fieldset")
    for index in range(questions.count()):
        questions.nth(index).locator("label.choice").nth(3).click()
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("heading", name="Thank you!").wait_for()


def _leave(page, my_data: str) -> None:
    page.goto(my_data)
    page.get_by_label("Yes, I want to leave the study.").check()
    page.get_by_role("button", name="Leave the study").click()
    page.get_by_text("You left the study on").wait_for()


def _consort(page) -> dict[str, str]:
    """The CONSORT page's enrolment table, row heading to cell, whitespace collapsed."""
    rows = page.locator("#content-main table").first.locator("tr")
    return {
        " ".join(rows.nth(i).locator("th").inner_text().split()): " ".join(
            rows.nth(i).locator("td").inner_text().split()
        )
        for i in range(rows.count())
    }


def test_two_dozen_people_join_through_the_front_door_and_consort_counts_them(
    live_server, chromium, artifacts_dir, settings
):
    base = live_server.url
    # The e-mailed links lead to this server; each visitor's address comes from the proxy
    # header (config.security.client_ip), as behind the deployment's TLS proxy.
    settings.SITE_URL = base
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The accounts exist; everything else is made in the browser.
    User.objects.create_superuser("root", password=PASSWORD)
    staff("carol", "Coordinators")
    for _, _, member in BODIES:
        staff(member, "Oversight members")
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _add_oversight_bodies(page, base)
    trial = _set_up_trial(page, chromium, base, artifacts_dir)
    approved = trial.preregistrations.get().approvals.values_list(
        "body__name", "decided_by__username"
    )
    assert sorted(approved) == [("Community council", "fatima"), ("Ethics board", "erik")]

    people = _people()
    my_data = {p.number: _come_through_the_door(chromium, base, p, artifacts_dir) for p in people}
    joined = [p for p in people if my_data[p.number]]
    assert len(joined) == Participant.objects.filter(trial=trial).count() == 17
    arm_of = dict(
        ParticipantContact.objects.filter(participant__trial=trial).values_list(
            "email", "participant__allocation__arm__name"
        )
    )
    assert sorted(arm_of) == sorted(p.email for p in joined)

    # Later: some answer the baseline wave from the e-mailed invitation; two leave the study.
    visitor = chromium.new_context(viewport={"width": 360, "height": 640}).new_page()
    for person in joined:
        if person.answers_baseline:
            _answer_baseline(visitor, person)
        if person.withdraws:
            _leave(visitor, my_data[person.number])
    visitor.screenshot(path=artifacts_dir / "front-door-5-withdrawn.png", full_page=True)
    visitor.context.close()
    assert Response.objects.filter(participant__trial=trial).count() == 6
    telemetry = ConsentGrant.objects.filter(participant__trial=trial, scope="telemetry")
    assert telemetry.count() == 17 - 4

    # The coordinator's participant list, from the trial's page: each person's steps.
    page.goto(f"{base}/admin/trials/trial/{trial.pk}/change/")
    page.locator("#trial-records").get_by_role("link", name="Participants", exact=True).click()
    page.get_by_text("Assessed for eligibility: 24, eligible: 20. Enrolled: 17.").wait_for()
    page.screenshot(path=artifacts_dir / "front-door-6-participants.png", full_page=True)
    headings = page.locator("#participants thead th").all_text_contents()
    # Each row starts with a th (the pseudonym), so a heading's cell is one to the left.
    wave_0, wave_1, withdrawn = (headings.index(h) - 1 for h in ("Wave 0", "Wave 1", "Withdrawn"))
    statuses = [
        (cells[wave_0], cells[wave_1], cells[withdrawn] != "—")
        for cells in (
            row.locator("td").all_text_contents()
            for row in page.locator("#participants tbody tr").all()
        )
    ]
    assert sorted(statuses) == sorted(
        ("answered" if p.answers_baseline else "invited", "not yet invited", p.withdraws)
        for p in joined
    )

    page.goto(f"{base}/admin/trials/trial/{trial.pk}/consort/")
    page.screenshot(path=artifacts_dir / "front-door-7-consort.png", full_page=True)
    assert _consort(page) == {
        "Assessed for eligibility": "24",
        "Excluded (not eligible)": "4 age outside 18-: 2 does not use an AI assistant: 2",
        "Eligible": "20",
        "Consented and randomised": "17",
    }
    # Per arm: allocated and withdrawn as they happened; nobody has reached the final wave.
    rows = page.locator("#content-main table").nth(1).locator("tbody tr")
    shown = {
        rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").all_inner_texts()[:4]
        for i in range(rows.count())
    }
    assert shown == {
        f"{arm} ({arm[-1].lower()})": [
            str(list(arm_of.values()).count(arm)),
            "0",
            "0",
            str(sum(arm_of[p.email] == arm for p in joined if p.withdraws)),
        ]
        for arm in ("Assistant A", "Assistant B")
    }
