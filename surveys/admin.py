"""The coordinator's side of surveys: instruments and licensed packs, wave schedules,
invitations (with the ones in doubt), responses with their quality flags, and the per-trial
psychometrics report."""

import io
import json
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from surveys.models import Instrument, Invitation, Response, Wave
from surveys.schedule import MAX_REPEAT_DAYS, wave_window
from surveys.services import (
    WaveDaily,
    instrument_pack_load,
    invitation_release,
    recruitment_contacts_read,
    recruitment_invitations_send,
    schedule_editable,
    wave_change,
    wave_create,
    wave_quality_refresh,
    wave_schedule_errors,
)
from trials.admin import TrialScopedAdmin
from trials.models import ConsentGrant, Participant, Trial
from trials.rules import permitted

# Participants per page of a trial's participant list.
PARTICIPANTS_PER_PAGE = 100


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
    repeat_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_REPEAT_DAYS,
        required=False,
        initial=1,
        help_text=Wave._meta.get_field("repeat_days").help_text,
    )

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
            "repeat_days",
            "daily_opens_at",
            "daily_closes_at",
            "time_zone",
        ]

    def daily(self) -> WaveDaily:
        data = self.cleaned_data
        return WaveDaily(
            repeat_days=data.get("repeat_days") or 1,
            daily_opens_at=data.get("daily_opens_at"),
            daily_closes_at=data.get("daily_closes_at"),
            time_zone=data.get("time_zone") or "",
        )

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
            **asdict(self.daily()),
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
            "daily": self.daily(),
            "instrument_codes": [instrument.code for instrument in data["instruments"]],
        }


class ContactListForm(forms.Form):
    contacts = forms.FileField(
        label="Contact list",
        help_text="CSV, one person a line: e-mail address, then optionally the name to greet, "
        "the community's slug (its own recruitment link) and the language of the e-mail.",
    )

    def clean_contacts(self) -> str:
        try:
            return self.cleaned_data["contacts"].read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError("The file is not UTF-8 text.") from error


class ResponsesFileForm(forms.Form):
    responses = forms.FileField(
        help_text="A long responses file as the export writes it (.csv or .parquet)."
    )

    def clean_responses(self):
        upload = self.cleaned_data["responses"]
        if Path(upload.name).suffix.lower() not in (".csv", ".parquet"):
            raise ValidationError("The file must be a .csv or .parquet file.")
        return upload


@dataclass(frozen=True)
class ParticipantRow:
    """One line of a trial's participant list: where the person stands in each step."""

    participant: Participant
    arm: str
    screened: str
    consents: str
    waves: list[str]

    @classmethod
    def of(cls, participant: Participant, waves: list[Wave], now: datetime) -> "ParticipantRow":
        """From the rows ``participants_view`` prefetched: no query of its own."""
        allocation = getattr(participant, "allocation", None)
        screening = getattr(participant, "screening", None)
        return cls(
            participant=participant,
            arm=allocation.arm.slug if allocation else "—",
            screened=f"{screening.screened_at:%Y-%m-%d}, eligible" if screening else "—",
            consents=", ".join(grant.scope for grant in participant.active_consents) or "none",
            waves=[_wave_status(participant, wave, now) for wave in waves],
        )


def _wave_status(participant: Participant, wave: Wave, now: datetime) -> str:
    if any(response.wave_id == wave.pk for response in participant.answered):
        return "answered"
    sent = [i.sequence for i in participant.sent_invitations if i.wave_id == wave.pk]
    closed = wave_window(wave, participant.enrolled_at)[1] <= now
    if not sent:
        return "closed, not invited" if closed else "not yet invited"
    reminders = len([sequence for sequence in sent if sequence > 0])
    status = "invited" + (f", reminded {reminders}×" if reminders else "")
    return status + (", missed" if closed else "")


