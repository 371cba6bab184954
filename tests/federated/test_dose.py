"""The dose release (federated.dose): each device is sent only its own outcome change, only
clipped products come back, only per-arm DP sums are kept, and the usage-outcome slope computed
from them (federated.slope) recovers a simulated slope within an interval that covers at its
stated rate over repeated releases."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from federated.client.app import app as device_app
from federated.client.eventlog import EventLog
from federated.dose import DoseNotReady, dose_release_run
from federated.grid import InProcessGrid
from federated.mechanism import dose_release_plan, release
from federated.models import DoseAggregate, DoseRelease, PrivacyBudget
from federated.release import DOSE_CAVEAT
from federated.schema import (
    COUNT,
    DOSE_PRODUCTS,
    change_in_steps,
    clamp_dose_reply,
    dose_products,
)
from federated.selectors import POOLED, dose_slopes
from federated.simulate import simulated_devices, simulated_dose
from federated.slope import DoseSums, NoisySum, dose_slope
from tests.federated.conftest import (
    DOSE,
    DOSE_TELEMETRY,
    enrol_devices,
    enrol_with_device,
    record_change,
    telemetry_trial,
)
from tests.trials.factories import draft_trial, valid_plan
from tests.trials.test_plan_document import post_data
from trials.forms import DOSE_FIELDS, PlanForm
from trials.models import ConsentDocument, ConsentScope, TrialEvent
from trials.plan import freeze_errors, plan_parse
from trials.services import (
    assignment_token,
    consent_renew,
    consent_revoke,
    preregistration_draft_save,
)
from trials.telemetry import DoseSection, TelemetrySection

SECTION = DoseSection.model_validate(DOSE)


class RecordingGrid(InProcessGrid):
    """The in-process grid, keeping every message the server sends."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.sent += messages
        return super().send_and_receive(messages, timeout=timeout)


def exact_sums(usage: np.ndarray, change: np.ndarray, scales: dict | None = None) -> DoseSums:
    """One arm's sums without noise (``scales`` only state the noise of each quantity)."""
    sums = {
        COUNT: len(usage),
        "usage": usage.sum(),
        "change": change.sum(),
        "usage_change": (usage * change).sum(),
        "usage_squared": (usage * usage).sum(),
        "change_squared": (change * change).sum(),
    }
    return DoseSums({q: NoisySum(float(v), (scales or {}).get(q, 0.0)) for q, v in sums.items()})


# --- the estimator ------------------------------------------------------------------------------


@pytest.mark.unit
def test_without_noise_the_slope_and_its_error_are_least_squares_with_arm_intercepts():
    rng = np.random.default_rng(3)
    arms = []
    for shift in (0.0, 40.0):
        usage = rng.gamma(4.0, 50.0, size=60) + shift
        arms.append((usage, 0.02 * usage + shift / 10 + rng.normal(0, 3, size=60)))
    estimate = dose_slope([exact_sums(u, c) for u, c in arms])
    # An independent fit: ordinary least squares of the change on usage and one intercept per
    # arm (numpy's lstsq), with the usual σ²(XᵀX)⁻¹ standard error.
    usage = np.concatenate([u for u, _ in arms])
    change = np.concatenate([c for _, c in arms])
    design = np.column_stack([usage, np.repeat([[1, 0], [0, 1]], 60, axis=0)])
    coefficients, residual, *_ = np.linalg.lstsq(design, change, rcond=None)
    sigma2 = residual[0] / (len(change) - 3)
    se = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[0, 0])
    assert estimate.slope == pytest.approx(coefficients[0], rel=1e-9)
    assert estimate.sampling_std_error == pytest.approx(se, rel=1e-9)
    assert estimate.noise_std_error == 0.0
    single = dose_slope([exact_sums(*arms[0])])
    assert single.slope == pytest.approx(np.polyfit(*arms[0], 1)[0], rel=1e-9)


@pytest.mark.unit
def test_the_noise_part_of_the_error_is_the_spread_of_the_slope_over_the_noise():
    rng = np.random.default_rng(5)
    usage = rng.gamma(4.0, 50.0, size=400) - 200
    # Scales in proportion to each quantity's sensitivity, as the release calibrates them.
    scales = {COUNT: 2.0, "usage": 200.0, "change": 20.0, "usage_change": 4000.0}
    scales |= {"usage_squared": 40_000.0, "change_squared": 400.0}
    sums = exact_sums(usage, 0.05 * usage + rng.normal(0, 5, size=400), scales)
    estimate = dose_slope([sums])
    # Monte Carlo over Gaussian noise of the stated scale on every released quantity.
    draws = 20_000
    noisy = {q: s.value + rng.normal(0, s.scale, size=draws) for q, s in sums.values.items()}
    s_uu = noisy["usage_squared"] - noisy["usage"] ** 2 / noisy[COUNT]
    s_uc = noisy["usage_change"] - noisy["usage"] * noisy["change"] / noisy[COUNT]
    # The standard error of an SD from 20 000 draws is 0.5 %; the delta method's own error at
    # this noise is well below it, so 3 % separates a right formula from a wrong one.
    assert np.std(s_uc / s_uu) == pytest.approx(estimate.noise_std_error, rel=0.03)


