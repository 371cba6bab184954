"""Admin pages: adverse events. A coordinator records an adverse event they learnt of, with the
fields a trial registry asks for (seriousness, relatedness, expectedness, outcome, dates), and
assesses the participants' own reports; every write goes through ``safety.services``.

Scoped like the trial's other records (``trials.admin.TrialScopedMixin``): a coordinator sees
and writes only for their trials (``trials.change_trial``), picks the participant by pseudonym,
checked against the chosen trial, and never sees the participant's arm, so assessing
relatedness stays blind to it."""

from django import forms
from django.contrib import admin

from safety.models import AdverseEvent
from safety.services import adverse_event_assess, adverse_event_record
from trials.admin import TrialScopedAdmin
from trials.models import Participant
from trials.rules import permitted

# What a coordinator fills in when assessing; the rest of a report stays as it was given.
ASSESSMENT_FIELDS = [
    "serious",
    "relatedness",
    "expected",
    "outcome",
    "onset_date",
    "resolved_date",
]
SERIOUSNESS = [
    (
        "yes",
        "serious (death, life-threatening, hospitalisation, lasting disability, or another "
        "medically important event)",
    ),
    ("no", "not serious"),
]


def _seriousness_field() -> forms.TypedChoiceField:
    # A registry needs a yes or a no: the model's "not assessed yet" is not an answer here.
    return forms.TypedChoiceField(
        label="Serious?",
        choices=SERIOUSNESS,
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )


class AdverseEventRecordForm(forms.ModelForm):
    """A new adverse event; the participant is named by pseudonym and must be in the trial."""

    participant_pseudonym = forms.CharField(
        label="Participant",
        max_length=32,
        help_text="The participant's pseudonym, as on the participant list.",
    )
    serious = _seriousness_field()

    class Meta:
        model = AdverseEvent
        fields = [
            "trial",
            "category",
            "severity",
            *ASSESSMENT_FIELDS,
            "description",
        ]

    def clean(self):
        cleaned = super().clean()
        trial, pseudonym = cleaned.get("trial"), cleaned.get("participant_pseudonym", "").strip()
        if trial is not None and pseudonym:
            participant = Participant.objects.filter(pk=pseudonym, trial=trial).first()
            if participant is None:
                self.add_error("participant_pseudonym", "No participant of this trial has it.")
            cleaned["participant"] = participant
        onset, resolved = cleaned.get("onset_date"), cleaned.get("resolved_date")
        if onset and resolved and resolved < onset:
            self.add_error("resolved_date", "The resolution is before the onset.")
        return cleaned


class AdverseEventAssessForm(forms.ModelForm):
    serious = _seriousness_field()

    class Meta:
        model = AdverseEvent
        fields = ASSESSMENT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The model's "not assessed yet" (None) shows as no choice made.
        if self.instance.serious is not None:
            self.initial["serious"] = "yes" if self.instance.serious else "no"

    def clean(self):
        cleaned = super().clean()
        onset, resolved = cleaned.get("onset_date"), cleaned.get("resolved_date")
        if onset and resolved and resolved < onset:
            self.add_error("resolved_date", "The resolution is before the onset.")
        return cleaned


@admin.register(AdverseEvent)
class AdverseEventAdmin(TrialScopedAdmin):
    list_display = [
        "reported_at",
        "trial",
        "participant_id",
        "source",
        "category",
        "severity",
        "serious",
        "relatedness",
        "outcome",
        "assessed_at",
    ]
    list_filter = ["serious", "source", "severity", "category", "relatedness", "outcome"]
    search_fields = ["participant__id"]
    # As reported: shown on the assessment page, never edited.
    report_fields = [
        "trial",
        "participant_id",
        "source",
        "category",
        "severity",
        "description",
        "wave_index",
        "reported_at",
        "recorded_by",
        "assessed_at",
        "assessed_by",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = AdverseEventAssessForm if obj is not None else AdverseEventRecordForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["trial", "participant_pseudonym", *AdverseEventRecordForm.Meta.fields[1:]]
        return [*self.report_fields, *ASSESSMENT_FIELDS]

    def get_readonly_fields(self, request, obj=None):
        return self.report_fields if obj is not None else []

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and (
            permitted(request.user, "trials.change_trial").exists()
        )

    def save_model(self, request, obj, form, change) -> None:
        fields = {name: form.cleaned_data[name] for name in ASSESSMENT_FIELDS}
        if change:
            adverse_event_assess(actor=request.user, adverse_event=obj, **fields)
            obj.refresh_from_db()
            return
        saved = adverse_event_record(
            actor=request.user,
            trial=form.cleaned_data["trial"],
            participant=form.cleaned_data["participant"],
            category=form.cleaned_data["category"],
            severity=form.cleaned_data["severity"],
            description=form.cleaned_data["description"],
            **fields,
        )
        obj.pk = saved.pk
        obj.refresh_from_db()
