"""A participant reports a problem: from "My data and consent" or at the end of a wave.

The form is structured (what kind of problem, how severe), its free text optional and marked as
such, and it works without JavaScript. Each form carries an idempotency key, so a double click or
a reload sends one report (``safety.services.adverse_event_report``); after sending, the page
redirects to its thank-you page (POST-redirect-GET), which shows where to get help now when the
participant said it was severe. The links are the participant's own signed links, resolved as on
the other participant pages: a survey link (``surveys.views._participant_pages``, as the survey
itself) or a data link, on which a new consent version waiting to be signed does not stand in the
way, nor having left the study: reporting a harm comes first.
"""

import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from safety.models import AdverseEvent
from safety.services import (
    MAX_DESCRIPTION_CHARS,
    REPORT_KEY,
    adverse_event_report,
    adverse_event_reported,
)
from surveys.links import data_path
from surveys.models import Wave
from surveys.views import _data_link_pages, _participant_pages, _support_resources
from trials.models import Participant

Category = AdverseEvent.Category
Severity = AdverseEvent.Severity

# The participant's words for each kind and degree (the model's are the coordinator's).
CATEGORY_CHOICES = [
    (Category.DISTRESS, gettext_lazy("I felt worse, distressed or anxious")),
    (Category.HARMFUL_REPLY, gettext_lazy("The assistant said something harmful or upsetting")),
    (Category.BAD_ADVICE, gettext_lazy("The assistant gave wrong or unsafe advice")),
    (Category.DEPENDENCE, gettext_lazy("I relied on the assistant too much")),
    (Category.PRIVACY, gettext_lazy("A concern about my privacy")),
    (Category.OTHER, gettext_lazy("Something else")),
]
SEVERITY_CHOICES = [
    (Severity.MILD, gettext_lazy("Mild: it bothered me a little")),
    (Severity.MODERATE, gettext_lazy("Moderate: it affected my day")),
    (Severity.SEVERE, gettext_lazy("Severe: it seriously affected me")),
]


class HarmReportForm(forms.Form):
    category = forms.ChoiceField(
        label=gettext_lazy("What happened?"),
        choices=CATEGORY_CHOICES,
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose what happened.")},
    )
    severity = forms.ChoiceField(
        label=gettext_lazy("How much did it affect you?"),
        choices=SEVERITY_CHOICES,
        widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose how much it affected you.")},
    )
    description = forms.CharField(
        label=gettext_lazy("Tell us more (optional)"),
        help_text=gettext_lazy(
            "Optional. Please do not include names, addresses or other details that identify "
            "you or anyone else."
        ),
        required=False,
        max_length=MAX_DESCRIPTION_CHARS,
        widget=forms.Textarea(attrs={"rows": 5}),
    )
    report_key = forms.RegexField(
        regex=REPORT_KEY,
        widget=forms.HiddenInput,
        error_messages={
            "required": gettext_lazy("This form is out of date: please open it again."),
            "invalid": gettext_lazy("This form is out of date: please open it again."),
        },
    )


def _report_page(
    request: HttpRequest, participant: Participant, back_url: str, wave: Wave | None
) -> HttpResponse:
    sent = request.GET.get("sent", "")
    if request.method == "GET" and sent:
        report = adverse_event_reported(participant, sent) if REPORT_KEY.fullmatch(sent) else None
        if report is None:
            return redirect(request.path)
        severe = report.severity == Severity.SEVERE
        context = {
            "trial": participant.trial,
            "severe": severe,
            "resources": _support_resources(participant) if severe else "",
            "back_url": back_url,
        }
        return render(request, "surveys/harm_report_sent.html", context)
    status = 200
    if request.method == "POST":
        form = HarmReportForm(request.POST)
        if form.is_valid():
            try:
                adverse_event_report(
                    participant=participant,
                    wave_index=wave.index if wave is not None else None,
                    **form.cleaned_data,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return redirect(f"{request.path}?sent={form.cleaned_data['report_key']}")
        status = 400
    else:
        form = HarmReportForm(initial={"report_key": uuid.uuid4().hex})
    context = {"trial": participant.trial, "form": form, "back_url": back_url}
    return render(request, "surveys/harm_report.html", context, status=status)


@_participant_pages
def wave_report(request: HttpRequest, token: str, participant: Participant, wave: Wave):
    """From the end of a wave (the survey link)."""
    return _report_page(request, participant, data_path(participant.pk), wave)


@require_http_methods(["GET", "POST"])
@_data_link_pages
def data_report(request: HttpRequest, token: str, participant: Participant) -> HttpResponse:
    """From "My data and consent" (the data link), also after leaving the study: a harm may be
    why someone left."""
    return _report_page(request, participant, data_path(participant.pk), None)
