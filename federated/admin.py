"""The privacy ledger and the DP releases in the admin, read-only for everyone: budgets move only
through reservations, and releases are written only by a release window."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from federated.mechanism import NANO, accuracy, rho_to_epsilon
from federated.models import (
    DoseRelease,
    PrivacyBudget,
    PrivacyCharge,
    ReleasedAggregate,
    TelemetryRelease,
)
from federated.release import DOSE_CAVEAT
from federated.selectors import POOLED, dose_slopes
from trials.admin import TrialScopedMixin


class ReadOnlyTrialScopedAdmin(TrialScopedMixin, admin.ModelAdmin):
    """Rows of the trials the user may see; nothing can be added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class PrivacyChargeInline(ReadOnlyInline):
    model = PrivacyCharge
    fields = ["key", "rho", "status", "reserved_at", "released_at"]
    readonly_fields = fields

    @admin.display(description="ρ")
    def rho(self, charge: PrivacyCharge) -> str:
        return f"{charge.nano_rho / NANO:.6f}"


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(ReadOnlyTrialScopedAdmin):
    list_display = ["trial", "gauge", "spent", "total", "epsilon"]
    fields = ["trial", "gauge", "spent", "total", "epsilon", "created_at", "dose"]
    readonly_fields = fields
    inlines = [PrivacyChargeInline]

    @admin.display(description="usage-outcome slope (dose)")
    def dose(self, budget: PrivacyBudget):
        """The dose releases' slopes, where the ledger shows what they cost (federated.dose)."""
        if not DoseRelease.objects.filter(trial=budget.trial).exists():
            return "No dose release."
        slopes = dose_slopes(budget.trial)
        return format_html(
            "<p><strong>Exploratory, not causal.</strong> {}</p><ul>{}</ul>{}",
            DOSE_CAVEAT,
            format_html_join(
                "",
                "<li>plan v{}, {}: {} points per {} of {} (95% interval {} to {})</li>",
                (
                    (
                        s.preregistration_version,
                        s.arm if s.arm == POOLED else f"arm {s.arm}",
                        f"{s.slope:+.4f}",
                        s.usage_unit.removesuffix("s"),
                        s.usage_metric,
                        f"{s.ci_low:+.4f}",
                        f"{s.ci_high:+.4f}",
                    )
                    for s in slopes
                ),
            ),
            ""
            if slopes
            else "The noisy sums leave no usable variance of usage: they give no slope.",
        )

    @admin.display(description="spent ρ")
    def spent(self, budget: PrivacyBudget) -> str:
        return f"{budget.spent_nano_rho / NANO:.6f}"

    @admin.display(description="total ρ")
    def total(self, budget: PrivacyBudget) -> str:
        return f"{budget.total_nano_rho / NANO:.6f}"

    @admin.display(description="spent as (ε, δ)")
    def epsilon(self, budget: PrivacyBudget) -> str:
        epsilon = rho_to_epsilon(budget.spent_nano_rho / NANO, budget.delta)
        return f"ε = {epsilon:.3f} at δ = {budget.delta:g}"

    @admin.display(description="budget used")
    def gauge(self, budget: PrivacyBudget):
        share = budget.spent_nano_rho / budget.total_nano_rho
        return format_html(
            '<progress value="{}" max="1" title="{}">{}</progress> {}',
            f"{share:.4f}",
            f"{share:.1%} of the budget spent",
            f"{share:.1%}",
            f"{share:.1%}",
        )


class ReleasedAggregateInline(ReadOnlyInline):
    model = ReleasedAggregate
    fields = ["arm", "quantity", "value", "noise_scale", "interval"]
    readonly_fields = fields

    @admin.display(description="95% noise interval")
    def interval(self, value: ReleasedAggregate) -> str:
        half = accuracy(value.noise_scale)
        return f"{value.value - half:.0f} … {value.value + half:.0f}"


@admin.register(TelemetryRelease)
class TelemetryReleaseAdmin(ReadOnlyTrialScopedAdmin):
    list_display = ["trial", "window_index", "window_start", "window_end", "released_at"]
    list_filter = ["trial"]
    fields = ["trial", "preregistration", "window_index", "window_start", "window_end", "charge"]
    readonly_fields = [*fields, "released_at"]
    inlines = [ReleasedAggregateInline]