@admin.register(Wave)
class WaveAdmin(TrialScopedAdmin):
    form = WaveForm
    list_display = [
        "trial",
        "index",
        "day_offset",
        "window_days",
        "reminder_days",
        "daily",
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
        # The project's own items still being validated are marked wherever a schedule is read.
        return ", ".join(
            instrument.code + ("" if instrument.validated else " (not yet validated)")
            for instrument in wave.instruments.all()
        )

    @admin.display(description="Daily")
    def daily(self, wave: Wave) -> str:
        if wave.series_id is not None:
            return f"a day of wave {wave.series.index}"
        if wave.repeat_days == 1 and wave.daily_opens_at is None:
            return "—"
        days = f"{wave.repeat_days} days" if wave.repeat_days > 1 else "once"
        if wave.daily_opens_at is None:
            return days
        hours = f"{wave.daily_opens_at:%H:%M}–{wave.daily_closes_at:%H:%M}"
        return f"{days}, {hours} {wave.time_zone or settings.TIME_ZONE}"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("series")

    def has_change_permission(self, request, obj=None) -> bool:
        allowed = super().has_change_permission(request, obj)
        # A day of a daily wave is made from its first day's wave, which is the one to change.
        return allowed and (obj is None or (schedule_editable(obj.trial) and not obj.series_id))

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
        def view(function):
            return self.admin_site.admin_view(function)

        return [
            path("report/<int:trial_id>/", view(self.report_view), name="surveys_wave_report"),
            path(
                "participants/<int:trial_id>/",
                view(self.participants_view),
                name="surveys_wave_participants",
            ),
            path("invite/<int:trial_id>/", view(self.invite_view), name="surveys_wave_invite"),
            path("export/<int:trial_id>/", view(self.export_view), name="surveys_wave_export"),
            path("import/<int:trial_id>/", view(self.import_view), name="surveys_wave_import"),
            *super().get_urls(),
        ]

    def _trial(self, request, trial_id: int, permission: str) -> Trial:
        """The trial, when ``permission`` (trials.rules) holds on it for the user; a 403 for
        another trial's member."""
        trial = get_object_or_404(Trial, pk=trial_id)
        if not request.user.has_perm(permission, trial):
            raise PermissionDenied("You do not work on this trial.")
        return trial

    def _page(self, request, title: str, template: str, **context) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "title": title, **context}
        return TemplateResponse(request, f"admin/surveys/wave/{template}", context)

    def participants_view(self, request, trial_id: int):
        trial = self._trial(request, trial_id, "trials.view_trial")
        # The same model permission as the participants' own admin page (trials.roles).
        if not request.user.has_perm("trials.view_participant"):
            raise PermissionDenied
        waves = list(trial.waves.all())
        participants = (
            trial.participants.select_related("allocation__arm", "screening", "community")
            .prefetch_related(
                Prefetch(
                    "consents",
                    ConsentGrant.objects.filter(revoked_at__isnull=True).order_by("scope"),
                    to_attr="active_consents",
                ),
                Prefetch(
                    "invitations",
                    Invitation.objects.filter(state=Invitation.State.SENT).only(
                        "participant_id", "wave_id", "sequence"
                    ),
                    to_attr="sent_invitations",
                ),
                Prefetch(
                    "responses",
                    Response.objects.only("participant_id", "wave_id"),
                    to_attr="answered",
                ),
            )
            .order_by("enrolled_at", "id")
        )
        page = Paginator(participants, PARTICIPANTS_PER_PAGE).get_page(request.GET.get("page"))
        now = timezone.now()
        screened = trial.screenings.aggregate(
            assessed=Count("id"), eligible=Count("id", filter=Q(eligible=True))
        )
        may_change = request.user.has_perm("trials.change_trial", trial)
        return self._page(
            request,
            f"Participants — {trial.slug}",
            "participants.html",
            trial=trial,
            waves=waves,
            page=page,
            rows=[ParticipantRow.of(p, waves, now) for p in page],
            screened=screened,
            may_change=may_change,
        )

    def invite_view(self, request, trial_id: int):
        trial = self._trial(request, trial_id, "trials.change_trial")
        form = ContactListForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            contacts = recruitment_contacts_read(text=form.cleaned_data["contacts"])
            try:
                sent = recruitment_invitations_send(
                    trial=trial, contacts=contacts, actor=request.user
                )
            except ValidationError as error:
                form.add_error("contacts", "Nothing was sent; correct every line below.")
                for problem in error.messages:
                    form.add_error("contacts", problem)
            else:
                before = len(contacts) - sent
                self.message_user(
                    request,
                    f"{sent} invitations e-mailed; {before} of the addresses had been e-mailed "
                    "before and were not e-mailed again.",
                )
                return redirect("admin:surveys_wave_participants", trial.pk)
        return self._page(
            request, f"Invite a contact list — {trial.slug}", "upload.html", trial=trial, form=form
        )

    def export_view(self, request, trial_id: int):
        # Imported here, as in import_view: the exchange formats need pandas and Arrow, which the
        # web process does not load at start (tests/config/test_startup_imports.py).
        from surveys.exchange import trial_export

        trial = self._trial(request, trial_id, "trials.change_trial")
        archive = io.BytesIO()
        with tempfile.TemporaryDirectory() as directory:
            written = trial_export(trial=trial, directory=Path(directory))
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
                for file in written:
                    bundle.write(file, arcname=file.name)
        response = HttpResponse(archive.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{trial.slug}-export.zip"'
        return response

    def import_view(self, request, trial_id: int):
        from surveys.exchange import ImportRejected, responses_import

        trial = self._trial(request, trial_id, "trials.change_trial")
        form = ResponsesFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["responses"]
            with tempfile.TemporaryDirectory() as directory:
                file = Path(directory) / f"import{Path(upload.name).suffix.lower()}"
                file.write_bytes(upload.read())
                try:
                    report = responses_import(trial=trial, path=file)
                except ImportRejected as error:
                    heading = f"Nothing was imported: {len(error.errors)} problem(s)."
                    form.add_error("responses", f"{heading} {error.numbering}".strip())
                    for problem in error.messages:
                        form.add_error("responses", problem)
                else:
                    self.message_user(
                        request,
                        f"{upload.name}: {report.rows} rows; {report.created} responses imported, "
                        f"{report.unchanged} unchanged (already stored with the same answers).",
                    )
                    return redirect("admin:surveys_wave_participants", trial.pk)
        return self._page(
            request, f"Import responses — {trial.slug}", "upload.html", trial=trial, form=form
        )

    def report_view(self, request, trial_id: int):
        from surveys.reports import trial_survey_report  # pandas, loaded when a report is asked

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
        lists = [(t, reverse("admin:surveys_wave_participants", args=[t.pk])) for t in visible]
        extra = {"reports": reports, "participant_lists": lists}
        return super().changelist_view(request, {**(extra_context or {}), **extra})


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