@pytest.mark.unit
def test_sums_without_usable_variance_give_no_slope_and_bad_input_is_refused():
    flat = np.full(10, 5.0)
    assert dose_slope([exact_sums(flat, np.arange(10.0))]) is None
    with pytest.raises(ValueError, match="at least one arm"):
        dose_slope([])
    with pytest.raises(ValueError, match="alpha"):
        dose_slope([exact_sums(np.arange(10.0), np.arange(10.0))], alpha=1.5)


def released_slope(plan, n: int, slope: float, seed: int):
    """One simulated release of two arms through the OpenDP mechanism, and its slope."""
    vectors = {}
    for number, arm in enumerate("ab"):
        cohort = simulated_dose(
            n, slope=slope, usage_mean=500, usage_sd=200, change_sd=4.0, seed=seed * 2 + number
        )
        vectors[arm] = [
            dose_products(int(u), change_in_steps(float(c), SECTION), SECTION)
            for u, c in zip(cohort.usage, cohort.change, strict=True)
        ]
    noisy = release(plan, vectors, reserved_nano_rho=plan.nano_rho)
    sums = [DoseSums({q: NoisySum(v.value, v.scale) for q, v in noisy[a].items()}) for a in "ab"]
    return dose_slope(sums, change_unit=SECTION.change_step)


@pytest.mark.slow
@pytest.mark.unit
def test_the_interval_covers_the_true_slope_at_its_stated_rate_over_repeated_releases():
    """Coverage over 1 000 releases, each of new participants and new OpenDP noise: at a budget
    where the noise and the sampling errors are of one size, the noise-aware 95% interval covers
    the true slope 95% of the time (±3.5 binomial SEs: a false alarm once in 2 000 runs), while
    an interval of the sampling error alone falls clearly short."""
    truth, repeats = 0.01, 1000
    plan = dose_release_plan(SECTION.model_copy(update={"rho": 2.0}))
    estimates = [released_slope(plan, 300, truth, seed) for seed in range(repeats)]
    covered = np.mean([e.ci_low <= truth <= e.ci_high for e in estimates])
    sampling_only = np.mean(
        [abs(e.slope - truth) <= 1.96 * e.sampling_std_error for e in estimates]
    )
    noise_share = np.mean([e.noise_std_error**2 / e.std_error**2 for e in estimates])
    assert 0.3 < noise_share < 0.7
    tolerance = 3.5 * np.sqrt(0.95 * 0.05 / repeats)
    assert abs(covered - 0.95) <= tolerance
    assert sampling_only < 0.95 - tolerance
    assert np.mean([e.slope for e in estimates]) == pytest.approx(truth, abs=4 * tolerance * truth)


# --- the device's and the server's halves -------------------------------------------------------


@pytest.mark.unit
def test_the_server_keeps_a_reply_only_with_the_change_it_sent_and_the_usage_s_products():
    honest = dose_products(2000, 7, SECTION)  # usage above the bound is clipped on the device
    assert honest == {
        "usage": 600,
        "change": 7,
        "usage_change": 4200,
        "usage_squared": 360_000,
        "change_squared": 49,
    }
    assert clamp_dose_reply(honest, SECTION, 7) == honest
    assert clamp_dose_reply(honest, SECTION, 8) is None  # not the change it was sent
    assert clamp_dose_reply(honest | {"usage_change": 99_999}, SECTION, 7) is None
    assert clamp_dose_reply(honest | {"usage": 10**9}, SECTION, 7) is None
    assert clamp_dose_reply(honest | {"usage": 600.5}, SECTION, 7) is None
    assert clamp_dose_reply({"usage": 1}, SECTION, 7) is None
    assert clamp_dose_reply("usage=1", SECTION, 7) is None
    assert change_in_steps(3.3, SECTION) == 7 and change_in_steps(-90.0, SECTION) == -40


@pytest.mark.unit
def test_the_section_refuses_a_dose_that_overspends_or_cannot_be_stepped():
    base = {"window_days": 7, "rho_total": 0.05, "rho_per_window": 0.01}
    base |= {"metrics": [{"code": "minutes"}]}
    with pytest.raises(ValueError, match="dose.rho cannot exceed rho_total"):
        TelemetrySection.model_validate(base | {"dose": DOSE | {"rho": 0.5}})
    with pytest.raises(ValueError, match="between 1 and a million change_steps"):
        DoseSection.model_validate(DOSE | {"change_step": 30.0})
    assert SECTION.change_steps == 40


