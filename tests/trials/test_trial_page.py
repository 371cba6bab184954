"""The trial's admin page as a coordinator uses it: the setup checklist, the links to the trial's
records, the audit trail paged, confirmation before freezing and registering, and a paused
trial shown as such."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.trials.factories import ARM, bodies, draft_trial, enrolling_trial, valid_plan
from trials import selectors
from trials.models import ConsentDocument, ConsentScope, Trial, TrialEvent
from trials.selectors import preregistration_current
from trials.services import (
    approval_record,
    arm_create,
    event_record,
    oversight_assign,
    preregistration_amend,
    preregistration_draft_save,
    preregistration_freeze,
    trial_create,
    trial_suspend,
)

pytestmark = pytest.mark.django_db


def staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def alice(client):
    user = staff("alice", "Coordinators")
    client.force_login(user)
    return user


def page_of(client, trial: Trial) -> str:
    response = client.get(f"/admin/trials/trial/{trial.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def checklist(page: str) -> dict[str, tuple[str, str | None]]:
    """Each checklist line's text (tags stripped, spaces collapsed) and its link."""
    lines = {}
    for key, body in re.findall(r'<li class="setup-(\w+)">(.*?)</li>', page, re.S):
        link = re.search(r'href="([^"]+)"', body)
        text = " ".join(re.sub(r"<[^>]+>", "", body).split())
        lines[key] = (text, link.group(1).replace("&amp;", "&") if link else None)
    return lines


def test_the_checklist_of_a_new_trial_names_what_is_missing_and_where(client, alice):
    trial = trial_create(slug="new", title="New", actor=alice)
    arm_create(trial=trial, slug="a", name="A", is_control=True, **ARM)
    lines = checklist(page_of(client, trial))
    assert list(lines) == ["arms", "plan", "oversight", "waves", "consent", "recruitment"]
    assert lines["arms"] == (
        "✗ Arms: 1 arm (a (control)); a trial compares at least two.",
        f"/admin/trials/arm/add/?trial={trial.pk}",
    )
    assert lines["plan"][0] == "✗ Plan: not written yet."
    assert lines["oversight"][0] == "✗ Oversight: no required body assigned yet."
    assert lines["waves"] == (
        "✗ Waves: no wave scheduled yet.",
        f"/admin/surveys/wave/add/?trial={trial.pk}",
    )
    assert lines["consent"] == (
        "✗ Consent document: none written yet.",
        f"/admin/trials/consentdocument/add/?trial={trial.pk}",
    )
    assert lines["recruitment"] == ("✗ Recruitment link: not yet available.", None)
    # Each link opens the page where the item is done, for this trial.
    for _, url in list(lines.values())[:-1]:
        assert client.get(url).status_code == 200, url


def test_the_checklist_follows_the_trial_through_its_setup(client, alice):
    trial = draft_trial("t", actor=alice)
    # The draft plan measures at wave 3, which the schedule (0, 1, 2) lacks.
    bad = valid_plan(
        primary_outcomes=[{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 3}]
    )
    preregistration_draft_save(trial=trial, plan=bad)
    lines = checklist(page_of(client, trial))
    assert lines["arms"][0] == "✓ Arms: a (control), b"
    assert lines["plan"][0] == "✗ Plan: version 1 is a draft: freeze it."
    assert lines["waves"][0] == ("✗ Waves: waves 0, 1, 2; the plan measures outcomes at wave 3.")
    preregistration_draft_save(trial=trial, plan=valid_plan())
    frozen = preregistration_freeze(trial=trial)
    ethics, council = bodies("Ethics", "Council")
    oversight_assign(trial=trial, body=ethics)
    oversight_assign(trial=trial, body=council)
    approval_record(body=ethics, preregistration=frozen)
    lines = checklist(page_of(client, trial))
    assert lines["plan"][0] == (
        f"✓ Plan: version 1 frozen (SHA-256 {frozen.sha256[:12]}…); no version in force until "
        "every required body approves one."
    )
    assert lines["oversight"][0] == "✗ Oversight: version 1 awaits approval by Council."
    assert lines["waves"][0] == "✓ Waves: waves 0, 1, 2"
    approval_record(body=council, preregistration=frozen)
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=list(ConsentScope.values)
    )
    lines = checklist(page_of(client, trial))
    assert lines["plan"][0].endswith("it is in force.")
    assert lines["oversight"][0] == "✓ Oversight: Council, Ethics approved version 1."
    assert lines["consent"][0] == "✓ Consent document: version 1 (en)"
    assert lines["recruitment"][0] == "✗ Recruitment link: not yet available."


def test_the_recruitment_link_comes_from_the_app_that_serves_the_pages(client, alice, monkeypatch):
    trial = enrolling_trial("t", actor=alice)
    monkeypatch.setattr(selectors, "_recruitment_links", [])
    selectors.register_recruitment_link(lambda t: None)
    selectors.register_recruitment_link(lambda t: f"/join/{t.slug}/")
    lines = checklist(page_of(client, trial))
    assert lines["recruitment"] == ("✓ Recruitment link: /join/t/", "/join/t/")


