"""Admin pages: flags on participants (a safety answer, a reliable deterioration).

Coordinators see the flags of their own trials (``trials.view_trial`` on the flag's trial, via
``TrialScopedMixin``) and acknowledge each once, saying what they did (``trials.change_trial``);
everything else is read-only. The pages never show the participant's arm (docs/instruments.md,
"Safety items"), so a blinded coordinator can act on a flag."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from safety.flags import safety_flag_acknowledge
from safety.models import SafetyFlag
from trials.admin import TrialScopedMixin

DETAIL_WORDS = {
    "instrument": "instrument",
    "item": "item",
    "answer": "answer",
    "wave": "wave",
    "outcome": "outcome",
    "from_wave": "from wave",
    "to_wave": "to wave",
    "before": "score before",
    "after": "score after",
    "rci": "reliable change index",
    "run": "analysis run",
}


class AcknowledgeForm(forms.ModelForm):
    class Meta:
        model = SafetyFlag
        fields = ["note"]

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise ValidationError("Say what you did about this flag.")
        return note


@admin.register(SafetyFlag)
class SafetyFlagAdmin(TrialScopedMixin, admin.ModelAdmin):
    form = AcknowledgeForm
    list_display = ["raised_at", "trial", "pseudonym", "kind", "what", "acknowledged_at"]
    list_filter = [
        ("trial", admin.RelatedOnlyFieldListFilter),
        "kind",
        ("acknowledged_at", admin.EmptyFieldListFilter),
    ]
    shown = ["trial", "pseudonym", "kind", "what", "raised_at", "acknowledged_at"]
    ordering = ["-raised_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("trial", "acknowledged_by")

    @admin.display(description="participant")
    def pseudonym(self, flag: SafetyFlag) -> str:
        # The pseudonym as text: the participant's own page would show the arm.
        return flag.participant_id

    @admin.display(description="what was found")
    def what(self, flag: SafetyFlag) -> str:
        return "; ".join(
            f"{DETAIL_WORDS[key]} {value}"
            for key, value in flag.detail.items()
            if key in DETAIL_WORDS
        )

    def get_fields(self, request, obj=None):
        if obj is not None and obj.acknowledged_at is None:
            return [*self.shown, "note"]
        return [*self.shown, "acknowledged_by", "note"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.acknowledged_at is None:
            return self.shown
        return [*self.shown, "acknowledged_by", "note"]

    def has_add_permission(self, request) -> bool:
        return False  # raised by the surveys and the analyses, never by hand

    def has_change_permission(self, request, obj=None) -> bool:
        # Acknowledging is the one change, made once.
        acknowledged = obj is not None and obj.acknowledged_at is not None
        return not acknowledged and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        safety_flag_acknowledge(flag=obj, actor=request.user, note=form.cleaned_data["note"])