# --- end to end -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_device_is_sent_only_its_own_change_and_only_noisy_sums_are_kept(
    tmp_path, admin_client
):
    trial = telemetry_trial("dose", DOSE_TELEMETRY)
    devices = enrol_devices(trial, tmp_path, per_arm=2)
    start = devices[0].participant.enrolled_at
    for number, device in enumerate(devices):
        # 30 + 10·number minutes on the second day of the usage period.
        begin = start + timedelta(days=1)
        device.log.record_session(begin, begin + timedelta(minutes=30 + 10 * number))
        record_change(device.participant, baseline=50.0, follow_up=50.0 + number)
    # Left out, each for one reason: survey consent paused by a new consent version it has
    # not renewed; no telemetry consent on the device; no follow-up score; telemetry consent
    # revoked on the platform.
    no_surveys = enrol_with_device(trial, 90, tmp_path)
    device_off = enrol_with_device(trial, 91, tmp_path, device_consent=False)
    unanswered = enrol_with_device(trial, 92, tmp_path)
    revoked = enrol_with_device(trial, 93, tmp_path)
    consent_revoke(participant=revoked.participant, scope=ConsentScope.TELEMETRY)
    for device in (no_surveys, device_off, revoked):
        record_change(device.participant, baseline=40.0, follow_up=60.0)
    record_change(unanswered.participant, baseline=40.0, follow_up=None)
    everyone = [*devices, no_surveys, device_off, unanswered, revoked]
    surveys_only = ConsentDocument.objects.create(
        trial=trial, version=2, locale="en", text="New terms.", scopes=[ConsentScope.SURVEYS]
    )
    for device in everyone:
        if device is not no_surveys:
            consent_renew(
                participant=device.participant,
                document=surveys_only,
                scopes=[ConsentScope.SURVEYS],
            )
    grid = RecordingGrid(device_app, [d.node_config for d in everyone])

    release = dose_release_run(grid=grid, trial=trial)

    # Node n is everyone[n - 1]; each dose message goes to one node, with its own change.
    dose_messages = [m for m in grid.sent if m.metadata.message_type == "query.dose"]
    sent = {m.metadata.dst_node_id: m.content["dose"]["change"] for m in dose_messages}
    assert sent == {number: 2 * (number - 1) for number in range(1, len(devices) + 1)}
    assert all("dose" not in m.content for m in grid.sent if m not in dose_messages)
    asked = {m.metadata.dst_node_id for m in grid.sent if m not in dose_messages}
    assert asked == set(range(1, len(everyone) + 1))
    stored = DoseAggregate.objects.filter(release=release)
    assert {(v.arm.slug, v.quantity) for v in stored} == {
        (arm, q) for arm in ("a", "b") for q in (COUNT, *DOSE_PRODUCTS)
    }
    assert release.charge.nano_rho == dose_release_plan(SECTION).nano_rho
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == release.charge.nano_rho
    assert trial.events.filter(
        kind=TrialEvent.Kind.TELEMETRY_RELEASED, detail__key=release.charge.key
    ).exists()
    # Run again: the same release, paid once; no device is asked.
    again = RecordingGrid(device_app, [d.node_config for d in everyone])
    assert dose_release_run(grid=again, trial=trial) == release and again.sent == []
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho == release.charge.nano_rho
    slopes = dose_slopes(trial)
    assert {s.arm for s in slopes} <= {"a", "b", POOLED}
    assert all(s.label == "exploratory" and s.caveat == DOSE_CAVEAT for s in slopes)
    # The ledger's page shows what the release cost and, with its caveat, what it found.
    budget = PrivacyBudget.objects.get(trial=trial)
    page = admin_client.get(f"/admin/federated/privacybudget/{budget.pk}/change/")
    text = page.content.decode()
    assert "Exploratory, not causal." in text and release.charge.key in text
    assert text.count("points per minute of minutes") == len(slopes)


