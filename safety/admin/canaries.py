"""Admin pages: the arms' canary checks (safety.canary), read only, and their integrity
incidents on each arm's own page.

Both show a check that opened an incident with what was expected and what came back, and a link
that opens the trial's protocol deviation form (``trials.admin.ProtocolDeviationAdmin``, which
records through ``trials.services.deviation_record``) with the trial and a description filled in:
whether participants were served another model than registered is the coordinators' call, and
a deviation is how the trial's report learns of it.

The arm's page belongs to ``trials.admin``, which may not import this app (docs/architecture.md,
"The layers"): this module adds its inline to the registered ``ArmAdmin`` instead, as an app
above extends an admin below it.
"""

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import CharField, JSONField, OuterRef, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.html import format_html

from safety.canary import canary_incident_events
from safety.models import CanaryCheck
from trials.admin import TrialScopedMixin
from trials.models import Arm


def with_incident(checks):
    """``checks`` with ``incident_detail``: the detail of the integrity incident each opened
    (``None`` for a check that opened none)."""
    incidents = (
        canary_incident_events()
        .filter(trial_id=OuterRef("arm__trial_id"))
        .annotate(check_id=KT("detail__canary_check"))
        .filter(check_id=Cast(OuterRef("pk"), output_field=CharField()))
    )
    return checks.annotate(
        incident_detail=Subquery(incidents.values("detail")[:1], output_field=JSONField())
    )


def deviation_link(check: CanaryCheck) -> str:
    """What the incident found, and the deviation form filled in with it."""
    detail = getattr(check, "incident_detail", None)
    if not detail:
        return "—"
    found = (
        f"pinned to {detail['expected_model']} (fingerprint "
        f"{detail['expected_fingerprint'] or 'none'}), the endpoint answered as "
        f"{detail['served_model'] or 'no model'} (fingerprint "
        f"{detail['served_fingerprint'] or 'none'})"
    )
    description = (
        f"Arm {detail['arm']}: on {check.checked_at:%Y-%m-%d %H:%M} UTC the drift watch found "
        f"that, {found}; participants may have been served a model other than the registered "
        "one from then on."
    )
    query = urlencode({"trial": check.arm.trial_id, "description": description})
    url = f"{reverse('admin:trials_protocoldeviation_add')}?{query}"
    return format_html(
        'Integrity incident: {}. <a href="{}">Record a protocol deviation…</a>', found, url
    )


@admin.register(CanaryCheck)
class CanaryCheckAdmin(TrialScopedMixin, admin.ModelAdmin):
    """Every check of the arms of the user's trials (``trials.view_trial``); nothing is added,
    changed or removed here."""

    trial_path = "arm__trial"
    list_display = [
        "arm",
        "checked_at",
        "status",
        "served_model",
        "system_fingerprint",
        "prompt_index",
        "incident",
    ]
    list_filter = ["status", ("arm__trial", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["arm__trial"]
    fields = [
        "arm",
        "sweep",
        "prompt_index",
        "checked_at",
        "status",
        "served_model",
        "system_fingerprint",
        "reply_stats",
        "error",
        "incident",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return with_incident(super().get_queryset(request))

    @admin.display(description="integrity incident")
    def incident(self, check: CanaryCheck) -> str:
        return deviation_link(check)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CanaryIncidentInline(admin.TabularInline):
    """The checks of this arm that opened an integrity incident, newest first."""

    model = CanaryCheck
    verbose_name = "integrity incident found by the drift watch"
    verbose_name_plural = "integrity incidents found by the drift watch"
    fields = ["checked_at", "served_model", "system_fingerprint", "incident"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        checks = with_incident(super().get_queryset(request))
        return checks.filter(incident_detail__isnull=False).order_by("-checked_at")

    @admin.display(description="incident")
    def incident(self, check: CanaryCheck) -> str:
        return deviation_link(check)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


_arm_admin = admin.site.get_model_admin(Arm)
_arm_admin.inlines = [*_arm_admin.inlines, CanaryIncidentInline]
