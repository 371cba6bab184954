"""Daily waves: one wave a day within a time-of-day window, invited at the window's start once,
answerable only then, and scored per day so the growth model sees every day. Time travels by
explicit datetimes (the survey page's clock is patched), never by waiting."""

from datetime import UTC, datetime, time
from unittest import mock

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from analytics.selectors import growth_statistics
from surveys.links import survey_path
from surveys.models import Instrument, Invitation, Score, Wave
from surveys.registry import shipped_definitions
from surveys.schedule import daily_errors, schedule_errors, wave_window
from surveys.services import (
    WaveDaily,
    invitations_plan,
    invitations_send_due,
    response_submit,
    wave_change,
    wave_create,
)
from tests.surveys.test_instruments_and_schedule import staff
from tests.trials.factories import ARM, bodies, valid_plan
from trials.models import ConsentDocument, ConsentScope, Trial
from trials.selectors import preregistration_current
from trials.services import (
    approval_record,
    arm_create,
    oversight_assign,
    participant_enrol,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

EVENINGS = WaveDaily(
    repeat_days=3,
    daily_opens_at=time(18),
    daily_closes_at=time(22),
    time_zone="Europe/Berlin",
)
# Enrolled on Friday 27 March 2026, the weekend on which Berlin moves to summer time (UTC+1 on
# Saturday, UTC+2 from Sunday): each day's window is at 18:00 local time all the same.
ENROLLED = datetime(2026, 3, 27, 10, 0, tzinfo=UTC)
SATURDAY_18H = datetime(2026, 3, 28, 17, 0, tzinfo=UTC)
SUNDAY_18H = datetime(2026, 3, 29, 16, 0, tzinfo=UTC)


def daily_draft(slug: str = "daily", actor=None) -> Trial:
    """WHO-5 at baseline, mood and loneliness every evening on days 1–3, WHO-5 on day 14."""
    trial = trial_create(slug=slug, title=slug.upper(), actor=actor)
    arm_create(trial=trial, slug="a", name="A", is_control=True, **ARM)
    arm_create(trial=trial, slug="b", name="B", **ARM | {"system_prompt": "Be kind."})
    wave_create(trial=trial, index=0, day_offset=0, window_days=1, instrument_codes=["who5"])
    wave_create(
        trial=trial,
        index=1,
        day_offset=1,
        window_days=1,
        instrument_codes=["daily_recall"],
        daily=EVENINGS,
    )
    wave_create(trial=trial, index=4, day_offset=14, instrument_codes=["who5"])
    return trial


@pytest.fixture
def daily_trial(db) -> Trial:
    trial = daily_draft()
    plan = valid_plan(
        primary_outcomes=[{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 4}]
    )
    preregistration_freeze(trial=trial, plan=plan)
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies("Ethics", "Council"):
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration_current(trial))
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=list(ConsentScope.values)
    )
    return trial_transition(trial=trial, to=Trial.State.ENROLLING)


@pytest.fixture
def participant(daily_trial):
    return participant_enrol(
        trial=daily_trial,
        email="evening@example.org",
        consent_document=ConsentDocument.objects.get(trial=daily_trial),
        scopes=["surveys"],
        enrolled_at=ENROLLED,
    )


