"""Licensed packs, wave schedules that respect recall windows, and the survey admin."""

import html
import io
import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from surveys.models import Instrument, Invitation, Response, Wave
from surveys.registry import shipped_definitions
from surveys.services import (
    instrument_pack_load,
    invitations_plan,
    response_submit,
    wave_change,
    wave_create,
    wave_quality_refresh,
    waves_quality_refresh,
)
from tests.trials.factories import draft_trial, enrolling_trial
from trials.models import ConsentDocument, TrialEvent
from trials.services import participant_enrol, trial_create

pytestmark = pytest.mark.django_db


def _pack_instrument(code: str = "sfi_demo") -> dict:
    """A made-up licensed instrument in the pack format (a real pack's text is never here)."""
    return {
        "code": code,
        "name": "Demo licensed index",
        "version": "1",
        "citation": "A deploying organisation's licensed instrument.",
        "licence": "CC-BY-NC-4.0",
        "validated": True,
        "recall_window_days": 0,
        "languages": {"en": {"source": "licence holder"}},
        "scale": {"min": 0, "max": 10, "anchors": {"en": ["Not at all", "Completely"]}},
        "stem": {"en": "Please answer."},
        "items": [
            {"code": f"{code}_{n}", "reverse": False, "text": {"en": f"Question {n}"}}
            for n in range(1, 5)
        ]
        + [
            {
                "code": f"{code}_fin",
                "reverse": False,
                "text": {"en": "How often do you worry about money?"},
                "anchors": {"en": ["Worry all of the time", "Do not ever worry"]},
            }
        ],
        "scores": [
            {
                "code": f"{code}_wellbeing",
                "dimension": "life_satisfaction",
                "rule": "mean",
                "items": [f"{code}_{n}" for n in range(1, 5)],
                "range": [0, 10],
            },
            {
                "code": f"{code}_finance",
                "dimension": "financial_stability",
                "rule": "mean",
                "items": [f"{code}_fin"],
                "range": [0, 10],
            },
        ],
    }


def test_a_pack_loads_into_the_database_and_can_be_reloaded(tmp_path):
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"pack": "demo", "instruments": [_pack_instrument()]}))
    out = io.StringIO()
    call_command("load_instrument_pack", str(pack), stdout=out)
    assert "loaded sfi_demo (CC-BY-NC-4.0)" in out.getvalue()
    instrument = Instrument.objects.get(code="sfi_demo")
    assert (instrument.origin, instrument.licence) == ("pack", "CC-BY-NC-4.0")
    call_command("load_instrument_pack", str(pack), stdout=io.StringIO())
    assert Instrument.objects.filter(code="sfi_demo").count() == 1


def test_a_bad_pack_loads_nothing_and_names_every_problem(tmp_path):
    broken = _pack_instrument("broken")
    broken["scores"][0]["dimension"] = "happiness"
    clash = dict(_pack_instrument("who5"))
    with pytest.raises(ValidationError) as error:
        instrument_pack_load(pack={"instruments": [_pack_instrument("fine"), broken, clash]})
    messages = " ".join(error.value.messages)
    assert "Instrument 2 (broken): scores → 1 → dimension: Input should be 'life_satisfaction'" in (
        messages
    )
    assert "Instrument 3 (who5): a shipped instrument has that code." in messages
    assert not Instrument.objects.filter(code="fine").exists()
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("load_instrument_pack", str(Path(__file__).parent / "does-not-exist.json"))


