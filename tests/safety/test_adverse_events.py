"""Adverse events: participants report them through their own links, coordinators record and
assess them in the admin for their own trials only, blind to the arm."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from safety.models import AdverseEvent
from safety.selectors import adverse_event_rates
from safety.services import adverse_event_report
from surveys.links import data_token, survey_token
from surveys.models import Wave
from tests.safety.conftest import coordinator_of, enrol
from tests.trials.factories import enrolling_trial
from trials.models import TrialEvent

pytestmark = pytest.mark.django_db

SUPPORT = "Call the Samaritans on 116 123, day or night."


@pytest.fixture
def participant(guarded_trial):
    document = guarded_trial.consent_documents.get()
    document.support_resources = SUPPORT
    document.save()
    (person,) = [p for people in enrol(guarded_trial, 1).values() for p in people]
    return person


def data_report_url(participant) -> str:
    return reverse("surveys:data_report", kwargs={"token": data_token(participant.pk)})


def form_key(page: str) -> str:
    return re.search(r'name="report_key" value="([0-9a-f]{32})"', page).group(1)


def reports(trial):
    return list(trial.events.filter(kind=TrialEvent.Kind.ADVERSE_EVENT_REPORTED))


def test_my_data_page_links_to_the_report_form(client, participant):
    page = client.get(reverse("surveys:my_data", kwargs={"token": data_token(participant.pk)}))
    assert data_report_url(participant).split("/report/")[0] in page.content.decode()
    assert "/report/" in page.content.decode()


def test_a_report_from_my_data_is_stored_once_and_thanked(client, participant):
    url = data_report_url(participant)
    form = client.get(url)
    assert form.status_code == 200
    page = form.content.decode()
    assert "optional" in page.lower() and "do not include names" in page
    key = form_key(page)
    data = {
        "category": "harmful_reply",
        "severity": "moderate",
        "description": "It mocked me.",
        "report_key": key,
    }
    sent = client.post(url, data)
    assert sent.status_code == 302 and sent["Location"].endswith(f"?sent={key}")
    # The same form sent again (a double click, a reload): nothing new.
    again = client.post(url, data)
    assert again.status_code == 302
    (report,) = AdverseEvent.objects.filter(participant=participant)
    assert (report.source, report.category, report.severity) == (
        "participant",
        "harmful_reply",
        "moderate",
    )
    assert report.description == "It mocked me." and report.serious is None
    (event,) = reports(participant.trial)
    assert event.detail["severity"] == "moderate" and event.detail["category"] == "harmful_reply"
    # Never the free text nor the arm.
    text = str(event.detail)
    assert "mocked" not in text and participant.allocation.arm.slug not in event.detail.values()
    thanks = client.get(sent["Location"])
    assert "Your report has been sent" in thanks.content.decode()
    assert SUPPORT not in thanks.content.decode()


def test_a_severe_report_at_the_end_of_a_wave_shows_the_support_resources(client, participant):
    wave = Wave.objects.get(trial=participant.trial, index=1)
    url = reverse("surveys:wave_report", kwargs={"token": survey_token(participant.pk, wave.pk)})
    key = form_key(client.get(url).content.decode())
    sent = client.post(url, {"category": "distress", "severity": "severe", "report_key": key})
    assert sent.status_code == 302
    report = AdverseEvent.objects.get(participant=participant)
    assert report.wave_index == 1 and report.description == ""
    thanks = client.get(sent["Location"]).content.decode()
    assert SUPPORT in thanks and "emergency number" in thanks


def test_bad_input_is_refused_with_a_clear_message(client, participant):
    url = data_report_url(participant)
    key = form_key(client.get(url).content.decode())
    missing = client.post(url, {"severity": "mild", "report_key": key})
    assert missing.status_code == 400 and "Choose what happened." in missing.content.decode()
    unknown = client.post(url, {"category": "aliens", "severity": "mild", "report_key": key})
    assert unknown.status_code == 400
    stale = client.post(url, {"category": "other", "severity": "mild", "report_key": "x"})
    assert "out of date" in stale.content.decode()
    too_long = {"category": "other", "severity": "mild", "report_key": key}
    assert client.post(url, too_long | {"description": "x" * 5000}).status_code == 400
    assert not AdverseEvent.objects.exists()
    # A tampered link reveals nothing.
    assert client.get(url[:-3] + "xx/").status_code == 404


def test_the_form_needs_its_csrf_token(participant):
    strict = Client(enforce_csrf_checks=True)
    url = data_report_url(participant)
    posted = strict.post(url, {"category": "other", "severity": "mild", "report_key": "a" * 32})
    assert posted.status_code == 403
    assert not AdverseEvent.objects.exists()


def test_the_form_is_in_the_participant_s_language(client, participant):
    participant.locale = "de"
    participant.save()
    page = client.get(data_report_url(participant)).content.decode()
    assert "Ein Problem melden" in page and "Was ist passiert?" in page and "freiwillig" in page


def test_the_service_refuses_unknown_choices(participant):
    with pytest.raises(Exception, match="category"):
        adverse_event_report(
            participant=participant, category="x", severity="mild", report_key="b" * 32
        )


# --- the coordinator's admin ----------------------------------------------------------------


@pytest.fixture
def two_trials(guarded_trial):
    other = enrolling_trial("other")
    own_people = [p for people in enrol(guarded_trial, 4).values() for p in people]
    other_people = [p for people in enrol(other, 2, start=100).values() for p in people]
    return guarded_trial, other, own_people, other_people


RECORD = {
    "category": "distress",
    "severity": "severe",
    "serious": "yes",
    "relatedness": "possibly",
    "expected": "false",
    "outcome": "recovering",
    "onset_date": "2026-11-30",
    "resolved_date": "",
    "description": "Admitted to hospital overnight.",
}


def test_a_coordinator_records_a_serious_event_for_their_own_trial(client, two_trials):
    trial, other, own_people, other_people = two_trials
    coordinator = coordinator_of(trial, "coord")
    client.force_login(coordinator)
    add = reverse("admin:safety_adverseevent_add")
    page = client.get(add)
    assert page.status_code == 200
    assert f'value="{other.pk}"' not in page.content.decode()  # no other trial to choose

    # A participant of the other trial, named in this trial: refused, nothing written.
    refused = client.post(
        add, RECORD | {"trial": trial.pk, "participant_pseudonym": other_people[0].pk}
    )
    assert refused.status_code == 200 and "No participant of this trial" in refused.content.decode()
    # Nor can the other trial be chosen.
    client.post(add, RECORD | {"trial": other.pk, "participant_pseudonym": other_people[0].pk})
    assert not AdverseEvent.objects.exists()

    person = own_people[0]
    saved = client.post(add, RECORD | {"trial": trial.pk, "participant_pseudonym": person.pk})
    assert saved.status_code == 302
    recorded = AdverseEvent.objects.get()
    assert (recorded.participant, recorded.serious, recorded.source) == (
        person,
        True,
        "coordinator",
    )
    assert recorded.recorded_by == coordinator and recorded.assessed_by == coordinator
    (event,) = trial.events.filter(kind=TrialEvent.Kind.ADVERSE_EVENT_RECORDED)
    assert event.detail["serious"] is True and event.detail["newly_serious"] is True
    assert "hospital" not in str(event.detail)


def test_a_coordinator_assesses_a_report_blind_to_the_arm(client, two_trials):
    trial, other, own_people, other_people = two_trials
    report = adverse_event_report(
        participant=own_people[0], category="distress", severity="severe", report_key="c" * 32
    )
    stranger = adverse_event_report(
        participant=other_people[0], category="other", severity="mild", report_key="d" * 32
    )
    client.force_login(coordinator_of(trial, "coord"))
    listing = client.get(reverse("admin:safety_adverseevent_changelist")).content.decode()
    assert own_people[0].pk in listing and other_people[0].pk not in listing
    change = reverse("admin:safety_adverseevent_change", args=[report.pk])
    page = client.get(change).content.decode()
    # No arm column nor field (a participant's arm is on the participant list only).
    assert "field-arm" not in page and "field-arm" not in listing
    assert "column-arm" not in listing

    fields = {k: RECORD[k] for k in ("serious", "relatedness", "expected", "outcome")}
    assert client.post(change, fields | {"onset_date": "", "resolved_date": ""}).status_code == 302
    report.refresh_from_db()
    assert report.serious is True and report.assessed_at is not None
    assert report.description == "" and report.severity == "severe"  # as reported
    (event,) = trial.events.filter(kind=TrialEvent.Kind.ADVERSE_EVENT_ASSESSED)
    assert event.detail["serious"] is True and event.detail["newly_serious"] is True
    # Assessed again, still serious: not announced as newly serious.
    reassessed = fields | {"outcome": "recovered", "onset_date": "", "resolved_date": ""}
    assert client.post(change, reassessed).status_code == 302
    latest = trial.events.filter(kind=TrialEvent.Kind.ADVERSE_EVENT_ASSESSED).first()
    assert latest.detail["newly_serious"] is False

    # The other trial's report: refused (403), unchanged.
    other_change = reverse("admin:safety_adverseevent_change", args=[stranger.pk])
    assert client.get(other_change).status_code == 403
    assert client.post(other_change, fields).status_code == 403
    stranger.refresh_from_db()
    assert stranger.serious is None


def test_rates_per_arm_count_participants_not_events(two_trials):
    trial, _, own_people, _ = two_trials
    for key in ["e" * 32, "f" * 32]:
        adverse_event_report(
            participant=own_people[0], category="other", severity="mild", report_key=key
        )
    rates = {rate.arm: rate for rate in adverse_event_rates(trial)}
    arm = own_people[0].allocation.arm.slug
    assert rates[arm].harms["adverse_events"].count == 1
    assert sum(rate.participants for rate in rates.values()) == 4
