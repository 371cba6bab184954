"""The front door: a trial's public recruitment link, eligibility screening, e-consent and the
e-mail confirmation that enrols (docs/architecture.md, "The flow", collect).

Public pages, no login; plain forms that work without JavaScript on a small phone, in the
languages the current consent document is written in (``?lang=``). The screening keeps only its
outcome and reason (``trials.services.screening_record``), which CONSORT counts. The consent
page stores nothing: it e-mails a signed link (``surveys.links.EnrolmentRequest``), and opening
that link enrols, allocates and sends the baseline wave's invitation
(``surveys.services.participant_join``), so a mistyped address enrols nobody; then the PDF copy
of what was agreed is e-mailed (``surveys.consent_copies.consent_copy_send``).
"""

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from config.security import client_ip
from surveys.consent_copies import consent_copy_send
from surveys.duration import wave_minutes
from surveys.links import (
    EnrolmentRequest,
    Screened,
    data_path,
    enrolment_request_from_token,
    screened_from_token,
    screened_token,
)
from surveys.models import FrontDoorAttempt
from surveys.selectors import consent_documents_current, study_runners
from surveys.services import enrolment_confirmation_send, front_door_attempt, participant_join
from trials.models import (
    Community,
    ConsentDocument,
    ConsentScope,
    EligibilityScreening,
    Trial,
)
from trials.plan import Screening
from trials.selectors import missing_approvals, preregistration_in_force
from trials.services import screening_record

# What each data stream means, as the consent page asks for it.
SCOPE_DESCRIPTIONS = {
    ConsentScope.SURVEYS: gettext_lazy("Answering short surveys about your wellbeing by e-mail"),
    ConsentScope.TELEMETRY: gettext_lazy(
        "Private usage summaries from the assistant app (computed on your device, shared only "
        "as noisy totals)"
    ),
    ConsentScope.CONVERSATION_CONTENT: gettext_lazy("The content of your conversations"),
    ConsentScope.DATA_SHARING: gettext_lazy("Sharing your answers with other researchers"),
}
# Taking part means answering the surveys; every other stream is the person's choice.
REQUIRED_SCOPES = {ConsentScope.SURVEYS}
YES_NO = [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]


def _message(request: HttpRequest, heading: str, message: str, status: int = 200, **extra):
    context = {"heading": heading, "message": message, **extra}
    return render(request, "surveys/join/message.html", context, status=status)


def _language(request: HttpRequest, documents: dict[str, ConsentDocument]) -> str:
    """The asked-for language if the consent document has it, else the browser's, else
    English, else the document's first."""
    for wanted in (request.GET.get("lang"), translation.get_language_from_request(request)):
        if wanted in documents:
            return wanted
    return "en" if "en" in documents or not documents else next(iter(documents))


def _language_name(code: str) -> str:
    try:
        return translation.get_language_info(code)["name_local"]
    except KeyError:  # a code Django does not know: show it as it is
        return code


def _recruiting(trial: Trial, documents: dict[str, ConsentDocument]) -> bool:
    # Enrolment is refused while an amendment waits for approval (trials.services).
    return trial.state == Trial.State.ENROLLING and bool(documents) and not missing_approvals(trial)


def _not_recruiting(request: HttpRequest, trial: Trial) -> HttpResponse:
    return _message(
        request,
        _("This study is not recruiting"),
        _("%(title)s is not taking on new participants at the moment. Thank you for your interest.")
        % {"title": trial.title},
    )


def _bad_link(request: HttpRequest, error: signing.BadSignature, start: str) -> HttpResponse:
    expired = isinstance(error, signing.SignatureExpired)
    return _message(
        request,
        _("This link has expired") if expired else _("This link is not valid"),
        _("Please start again from the study's page.")
        if expired
        else _(
            "Please check that you copied the whole link, or start again from the study's page."
        ),
        status=410 if expired else 404,
        start_url=start,
    )


def _too_many(request: HttpRequest, who: str) -> HttpResponse:
    # The limits are surveys.services.FRONT_DOOR_LIMITS.
    if who == "address":
        message = _(
            "We have already sent several links to this address today. Please use the latest "
            "one, or try again tomorrow."
        )
    else:
        message = _("There have been too many tries from your connection. Please try again later.")
    return _message(request, _("Please wait a little"), message, status=429)


def _query(language: str, community: str) -> str:
    return "?" + urlencode({"lang": language} | ({"community": community} if community else {}))


