"""Writes of the privacy ledger and of DP releases, each one atomic transaction with its audit row.

The ledger's rules: budget in integer nano-ρ; a reservation is taken, under a row lock on the
trial's budget, *before* any device is asked or any noise is drawn; a window's reservation is
keyed, so a retried or concurrent run of the same window reuses it instead of paying again; spent
budget is never refunded or reset; over budget, nothing is released.

Reusing an unreleased reservation is safe: noise drawn by a run that crashed before storing its
release was never seen by anyone, so the privacy it would have cost was never lost.
"""

from collections.abc import Callable
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from federated.mechanism import NANO, NoisyValue, nano_rho_floor
from federated.models import (
    DoseAggregate,
    DoseRelease,
    NoisyAggregate,
    PrivacyBudget,
    PrivacyCharge,
    ReleasedAggregate,
    TelemetryRelease,
)
from federated.schema import usage_centre
from trials.models import PreRegistration, Trial, TrialEvent
from trials.services import event_record
from trials.telemetry import DoseSection, TelemetrySection


class PrivacyBudgetExhausted(ValidationError):
    """A reservation that would overspend the trial's budget; nothing was reserved."""


def _budget_locked(trial: Trial, schema: TelemetrySection) -> PrivacyBudget:
    total = nano_rho_floor(schema.rho_total)
    budget, _ = PrivacyBudget.objects.get_or_create(
        trial=trial, defaults={"total_nano_rho": total, "delta": schema.delta}
    )
    budget = PrivacyBudget.objects.select_for_update().get(pk=budget.pk)
    if budget.total_nano_rho != total:
        raise ValidationError(
            f"The trial's privacy budget was fixed at {budget.total_nano_rho / NANO} ρ when it "
            f"was first used; the plan in force says {schema.rho_total}. A budget is never "
            "raised or reset."
        )
    return budget


def privacy_charge_reserve(
    *, trial: Trial, schema: TelemetrySection, key: str, nano_rho: int, measurements: dict
) -> PrivacyCharge:
    """Reserve ``nano_rho`` of ``trial``'s budget under ``key``, or return the existing
    reservation of that key. Raises :class:`PrivacyBudgetExhausted` when it does not fit."""
    if nano_rho <= 0:
        raise ValueError("A charge must be a positive number of nano-ρ.")
    try:
        return _reserve(trial, schema, key, nano_rho, measurements)
    except PrivacyBudgetExhausted as refused:
        # The refusal is audited on its own: the reservation's transaction rolled back.
        event_record(
            trial=trial, kind=TrialEvent.Kind.PRIVACY_BUDGET_REFUSED, key=key, nano_rho=nano_rho
        )
        raise refused


@transaction.atomic
def _reserve(
    trial: Trial, schema: TelemetrySection, key: str, nano_rho: int, measurements: dict
) -> PrivacyCharge:
    budget = _budget_locked(trial, schema)
    # Every reservation of this trial waits for the budget's row lock, so this read is current.
    existing = PrivacyCharge.objects.filter(key=key).first()
    if existing is not None:
        if existing.budget_id != budget.pk or existing.nano_rho != nano_rho:
            raise ValidationError(
                f"Reservation {key} exists with a different trial or cost; a window's mechanism "
                "cannot change once reserved."
            )
        return existing
    remaining = budget.total_nano_rho - budget.spent_nano_rho
    if nano_rho > remaining:
        raise PrivacyBudgetExhausted(
            f"Privacy budget exhausted for trial {trial.slug}: this release needs "
            f"ρ = {nano_rho / NANO:.9f} but only {remaining / NANO:.9f} of "
            f"{budget.total_nano_rho / NANO:.9f} remains. Nothing was released."
        )
    budget.spent_nano_rho += nano_rho
    budget.save(update_fields=["spent_nano_rho"])
    charge = PrivacyCharge.objects.create(
        budget=budget, key=key, nano_rho=nano_rho, measurements=measurements
    )
    event_record(
        trial=trial,
        kind=TrialEvent.Kind.PRIVACY_BUDGET_RESERVED,
        record=charge,
        key=key,
        nano_rho=nano_rho,
        spent_nano_rho=budget.spent_nano_rho,
        # With the total, a reader of the event (notifications) sees how much is left.
        total_nano_rho=budget.total_nano_rho,
    )
    return charge


def telemetry_release_store(
    *,
    charge: PrivacyCharge,
    trial: Trial,
    preregistration: PreRegistration,
    window_index: int,
    window: tuple[date, date],
    noisy: dict[str, dict[str, NoisyValue]],
) -> TelemetryRelease:
    """Store a window's noisy values and finalise its charge (``_release_store``)."""
    return _release_store(
        charge=charge,
        trial=trial,
        noisy=noisy,
        stored=lambda charge: charge.release,
        create=lambda charge: TelemetryRelease.objects.create(
            trial=trial,
            preregistration=preregistration,
            charge=charge,
            window_index=window_index,
            window_start=window[0],
            window_end=window[1],
        ),
        aggregate=ReleasedAggregate,
        window_index=window_index,
    )


def dose_release_store(
    *,
    charge: PrivacyCharge,
    trial: Trial,
    preregistration: PreRegistration,
    dose: DoseSection,
    noisy: dict[str, dict[str, NoisyValue]],
) -> DoseRelease:
    """Store the dose release's noisy values and finalise its charge (``_release_store``)."""
    return _release_store(
        charge=charge,
        trial=trial,
        noisy=noisy,
        stored=lambda charge: charge.dose_release,
        create=lambda charge: DoseRelease.objects.create(
            trial=trial,
            preregistration=preregistration,
            charge=charge,
            usage_metric=dose.usage_metric,
            usage_days=dose.usage_days,
            usage_centre=usage_centre(dose),
            change_step=dose.change_step,
        ),
        aggregate=DoseAggregate,
        release="dose",
    )


@transaction.atomic
def _release_store[R: TelemetryRelease | DoseRelease](
    *,
    charge: PrivacyCharge,
    trial: Trial,
    noisy: dict[str, dict[str, NoisyValue]],
    stored: Callable[[PrivacyCharge], R],
    create: Callable[[PrivacyCharge], R],
    aggregate: type[NoisyAggregate],
    **event_fields: object,
) -> R:
    """Store a release (``create``) with its noisy values (rows of ``aggregate``) and finalise
    its charge, all or nothing. If another run already stored this charge's release, that one
    (``stored``) stands and ``noisy`` is discarded unseen."""
    charge = PrivacyCharge.objects.select_for_update().get(pk=charge.pk)
    if charge.status == PrivacyCharge.Status.RELEASED:
        return stored(charge)
    arms = {arm.slug: arm for arm in trial.arms.all()}
    unknown = set(noisy) - set(arms)
    if unknown:
        raise ValueError(f"Not arms of {trial.slug}: {', '.join(sorted(unknown))}.")
    release = create(charge)
    aggregate.objects.bulk_create(
        aggregate(
            release=release,
            arm=arms[arm],
            quantity=quantity,
            value=value.value,
            noise_scale=value.scale,
        )
        for arm, quantities in noisy.items()
        for quantity, value in quantities.items()
    )
    charge.status = PrivacyCharge.Status.RELEASED
    charge.released_at = timezone.now()
    charge.save(update_fields=["status", "released_at"])
    event_record(
        trial=trial, kind=TrialEvent.Kind.TELEMETRY_RELEASED, key=charge.key, **event_fields
    )
    return release