@pytest.mark.unit
def test_daily_settings_are_checked_with_a_reason_each():
    def wave(**fields) -> Wave:
        defaults = {"trial": Trial(slug="t"), "index": 1, "day_offset": 1, "window_days": 1}
        return Wave(**defaults | fields)

    assert (
        daily_errors(wave(repeat_days=28, daily_opens_at=time(18), daily_closes_at=time(22))) == []
    )
    assert daily_errors(wave(repeat_days=3)) == []
    assert daily_errors(wave(repeat_days=3, window_days=7)) == [
        "Wave 1: a daily wave or one with a time of day has a one-day window."
    ]
    assert daily_errors(wave(daily_opens_at=time(18))) == [
        "Wave 1: give both the time it opens and the time it closes."
    ]
    assert daily_errors(wave(daily_opens_at=time(22), daily_closes_at=time(18))) == [
        "Wave 1: the time it opens must come before the time it closes."
    ]
    assert daily_errors(wave(time_zone="Mars/Olympus")) == [
        "Wave 1: Mars/Olympus is not a time zone (e.g. Europe/Berlin)."
    ]
    # A later wave numbered inside the daily wave's days is named with the days' numbers.
    daily = [Instrument(code="daily_recall", definition=shipped_definitions()["daily_recall"])]
    errors = schedule_errors([(wave(repeat_days=3), daily), (wave(index=2, day_offset=9), daily)])
    assert "Wave 1 is asked on 3 days, which take the numbers 1 to 3." in errors


@pytest.mark.django_db
def test_a_daily_wave_is_a_wave_a_day_and_is_made_again_when_changed(daily_trial):
    days = Wave.objects.filter(trial=daily_trial).order_by("index")
    assert [(w.index, w.day_offset, w.series_id is not None) for w in days] == [
        (0, 0, False),
        (1, 1, False),
        (2, 2, True),
        (3, 3, True),
        (4, 14, False),
    ]
    first = days.get(index=1)
    assert {w.series_id for w in days.filter(index__in=[2, 3])} == {first.pk}
    assert all(
        list(w.instruments.values_list("code", flat=True)) == ["daily_recall"]
        for w in days.filter(index__in=[1, 2, 3])
    )
    # Each day's window: 18:00–22:00 Berlin time, across the change to summer time.
    assert wave_window(days.get(index=1), ENROLLED) == (
        SATURDAY_18H,
        datetime(2026, 3, 28, 21, 0, tzinfo=UTC),
    )
    assert wave_window(days.get(index=2), ENROLLED)[0] == SUNDAY_18H


@pytest.mark.django_db
def test_a_draft_s_daily_wave_is_remade_and_its_days_are_not_edited_alone():
    trial = daily_draft("remade")
    first = trial.waves.get(index=1)
    arguments = dict(index=1, day_offset=1, window_days=1, reminder_days=[], one_page=False)
    with pytest.raises(ValidationError, match="numbers 1 to 5"):
        wave_change(
            wave=first,
            instrument_codes=["daily_recall"],
            daily=WaveDaily(repeat_days=5),
            **arguments,
        )
    wave_change(
        wave=first, instrument_codes=["daily_recall"], daily=WaveDaily(repeat_days=2), **arguments
    )
    assert list(trial.waves.values_list("index", flat=True).order_by("index")) == [0, 1, 2, 4]
    with pytest.raises(ValidationError, match="is a day of the daily wave 1"):
        wave_change(wave=trial.waves.get(index=2), instrument_codes=["daily_recall"], **arguments)
    event = trial.events.filter(kind="wave_changed").latest("pk")
    assert event.detail["repeat_days"] == 2 and event.detail["daily_opens_at"] is None


