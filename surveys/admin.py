"""The coordinator's side of surveys: instruments and licensed packs, wave schedules,
invitations (with the ones in doubt), responses with their quality flags, and the per-trial
psychometrics report."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from surveys.models import Instrument, Invitation, Response, Wave
from surveys.reports import trial_survey_report
from surveys.services import (
    instrument_pack_load,
    invitation_release,
    schedule_editable,
    wave_change,
    wave_create,
    wave_quality_refresh,
    wave_schedule_errors,
)
from trials.admin import TrialScopedAdmin
from trials.rules import permitted


class PackForm(forms.Form):
    pack = forms.FileField(
        help_text="The JSON pack your organisation prepared under its licence; it is stored in "
        "the database only."
    )

    def clean_pack(self) -> dict:
        try:
            return json.loads(self.cleaned_data["pack"].read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ValidationError(f"The file is not JSON: {error}") from error


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "version", "licence", "validated", "origin"]
    list_filter = ["origin", "licence", "validated"]
    readonly_fields = ["code", "name", "version", "licence", "validated", "origin", "definition"]
    change_list_template = "admin/surveys/instrument/change_list.html"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def add_view(self, request, form_url="", extra_context=None):
        # Instruments come from the repository's files or from a pack, never typed in field by
        # field: "add" is loading a pack.
        return redirect("admin:surveys_instrument_load_pack")

    def get_urls(self):
        load = self.admin_site.admin_view(self.load_pack_view)
        return [path("load-pack/", load, name="surveys_instrument_load_pack"), *super().get_urls()]

    def load_pack_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PackForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                loaded = instrument_pack_load(pack=form.cleaned_data["pack"])
            except ValidationError as error:
                for problem in error.messages:
                    form.add_error("pack", problem)
            else:
                codes = ", ".join(instrument.code for instrument in loaded)
                self.message_user(request, f"Loaded {len(loaded)} instruments: {codes}.")
                return redirect("admin:surveys_instrument_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "title": "Load a pack"}
        return TemplateResponse(request, "admin/surveys/instrument/load_pack.html", context)


class WaveForm(forms.ModelForm):
    class Meta:
        model = Wave
        fields = [
            "trial",
            "index",
            "day_offset",
            "window_days",
            "reminder_days",
            "instruments",
            "one_page",
        ]

    def clean(self):
        cleaned = super().clean()
        trial = cleaned.get("trial")
        if trial is None or self.errors:
            return cleaned
        wave = Wave(
            pk=self.instance.pk,
            trial=trial,
            index=cleaned["index"],
            day_offset=cleaned["day_offset"],
            window_days=cleaned["window_days"],
            reminder_days=cleaned.get("reminder_days") or [],
        )
        # What the service would refuse, shown on the form before anything is saved.
        errors = wave_schedule_errors(wave=wave, instruments=cleaned.get("instruments", []))
        if errors:
            raise ValidationError(errors)
        return cleaned

    def service_arguments(self) -> dict:
        """The form's values as wave_create and wave_change take them."""
        data = self.cleaned_data
        return {
            "index": data["index"],
            "day_offset": data["day_offset"],
            "window_days": data["window_days"],
            "reminder_days": data.get("reminder_days") or [],
            "one_page": data["one_page"],
            "instrument_codes": [instrument.code for instrument in data["instruments"]],
        }


@admin.register(Wave)
class WaveAdmin(TrialScopedAdmin):
    form = WaveForm
    list_display = [
        "trial",
        "index",
        "day_offset",
        "window_days",
        "reminder_days",
        "questionnaires",
    ]
    list_filter = ["trial"]
    change_list_template = "admin/surveys/wave/change_list.html"
    actions = ["refresh_quality"]

    @admin.action(description="Refresh quality indices (adds the Mahalanobis distance)")
    def refresh_quality(self, request, queryset):
        for wave in queryset:
            flagged = wave_quality_refresh(wave=wave)
            self.message_user(request, f"{wave}: {flagged} responses flagged for review.")

    @admin.display(description="Instruments")
    def questionnaires(self, wave: Wave) -> str:
        return ", ".join(instrument.code for instrument in wave.instruments.all())

    def has_change_permission(self, request, obj=None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or schedule_editable(obj.trial))

    def save_model(self, request, obj, form, change):
        # WaveForm.clean has already refused what the services would refuse.
        arguments = form.service_arguments() | {"actor": request.user}
        if change:
            saved = wave_change(wave=obj, **arguments)
        else:
            saved = wave_create(trial=obj.trial, **arguments)
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        pass  # the service has set the wave's instruments; a wave has no inlines

    def get_urls(self):
        report = self.admin_site.admin_view(self.report_view)
        return [
            path("report/<int:trial_id>/", report, name="surveys_wave_report"),
            *super().get_urls(),
        ]

    def report_view(self, request, trial_id: int):
        trial = get_object_or_404(permitted(request.user, "trials.view_trial"), pk=trial_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Survey quality — {trial.slug}",
            "trial": trial,
            "report": trial_survey_report(trial),
        }
        return TemplateResponse(request, "admin/surveys/wave/report.html", context)

    def changelist_view(self, request, extra_context=None):
        visible = permitted(request.user, "trials.view_trial")
        trials = visible.filter(waves__isnull=False).distinct()
        reports = [(t, reverse("admin:surveys_wave_report", args=[t.pk])) for t in trials]
        return super().changelist_view(request, {**(extra_context or {}), "reports": reports})


@admin.register(Invitation)
class InvitationAdmin(TrialScopedAdmin):
    trial_path = "wave__trial"
    list_display = ["participant", "wave", "sequence", "due_at", "state", "sent_at", "note"]
    list_filter = ["state", "wave__trial"]
    readonly_fields = [f.name for f in Invitation._meta.fields]
    actions = ["send_again"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Send again (after checking it never arrived)")
    def send_again(self, request, queryset):
        for invitation in queryset:
            if not self.has_change_permission(request, invitation):
                raise PermissionDenied
            try:
                invitation_release(invitation=invitation, actor=request.user)
            except ValidationError as error:
                self.message_user(request, f"{invitation}: {error.messages[0]}", messages.ERROR)


@admin.register(Response)
class ResponseAdmin(TrialScopedAdmin):
    trial_path = "wave__trial"
    list_display = ["participant", "wave", "submitted_at", "flagged", "flags"]
    list_filter = ["flagged", "wave__trial"]
    readonly_fields = [f.name for f in Response._meta.fields]

    @admin.display(description="Quality flags")
    def flags(self, response: Response) -> str:
        raised = [
            f"{code}: {', '.join(index['flags'])}"
            for code, index in response.quality.items()
            if index.get("flags")
        ]
        return format_html("{}", "; ".join(raised) or "—")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
