"""The privacy ledger and the DP releases. Nothing here ever holds one participant's telemetry:
only the budget, what each release window was charged, and the noisy per-arm values."""

from django.db import models
from django.db.models import F, Q

from trials.models import Arm, PreRegistration, Trial


class PrivacyBudget(models.Model):
    """A trial's zCDP budget in integer nano-ρ. Spent budget is never refunded or reset."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="privacy_budget")
    total_nano_rho = models.BigIntegerField()
    spent_nano_rho = models.BigIntegerField(default=0)
    delta = models.FloatField(help_text="δ for reporting the (ε, δ)-DP equivalent.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(spent_nano_rho__gte=0) & Q(spent_nano_rho__lte=F("total_nano_rho")),
                name="privacy_budget_spent_within_total",
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug}: {self.spent_nano_rho}/{self.total_nano_rho} nano-ρ"


class PrivacyCharge(models.Model):
    """One release window's reservation. Its key makes a retried window reuse it, never pay
    twice; once its release is stored it is final."""

    class Status(models.TextChoices):
        RESERVED = "reserved"
        RELEASED = "released"

    budget = models.ForeignKey(PrivacyBudget, on_delete=models.PROTECT, related_name="charges")
    key = models.CharField(max_length=200, unique=True)
    nano_rho = models.BigIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RESERVED)
    measurements = models.JSONField(help_text="Each quantity's serialised OpenDP measurement.")
    d_in = models.PositiveIntegerField(default=1, help_text="Participants added or removed.")
    reserved_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    chain_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of the audit event that recorded it."
    )

    # The reservation the audit chain vouches for (trials.audit); its release is its own event.
    audit_trial_path = "budget__trial"
    audit_fields = ("budget_id", "key", "nano_rho", "measurements", "d_in", "reserved_at")

    class Meta:
        ordering = ["reserved_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(nano_rho__gt=0), name="privacy_charge_positive")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.nano_rho} nano-ρ, {self.status})"


class TelemetryRelease(models.Model):
    """The DP release of one window: its aggregates are the only telemetry the platform keeps."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="telemetry_releases")
    preregistration = models.ForeignKey(PreRegistration, on_delete=models.PROTECT)
    charge = models.OneToOneField(PrivacyCharge, on_delete=models.PROTECT, related_name="release")
    window_index = models.PositiveIntegerField()
    window_start = models.DateField()
    window_end = models.DateField(help_text="Exclusive.")
    released_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "window_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "preregistration", "window_index"], name="one_release_per_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug} window {self.window_index}"


class NoisyAggregate(models.Model):
    """A noisy per-arm count or sum of a release, with the scale of the integer Gaussian noise
    added to it (``federated.mechanism``)."""

    arm = models.ForeignKey(Arm, on_delete=models.PROTECT)
    quantity = models.CharField(
        max_length=50, help_text="'count', a metric code or a dose product."
    )
    value = models.BigIntegerField()
    noise_scale = models.FloatField()

    class Meta:
        abstract = True
        ordering = ["release", "arm", "quantity"]

    def __str__(self) -> str:
        return f"{self.release} {self.arm.slug} {self.quantity}"


class ReleasedAggregate(NoisyAggregate):
    """A value of a telemetry window's release."""

    release = models.ForeignKey(TelemetryRelease, on_delete=models.CASCADE, related_name="values")

    class Meta(NoisyAggregate.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["release", "arm", "quantity"], name="one_value_per_quantity"
            )
        ]


class DoseRelease(models.Model):
    """The DP dose release of a plan version: per-arm noisy sums of each participant's clipped
    usage, outcome change and their products (``federated.dose``), from which an exploratory,
    non-causal usage-outcome slope is computed. No participant's usage or change is kept."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="dose_releases")
    preregistration = models.ForeignKey(PreRegistration, on_delete=models.PROTECT)
    charge = models.OneToOneField(
        PrivacyCharge, on_delete=models.PROTECT, related_name="dose_release"
    )
    usage_metric = models.CharField(max_length=50)
    usage_days = models.PositiveIntegerField(help_text="Usage counted from enrolment, in days.")
    usage_centre = models.IntegerField(help_text="Subtracted from usage before the products.")
    change_step = models.FloatField(help_text="Score points per step of the released change.")
    released_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial", "-released_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "preregistration"], name="one_dose_release_per_plan_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial.slug} dose release (plan v{self.preregistration.version})"


class DoseAggregate(NoisyAggregate):
    """A value of the dose release."""

    release = models.ForeignKey(DoseRelease, on_delete=models.CASCADE, related_name="values")

    class Meta(NoisyAggregate.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["release", "arm", "quantity"], name="one_dose_value_per_quantity"
            )
        ]
