"""A trial with telemetry in its frozen plan, participants with devices, and device event logs."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from federated.client.eventlog import EventLog
from federated.selectors import telemetry_schema_in_force, window_bounds
from surveys.models import Instrument, Response, Score
from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import ConsentDocument, ConsentScope, Participant, Trial
from trials.services import assignment_token, participant_enrol

TELEMETRY = {
    "window_days": 7,
    "rho_total": 0.05,
    "rho_per_window": 0.01,
    "delta": 1e-7,
    "metrics": [
        {"code": "minutes", "upper": 1_000_000},
        {"code": "sessions", "upper": 100},
        {"code": "late_night_days"},
    ],
}


# The dose release and a rating question on top (the dose's outcome is valid_plan's primary
# outcome: WHO-5 at wave 2 minus baseline).
DOSE = {
    "outcome": {"instrument": "who5", "score": "who5", "wave": 2},
    "usage_metric": "minutes",
    "usage_days": 28,
    "usage_upper": 1200,
    "change_bound": 20.0,
    "change_step": 0.5,
    "rho": 0.02,
}
RATING = {"code": "think_for_myself", "question": "Did this conversation help you think?"}
DOSE_TELEMETRY = TELEMETRY | {"dose": DOSE, "ratings": [RATING]}


def telemetry_trial(slug: str = "tele", telemetry: dict | None = None) -> Trial:
    return enrolling_trial(slug, plan=valid_plan(telemetry=telemetry or TELEMETRY))


# Participants enrol 30 days ago, so that the 7-day release windows 0–3 have ended.
ENROLLED_DAYS_AGO = 30


@dataclass
class Device:
    participant: Participant
    log: EventLog
    node_config: dict


def enrol_with_device(
    trial: Trial, number: int, directory: Path, *, scopes=None, device_consent: bool = True
) -> Device:
    document = ConsentDocument.objects.get(trial=trial)
    participant = participant_enrol(
        trial=trial,
        email=f"p{number}@example.org",
        consent_document=document,
        scopes=scopes if scopes is not None else [ConsentScope.SURVEYS, ConsentScope.TELEMETRY],
        enrolled_at=timezone.now() - timedelta(days=ENROLLED_DAYS_AGO),
    )
    log = EventLog(directory / f"device-{number}.sqlite3")
    log.set_telemetry_consent(device_consent)
    config = {"participant-token": assignment_token(participant), "event-log": str(log.path)}
    return Device(participant, log, config)


def enrol_devices(trial: Trial, directory: Path, *, per_arm: int) -> list[Device]:
    """Participants with devices, enrolled until every arm has at least ``per_arm`` (the
    allocation is random, so an arm may get more)."""
    devices: list[Device] = []
    arms = {arm.slug: 0 for arm in trial.arms.all()}
    while min(arms.values()) < per_arm:
        device = enrol_with_device(trial, len(devices), directory)
        arms[device.participant.allocation.arm.slug] += 1
        devices.append(device)
    return devices


def use_in_window(device: Device, trial: Trial, *, minutes: int, sessions: int = 1) -> None:
    """Record ``sessions`` daytime sessions of ``minutes`` in total inside window 0."""
    _, schema = telemetry_schema_in_force(trial)
    start, _ = window_bounds(trial, schema, 0)
    noon = datetime(start.year, start.month, start.day, 12, tzinfo=UTC)
    each = minutes // sessions
    for number in range(sessions):
        begin = noon + timedelta(days=number % 6, hours=number // 6 % 6)
        length = each + (minutes - each * sessions if number == 0 else 0)
        device.log.record_session(begin, begin + timedelta(minutes=length))


def record_change(participant: Participant, *, baseline: float, follow_up: float | None) -> None:
    """WHO-5 scores at baseline and (unless None) at wave 2, as the survey pages store them."""
    instrument = Instrument.objects.get(code="who5")
    for index, value in [(0, baseline), (2, follow_up)]:
        if value is None:
            continue
        response = Response.objects.create(
            participant=participant,
            wave=participant.trial.waves.get(index=index),
            answers={},
            submitted_at=participant.enrolled_at + timedelta(days=14 * index),
        )
        Score.objects.create(
            response=response,
            instrument=instrument,
            code="who5",
            dimension="mental_wellbeing",
            value=value,
        )


@pytest.fixture
def trial(db):
    return telemetry_trial()
