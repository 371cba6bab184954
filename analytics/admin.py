"""Analysis runs in the admin: coordinators start them, everyone who may see the trial reads
their progress and results; nobody edits a stored result."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from analytics.models import AnalysisRun
from analytics.results import Diagnostics, FrequentistEstimate, Results
from analytics.selectors import consort_counts
from analytics.services import analysis_run_create
from surveys.models import Wave
from trials.admin import TrialAdmin, TrialScopedMixin
from trials.models import Trial
from trials.rules import permitted
from trials.selectors import SetupItem, preregistration_current, preregistration_draft

START_PERMISSION = "analytics.add_analysisrun"


class StartRunForm(forms.Form):
    trial = forms.ModelChoiceField(queryset=Trial.objects.none())
    kind = forms.ChoiceField(
        choices=AnalysisRun.Kind.choices,
        initial=AnalysisRun.Kind.CONFIRMATORY,
        help_text="Confirmatory runs execute exactly the frozen plan; anything else is "
        "exploratory and labelled so everywhere.",
    )
    seed = forms.IntegerField(initial=20260101, help_text="Fixes the sampler's random numbers.")

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        coordinated = permitted(user, "trials.change_trial")
        self.fields["trial"].queryset = coordinated.filter(
            preregistrations__frozen_at__isnull=False
        ).distinct()


@admin.register(AnalysisRun)
class AnalysisRunAdmin(TrialScopedMixin, admin.ModelAdmin):
    list_display = ["pk", "trial", "kind", "status", "progress_bar", "reportable", "created_at"]
    list_filter = ["status", "kind"]
    fields = [
        *(f.name for f in AnalysisRun._meta.fields if f.name not in ("id", "results")),
        "estimates",
    ]
    readonly_fields = fields
    change_list_template = "admin/analytics/analysisrun/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("trial")

    def has_add_permission(self, request) -> bool:
        return False  # runs are started with the form below, never typed in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="progress")
    def progress_bar(self, run: AnalysisRun) -> str:
        percent = round(100 * run.progress)
        return format_html(
            '<progress max="100" value="{}">{}%</progress> {}%', percent, percent, percent
        )

    @admin.display(description="reportable", boolean=True)
    def reportable(self, run: AnalysisRun) -> bool | None:
        if run.status != AnalysisRun.Status.FINISHED:
            return None
        return Diagnostics.model_validate(run.diagnostics).reportable

    @admin.display(description="estimates")
    def estimates(self, run: AnalysisRun) -> str:
        # Only a finished run has stored its results.
        rows = (
            Results.model_validate(run.results).estimates
            if run.status == AnalysisRun.Status.FINISHED
            else []
        )
        if not rows:
            return "—"
        header = mark_safe(  # a constant: nothing in it comes from data
            "<tr><th>outcome</th><th>arm</th><th>method</th><th>estimand</th><th>estimate</th>"
            "<th>95% interval</th><th>p / P(benefit)</th><th>label</th><th>reportable</th></tr>"
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>[{}, {}]</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.outcome,
                    e.arm,
                    e.method,
                    e.estimand,
                    # format_html escapes its arguments to text first, so numbers arrive formatted
                    f"{e.estimate:+.3f}",
                    f"{e.ci_low:+.3f}",
                    f"{e.ci_high:+.3f}",
                    f"p={e.p_value:.4f}"
                    if isinstance(e, FrequentistEstimate)
                    else f"P={e.prob_benefit:.3f}",
                    "confirmatory" if e.confirmatory else "exploratory",
                    "yes" if e.reportable else "no: " + "; ".join(e.not_reportable_because),
                )
                for e in rows
            ),
        )
        return format_html("<table>{}{}</table>", header, body)

    def get_urls(self):
        start = self.admin_site.admin_view(self.start_view)
        return [path("start/", start, name="analytics_analysisrun_start"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_start": request.user.has_perm(START_PERMISSION), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def start_view(self, request):
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        form = StartRunForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                run = analysis_run_create(actor=request.user, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(
                    request,
                    f"Analysis run {run.pk} is queued; a worker executes it and its progress "
                    "shows here.",
                )
                return redirect("admin:analytics_analysisrun_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Start an analysis run",
        }
        return TemplateResponse(request, "admin/analytics/analysisrun/start.html", context)


def _schedule_item(trial: Trial) -> SetupItem:
    """The setup checklist's line for the wave schedule: waves exist, among them every wave at
    which the plan being written (else the latest frozen one) measures an outcome."""
    indices = sorted(Wave.objects.filter(trial=trial).values_list("index", flat=True))
    if not indices:
        url = f"{reverse('admin:surveys_wave_add')}?trial={trial.pk}"
        return SetupItem("waves", "Waves", False, "no wave scheduled yet.", url)
    url = f"{reverse('admin:surveys_wave_changelist')}?trial__id__exact={trial.pk}"
    detail = f"waves {', '.join(map(str, indices))}"
    prereg = preregistration_draft(trial) or preregistration_current(trial)
    outcome_waves = {outcome.wave for _, outcome in prereg.plan.outcomes} if prereg else set()
    missing = sorted(outcome_waves - set(indices))
    if missing:
        needed = ", ".join(map(str, missing))
        return SetupItem(
            "waves", "Waves", False, f"{detail}; the plan measures outcomes at wave {needed}.", url
        )
    return SetupItem("waves", "Waves", True, detail, url)


class TrialFlowAdmin(TrialAdmin):
    """The trial's admin page with its CONSORT flow, its wave schedule in the setup checklist
    and links to its waves, runs and dashboard. The flow's follow-up and analysed counts read
    the survey responses, which trials may not import (layers in pyproject.toml), so this app
    extends the trial's admin rather than trials reaching up for them."""

    change_form_template = "admin/analytics/trial_change_form.html"

    def setup_checklist(self, trial: Trial) -> list[SetupItem]:
        items = super().setup_checklist(trial)
        # The schedule comes before the consent document, in the order a trial is configured.
        at = next(i for i, item in enumerate(items) if item.key == "consent")
        return [*items[:at], _schedule_item(trial), *items[at:]]

    def get_urls(self):
        consort = self.admin_site.admin_view(self.consort_view)
        return [
            path("<int:pk>/consort/", consort, name="trials_trial_consort"),
            *super().get_urls(),
        ]

    def consort_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The CONSORT flow counts, with the sample-ratio-mismatch check on allocation."""
        trial = self._visible(request, pk)
        counts = consort_counts(trial)
        srm = None
        current = preregistration_current(trial)
        allocated = {arm["slug"]: arm["allocated"] for arm in counts["arms"]}
        if current is not None and sum(allocated.values()) > 0:
            ratio = current.plan.randomisation.ratio_for(list(allocated))
            from stats.srm import sample_ratio_mismatch  # SciPy: loaded by this page only

            srm = sample_ratio_mismatch(allocated, ratio)
        context = self.admin_site.each_context(request) | {
            "title": f"CONSORT flow: {trial.title}",
            "trial": trial,
            "counts": counts,
            "srm": srm,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/analytics/consort.html", context)


admin.site.unregister(Trial)
admin.site.register(Trial, TrialFlowAdmin)