@pytest.mark.django_db
def test_each_day_is_invited_once_at_its_window_s_start(participant):
    invitations_plan()
    rows = Invitation.objects.filter(participant=participant).order_by("due_at")
    assert [(r.wave.index, r.due_at) for r in rows][1:3] == [(1, SATURDAY_18H), (2, SUNDAY_18H)]
    assert invitations_plan() == 0

    saturday_evening = datetime(2026, 3, 28, 17, 30, tzinfo=UTC)
    mail.outbox.clear()
    sent = invitations_send_due(now=saturday_evening, participant=participant)
    assert (sent["sent"], sent["skipped"]) == (1, 1)
    # Baseline (closed by now: skipped) and Saturday's evening; Sunday's is not due yet.
    assert [m.to for m in mail.outbox] == [["evening@example.org"]]
    assert invitations_send_due(now=saturday_evening, participant=participant)["sent"] == 0
    # Sunday after 22:00 Berlin time: Sunday's window has closed, so it is not sent late.
    sunday_night = datetime(2026, 3, 29, 20, 30, tzinfo=UTC)
    invitations_send_due(now=sunday_night, participant=participant)
    sunday = rows.get(wave__index=2)
    assert (sunday.state, sunday.note) == ("skipped", "the wave has closed")
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_link_answers_only_within_its_day_s_window(client, participant):
    saturday = Wave.objects.get(trial=participant.trial, index=1)
    link = survey_path(participant.pk, saturday.pk)
    answers = {"daily_recall:daily_mood": "7", "daily_recall:daily_lonely": "2"}
    clock = "django.utils.timezone.now"
    with mock.patch(clock, return_value=datetime(2026, 3, 28, 16, 59, tzinfo=UTC)):
        early = client.post(link, {**answers, "action": "finish"})
    assert early.status_code == 200
    assert "on March 28, 2026 from 18:00 to 22:00 (Europe/Berlin)" in early.content.decode()
    with mock.patch(clock, return_value=datetime(2026, 3, 28, 21, 0, tzinfo=UTC)):
        late = client.post(link, {**answers, "action": "finish"})
    assert late.status_code == 410 and "have closed" in late.content.decode()
    assert not participant.responses.exists()
    with mock.patch(clock, return_value=datetime(2026, 3, 28, 20, 59, tzinfo=UTC)):
        assert client.post(link, {**answers, "action": "finish"}).status_code == 302
    assert participant.responses.get().answers == {
        "daily_recall": {"daily_mood": 7, "daily_lonely": 2}
    }


@pytest.mark.django_db
def test_every_day_s_scores_are_kept_apart_for_the_growth_model(participant):
    trial = participant.trial
    mood = {"daily_recall": {"daily_mood": 0, "daily_lonely": 5}}
    for index, value in ((1, 4), (3, 8)):
        mood["daily_recall"]["daily_mood"] = value
        response_submit(participant=participant, wave=trial.waves.get(index=index), answers=mood)
    rows = Score.objects.filter(response__participant=participant, code="mood_today")
    assert sorted(rows.values_list("response__wave__index", "value")) == [(1, 4.0), (3, 8.0)]
    # Growth statistics (n, Σt, Σt², Σy, Σty, Σy²) over the days' waves 1 and 3, which are
    # the instrument's occasions 0 and 2 (analytics.selectors.wave_occasions: wave 1 is the
    # first wave that asks it).
    statistics = growth_statistics(trial, "mood_today").statistics
    assert statistics.tolist() == [[2, 2, 4, 12, 16, 80]]


@pytest.mark.django_db
def test_coordinators_configure_a_daily_wave_in_the_admin(client):
    coordinator = staff("erin", "Coordinators")
    trial = trial_create(slug="admin-daily", title="Admin daily", actor=coordinator)
    client.force_login(coordinator)
    daily = Instrument.objects.get(code="daily_recall")
    form = {
        "trial": trial.pk,
        "index": 0,
        "day_offset": 0,
        "window_days": 7,
        "reminder_days": "[]",
        "instruments": [daily.pk],
        "repeat_days": 28,
        "daily_opens_at": "18:00",
        "daily_closes_at": "22:00",
        "time_zone": "Europe/Berlin",
    }
    refused = client.post("/admin/surveys/wave/add/", form)
    assert "a daily wave or one with a time of day has a one-day window" in refused.content.decode()
    assert client.post("/admin/surveys/wave/add/", {**form, "window_days": 1}).status_code == 302
    assert trial.waves.count() == 28
    listing = client.get("/admin/surveys/wave/").content.decode()
    assert "28 days, 18:00–22:00 Europe/Berlin" in listing and "a day of wave 0" in listing
    assert "daily_recall (not yet validated)" in listing
    later_day = trial.waves.get(index=5)
    assert client.post(f"/admin/surveys/wave/{later_day.pk}/change/", form).status_code == 403
