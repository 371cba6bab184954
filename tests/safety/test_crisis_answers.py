"""A crisis answer: PHQ-9's item 9 answered "Several days" or more raises one flag and one audit
event with the response, shows the participant the trial's support page at once (in their
language, else the default one), and a coordinator sees and acknowledges it only on their own
trial, without the arm."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from notifications.models import Notification
from safety.models import SafetyFlag
from surveys.links import data_path, data_token, survey_path
from surveys.models import Instrument, Response
from surveys.services import response_submit
from tests.trials.factories import enrolling_trial
from trials.models import ConsentDocument, TrialEvent, TrialMember
from trials.services import member_add, participant_enrol

pytestmark = pytest.mark.django_db

RESOURCES_EN = "Call the Samaritans on 116 123, free, day or night."
RESOURCES_DE = "Telefonseelsorge: 0800 111 0 111, kostenfrei, rund um die Uhr."
GENERIC = "call your local emergency number now"
SWLS = {f"swls:swls_{i}": "5" for i in range(1, 6)}
WHO5 = {f"who5:who5_{i}": "3" for i in range(1, 6)}


def _phq9(item_9: int, others: int = 1) -> dict[str, str]:
    answers = {f"phq9:phq9_{i}": str(others) for i in range(1, 9)}
    return answers | {"phq9:phq9_9": str(item_9)}


@pytest.fixture
def trial(small_trial):
    """The small trial with the PHQ-9 in its baseline wave, answered on one page, and support
    resources in its English consent document."""
    wave = small_trial.waves.get(index=0)
    wave.instruments.add(Instrument.objects.get(code="phq9"))
    small_trial.waves.filter(index=0).update(one_page=True)
    ConsentDocument.objects.filter(trial=small_trial).update(support_resources=RESOURCES_EN)
    return small_trial


def _enrol(trial, email="new@example.org", locale="en"):
    return participant_enrol(
        trial=trial,
        email=email,
        consent_document=ConsentDocument.objects.get(trial=trial, locale="en"),
        scopes=["surveys", "telemetry"],
        locale=locale,
    )


def _post(client: Client, participant, page: int, answers: dict[str, str], action: str):
    """Load a page of the baseline wave and post its form, as a browser would."""
    link = survey_path(participant.pk, participant.trial.waves.get(index=0).pk)
    html = client.get(f"{link}?page={page}").content.decode()
    shown = re.search(r'name="shown" value="([^"]*)"', html).group(1)
    return client.post(link, {"page": page, "action": action, "shown": shown, **answers})


def _submit(client: Client, participant, answers: dict[str, str]):
    """Answer the one-page wave and finish; the page then shown."""
    posted = _post(client, participant, 0, answers, "finish")
    assert posted.status_code == 302 and posted.url.endswith("/done/"), posted
    return client.get(posted.url)


def test_item_9_answered_several_days_flags_once_and_shows_the_support_page(client, trial):
    participant = _enrol(trial)
    done = _submit(client, participant, SWLS | WHO5 | _phq9(item_9=1))
    html = done.content.decode()
    assert done.status_code == 200
    assert "Thank you: your answers have been saved" in html
    assert RESOURCES_EN in html and GENERIC in html
    assert reverse("surveys:support", kwargs={"token": data_token(participant.pk)}) not in html
    assert data_path(participant.pk) in html

    response = Response.objects.get(participant=participant)
    flag = SafetyFlag.objects.get(participant=participant)
    assert (flag.trial, flag.kind) == (trial, SafetyFlag.Kind.SAFETY_ANSWER)
    assert flag.source_key == f"response:{response.pk}:phq9:phq9_9"
    assert flag.detail == {"instrument": "phq9", "item": "phq9_9", "answer": 1, "wave": 0}
    event = TrialEvent.objects.get(trial=trial, kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED)
    assert event.detail == {
        "participant": participant.pk,
        "instrument": "phq9",
        "item": "phq9_9",
        "wave": 0,
        "flag": flag.pk,
    }
    # Nothing in the event names the participant's arm.
    arms = set(trial.arms.values_list("slug", flat=True)) | set(
        trial.arms.values_list("name", flat=True)
    )
    assert not arms & {str(value) for value in event.detail.values()}

    # Submitting the wave again (a second click, a retried request) raises nothing twice, and
    # the done page still leads with the support resources.
    link = survey_path(participant.pk, trial.waves.get(index=0).pk)
    again = client.post(link, {"page": 0, "action": "finish", **SWLS, **WHO5, **_phq9(3)})
    assert again.status_code == 302
    assert RESOURCES_EN in client.get(again.url).content.decode()
    answers = {
        code: {
            item: int(value)
            for key, value in given.items()
            if key.startswith(code)
            for item in [key.split(":")[1]]
        }
        for code, given in [("phq9", _phq9(3)), ("swls", SWLS), ("who5", WHO5)]
    }
    first = response_submit(participant=participant, wave=trial.waves.get(index=0), answers=answers)
    assert first == response
    assert SafetyFlag.objects.filter(participant=participant).count() == 1
    assert TrialEvent.objects.filter(kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED).count() == 1


def test_an_answer_of_not_at_all_raises_nothing(client, trial):
    participant = _enrol(trial)
    done = _submit(client, participant, SWLS | WHO5 | _phq9(item_9=0, others=3))
    html = done.content.decode()
    assert "Your answers have been saved. We will invite you to the next survey." in html
    assert RESOURCES_EN not in html
    assert not SafetyFlag.objects.exists()
    assert not TrialEvent.objects.filter(kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED).exists()


def test_a_draft_saved_part_way_raises_nothing_until_the_wave_is_submitted(client, trial):
    trial.waves.filter(index=0).update(one_page=False)
    participant = _enrol(trial)
    # Pages in code order: PHQ-9, SWLS, WHO-5. Saving the PHQ-9's page keeps a draft only.
    moved = _post(client, participant, 0, _phq9(item_9=2), "next")
    assert moved.status_code == 302
    assert not SafetyFlag.objects.exists()
    # Stopping there ("save and finish later") alerts nobody yet, but shows where to get help.
    stopped = _post(client, participant, 1, SWLS, "save")
    html = stopped.content.decode()
    assert "Your answers are saved" in html and "Use the same link to carry on" in html
    assert RESOURCES_EN in html and GENERIC in html
    assert "The study team is told" not in html
    assert not SafetyFlag.objects.exists()
    _post(client, participant, 1, SWLS, "next")
    done = _post(client, participant, 2, WHO5, "finish")
    assert RESOURCES_EN in client.get(done.url).content.decode()
    assert SafetyFlag.objects.get(participant=participant).detail["answer"] == 2


def test_a_german_participant_sees_german_resources_else_the_default_language(client, trial):
    participant = _enrol(trial, locale="de")
    html = _submit(client, participant, SWLS | WHO5 | _phq9(item_9=1)).content.decode()
    # No German consent document gives resources: the default language's are shown, on a page
    # in German.
    assert RESOURCES_EN in html
    assert "Danke: Ihre Antworten sind gespeichert" in html
    ConsentDocument.objects.create(
        trial=trial, version=1, locale="de", text="Einwilligung", support_resources=RESOURCES_DE
    )
    support = client.get(reverse("surveys:support", kwargs={"token": data_token(participant.pk)}))
    assert RESOURCES_DE in support.content.decode() and RESOURCES_EN not in support.content.decode()


def test_without_resources_the_page_still_says_where_to_get_help(client, trial):
    ConsentDocument.objects.filter(trial=trial).update(support_resources="")
    participant = _enrol(trial)
    html = _submit(client, participant, SWLS | WHO5 | _phq9(item_9=3)).content.decode()
    assert GENERIC in html


def test_the_support_page_is_reachable_from_my_data_and_only_with_a_valid_link(client, trial):
    participant = _enrol(trial)
    my_data = client.get(data_path(participant.pk)).content.decode()
    support_url = reverse("surveys:support", kwargs={"token": data_token(participant.pk)})
    assert support_url in my_data
    page = client.get(support_url)
    assert page.status_code == 200 and RESOURCES_EN in page.content.decode()
    assert client.get(support_url.replace("/support/", "x/support/")).status_code == 404


def _coordinator(username: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Coordinators"))
    return user


def test_a_coordinator_acknowledges_their_trial_s_flag_and_another_cannot_see_it(client, trial):
    own = _coordinator("own")
    member_add(trial=trial, user=own, role=TrialMember.Role.COORDINATOR)
    other = _coordinator("other")
    enrolling_trial("elsewhere", actor=other)
    participant = _enrol(trial)
    _submit(Client(), participant, SWLS | WHO5 | _phq9(item_9=1))
    flag = SafetyFlag.objects.get()
    # The coordinator is alerted once, by the notifications' listener on the flag's event.
    alerted = Notification.objects.filter(event__kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED)
    assert list(alerted.values_list("recipient__username", flat=True)) == ["own"]

    client.force_login(other)
    listing = client.get(reverse("admin:safety_safetyflag_changelist")).content.decode()
    assert participant.pk not in listing
    change_url = reverse("admin:safety_safetyflag_change", args=[flag.pk])
    assert client.get(change_url).status_code == 403
    assert client.post(change_url, {"note": "called them"}).status_code == 403

    client.force_login(own)
    listing = client.get(reverse("admin:safety_safetyflag_changelist")).content.decode()
    assert participant.pk in listing and "item phq9_9" in listing
    page = client.get(change_url).content.decode()
    arm = participant.allocation.arm
    assert arm.slug not in re.sub(r"<[^>]+>", " ", page).split() and arm.name not in page
    refused = client.post(change_url, {"note": "  "})
    assert refused.status_code == 200 and "Say what you did" in refused.content.decode()
    saved = client.post(change_url, {"note": "Called the participant; they are safe."})
    assert saved.status_code == 302
    flag.refresh_from_db()
    assert flag.acknowledged_by == own and flag.note == "Called the participant; they are safe."
    # The audit chain keeps that it was acknowledged, and by whom, but not the note.
    event = trial.events.get(kind="safety_flag_acknowledged")
    assert event.actor == own and event.detail["flag"] == flag.pk
    assert "Called" not in str(event.detail)
    # Once acknowledged, the flag is read-only.
    client.post(change_url, {"note": "changed"})
    flag.refresh_from_db()
    assert flag.note == "Called the participant; they are safe."
