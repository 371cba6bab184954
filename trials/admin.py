"""The coordinator's workplace. Every write goes through trials.services; every list and page is
limited to the trials the signed-in user may see, and every object asks its trial's rule
(trials.rules)."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from trials.audit import audit_chain_verify
from trials.canonical import sha256_of
from trials.forms import (
    ArmForm,
    ConsentDocumentForm,
    DeviationForm,
    OversightDecisionForm,
    PlanForm,
    ProfileForm,
)
from trials.models import (
    Approval,
    Arm,
    Community,
    ConsentDocument,
    FlourishingProfile,
    OversightBody,
    Participant,
    PreRegistration,
    ProtocolDeviation,
    Trial,
    TrialEvent,
    TrialMember,
    TrialOversight,
)
from trials.oversight import oversight_decide, plan_comparisons, plan_document
from trials.plan import PowerCalculation
from trials.registry_export import (
    export_arguments,
    osf_preregistration,
    preregistration_markdown,
)
from trials.rules import permitted
from trials.selectors import (
    SetupItem,
    bodies_of,
    changes_requested,
    consent_renewals,
    missing_approvals,
    preregistration_current,
    preregistration_in_force,
    preregistrations_pending,
    suspensions_standing,
    trial_setup_checklist,
    trial_status,
)
from trials.services import (
    ARM_CONFIG_FIELDS,
    arm_amend,
    arm_save,
    deviation_record,
    event_record,
    member_add,
    oversight_assign,
    participant_withdraw,
    preregistration_amend,
    preregistration_draft_save,
    preregistration_freeze,
    preregistration_record_build,
    profile_create,
    trial_create,
    trial_describe,
    trial_transition,
)

State = Trial.State
# The trial's page shows its latest events; the audit view pages through all of them.
RECENT_EVENTS = 50
AUDIT_PAGE_SIZE = 100


def _report(modeladmin, request, error: ValidationError, prefix: str = "") -> None:
    modeladmin.message_user(request, prefix + " ".join(error.messages), messages.ERROR)


class RecordAdmin(SimpleHistoryAdmin):
    """Every configuration object keeps its history; past versions are shown, never restored.

    simple-history's per-version page would otherwise save a posted form straight through the
    model (no service, no amendment, no audit row) and report success. A change to a trial's
    record goes through the current object's page and its service instead.
    """

    def revert_disabled(self, request, obj=None) -> bool:
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied(
                "Past versions are shown, never restored: change the current record instead "
                "(after registration that is an amendment with a rationale)."
            )
        self._visible_with_history(request, object_id)
        if not str(version_id).isdigit():
            raise Http404("No such version.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._visible_with_history(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def _visible_with_history(self, request, object_id) -> None:
        # simple-history looks the object up without get_queryset: check visibility first.
        if self.get_object(request, object_id) is None:
            raise Http404("No such object.")
        if not hasattr(self.model._meta, "simple_history_manager_attribute"):
            raise Http404("This kind of record keeps no version history; its changes are audited.")


class TrialScopedMixin:
    """Per-trial object permissions for any admin of a model that belongs to a trial: the
    group's model permission for the kind of record, then the rule on the record's trial
    (``trials.view_trial``, ``trials.change_trial``). Users see the trials they belong to,
    coordinators change only their own, nothing is deleted, and an object of another trial is a
    403 (with an audit row), never a redirect or a page."""

    trial_path = "trial"

    def trial_of(self, obj) -> Trial:
        for part in self.trial_path.split("__"):
            obj = getattr(obj, part)
        return obj

    def get_queryset(self, request):
        visible = permitted(request.user, "trials.view_trial")
        return super().get_queryset(request).filter(**{f"{self.trial_path}__in": visible})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            try:
                hidden = self.model._default_manager.filter(pk=object_id).first()
            except (ValueError, ValidationError):  # not even a well-formed key
                return None
            if hidden is not None:
                event_record(
                    trial=self.trial_of(hidden),
                    kind=TrialEvent.Kind.ACCESS_REFUSED,
                    actor=request.user,
                    model=self.model._meta.model_name,
                    object=str(object_id),
                )
                raise PermissionDenied("You do not work on this trial.")
        return obj

    def has_view_permission(self, request, obj=None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (
            obj is None or request.user.has_perm("trials.view_trial", self.trial_of(obj))
        )

    def has_change_permission(self, request, obj=None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (
            obj is None or request.user.has_perm("trials.change_trial", self.trial_of(obj))
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "trial":
            kwargs["queryset"] = permitted(request.user, "trials.change_trial")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TrialScopedAdmin(TrialScopedMixin, RecordAdmin):
    """A trial's configuration objects, with their history."""


