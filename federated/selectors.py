"""Reads of telemetry schemas, release windows, the privacy ledger and the DP releases."""

import math
from datetime import date, timedelta
from typing import Literal

from django.db.models import Min
from django.utils import timezone

from federated.mechanism import (
    NANO,
    accuracy,
    dose_release_plan,
    nano_rho_floor,
    release_plan,
    rho_to_epsilon,
)
from federated.models import DoseRelease, PrivacyBudget, PrivacyCharge, ReleasedAggregate
from federated.release import DoseSlope, PrivacyBudgetSummary, ReleasedValue
from federated.schema import COUNT
from federated.slope import DoseSums, NoisySum, dose_slope
from trials.models import PreRegistration, Trial
from trials.selectors import preregistration_in_force
from trials.telemetry import METRICS, RATED, RATING_HUNDREDTHS, RATING_MEAN, TelemetrySection

Z95 = 1.959963984540054  # standard normal 0.975 quantile
# Devices report while participants are enrolled or followed up; the last window may end later.
COLLECTING_STATES = [Trial.State.ENROLLING, Trial.State.FOLLOW_UP, Trial.State.CLOSED]
# A closed trial has every follow-up answer it will have: its dose release counts them all.
DOSE_STATES = [Trial.State.CLOSED, Trial.State.ANALYSED]


def charge_key(trial: Trial, version: int, window_index: int) -> str:
    """The ledger key of a window: one reservation per trial, plan version and window."""
    return f"telemetry:{trial.slug}:plan-v{version}:window-{window_index}"


def dose_charge_key(trial: Trial, version: int) -> str:
    """The ledger key of the dose release: one reservation per trial and plan version."""
    return f"dose:{trial.slug}:plan-v{version}"


def telemetry_schema_in_force(trial: Trial) -> tuple[PreRegistration, TelemetrySection] | None:
    """The plan in force (the latest version every required body approved) and the telemetry
    schema it declares; None without telemetry."""
    preregistration = preregistration_in_force(trial)
    if preregistration is None:
        return None
    section = preregistration.plan.telemetry
    return None if section is None else (preregistration, section)


def telemetry_epoch(trial: Trial) -> date | None:
    """The day (UTC) the first participant enrolled: release windows are counted from it."""
    first = trial.participants.aggregate(first=Min("enrolled_at"))["first"]
    return first.date() if first is not None else None


def window_bounds(trial: Trial, schema: TelemetrySection, index: int) -> tuple[date, date]:
    """Window ``index``'s first day and its exclusive end."""
    opened = telemetry_epoch(trial)
    if opened is None:
        raise ValueError(f"Nobody has enrolled in {trial.slug}: there are no windows yet.")
    if index < 0:
        raise ValueError("Window numbers start at 0.")
    start = opened + timedelta(days=index * schema.window_days)
    return start, start + timedelta(days=schema.window_days)