@require_GET
def landing(request: HttpRequest, slug: str, community: str = "") -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug)
    stratum = get_object_or_404(Community, slug=community) if community else None
    documents = consent_documents_current(trial)
    language = _language(request, documents)
    with translation.override(language):
        if not _recruiting(trial, documents):
            return _not_recruiting(request, trial)
        document = documents[language]
        waves = list(trial.waves.prefetch_related("instruments").order_by("index"))
        runners = study_runners(trial)
        context = {
            "trial": trial,
            "community": stratum,
            "waves": [
                {"day": wave.day_offset, "minutes": wave_minutes(wave, language)} for wave in waves
            ],
            "streams": [
                {"name": SCOPE_DESCRIPTIONS[scope], "required": scope in REQUIRED_SCOPES}
                for scope in (document.scopes or ConsentScope.values)
            ],
            "team": runners.team,
            "bodies": runners.bodies,
            "languages": [
                (code, _language_name(code), request.path + _query(code, ""))
                for code in documents
                if code != language
            ],
            "start_url": reverse("join:screening", args=[slug]) + _query(language, community),
        }
        return render(request, "surveys/join/landing.html", context)


class ScreeningForm(forms.Form):
    """The plan's screening criteria as questions; :meth:`exclusion_reason` says which one the
    answers fail (the first), in words that name the criterion, never the answer."""

    def __init__(self, criteria: Screening, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.criteria = criteria
        if criteria.min_age is not None or criteria.max_age is not None:
            self.fields["age"] = forms.IntegerField(
                label=_("How old are you, in years?"), min_value=0, max_value=130
            )
        if criteria.languages:
            self.fields["languages"] = forms.MultipleChoiceField(
                label=_("Which of these languages can you read and write well?"),
                choices=[(code, _language_name(code)) for code in criteria.languages],
                widget=forms.CheckboxSelectMultiple,
                required=False,
            )
        if criteria.countries:
            self.fields["country"] = forms.ChoiceField(
                label=_("Where do you live?"),
                choices=[(code, code) for code in criteria.countries]
                + [("other", _("Another country"))],
                widget=forms.RadioSelect,
            )
        if criteria.uses_ai_assistants != "any":
            self.fields["uses_ai"] = forms.ChoiceField(
                label=_("Do you use an AI assistant (such as a chatbot) at present?"),
                choices=YES_NO,
                widget=forms.RadioSelect,
            )
        for number, question in enumerate(criteria.questions, 1):
            self.fields[f"question_{number}"] = forms.ChoiceField(
                label=question.text, choices=YES_NO, widget=forms.RadioSelect
            )

    def exclusion_reason(self) -> str:
        """Empty when every answer meets the criteria."""
        c, answers = self.criteria, self.cleaned_data
        if "age" in answers and not (c.min_age or 0) <= answers["age"] <= (c.max_age or 130):
            return f"age outside {c.min_age or 0}-{c.max_age if c.max_age is not None else ''}"
        if "languages" in self.fields and not answers["languages"]:
            return "reads none of the study's languages"
        if answers.get("country") == "other":
            return "lives outside the study's countries"
        if "uses_ai" in answers and answers["uses_ai"] != c.uses_ai_assistants:
            return (
                "does not use an AI assistant"
                if c.uses_ai_assistants == "yes"
                else ("uses an AI assistant")
            )
        for number, question in enumerate(c.questions, 1):
            if answers[f"question_{number}"] != question.required_answer:
                return f"screening question {number}"
        return ""


@require_http_methods(["GET", "POST"])
def screening(request: HttpRequest, slug: str) -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug)
    community = request.GET.get("community", "")
    if community and not Community.objects.filter(slug=community).exists():
        raise Http404("No such community.")
    documents = consent_documents_current(trial)
    language = _language(request, documents)
    with translation.override(language):
        if not _recruiting(trial, documents):
            return _not_recruiting(request, trial)
        criteria = preregistration_in_force(trial).plan.screening
        form = ScreeningForm(criteria, request.POST if request.method == "POST" else None)
        if form.is_valid():
            refused = front_door_attempt(
                kind=FrontDoorAttempt.Kind.SCREENING, client=client_ip(request)
            )
            if refused:
                return _too_many(request, refused)
            reason = form.exclusion_reason()
            row = screening_record(trial=trial, eligible=not reason, exclusion_reason=reason)
            if reason:
                return _message(
                    request,
                    _("Thank you for your interest"),
                    _(
                        "This study is looking for people in a particular situation, and from "
                        "your answers it cannot include you this time. None of your answers "
                        "have been kept."
                    ),
                )
            ticket = screened_token(Screened(row.pk, community, language))
            return redirect(
                reverse("join:consent", args=[slug]) + "?" + urlencode({"pass": ticket})
            )
        context = {"trial": trial, "form": form, "asks_nothing": not form.fields}
        return render(
            request, "surveys/join/screening.html", context, status=400 if form.errors else 200
        )