# --- trial --------------------------------------------------------------------------------


class ArmInline(admin.TabularInline):
    """The trial's arms at a glance. An arm is edited on its own page, which shows every field
    of its configuration (a row here could not, and a form missing required fields would stop
    the whole trial page from saving) and applies the amendment rule once registered."""

    model = Arm
    extra = 0
    fields = ["slug", "name", "is_control", "model_id", "model_version", "config_hash", "edit"]
    readonly_fields = fields
    can_delete = False

    @admin.display(description="")
    def edit(self, arm: Arm) -> str:
        url = reverse("admin:trials_arm_change", args=[arm.pk])
        return format_html('<a href="{}">configuration…</a>', url)

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # "Add an arm" on the trial page opens the arm's own form

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class AppendOnlyInline(admin.TabularInline):
    """Rows a coordinator adds (through a service in TrialAdmin.save_formset), never edits."""

    extra = 0

    def can_append(self, request, trial: Trial | None) -> bool:
        return trial is not None and request.user.has_perm("trials.change_trial", trial)

    def has_add_permission(self, request, obj=None) -> bool:
        return self.can_append(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OversightInline(AppendOnlyInline):
    model = TrialOversight
    fields = ["body", "required"]

    def can_append(self, request, trial: Trial | None) -> bool:
        # Once enrolment has opened, who must approve is settled.
        return super().can_append(request, trial) and trial.state in (
            State.DRAFT,
            State.REGISTERED,
        )


class MemberInline(AppendOnlyInline):
    model = TrialMember
    fields = ["user", "role"]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class DeviationInline(ReadOnlyInline):
    model = ProtocolDeviation
    fields = ["recorded_at", "kind", "preregistration", "description", "recorded_by"]


def _confirmation(
    modeladmin,
    request: HttpRequest,
    *,
    action: str,
    title: str,
    items: list[tuple[object, list[str], bool]],
    warning: str,
    confirm: str,
) -> TemplateResponse:
    """Django admin's intermediate page for an irreversible action: what will happen to each
    selected object (``items``: the object, lines about it, whether it can be done) and a button
    that posts the same selection again with ``post=yes``."""
    context = modeladmin.admin_site.each_context(request) | {
        "title": title,
        "opts": modeladmin.model._meta,
        "action": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "items": items,
        "warning": warning,
        "confirm": confirm,
        "can_confirm": any(possible for _, _, possible in items),
    }
    return TemplateResponse(request, "admin/trials/confirm_action.html", context)


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("post") == "yes"


def _register_confirmation(modeladmin, request: HttpRequest, queryset, action: str):
    items = []
    for trial in queryset:
        current = preregistration_current(trial)
        if not request.user.has_perm("trials.change_trial", trial):
            items.append((trial, ["Only its coordinators can register it."], False))
        elif current is None:
            items.append((trial, ["No frozen plan yet: freeze one first."], False))
        else:
            line = (
                f"Plan version {current.version}, SHA-256 {current.sha256}, becomes its protocol."
            )
            items.append((trial, [line], trial.state == State.DRAFT))
    return _confirmation(
        modeladmin,
        request,
        action=action,
        title="Register these trials?",
        items=items,
        warning="Registration cannot be undone: afterwards the plan changes only by amendment, "
        "with a rationale, recorded as a protocol deviation and approved again by every "
        "required body.",
        confirm="Yes, register",
    )


def _transition_action(target: str, label: str):
    @admin.action(description=label, permissions=["change"])
    def action(modeladmin, request, queryset):
        # Registering is irreversible: it asks first.
        if target == State.REGISTERED and not _confirmed(request):
            return _register_confirmation(modeladmin, request, queryset, action.__name__)
        for trial in queryset:
            if not request.user.has_perm("trials.change_trial", trial):
                modeladmin.message_user(
                    request, f"{trial.slug}: only its coordinators can do that.", messages.ERROR
                )
                continue
            try:
                trial_transition(trial=trial, to=target, actor=request.user)
            except ValidationError as error:
                _report(modeladmin, request, error, f"{trial.slug}: ")
            else:
                modeladmin.message_user(request, f"{trial.slug}: now {State(target).label}.")

    action.__name__ = f"move_to_{target}"
    return action


TRANSITION_ACTIONS = [
    (State.REGISTERED, "Register (the frozen plan is in force)"),
    (State.ENROLLING, "Open / resume enrolment"),
    (State.FOLLOW_UP, "Close enrolment, start follow-up"),
    (State.CLOSED, "Close the trial"),
    (State.ANALYSED, "Mark as analysed"),
    (State.TERMINATED, "Terminate"),
]


@admin.register(Trial)
class TrialAdmin(TrialScopedAdmin):
    trial_path = "pk"
    list_display = ["slug", "title", "status", "plan_version", "approvals", "created_at"]
    list_filter = ["state"]
    search_fields = ["slug", "title"]
    fields = ["slug", "title", "description", "status", "plan_version", "approvals", "audit_chain"]
    readonly_fields = ["status", "plan_version", "approvals", "audit_chain"]
    # The audit trail is not an inline: the page shows its latest events (RECENT_EVENTS) and
    # links to all of them, paged (audit_view).
    inlines = [ArmInline, OversightInline, MemberInline, DeviationInline]
    actions = [_transition_action(target, label) for target, label in TRANSITION_ACTIONS]
    change_form_template = "admin/trials/trial/change_form.html"

    def trial_of(self, obj) -> Trial:
        return obj

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["slug", *self.readonly_fields]
        return self.readonly_fields

    @admin.display(description="status", ordering="state")
    def status(self, trial: Trial) -> str:
        return trial_status(trial) if trial.pk else State.DRAFT.label

    def setup_checklist(self, trial: Trial) -> list[SetupItem]:
        """The checklist at the top of the trial's page (extended by apps above trials)."""
        return trial_setup_checklist(trial)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            events = obj.events.select_related("actor").order_by("-sequence")
            context |= {
                "setup_checklist": self.setup_checklist(obj),
                "standing": suspensions_standing(obj),
                "recent_events": events[:RECENT_EVENTS],
                "event_count": obj.events.count(),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="plan")
    def plan_version(self, trial: Trial) -> str:
        current = preregistration_current(trial)
        if current is None:
            return "not frozen"
        in_force = preregistration_in_force(trial)
        parts = [f"v{in_force.version} in force · {in_force.sha256[:12]}…"] if in_force else []
        pending = preregistrations_pending(trial, in_force)
        parts += [f"v{p.version} pending approval" for p in pending]
        return "; ".join(parts)

    @admin.display(description="approvals")
    def approvals(self, trial: Trial) -> str:
        if preregistration_current(trial) is None:
            return "—"
        missing = missing_approvals(trial)
        if not missing:
            return "complete"
        # A body that asked for changes and has not approved since: the coordinators' cue.
        asked = sorted(
            {e.detail["body"] for e in changes_requested(preregistration_current(trial))}
            & set(missing)
        )
        asking = f"; {', '.join(asked)} asked for changes" if asked else ""
        return f"waiting for {', '.join(missing)}{asking}"

    @admin.display(description="audit chain")
    def audit_chain(self, trial: Trial) -> str:
        if trial.pk is None:
            return "—"
        report = audit_chain_verify(trial)
        head = f"head: event {report.head_sequence}, SHA-256 {report.head_hash}"
        if report.intact:
            return f"intact ({report.events} events); {head}"
        return format_html(
            '<strong class="errornote">BROKEN: {}</strong> {}', " ".join(report.problems), head
        )

    def save_model(self, request, obj, form, change) -> None:
        if change:
            trial_describe(
                trial=obj, title=obj.title, description=obj.description, actor=request.user
            )
        else:
            created = trial_create(
                slug=obj.slug, title=obj.title, description=obj.description, actor=request.user
            )
            obj.pk = created.pk

    def save_formset(self, request, form, formset, change) -> None:
        trial = form.instance
        for instance in formset.save(commit=False):
            if isinstance(instance, TrialOversight):
                oversight_assign(
                    trial=trial, body=instance.body, required=instance.required, actor=request.user
                )
            elif isinstance(instance, TrialMember):
                member_add(trial=trial, user=instance.user, role=instance.role, actor=request.user)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/oversight/<str:decision>/",
                view(self.oversight_view),
                name="trials_trial_oversight",
            ),
            path("<int:pk>/audit/", view(self.audit_view), name="trials_trial_audit"),
            *super().get_urls(),
        ]

    def audit_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The trial's whole audit trail, newest first, a page at a time."""
        trial = self._visible(request, pk)
        if not request.user.has_perm("trials.view_trial", trial):
            raise PermissionDenied("You do not work on this trial.")
        events = trial.events.select_related("actor").order_by("-sequence")
        page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
        context = self.admin_site.each_context(request) | {
            "title": f"Audit trail: {trial.title}",
            "trial": trial,
            "page": page,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/trials/trial/audit_trail.html", context)

    def _visible(self, request, pk: int) -> Trial:
        trial = self.get_object(request, str(pk))
        if trial is None:
            raise PermissionDenied("You do not work on this trial.")
        return trial

    def oversight_view(self, request: HttpRequest, pk: int, decision: str) -> HttpResponse:
        """A body member reviews the version to approve (the plan as a document, and what
        changed since the version their body approved last) and approves it or asks for
        changes; or suspends the trial, or lifts their body's suspension."""
        if decision not in ("approve", "suspend"):
            raise PermissionDenied("Unknown decision.")
        trial = self._visible(request, pk)
        permission = (
            "trials.approve_preregistration" if decision == "approve" else "trials.suspend_trial"
        )
        bodies = bodies_of(request.user, trial)
        if not request.user.has_perm(permission, trial) or not bodies.exists():
            raise PermissionDenied("Only members of a body overseeing this trial can decide.")
        Decision = OversightDecisionForm
        standing = suspensions_standing(trial)
        if decision == "approve":
            decisions = [Decision.APPROVE, Decision.REQUEST_CHANGES]
        else:
            # Lifting is offered while a standing suspension waits for one of the user's bodies.
            waits = any(set(s.waiting_for) & set(bodies) for s in standing)
            decisions = [Decision.SUSPEND, Decision.LIFT] if waits else [Decision.SUSPEND]
        form = OversightDecisionForm(request.POST or None, bodies=bodies, decisions=decisions)
        current = preregistration_current(trial)
        if request.method == "POST" and form.is_valid():
            try:
                done = oversight_decide(
                    trial=trial,
                    body=form.cleaned_data["body"],
                    decision=form.cleaned_data["decision"],
                    note=form.cleaned_data["note"],
                    actor=request.user,
                )
            except ValidationError as error:
                _report(self, request, error)
            else:
                self.message_user(request, done)
                return HttpResponseRedirect(reverse("admin:trials_trial_change", args=[pk]))
        review = decision == "approve" and current is not None
        context = self.admin_site.each_context(request) | {
            "title": f"{'Review' if decision == 'approve' else 'Suspend or lift'}: {trial.title}",
            "trial": trial,
            "decision": decision,
            "form": form,
            "current": current,
            "document": plan_document(current) if review else "",
            "comparisons": plan_comparisons(current, bodies) if review else [],
            "change_requests": changes_requested(current) if review else [],
            "standing": standing,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/trials/trial/oversight_decision.html", context)


# --- arms and plans --------------------------------------------------------------------------


@admin.register(Arm)
class ArmAdmin(TrialScopedAdmin):
    form = ArmForm
    list_display = ["__str__", "name", "is_control", "model_id", "model_version", "config_hash"]
    list_filter = [("trial", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = ["config_hash"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["trial", "slug", "is_control", "config_hash"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        # ArmForm.clean has already refused what the services would refuse.
        if obj.trial.state == State.DRAFT:
            arm_save(arm=obj, actor=request.user)
            return
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in ARM_CONFIG_FIELDS}
        if changes:
            prereg = arm_amend(
                arm=obj,
                changes=changes,
                rationale=form.cleaned_data["amendment_rationale"],
                actor=request.user,
            )
            self.message_user(
                request,
                f"Recorded as amendment version {prereg.version} with a protocol deviation; "
                "enrolment waits for the bodies' approval.",
                messages.WARNING,
            )


# The plan form's sections: the pages of the OSF Preregistration template (the order of
# trials.registry_export), each with what it asks. Every PlanForm field is in exactly one.
PLAN_FIELDSETS = [
    (
        "Study information",
        "Which trial, why this version exists (an amendment says why), and what it tests.",
        ["trial", "rationale", "hypotheses"],
    ),
    (
        "Design plan",
        "The kind of study, who is blinded, the arms compared and how people are allocated.",
        [
            "study_type",
            "blinding",
            "design",
            "control_arm",
            "treatment_arm",
            "randomisation_method",
            "strata",
            "block_sizes",
            "randomisation_ratio",
            "factorial_factors",
            "factorial_cells",
            "factorial_contrasts",
        ],
    ),
    (
        "Sampling plan",
        "Who may take part, how data are collected, how many people (with the power "
        "calculation behind the number) and when the trial may stop early.",
        [
            "screening",
            "data_collection_procedures",
            "sample_size_per_arm",
            "sample_size_rationale",
            "compute_sample_size",
            "power_effect",
            "power_sd",
            "power_rho",
            "power_follow_ups",
            "power_attrition",
            "power_target",
            "power_result",
            "interim_looks",
            "spending",
            "stopping_rule",
        ],
    ),
    (
        "Variables",
        "The outcomes: each a score of an instrument on a flourishing dimension at a wave.",
        ["primary_outcomes", "secondary_outcomes"],
    ),
    (
        "Analysis plan",
        "What is estimated and how, the error rate and its correction for several outcomes, "
        "the smallest differences that matter, who is excluded, missing data, and what is "
        "exploratory.",
        [
            "estimand",
            "analysis_model",
            "transformations",
            "alpha",
            "multiplicity",
            "minimal_important_differences",
            "covariates",
            "moderators",
            "exclusions",
            "missing_data",
            "exploratory_analyses",
        ],
    ),
    (
        "Other",
        "Guardrails that stop harm, the harm boundaries that alert the oversight bodies and who "
        "lifts a suspension, the arms' canary prompts, the communities' own weights, and the "
        "privacy budget of device telemetry (leave it empty for a trial without telemetry).",
        [
            "guardrails",
            "safety_harm_boundaries",
            "safety_suspension_lifted_by",
            "safety_canary_prompts",
            "community_weights",
            "telemetry_window_days",
            "telemetry_rho_total",
            "telemetry_rho_per_window",
            "telemetry_delta",
            "telemetry_min_replies_per_arm",
            "telemetry_metrics",
            "telemetry_ratings",
            "dose_instrument",
            "dose_score",
            "dose_wave",
            "dose_usage_metric",
            "dose_usage_days",
            "dose_usage_upper",
            "dose_change_bound",
            "dose_change_step",
            "dose_rho",
            "other",
        ],
    ),
]


def power_summary(power: PowerCalculation) -> str:
    """The power calculation's result in one sentence: what was achieved, with how many."""
    return (
        f"Achieved power {power.achieved_power:.3f} (target {power.power:g}) with "
        f"{power.n_per_arm} per arm, {power.n_total} in total (enrolments, allowing "
        f"{power.attrition:.0%} attrition); design multiplier {power.design_multiplier:.3f} "
        f"(effect {power.effect:g}, SD {power.sd:g}, correlation {power.rho:g}, "
        f"{power.follow_ups} follow-up wave{'s' if power.follow_ups != 1 else ''}, "
        f"alpha {power.alpha:g})."
    )


@admin.register(PreRegistration)
class PreRegistrationAdmin(TrialScopedAdmin):
    form = PlanForm
    list_display = ["trial", "version", "status", "frozen_at", "short_hash", "approved_by"]
    list_filter = [("trial", admin.RelatedOnlyFieldListFilter)]
    actions = ["freeze"]
    frozen_fields = ["trial", "version", "frozen_at", "sha256", "rationale", "content", "export"]

    class Media:
        # The frozen record's layout; the Content-Security-Policy refuses inline styles.
        css = {"all": ["trials/plan.css"]}

    @admin.display(description="power calculation")
    def power_result(self, prereg: PreRegistration) -> str:
        if prereg.pk is None:
            return "Shown here once the draft is saved."
        size = prereg.plan.sample_size
        if size is None or size.power is None:
            return "Not computed: tick “compute sample size” and fill in the power inputs."
        return power_summary(size.power)

    @admin.display(description="status")
    def status(self, prereg: PreRegistration) -> str:
        return "frozen" if prereg.frozen_at else "draft"

    @admin.display(description="SHA-256")
    def short_hash(self, prereg: PreRegistration) -> str:
        return f"{prereg.sha256[:12]}…" if prereg.sha256 else ""

    @admin.display(description="approved by")
    def approved_by(self, prereg: PreRegistration) -> str:
        return ", ".join(a.body.name for a in prereg.approvals.select_related("body")) or "—"

    @admin.display(description="frozen record")
    def content(self, prereg: PreRegistration) -> str:
        text = json.dumps(prereg.record, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre class="plan-document">{}</pre>', text)

    @admin.display(description="export")
    def export(self, prereg: PreRegistration) -> str:
        base = reverse("admin:trials_preregistration_export", args=[prereg.pk, "osf"])
        markdown = reverse("admin:trials_preregistration_export", args=[prereg.pk, "markdown"])
        return format_html(
            '<a href="{}">OSF Preregistration JSON</a> · <a href="{}">Markdown</a>', base, markdown
        )

    def get_fieldsets(self, request, obj=None):
        if obj is not None and obj.frozen_at is not None:
            return [(None, {"fields": self.frozen_fields})]
        return [
            (name, {"description": description, "fields": fields})
            for name, description, fields in PLAN_FIELDSETS
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.frozen_at is not None:
            return self.frozen_fields
        return ["trial", "power_result"] if obj is not None else ["power_result"]

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.frozen_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id:
            prereg = self.get_object(request, object_id)
            if prereg is not None and prereg.frozen_at is not None:
                event_record(
                    trial=prereg.trial,
                    kind=TrialEvent.Kind.EDIT_REFUSED,
                    actor=request.user,
                    model="preregistration",
                    version=prereg.version,
                )
                raise PermissionDenied(
                    f"Version {prereg.version} is frozen and cannot be changed; write an "
                    "amendment as a new draft version instead."
                )
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        saved = preregistration_draft_save(
            trial=obj.trial, plan=form.plan, rationale=obj.rationale, actor=request.user
        )
        obj.pk, obj.version = saved.pk, saved.version

    def response_add(self, request, obj, post_url_continue=None):
        return self._power_shown(request, obj) or super().response_add(request, obj)

    def response_change(self, request, obj):
        return self._power_shown(request, obj) or super().response_change(request, obj)

    def _power_shown(self, request, obj: PreRegistration) -> HttpResponse | None:
        """After a power calculation, the draft's page again, to show its result."""
        if not request.POST.get("compute_sample_size"):
            return None
        size = PreRegistration.objects.get(pk=obj.pk).plan.sample_size  # as the service stored it
        power = size.power if size else None
        if power is None:
            return None
        self.message_user(request, f"Saved version {obj.version}. {power_summary(power)}")
        return HttpResponseRedirect(reverse("admin:trials_preregistration_change", args=[obj.pk]))

    @admin.action(description="Freeze the selected draft (an amendment once registered)")
    def freeze(self, request, queryset) -> TemplateResponse | None:
        drafts = queryset.filter(frozen_at__isnull=True).select_related("trial")
        if not _confirmed(request):
            return self._freeze_confirmation(request, drafts)
        for draft in drafts:
            trial = draft.trial
            if not request.user.has_perm("trials.change_trial", trial):
                self.message_user(request, f"{trial}: coordinators only.", messages.ERROR)
                continue
            try:
                if trial.state == State.DRAFT:
                    frozen = preregistration_freeze(trial=trial, actor=request.user)
                else:
                    frozen = preregistration_amend(
                        trial=trial, rationale=draft.rationale, actor=request.user
                    )
            except ValidationError as error:
                _report(self, request, error, f"{trial} v{draft.version}: ")
            else:
                self.message_user(
                    request, f"{trial} v{frozen.version} frozen, SHA-256 {frozen.sha256}."
                )

    def _freeze_confirmation(self, request, drafts) -> TemplateResponse:
        """What freezing each draft would store: its SHA-256 to be, or what stops it."""
        items = []
        for draft in drafts:
            trial = draft.trial
            if not request.user.has_perm("trials.change_trial", trial):
                items.append((draft, ["Coordinators only."], False))
                continue
            try:
                record = preregistration_record_build(trial=trial, plan=draft.plan)
            except ValidationError as error:
                items.append((draft, ["Cannot be frozen:", *error.messages], False))
                continue
            lines = [f"Freezes as SHA-256 {sha256_of(record)}."]
            if trial.state != State.DRAFT:
                lines.append(
                    "An amendment: recorded as a protocol deviation; enrolment pauses until "
                    "every required body approves it."
                )
            items.append((draft, lines, True))
        return _confirmation(
            self,
            request,
            action="freeze",
            title="Freeze these drafts?",
            items=items,
            warning="A frozen version cannot be changed afterwards: a later change is a new "
            "version, an amendment.",
            confirm="Yes, freeze",
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/export/<str:fmt>/",
                self.admin_site.admin_view(self.export_view),
                name="trials_preregistration_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        prereg = self.get_object(request, str(pk))
        if prereg is None or prereg.frozen_at is None or fmt not in ("osf", "markdown"):
            raise PermissionDenied("Only frozen versions of your trials can be exported.")
        fields = export_arguments(prereg)
        name = f"{prereg.trial.slug}-preregistration-v{prereg.version}"
        if fmt == "osf":
            body = json.dumps(osf_preregistration(**fields), indent=2, ensure_ascii=False)
            response = HttpResponse(body, content_type="application/json; charset=utf-8")
            name += ".json"
        else:
            body = preregistration_markdown(**fields)
            response = HttpResponse(body, content_type="text/markdown; charset=utf-8")
            name += ".md"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(ProtocolDeviation)
class ProtocolDeviationAdmin(TrialScopedAdmin):
    form = DeviationForm
    list_display = ["trial", "recorded_at", "kind", "preregistration", "recorded_by"]
    list_filter = ["kind"]
    fields = ["trial", "description"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        saved = deviation_record(trial=obj.trial, description=obj.description, actor=request.user)
        obj.pk = saved.pk


@admin.register(Approval)
class ApprovalAdmin(TrialScopedAdmin):
    trial_path = "preregistration__trial"
    list_display = ["preregistration", "body", "decided_by", "decided_at"]

    def has_add_permission(self, request) -> bool:
        return False  # bodies approve from the trial page, through the service

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- consent and participants ----------------------------------------------------------------


@admin.register(ConsentDocument)
class ConsentDocumentAdmin(TrialScopedAdmin):
    form = ConsentDocumentForm
    list_display = ["trial", "version", "locale", "withdrawal_rule"]
    readonly_fields = ["reconsent"]

    @admin.display(description="re-consent")
    def reconsent(self, document: ConsentDocument) -> str:
        if document.pk is None:
            return "—"
        counts = consent_renewals(document)
        return (
            f"{counts.renewed} participant(s) consented again under this version; "
            f"{counts.waiting} in the trial still to consent to the latest version."
        )

    def has_change_permission(self, request, obj=None) -> bool:
        # A document someone consented under is a record: publish a new version instead.
        if obj is not None and obj.consentgrant_set.exists():
            return False
        return super().has_change_permission(request, obj)


@admin.register(Participant)
class ParticipantAdmin(TrialScopedAdmin):
    """Pseudonyms only: contact details never appear in the admin."""

    list_display = ["id", "trial", "arm", "community", "locale", "enrolled_at", "withdrawn_at"]
    list_filter = [("trial", admin.RelatedOnlyFieldListFilter), "withdrawn_at"]
    fields = [
        "id",
        "trial",
        "arm",
        "community",
        "locale",
        "enrolled_at",
        "consents",
        "withdrawn_at",
        "withdrawal_reason",
        "erased_at",
    ]
    readonly_fields = fields
    actions = ["withdraw"]

    @admin.display(description="arm")
    def arm(self, participant: Participant) -> str:
        return participant.allocation.arm.slug if hasattr(participant, "allocation") else "—"

    @admin.display(description="consent")
    def consents(self, participant: Participant) -> str:
        return ", ".join(
            f"{g.scope} (v{g.document.version}"
            + (f", revoked {g.revoked_at:%Y-%m-%d})" if g.revoked_at else ")")
            for g in participant.consents.select_related("document")
        )

    def has_add_permission(self, request) -> bool:
        return False  # people enrol themselves, through the consent page

    @admin.action(description="Withdraw (on the participant's request)", permissions=["change"])
    def withdraw(self, request, queryset) -> None:
        for participant in queryset:
            if request.user.has_perm("trials.change_trial", participant.trial):
                participant_withdraw(
                    participant=participant,
                    reason="withdrew (recorded by coordinator)",
                    actor=request.user,
                )
        self.message_user(request, "Withdrawn; data kept or erased as each consent document says.")


# --- oversight and communities ---------------------------------------------------------------


@admin.register(OversightBody)
class OversightBodyAdmin(RecordAdmin):
    list_display = ["name", "kind"]
    filter_horizontal = ["members"]

    def get_queryset(self, request):
        readable = permitted(request.user, "trials.view_oversightbody")
        return super().get_queryset(request).filter(pk__in=readable.values("pk"))

    def has_view_permission(self, request, obj=None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or request.user.has_perm("trials.view_oversightbody", obj))

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        exists = str(object_id).isdigit() and OversightBody.objects.filter(pk=object_id).exists()
        if obj is None and exists:
            raise PermissionDenied("You are not a member of this body or of a trial it oversees.")
        return obj


class ProfileInline(admin.TabularInline):
    model = FlourishingProfile
    extra = 0
    fields = ["version", "weights", "authored_by", "locale", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Community)
class CommunityAdmin(RecordAdmin):
    list_display = ["slug", "name", "locale"]
    inlines = [ProfileInline]


@admin.register(FlourishingProfile)
class FlourishingProfileAdmin(RecordAdmin):
    """Communities add versions; a published version never changes."""

    form = ProfileForm
    list_display = ["community", "version", "weights", "authored_by", "created_at"]
    fields = ["community", "weights", "priorities", "locale", "authored_by"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        saved = profile_create(
            community=obj.community,
            weights=obj.weights,
            authored_by=obj.authored_by,
            priorities=obj.priorities,
            locale=obj.locale,
        )
        obj.pk, obj.version = saved.pk, saved.version