@pytest.mark.django_db
def test_a_dose_short_of_replies_waits_under_its_reservation(tmp_path):
    trial = telemetry_trial("dose-wait", DOSE_TELEMETRY)
    device = enrol_with_device(trial, 0, tmp_path)
    record_change(device.participant, baseline=50.0, follow_up=55.0)
    with pytest.raises(DoseNotReady, match="fewer than 2 usable replies"):
        dose_release_run(grid=InProcessGrid(device_app, [device.node_config]), trial=trial)
    assert not DoseRelease.objects.exists()
    assert PrivacyBudget.objects.get(trial=trial).spent_nano_rho > 0
    assert trial.events.filter(kind=TrialEvent.Kind.TELEMETRY_WINDOW_WAITING).exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_simulated_slope_is_recovered_within_its_interval(tmp_path):
    """Twenty-five participants an arm, their usage and change drawn with a known slope,
    through the real release. The budget is large enough that the noise is a small part of the
    interval, so whether the seeded sample's interval covers the truth does not hang on it."""
    truth = 0.02
    telemetry = DOSE_TELEMETRY | {"rho_total": 5000.0, "dose": DOSE | {"rho": 5000.0}}
    trial = telemetry_trial("dose-sim", telemetry)
    devices = enrol_devices(trial, tmp_path, per_arm=25)
    cohort = simulated_dose(
        len(devices), slope=truth, usage_mean=500, usage_sd=200, change_sd=3.0, seed=11
    )
    usage = {}
    for device, minutes, change in zip(devices, cohort.usage, cohort.change, strict=True):
        record_change(device.participant, baseline=50.0, follow_up=50.0 + float(change))
        usage[assignment_token(device.participant)] = int(minutes)
    dose_release_run(grid=simulated_devices({}, dose_usage=usage), trial=trial)
    pooled = next(s for s in dose_slopes(trial) if s.arm == POOLED)
    assert pooled.ci_low < truth < pooled.ci_high
    assert pooled.noise_std_error < pooled.sampling_std_error / 5
    assert pooled.ci_high - pooled.ci_low < truth  # narrow enough to tell it from no slope


@pytest.mark.django_db
def test_a_dose_outcome_must_be_an_outcome_of_the_plan_and_a_score_of_its_instrument():
    trial = telemetry_trial("dose-freeze")
    other_wave = DOSE | {"outcome": DOSE["outcome"] | {"wave": 1}}
    plan = plan_parse(valid_plan(telemetry=DOSE_TELEMETRY | {"dose": other_wave}))
    errors = freeze_errors(trial, plan, arm_slugs=["a", "b"])
    assert any("who5 score who5 at wave 1 is not an outcome of this plan" in e for e in errors)
    no_score = DOSE | {"outcome": DOSE["outcome"] | {"score": "who6"}}
    plan = plan_parse(valid_plan(telemetry=DOSE_TELEMETRY | {"dose": no_score}))
    errors = freeze_errors(trial, plan, arm_slugs=["a", "b"])
    assert any("who5 has no score 'who6' (scores: who5)" in e for e in errors)
    plan = plan_parse(valid_plan(telemetry=DOSE_TELEMETRY))
    assert freeze_errors(trial, plan, arm_slugs=["a", "b"]) == []


@pytest.mark.unit
def test_the_device_returns_its_clipped_centred_usage_over_the_period_it_is_sent(tmp_path):
    log = EventLog(tmp_path / "device.sqlite3")
    day = datetime(2026, 3, 2, 12, tzinfo=UTC)
    log.record_session(day, day + timedelta(minutes=700))
    log.record_session(day + timedelta(days=9), day + timedelta(days=9, minutes=300))
    start = day.date()
    vector = log.dose_vector(
        start, start + timedelta(days=7), metric="minutes", upper=1200, centre=600, change=-3
    )
    assert vector == dose_products(700, -3, SECTION)


@pytest.mark.django_db
def test_the_plan_form_writes_and_reads_back_the_rating_questions_and_the_dose():
    trial = draft_trial("dose-form")
    draft = preregistration_draft_save(trial=trial, plan=valid_plan(telemetry=DOSE_TELEMETRY))
    initial = PlanForm(instance=draft).initial
    submitted = PlanForm(post_data(initial, trial), instance=draft)
    assert submitted.is_valid(), submitted.errors
    assert submitted.plan.telemetry == draft.plan.telemetry
    assert submitted.plan.telemetry.dose == SECTION
    # Written by hand: a rating line, and the dose cleared.
    cleared = {f"dose_{name}": None for name in DOSE_FIELDS}
    lines = "thinking (0-4): Did this conversation help you think for yourself?"
    edited = PlanForm(
        post_data(initial | cleared | {"telemetry_ratings": lines}, trial), instance=draft
    )
    assert edited.is_valid(), edited.errors
    (rating,) = edited.plan.telemetry.ratings
    assert (rating.code, rating.lowest, rating.highest) == ("thinking", 0, 4)
    assert rating.question == "Did this conversation help you think for yourself?"
    assert edited.plan.telemetry.dose is None
    # A line without its question is refused on its field.
    broken = PlanForm(post_data(initial | {"telemetry_ratings": "thinking (1-5)"}, trial))
    assert not broken.is_valid() and "telemetry_ratings" in broken.errors