def windows_ended(trial: Trial, schema: TelemetrySection, *, today: date | None = None) -> range:
    """The indices of the windows that have ended (their releases may be run)."""
    opened = telemetry_epoch(trial)
    if opened is None:
        return range(0)
    today = today or timezone.now().date()
    return range(max(0, (today - opened).days // schema.window_days))


def telemetry_windows_due(*, today: date | None = None) -> list[tuple[int, int]]:
    """(trial id, window index) of every ended window without a release, in trials collecting
    telemetry, as far as each trial's remaining budget can pay (a window already reserved is
    paid for)."""
    due = []
    for trial in Trial.objects.filter(state__in=COLLECTING_STATES).order_by("pk"):
        in_force = telemetry_schema_in_force(trial)
        if in_force is None:
            continue
        preregistration, schema = in_force
        released = set(
            trial.telemetry_releases.filter(preregistration=preregistration).values_list(
                "window_index", flat=True
            )
        )
        reserved = set(
            PrivacyCharge.objects.filter(
                budget__trial=trial, status=PrivacyCharge.Status.RESERVED
            ).values_list("key", flat=True)
        )
        budget = PrivacyBudget.objects.filter(trial=trial).first()
        remaining = (
            budget.total_nano_rho - budget.spent_nano_rho
            if budget is not None
            else nano_rho_floor(schema.rho_total)
        )
        cost = release_plan(schema).nano_rho
        for index in windows_ended(trial, schema, today=today):
            if index in released:
                continue
            if charge_key(trial, preregistration.version, index) not in reserved:
                if remaining < cost:
                    break
                remaining -= cost
            due.append((trial.pk, index))
    return due


def dose_releases_due() -> list[int]:
    """Ids of the closed (or analysed) trials whose plan in force declares a dose release that
    has not been released and that the trial's remaining budget can pay (or has reserved)."""
    due = []
    for trial in Trial.objects.filter(state__in=DOSE_STATES).order_by("pk"):
        in_force = telemetry_schema_in_force(trial)
        if in_force is None or in_force[1].dose is None:
            continue
        preregistration, schema = in_force
        if trial.dose_releases.filter(preregistration=preregistration).exists():
            continue
        key = dose_charge_key(trial, preregistration.version)
        if not PrivacyCharge.objects.filter(key=key).exists():
            budget = PrivacyBudget.objects.filter(trial=trial).first()
            remaining = (
                budget.total_nano_rho - budget.spent_nano_rho
                if budget is not None
                else nano_rho_floor(schema.rho_total)
            )
            if remaining < dose_release_plan(schema.dose).nano_rho:
                continue
        due.append(trial.pk)
    return due


def privacy_budget_summary(trial: Trial) -> PrivacyBudgetSummary | None:
    """Total, spent and remaining ρ, and the (ε, δ) equivalent of what has been spent."""
    budget = PrivacyBudget.objects.filter(trial=trial).first()
    if budget is None:
        return None
    spent = budget.spent_nano_rho / NANO
    return PrivacyBudgetSummary(
        total_rho=budget.total_nano_rho / NANO,
        spent_rho=spent,
        remaining_rho=(budget.total_nano_rho - budget.spent_nano_rho) / NANO,
        epsilon=rho_to_epsilon(spent, budget.delta),
        delta=budget.delta,
    )


def telemetry_release_rows(trial: Trial) -> list[ReleasedValue]:
    """Every released value with a noise-aware 95% interval, plus means derived from them.

    Counts and sums carry the integer Gaussian's exact accuracy at α = 0.05 (OpenDP's
    ``discrete_gaussian_scale_to_accuracy``). A mean is post-processing of two releases, a
    noisy sum over a noisy count; its standard error is the delta method's
    √(σ_s² + m² σ_c²) / n, reported only when the noisy count is positive. A metric's mean is
    per reporting participant; a rating question's is the mean of the participants' own mean
    ratings, over the participants who rated (its sum is in hundredths of a scale point).
    """
    values = (
        ReleasedAggregate.objects.filter(release__trial=trial)
        .select_related("release__preregistration", "arm")
        .order_by("release__window_index", "arm__slug", "quantity")
    )
    rows = []
    by_window_arm: dict[tuple[int, str], dict[str, ReleasedAggregate]] = {}
    names: dict[int, dict[str, tuple[str, str]]] = {}
    for value in values:
        release = value.release
        if release.preregistration_id not in names:
            names[release.preregistration_id] = _quantity_names(release.preregistration)
        by_window_arm.setdefault((release.window_index, value.arm.slug), {})[value.quantity] = value
        half_width = accuracy(value.noise_scale)
        counted = value.quantity == COUNT or value.quantity.startswith(RATED)
        rows.append(
            _row(
                value,
                value.quantity,
                names[release.preregistration_id],
                "count" if counted else "sum",
                estimate=float(value.value),
                std_error=value.noise_scale,
                ci_low=value.value - half_width,
                ci_high=value.value + half_width,
            )
        )
    for quantities in by_window_arm.values():
        for quantity, total in quantities.items():
            if quantity == COUNT or quantity.startswith(RATED):
                continue
            rating = quantity.startswith(RATING_MEAN)
            denominator = RATED + quantity.removeprefix(RATING_MEAN) if rating else COUNT
            count = quantities.get(denominator)
            if count is None or count.value <= 0:
                continue
            unit = RATING_HUNDREDTHS if rating else 1
            mean = total.value / count.value / unit
            se = math.hypot(total.noise_scale / unit, mean * count.noise_scale) / count.value
            rows.append(
                _row(
                    total,
                    quantity,
                    names[total.release.preregistration_id],
                    "mean",
                    estimate=mean,
                    std_error=se,
                    ci_low=mean - Z95 * se,
                    ci_high=mean + Z95 * se,
                )
            )
    return rows


def _quantity_names(preregistration: PreRegistration) -> dict[str, tuple[str, str]]:
    """Label and unit of each quantity a window of ``preregistration``'s plan releases."""
    names = {code: (metric.label, metric.unit) for code, metric in METRICS.items()}
    names[COUNT] = ("Reporting participants", "participants")
    section = preregistration.plan.telemetry
    for rating in section.ratings if section else []:
        names[rating.mean_quantity] = (
            rating.question,
            f"rating ({rating.lowest}–{rating.highest})",
        )
        rated = f"Participants who rated: {rating.question}"
        names[rating.rated_quantity] = (rated, "participants")
    return names


def _row(
    value: ReleasedAggregate,
    quantity: str,
    names: dict[str, tuple[str, str]],
    statistic: Literal["count", "sum", "mean"],
    *,
    estimate: float,
    std_error: float,
    ci_low: float,
    ci_high: float,
) -> ReleasedValue:
    label, unit = names.get(quantity, (quantity, ""))
    return ReleasedValue(
        window_index=value.release.window_index,
        window_start=value.release.window_start.isoformat(),
        window_end=value.release.window_end.isoformat(),
        arm=value.arm.slug,
        metric=quantity,
        label=label,
        unit=unit,
        statistic=statistic,
        estimate=estimate,
        std_error=std_error,
        ci_low=ci_low,
        ci_high=ci_high,
    )


POOLED = "all arms"


def dose_slopes(trial: Trial) -> list[DoseSlope]:
    """The usage-outcome slope of each arm and pooled within the arms, from every dose release
    of ``trial`` (newest first): post-processing of the stored noisy sums, no further privacy
    cost. A slope the noisy sums cannot give (no usable variance of usage) is left out."""
    slopes = []
    releases = (
        DoseRelease.objects.filter(trial=trial)
        .select_related("preregistration")
        .prefetch_related("values__arm")
    )
    for release in releases:
        dose = release.preregistration.plan.telemetry.dose
        by_arm: dict[str, dict[str, NoisySum]] = {}
        for value in release.values.all():
            by_arm.setdefault(value.arm.slug, {})[value.quantity] = NoisySum(
                value.value, value.noise_scale
            )
        groups = {arm: [DoseSums(values)] for arm, values in sorted(by_arm.items())}
        groups[POOLED] = [DoseSums(values) for _, values in sorted(by_arm.items())]
        for arm, sums in groups.items():
            estimate = dose_slope(sums, change_unit=release.change_step)
            if estimate is None:
                continue
            slopes.append(
                DoseSlope(
                    release_id=release.pk,
                    preregistration_version=release.preregistration.version,
                    arm=arm,
                    outcome=(f"{dose.outcome.score} at wave {dose.outcome.wave} minus baseline"),
                    usage_metric=release.usage_metric,
                    usage_unit=METRICS[release.usage_metric].unit,
                    usage_days=release.usage_days,
                    slope=estimate.slope,
                    std_error=estimate.std_error,
                    sampling_std_error=estimate.sampling_std_error,
                    noise_std_error=estimate.noise_std_error,
                    ci_low=estimate.ci_low,
                    ci_high=estimate.ci_high,
                    participants=estimate.participants,
                )
            )
    return slopes