class ConsentForm(forms.Form):
    """Each data stream on its own (the required ones must be ticked), the e-mail address, and
    the typed full name that signs."""

    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=False)
    email = forms.EmailField(label=gettext_lazy("Your e-mail address"))
    name = forms.CharField(
        label=gettext_lazy("Type your full name to sign"),
        max_length=200,
        help_text=gettext_lazy("Typing your name here is your signature on this consent form."),
    )

    def __init__(self, document: ConsentDocument, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        offered = document.scopes or ConsentScope.values
        self.fields["scopes"].label = _("What you agree to")
        marks = {True: _("required"), False: _("optional")}
        self.fields["scopes"].choices = [
            (scope, f"{SCOPE_DESCRIPTIONS[scope]} ({marks[scope in REQUIRED_SCOPES]})")
            for scope in offered
        ]

    def clean_scopes(self) -> list[str]:
        scopes = self.cleaned_data["scopes"]
        if not REQUIRED_SCOPES <= set(scopes):
            raise ValidationError(_("Taking part means answering the surveys: tick that box."))
        return scopes

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise ValidationError(_("Type your name to sign."))
        return name


@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest, slug: str) -> HttpResponse:
    trial = get_object_or_404(Trial, slug=slug)
    start = reverse("join:landing", args=[slug])
    try:
        screened = screened_from_token(request.GET.get("pass", ""))
    except signing.BadSignature as error:
        return _bad_link(request, error, start)
    documents = consent_documents_current(trial)
    language = screened.language if screened.language in documents else _language(request, {})
    with translation.override(language):
        if not _recruiting(trial, documents):
            return _not_recruiting(request, trial)
        row = EligibilityScreening.objects.filter(
            pk=screened.screening_id, trial=trial, eligible=True
        ).first()
        if row is None:
            return _bad_link(request, signing.BadSignature(), start)
        if row.participant_id is not None:
            return _message(
                request,
                _("You have already joined"),
                _("This form was used to join already. Check your e-mail for your survey link."),
            )
        document = documents.get(language) or next(iter(documents.values()))
        form = ConsentForm(document, request.POST if request.method == "POST" else None)
        if form.is_valid():
            refused = front_door_attempt(
                kind=FrontDoorAttempt.Kind.CONFIRMATION,
                client=client_ip(request),
                address=form.cleaned_data["email"],
            )
            if refused:
                return _too_many(request, refused)
            enrolment_confirmation_send(
                request=EnrolmentRequest(
                    trial_id=trial.pk,
                    screening_id=row.pk,
                    community=screened.community,
                    language=document.locale,
                    document_id=document.pk,
                    scopes=tuple(form.cleaned_data["scopes"]),
                    email=form.cleaned_data["email"],
                    name=form.cleaned_data["name"],
                    signed_at=timezone.now().isoformat(),
                )
            )
            return _message(
                request,
                _("Check your e-mail"),
                _(
                    "We have sent a link to %(email)s. Open it to confirm your address: only then "
                    "do you join the study and receive your first survey."
                )
                % {"email": form.cleaned_data["email"]},
            )
        context = {
            "trial": trial,
            "document": document,
            "form": form,
            "erase": document.withdrawal_rule == ConsentDocument.WithdrawalRule.ERASE,
        }
        return render(
            request, "surveys/join/consent.html", context, status=400 if form.errors else 200
        )


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """Opening the e-mailed link shows a button; only pressing it (a POST) enrols. Mail scanners
    and link previews that fetch every link in a message therefore confirm nobody."""
    trial = get_object_or_404(Trial, slug=slug)
    start = reverse("join:landing", args=[slug])
    try:
        enrolment = enrolment_request_from_token(token)
    except signing.BadSignature as error:
        return _bad_link(request, error, start)
    if enrolment.trial_id != trial.pk:
        return _bad_link(request, signing.BadSignature(), start)
    if request.method == "GET":
        with translation.override(enrolment.language):
            return render(request, "surveys/join/confirm.html", {"trial": trial})
    with translation.override(enrolment.language):
        try:
            participant = participant_join(request=enrolment)
        except ValidationError as error:
            # A second click of the link, or a second form of the same person.
            if getattr(error, "code", None) in ("already_enrolled", "screening_used"):
                return _message(
                    request,
                    _("You have already joined"),
                    _(
                        "This e-mail address is already taking part in %(title)s. Your survey "
                        "links come by e-mail; each has a link to your data and consent."
                    )
                    % {"title": trial.title},
                )
            return _message(
                request, _("We could not enrol you"), " ".join(error.messages), status=409
            )
        consent_copy_send(participant=participant)
    return redirect(data_path(participant.pk))