def test_the_page_links_to_the_trial_s_records_filtered_to_it(client, alice):
    trial = enrolling_trial("mine", actor=alice)
    enrolling_trial("other", actor=alice)
    page = page_of(client, trial)
    records = re.search(r'id="trial-records">(.*?)</fieldset>', page, re.S).group(1)
    links = dict(
        (text, url.replace("&amp;", "&"))
        for url, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', records)
    )
    query = f"?trial__id__exact={trial.pk}"
    assert links == {
        "Plan versions": f"/admin/trials/preregistration/{query}",
        "Consent documents": f"/admin/trials/consentdocument/{query}",
        "Audit trail": f"/admin/trials/trial/{trial.pk}/audit/",
        "Waves": f"/admin/surveys/wave/{query}",
        "Participants": f"/admin/surveys/wave/participants/{trial.pk}/",
        "invite from a contact list": f"/admin/surveys/wave/invite/{trial.pk}/",
        "Analysis runs": f"/admin/analytics/analysisrun/{query}",
        "Dashboard": "/dashboards/mine/",
    }
    waves = client.get(links["Waves"]).content.decode()
    assert "mine wave 0" in waves and "other wave 0" not in waves
    plans = client.get(links["Plan versions"]).content.decode()
    assert "mine v1" in plans and "other v1" not in plans
    for url in links.values():
        assert client.get(url).status_code == 200, url


def test_the_page_shows_the_latest_events_and_links_to_all_of_them_paged(client, alice):
    trial = draft_trial("t", actor=alice)
    for n in range(150):
        event_record(trial=trial, kind=TrialEvent.Kind.ACCESS_REFUSED, actor=alice, n=n)
    total = trial.events.count()
    page = page_of(client, trial)
    recent = re.search(r'id="recent-events">(.*?)</fieldset>', page, re.S).group(1)
    rows = re.findall(r"<tr><td>(\d+)</td>", recent)
    assert [int(r) for r in rows] == list(range(total, total - 50, -1))
    assert f"All {total} events, paged" in recent
    first = client.get(f"/admin/trials/trial/{trial.pk}/audit/").content.decode()
    second = client.get(f"/admin/trials/trial/{trial.pk}/audit/?page=2").content.decode()
    first_rows = [int(r) for r in re.findall(r"<tr><td>(\d+)</td>", first)]
    second_rows = [int(r) for r in re.findall(r"<tr><td>(\d+)</td>", second)]
    assert first_rows + second_rows == list(range(total, 0, -1))
    assert len(first_rows) == 100 and "older →" in first and "← newer" in second
    # Another coordinator's audit view of this trial is refused, and the refusal audited.
    bob = staff("bob", "Coordinators")
    client.force_login(bob)
    assert client.get(f"/admin/trials/trial/{trial.pk}/audit/").status_code == 403
    assert trial.events.filter(kind="access_refused", actor=bob).exists()


def test_freezing_asks_first_and_shows_the_hash_to_be(client, alice):
    trial = draft_trial("t", actor=alice)
    draft = preregistration_draft_save(trial=trial, plan=valid_plan())
    selection = {"action": "freeze", "_selected_action": [draft.pk]}
    asked = client.post("/admin/trials/preregistration/", selection)
    assert asked.status_code == 200
    text = asked.content.decode()
    hash_to_be = re.search(r"Freezes as SHA-256 ([0-9a-f]{64})", text).group(1)
    assert "cannot be changed afterwards" in text and 'value="Yes, freeze"' in text
    draft.refresh_from_db()
    assert draft.frozen_at is None
    done = client.post("/admin/trials/preregistration/", selection | {"post": "yes"})
    assert done.status_code == 302
    draft.refresh_from_db()
    assert draft.frozen_at is not None and draft.sha256 == hash_to_be


def test_a_draft_that_cannot_be_frozen_is_explained_without_a_confirm_button(client, alice):
    trial = draft_trial("t", actor=alice)
    plan = valid_plan(arms_compared=["a", "c"])
    draft = preregistration_draft_save(trial=trial, plan=plan)
    asked = client.post(
        "/admin/trials/preregistration/", {"action": "freeze", "_selected_action": [draft.pk]}
    ).content.decode()
    assert "Cannot be frozen:" in asked and "arms: a, b" in asked
    assert "Yes, freeze" not in asked


def test_registering_asks_first(client, alice):
    trial = draft_trial("t", actor=alice)
    frozen = preregistration_freeze(trial=trial, plan=valid_plan())
    selection = {"action": "move_to_registered", "_selected_action": [trial.pk]}
    asked = client.post("/admin/trials/trial/", selection).content.decode()
    assert f"Plan version 1, SHA-256 {frozen.sha256}, becomes its protocol." in asked
    assert "Registration cannot be undone" in asked and 'value="Yes, register"' in asked
    trial.refresh_from_db()
    assert trial.state == Trial.State.DRAFT
    client.post("/admin/trials/trial/", selection | {"post": "yes"})
    trial.refresh_from_db()
    assert trial.state == Trial.State.REGISTERED


def test_an_enrolling_trial_awaiting_approval_of_an_amendment_reads_paused(client, alice):
    trial = enrolling_trial("t", actor=alice)
    status_line = "Enrolling — paused: version 2 awaits approval by Council, Ethics"
    preregistration_amend(trial=trial, rationale="A secondary outcome.", plan=valid_plan())
    assert status_line in page_of(client, trial)
    assert status_line in client.get("/admin/trials/trial/").content.decode()
    for body in bodies("Ethics", "Council"):
        approval_record(body=body, preregistration=preregistration_current(trial))
    page = page_of(client, trial)
    assert "paused" not in page and ">Enrolling<" in page
    trial_suspend(trial=trial, body=bodies("Ethics")[0], reason="An adverse event.")
    assert ">Suspended<" in client.get("/admin/trials/trial/").content.decode()
