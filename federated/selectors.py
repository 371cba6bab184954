"""Reads of telemetry schemas, release windows, the privacy ledger and the DP releases."""

import math
from datetime import date, timedelta
from typing import Literal

from django.db.models import Min
from django.utils import timezone

from federated.mechanism import NANO, accuracy, nano_rho_floor, release_plan, rho_to_epsilon
from federated.models import PrivacyBudget, PrivacyCharge, ReleasedAggregate
from federated.release import PrivacyBudgetSummary, ReleasedValue
from federated.schema import COUNT
from trials.models import PreRegistration, Trial
from trials.selectors import preregistration_in_force
from trials.telemetry import METRICS, TelemetrySection

Z95 = 1.959963984540054  # standard normal 0.975 quantile
# Devices report while participants are enrolled or followed up; the last window may end later.
COLLECTING_STATES = [Trial.State.ENROLLING, Trial.State.FOLLOW_UP, Trial.State.CLOSED]


def charge_key(trial: Trial, version: int, window_index: int) -> str:
    """The ledger key of a window: one reservation per trial, plan version and window."""
    return f"telemetry:{trial.slug}:plan-v{version}:window-{window_index}"


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
    """Every released value with a noise-aware 95% interval, plus per-participant means.

    Counts and sums carry the integer Gaussian's exact accuracy at α = 0.05 (OpenDP's
    ``discrete_gaussian_scale_to_accuracy``). A mean is post-processing of two releases, the
    noisy sum over the noisy count; its standard error is the delta method's
    √(σ_s² + m² σ_c²) / n, reported only when the noisy count is positive.
    """
    values = (
        ReleasedAggregate.objects.filter(release__trial=trial)
        .select_related("release", "arm")
        .order_by("release__window_index", "arm__slug", "quantity")
    )
    rows = []
    by_window_arm: dict[tuple[int, str], dict[str, ReleasedAggregate]] = {}
    for value in values:
        by_window_arm.setdefault((value.release.window_index, value.arm.slug), {})[
            value.quantity
        ] = value
        half_width = accuracy(value.noise_scale)
        rows.append(
            _row(
                value,
                value.quantity,
                "count" if value.quantity == COUNT else "sum",
                estimate=float(value.value),
                std_error=value.noise_scale,
                ci_low=value.value - half_width,
                ci_high=value.value + half_width,
            )
        )
    for quantities in by_window_arm.values():
        count = quantities.get(COUNT)
        if count is None or count.value <= 0:
            continue
        for quantity, total in quantities.items():
            if quantity == COUNT:
                continue
            mean = total.value / count.value
            se = math.hypot(total.noise_scale, mean * count.noise_scale) / count.value
            rows.append(
                _row(
                    total,
                    quantity,
                    "mean",
                    estimate=mean,
                    std_error=se,
                    ci_low=mean - Z95 * se,
                    ci_high=mean + Z95 * se,
                )
            )
    return rows


def _row(
    value: ReleasedAggregate,
    quantity: str,
    statistic: Literal["count", "sum", "mean"],
    *,
    estimate: float,
    std_error: float,
    ci_low: float,
    ci_high: float,
) -> ReleasedValue:
    definition = METRICS.get(quantity)
    return ReleasedValue(
        window_index=value.release.window_index,
        window_start=value.release.window_start.isoformat(),
        window_end=value.release.window_end.isoformat(),
        arm=value.arm.slug,
        metric=quantity,
        label=definition.label if definition else "Reporting participants",
        unit=definition.unit if definition else "participants",
        statistic=statistic,
        estimate=estimate,
        std_error=std_error,
        ci_low=ci_low,
        ci_high=ci_high,
    )