def test_a_pack_of_garbage_is_refused_with_a_clear_message(tmp_path):
    pack = tmp_path / "pack.json"
    pack.write_bytes(b"\x00\xffnot json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("load_instrument_pack", str(pack))
    pack.write_text("[1, 2]")
    with pytest.raises(CommandError, match='"instruments" list'):
        call_command("load_instrument_pack", str(pack))


def test_pack_instruments_with_end_anchors_render_numbered_choices(client, small_trial):
    instrument_pack_load(pack={"instruments": [_pack_instrument()]})
    trial = trial_create(slug="packed", title="Packed")
    wave = wave_create(trial=trial, index=0, day_offset=0, instrument_codes=["sfi_demo"])
    from surveys.views import _instrument_page

    page = _instrument_page(Instrument.objects.get(code="sfi_demo"), "de", {}, {})
    money = page["items"][-1]
    assert money["choices"][0] == (0, "0 – Worry all of the time")
    assert money["choices"][-1] == (10, "10 – Do not ever worry")
    assert [label for _, label in money["choices"][1:-1]] == [str(n) for n in range(1, 10)]
    assert page["language"] == "en"  # no German version: English is shown
    assert wave.instruments.get().code == "sfi_demo"


def test_the_schedule_respects_recall_windows_and_keeps_waves_apart():
    trial = trial_create(slug="schedule", title="Schedule")  # no waves yet
    wave_create(trial=trial, index=0, day_offset=0, instrument_codes=["who5", "swls"])
    with pytest.raises(ValidationError) as error:
        wave_create(trial=trial, index=1, day_offset=7, instrument_codes=["who5"])
    assert "WHO-5 Well-Being Index asks about the last 14 days" in error.value.messages[0]
    # The SWLS asks about life now: weekly is allowed.
    wave_create(trial=trial, index=1, day_offset=7, instrument_codes=["swls"])
    with pytest.raises(ValidationError, match="still open when wave 2 opens"):
        wave_create(trial=trial, index=2, day_offset=10, instrument_codes=["swls"])
    with pytest.raises(ValidationError, match="reminders must fall inside"):
        wave_create(
            trial=trial, index=2, day_offset=30, instrument_codes=["swls"], reminder_days=[9]
        )
    with pytest.raises(ValidationError, match="Wave 2 asks no questionnaire."):
        wave_create(trial=trial, index=2, day_offset=30, instrument_codes=[])
    with pytest.raises(ValidationError, match="Unknown instruments: nope"):
        wave_create(trial=trial, index=2, day_offset=30, instrument_codes=["nope"])
    assert trial.waves.count() == 2


def staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_coordinator_loads_a_pack_in_the_admin(client):
    client.force_login(staff("carol", "Coordinators"))
    listing = client.get("/admin/surveys/instrument/").content.decode()
    assert "Load a licensed pack" in listing and "flourishing_scale" in listing
    upload = io.BytesIO(json.dumps({"instruments": [_pack_instrument()]}).encode())
    upload.name = "pack.json"
    done = client.post("/admin/surveys/instrument/load-pack/", {"pack": upload}, follow=True)
    assert "Loaded 1 instruments: sfi_demo." in done.content.decode()
    bad = io.BytesIO(b"{not json")
    bad.name = "bad.json"
    refused = client.post("/admin/surveys/instrument/load-pack/", {"pack": bad})
    assert "The file is not JSON" in refused.content.decode()
    # A malformed definition: the page names each field and what it may be; nothing is loaded.
    broken = _pack_instrument("broken")
    broken["scale"]["anchors"]["en"] = ["Not at all"]
    broken["items"][0]["revers"] = broken["items"][0].pop("reverse")
    upload = io.BytesIO(json.dumps({"instruments": [broken]}).encode())
    upload.name = "broken.json"
    refused = client.post("/admin/surveys/instrument/load-pack/", {"pack": upload})
    page = html.unescape(refused.content.decode())
    assert "Instrument 1 (broken): scale → anchors → en → 2: Field required." in page
    assert "Instrument 1 (broken): items → 1 → reverse: Field required." in page
    assert "Instrument 1 (broken): items → 1 → revers: not a known field." in page
    assert not Instrument.objects.filter(code="broken").exists()


def test_coordinator_adds_waves_in_the_admin_and_sees_schedule_errors(client):
    coordinator = staff("dora", "Coordinators")
    trial = trial_create(slug="admin-waves", title="Admin waves", actor=coordinator)
    client.force_login(coordinator)
    who5 = Instrument.objects.get(code="who5")
    form = {
        "trial": trial.pk,
        "index": 0,
        "day_offset": 0,
        "window_days": 7,
        "reminder_days": "[3]",
        "instruments": [who5.pk],
    }
    assert client.post("/admin/surveys/wave/add/", form).status_code == 302
    refused = client.post("/admin/surveys/wave/add/", {**form, "index": 1, "day_offset": 7})
    assert "asks about the last 14 days" in refused.content.decode()
    assert list(trial.waves.values_list("index", "reminder_days")) == [(0, [3])]
    # Saved through the service: audited, with who did it.
    event = trial.events.get(kind=TrialEvent.Kind.WAVE_CREATED)
    assert event.actor == coordinator and event.detail["instruments"] == ["who5"]


def test_a_draft_s_schedule_changes_are_audited_and_a_registered_one_is_refused(client):
    coordinator = staff("hal", "Coordinators")
    draft = draft_trial("sched", actor=coordinator)  # WHO-5 on days 0, 14 and 28
    client.force_login(coordinator)
    who5 = Instrument.objects.get(code="who5")
    form = {
        "trial": draft.pk,
        "index": 2,
        "day_offset": 35,
        "window_days": 5,
        "reminder_days": "[2]",
        "instruments": [who5.pk],
    }
    wave = draft.waves.get(index=2)
    assert client.post(f"/admin/surveys/wave/{wave.pk}/change/", form).status_code == 302
    wave.refresh_from_db()
    assert (wave.day_offset, wave.window_days, wave.reminder_days) == (35, 5, [2])
    event = draft.events.get(kind=TrialEvent.Kind.WAVE_CHANGED)
    assert event.actor == coordinator and event.detail["day_offset"] == 35

    running = enrolling_trial("running", actor=coordinator)
    audited = running.events.count()
    message = "schedule is part of the registered protocol"
    with pytest.raises(ValidationError, match=message):
        wave_create(trial=running, index=3, day_offset=60, instrument_codes=["who5"])
    with pytest.raises(ValidationError, match=message):
        wave_change(
            wave=running.waves.get(index=2),
            index=2,
            day_offset=35,
            window_days=5,
            reminder_days=[],
            one_page=False,
            instrument_codes=["who5"],
        )
    added = {**form, "trial": running.pk, "index": 3, "day_offset": 60}
    refused = client.post("/admin/surveys/wave/add/", added)
    assert refused.status_code == 200 and message in refused.content.decode()
    # Its waves are read-only in the admin, and a posted change is refused.
    wave = running.waves.get(index=2)
    changed = client.post(f"/admin/surveys/wave/{wave.pk}/change/", {**form, "trial": running.pk})
    assert changed.status_code == 403
    assert list(running.waves.values_list("day_offset", flat=True)) == [0, 14, 28]
    assert running.events.count() == audited


def test_quality_report_and_refresh_flag_careless_answers(client, small_trial):
    document = ConsentDocument.objects.get(trial=small_trial)
    wave = small_trial.waves.get(index=0)
    # A straight-liner among the seeded cohort: same answer everywhere, in one second.
    liner = participant_enrol(
        trial=small_trial, email="liner@example.org", consent_document=document, scopes=["surveys"]
    )
    response = response_submit(
        participant=liner,
        wave=wave,
        answers={
            "who5": {f"who5_{i}": 0 for i in range(1, 6)},
            "swls": {f"swls_{i}": 7 for i in range(1, 6)},
        },
        timings={"pages": {"who5": 1.0, "swls": 1.0}},
    )
    assert response.flagged and response.quality["who5"]["flags"] == ["too_fast"]
    wave_quality_refresh(wave=wave)
    response.refresh_from_db()
    assert response.quality["who5"]["mahalanobis_p"] is not None
    assert Response.objects.filter(wave=wave, flagged=True).exists()

    coordinator = staff("erin", "Coordinators")
    from trials.models import TrialMember
    from trials.services import member_add

    member_add(trial=small_trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
    client.force_login(coordinator)
    report = client.get(f"/admin/surveys/wave/report/{small_trial.pk}/")
    html = " ".join(report.content.decode().split())
    assert report.status_code == 200
    assert "Cronbach α" in html and "who5" in html and "Test–retest: ICC(A,1)" in html
    assert "Across language: —: needs two language groups" in html
    flagged = client.get("/admin/surveys/response/?flagged__exact=1").content.decode()
    assert "too_fast" in flagged
    other = staff("fay", "Coordinators")
    client.force_login(other)
    assert client.get(f"/admin/surveys/wave/report/{small_trial.pk}/").status_code == 404


def test_the_quality_sweep_refreshes_only_waves_whose_responses_changed(small_trial):
    waves = set(small_trial.waves.values_list("pk", flat=True))
    assert set(waves_quality_refresh()) == waves  # seeded answers: never refreshed yet
    assert waves_quality_refresh() == []
    with_p = Response.objects.filter(wave__trial=small_trial, wave__index=0)
    assert all(r.quality["who5"]["mahalanobis_p"] is not None for r in with_p)
    newcomer = participant_enrol(
        trial=small_trial,
        email="late@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )
    wave = small_trial.waves.get(index=0)
    answers = {
        "who5": {f"who5_{i}": 2 for i in range(1, 6)},
        "swls": {f"swls_{i}": 3 for i in range(1, 6)},
    }
    late = response_submit(participant=newcomer, wave=wave, answers=answers)
    assert late.quality["who5"]["mahalanobis_p"] is None
    assert waves_quality_refresh() == [wave.pk]
    late.refresh_from_db()
    assert late.quality["who5"]["mahalanobis_p"] is not None


def test_invitations_in_doubt_are_listed_and_released_from_the_admin(client, small_trial):
    coordinator = staff("gus", "Coordinators")
    from trials.models import TrialMember
    from trials.services import member_add

    member_add(trial=small_trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
    participant_enrol(
        trial=small_trial,
        email="doubt@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )
    invitations_plan()
    row = Invitation.objects.filter(participant__contact__email="doubt@example.org").first()
    Invitation.objects.filter(pk=row.pk).update(state="unknown")
    client.force_login(coordinator)
    listing = client.get("/admin/surveys/invitation/?state__exact=unknown").content.decode()
    assert "unknown (the sender stopped mid-send)" in listing
    client.post(
        "/admin/surveys/invitation/",
        {"action": "send_again", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.state == "pending"
    event = small_trial.events.get(kind=TrialEvent.Kind.INVITATION_RELEASED)
    assert event.actor == coordinator
    assert (event.detail["invitation"], event.detail["previous"]) == (row.pk, "unknown")


def test_shipped_definitions_are_what_the_database_holds():
    stored = {i.code: i.definition for i in Instrument.objects.filter(origin="repository")}
    assert stored == shipped_definitions()
    assert Wave.objects.count() == 0
