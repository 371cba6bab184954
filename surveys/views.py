"""Participant pages, reached through personal signed links.

They work without JavaScript (plain forms, POST-redirect-GET); a small script only adds per-item
timing. Each wave is shown one questionnaire per page, with a progress indicator, and every page
saves the answers so far, so a participant can stop and resume with the same link.
"""

import json
import math
import re
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import wraps

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from safety.flags import safety_answer_given
from surveys.consent_copies import consent_copy_download, consent_copy_made
from surveys.duration import wave_minutes
from surveys.front_door import ConsentForm
from surveys.instrument import NO, YES, InstrumentDefinition, Item
from surveys.links import (
    data_path,
    data_token,
    participant_id_from_data_token,
    survey_link_from_token,
    survey_path,
)
from surveys.models import Instrument, Wave
from surveys.schedule import wave_time_zone
from surveys.scoring import validate_answers
from surveys.selectors import (
    SurveyStatus,
    SurveyVisit,
    WaveState,
    study_runners,
    survey_status,
    survey_visit,
    wave_open_for,
)
from surveys.services import draft_save, participant_locale_set, response_submit
from trials.models import ConsentDocument, ConsentGrant, ConsentScope, Participant
from trials.selectors import consent_document_for, consent_renewal_due
from trials.services import consent_grant, consent_renew, consent_revoke, participant_withdraw

# What each data stream is called on the participant's page.
SCOPE_NAMES = {
    ConsentScope.SURVEYS: gettext_lazy("Surveys like this one"),
    ConsentScope.TELEMETRY: gettext_lazy("Private usage summaries from the assistant app"),
    ConsentScope.CONVERSATION_CONTENT: gettext_lazy("The content of your conversations"),
    ConsentScope.DATA_SHARING: gettext_lazy("Sharing your answers with other researchers"),
}
# Only surveys cannot be stopped on their own: stopping them means leaving the study.
REVOCABLE_SCOPES = set(SCOPE_NAMES) - {ConsentScope.SURVEYS}

# Signs the time a page was served, so the seconds spent on it come from the server's clock.
_SHOWN_SALT = "flourish.surveys.page-shown"
# Longest believable time on one page; a stale tab left open overnight is not "slow answering".
MAX_PAGE_SECONDS = 3600
# The timing script posts one flat object of a page's items: a few dozen entries at most, so a
# longer field is not the script's and is not read (it also bounds the JSON parser's work).
MAX_ITEM_SECONDS_CHARS = 10_000
# An answer as the form's radio buttons post it: ASCII digits (``int`` would also take "١" or
# "1_0", and refuses more than 4,300 digits with an error).
_ANSWER = re.compile(r"\s*[+-]?[0-9]{1,9}\s*")


def _message(
    request: HttpRequest, heading: str, message: str, status: int = 200, **extra
) -> HttpResponse:
    context = {"heading": heading, "message": message, **extra}
    return render(request, "surveys/message.html", context, status=status)


def _bad_link(request: HttpRequest, error: signing.BadSignature) -> HttpResponse:
    if isinstance(error, signing.SignatureExpired):
        return _message(
            request,
            _("This link has expired"),
            _("Please use the most recent invitation you received, or contact the study team."),
            status=410,
        )
    return _message(
        request,
        _("This link is not valid"),
        _("Please check that you copied the whole link from your invitation."),
        status=404,
    )


def _data_link_pages(view: Callable) -> Callable:
    """Resolve a "My data and consent" token to its participant, in their language, and pass
    them on; tampered and unknown links get a friendly page and reveal nothing."""

    @wraps(view)
    def wrapper(request: HttpRequest, token: str) -> HttpResponse:
        try:
            participant_id = participant_id_from_data_token(token)
        except signing.BadSignature as error:
            return _bad_link(request, error)
        participant = Participant.objects.select_related("trial").filter(pk=participant_id).first()
        if participant is None:
            return _bad_link(request, signing.BadSignature())
        with translation.override(participant.locale):
            return view(request, token, participant)

    return wrapper


def _survey_visit_pages(view: Callable) -> Callable:
    """Resolve a survey token to its participant and wave (``surveys.selectors.survey_visit``:
    one query), in the participant's language, and pass the visit on; tampered, expired and
    unknown links get a friendly page and reveal nothing."""

    @require_http_methods(["GET", "POST"])
    def wrapper(request: HttpRequest, token: str) -> HttpResponse:
        try:
            link = survey_link_from_token(token)
        except signing.BadSignature as error:
            return _bad_link(request, error)
        # The questionnaires are read once per request, with everything else the page needs:
        # validation, scoring and the page all use the visit's list.
        visit = survey_visit(link.participant_id, link.wave_id)
        if visit is None:
            return _bad_link(request, signing.BadSignature())
        participant = visit.participant
        with translation.override(participant.locale):
            if participant.withdrawn_at is not None:
                return _message(
                    request,
                    _("Thank you"),
                    _("You have left the study, so there is nothing more to answer."),
                )
            # The document is looked up only for the few whose consent waits for new terms.
            document = consent_renewal_due(participant) if visit.consent_paused else None
            if document is not None:
                return _reconsent(request, participant, document)
            return view(request, token, visit)

    return wrapper


def _participant_pages(view: Callable) -> Callable:
    """A participant page that takes the participant and the wave (``_survey_visit_pages``)."""

    def with_participant(request: HttpRequest, token: str, visit: SurveyVisit) -> HttpResponse:
        return view(request, token, visit.participant, visit.wave)

    return _survey_visit_pages(with_participant)


class ReconsentForm(ConsentForm):
    """The front door's consent form without the e-mail address, which is already known."""

    email = None


def _reconsent(request, participant: Participant, document: ConsentDocument) -> HttpResponse:
    """A new version of the consent document, shown before anything else while a stream the
    participant agreed to waits for its new terms (``trials.selectors.consent_renewal_due``);
    nothing else is taken from the page until it is signed. Declining the surveys is not
    possible here: the page offers leaving the study instead."""
    posted = request.method == "POST" and request.POST.get("action") == "reconsent"
    form = ReconsentForm(document, request.POST if posted else None)
    error = ""
    if form.is_valid():
        try:
            consent_renew(
                participant=participant, document=document, scopes=form.cleaned_data["scopes"]
            )
        except ValidationError as refused:  # e.g. a newer version was published meanwhile
            error = " ".join(refused)
        else:
            return redirect(request.path)
    context = {
        "trial": participant.trial,
        "document": document,
        "form": form,
        "error": error,
        "declined_surveys": form.is_bound
        and ConsentScope.SURVEYS not in form.data.getlist("scopes"),
        "data_url": data_path(participant.pk),
    }
    return render(
        request, "surveys/reconsent.html", context, status=400 if form.errors or error else 200
    )


def _item_page(
    definition: InstrumentDefinition, item: Item, version: str, answers: dict, errors: dict
) -> dict:
    """What surveys/_item.html draws for one item: its type's controls, the answer so far (a
    number item keeps what was typed, valid or not) and, for an item asked only on a condition
    not yet answered, which answer asks it."""
    low, high = definition.answer_range(item)
    page = {
        "code": item.code,
        "type": item.type,
        "text": item.text[version],
        "selected": answers.get(item.code),
        "error": errors.get(item.code),
        "min": low,
        "max": high,
        "condition": _condition_text(definition, item, version, answers),
    }
    if item.type == "yes_no":
        with translation.override(version):
            page["choices"] = [(YES, _("Yes")), (NO, _("No"))]
    elif item.type in ("likert", "slider"):
        # An anchored scale is printed as numbered points with the words at both ends (0–10).
        anchored = definition.scale.labels is None
        labels = definition.point_labels(item, version)
        page["choices"] = [
            (value, f"{value} – {words}" if anchored and words else words or str(value))
            for value, words in labels
        ]
        page["ends"] = (labels[0][1] or str(low), labels[-1][1] or str(high))
    return page


def _condition_text(
    definition: InstrumentDefinition, item: Item, version: str, answers: dict
) -> str:
    """For an item asked on a condition whose answer is not known yet (it is on this page and
    the page works without JavaScript): which answer asks it. Checked again on submit."""
    condition = item.show_if
    if condition is None or condition.item in answers:
        return ""
    source = definition.item(condition.item)
    with translation.override(version):
        if condition.equals is not None:
            yes_no = {YES: _("Yes"), NO: _("No")}
            answer = yes_no[condition.wanted] if source.type == "yes_no" else condition.wanted
            text = _("Answer this only if your answer to “%(question)s” was “%(answer)s”.")
            return text % {"question": source.text[version], "answer": answer}
        if condition.at_least is not None:
            text = _("Answer this only if your answer to “%(question)s” was %(value)s or more.")
            return text % {"question": source.text[version], "value": condition.at_least}
        text = _("Answer this only if your answer to “%(question)s” was %(value)s or less.")
        return text % {"question": source.text[version], "value": condition.at_most}


def _instrument_page(instrument: Instrument, language: str, answers: dict, errors: dict) -> dict:
    definition = instrument.definition
    version = definition.language_version(language)
    # An item asked on a condition is left out once its answer is known not to meet it; one
    # whose answer is not known yet is shown with its condition (_condition_text).
    known = {code: value for code, value in answers.items() if isinstance(value, int)}
    asked = {item.code for item in definition.shown_items(known)}
    drawn: set[str] = set()
    items = []
    for item in definition.items:
        condition = item.show_if
        if item.code in asked or (
            condition and condition.item not in known and condition.item in drawn
        ):
            drawn.add(item.code)
            page = _item_page(definition, item, version, answers, errors)
            items.append({**page, "field": f"{instrument.code}:{item.code}"})
    return {
        "code": instrument.code,
        "stem": definition.stem[version],
        "language": version,
        "items": items,
    }


def _posted_answers(instrument: Instrument, data) -> dict[str, object]:
    """Form fields ``<instrument>:<item>`` → answers; non-numbers are kept to be reported."""
    chosen: dict[str, object] = {}
    for code in instrument.definition.item_codes:
        raw = data.get(f"{instrument.code}:{code}", "")
        if _ANSWER.fullmatch(raw):
            chosen[code] = int(raw)
        elif raw:
            chosen[code] = raw
    return chosen


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number of seconds")


def _posted_item_seconds(raw: str, known: Collection[str]) -> dict[str, float]:
    """The timing script's ``{"item code": seconds}``, each capped at ``MAX_PAGE_SECONDS``.

    Anything the script does not write (too long, not an object, nested, NaN or Infinity, which
    PostgreSQL's jsonb refuses, negative or non-numeric seconds, items not on the page) gives
    no per-item timing at all: timings are auxiliary, so the answers are kept without them.
    """
    if not raw or len(raw) > MAX_ITEM_SECONDS_CHARS:
        return {}
    try:
        # Integers read as floats: a 400-digit integer becomes inf (refused below), not an int
        # that float() cannot convert.
        posted = json.loads(raw, parse_int=float, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
        return {}
    if not isinstance(posted, dict):
        return {}
    seconds: dict[str, float] = {}
    for code, value in posted.items():
        valid = isinstance(value, float) and math.isfinite(value) and value >= 0
        if code not in known or not valid:
            return {}
        seconds[code] = min(value, MAX_PAGE_SECONDS)
    return seconds


def _posted_timings(page: list[Instrument], data) -> dict[str, dict[str, float]]:
    """Seconds on this page (from the time it was served), shared among its questionnaires by
    their number of items, and, when the script ran, seconds from page load to each item's
    last answer."""
    timings: dict[str, dict[str, float]] = {}
    try:
        shown = float(signing.loads(data.get("shown", ""), salt=_SHOWN_SALT))
    except (signing.BadSignature, TypeError, ValueError):
        shown = None
    sizes = {i.code: len(i.definition.items) for i in page}
    if shown is not None:
        seconds = min(max(time.time() - shown, 0.0), MAX_PAGE_SECONDS)
        total = sum(sizes.values())
        timings["pages"] = {code: seconds * size / total for code, size in sizes.items()}
    known = {code for i in page for code in i.definition.item_codes}
    items = _posted_item_seconds(data.get("item_seconds", ""), known)
    if items:
        timings["items"] = items
    return timings


def _pages(wave: Wave) -> list[list[Instrument]]:
    """The wave's questionnaires as pages: one per page, or all on one if the wave says so."""
    instruments = list(wave.instruments.all())
    return [instruments] if wave.one_page else [[instrument] for instrument in instruments]


def _page_number(raw: object, last: int) -> int:
    try:
        return min(max(int(raw), 0), last)
    except (TypeError, ValueError):
        return 0


@_survey_visit_pages
def survey(request: HttpRequest, token: str, visit: SurveyVisit) -> HttpResponse:
    participant, wave = visit.participant, visit.wave
    status = visit.status(timezone.now())
    if status.state == WaveState.ANSWERED:
        return redirect("surveys:done", token=token)
    if status.state in (WaveState.NOT_YET_OPEN, WaveState.CLOSED) and wave.daily_opens_at:
        return _outside_daily_window(request, wave, status)
    if status.state == WaveState.NOT_YET_OPEN:
        return _message(
            request,
            _("Not open yet"),
            _("This survey opens on %(date)s. We will send you a reminder.")
            % {"date": _date(status.opens)},
        )
    if status.state == WaveState.CLOSED:
        return _message(
            request,
            _("This survey has closed"),
            _("Thank you for taking part. We will invite you to the next survey."),
            status=410,
        )
    pages = _pages(wave)
    last = len(pages) - 1
    draft = status.draft
    saved = draft.answers if draft else {}
    reached = draft.page if draft else 0
    errors: dict[str, str] = {}
    if request.method == "POST":
        if "language" in request.POST:
            try:
                participant_locale_set(participant=participant, locale=request.POST["language"])
            except ValidationError:
                pass  # an unknown language keeps the current one
            return redirect(f"{request.path}?page={reached}")
        # A page beyond the furthest one reached cannot be posted (nor skipped to).
        page = _page_number(request.POST.get("page"), min(reached, last))
        action = request.POST.get("action", "next")
        given = {i.code: _posted_answers(i, request.POST) for i in pages[page]}
        for instrument in pages[page]:
            errors |= validate_answers(
                instrument.definition,
                given[instrument.code],
                complete=action in ("next", "finish"),
            )
        if not errors:
            timings = _posted_timings(pages[page], request.POST)
            if action == "finish" and page == last and draft is None:
                # Everything on one page, answered in one go: nothing to save on the way.
                return _finish(request, token, visit, pages, given, None, timings)
            target = {"next": page + 1, "back": page - 1}.get(action, page)
            target = min(max(target, 0), last)
            draft = draft_save(
                participant=participant,
                wave=wave,
                answers=given,
                page=max(reached, target),
                timings=timings,
                started_at=timezone.now(),
            )
            if action == "save":
                saved_message = _("Use the same link to carry on before %(date)s.") % {
                    "date": _date(status.closes)
                }
                if _safety_answer_in(pages, draft.answers):
                    # Not yet a response, so nobody is alerted; the participant who stops here
                    # still sees where to get help (docs/instruments.md, "Safety items").
                    return _support_page(request, participant, saved=saved_message)
                return _message(request, _("Your answers are saved"), saved_message)
            if action == "finish" and page == last:
                return _finish(
                    request,
                    token,
                    replace(visit, draft=draft),
                    pages,
                    draft.answers,
                    draft.started_at,
                    draft.timings,
                )
            return redirect(f"{request.path}?page={target}")
        saved = {code: {**saved.get(code, {}), **answers} for code, answers in given.items()}
    else:
        page = _page_number(request.GET.get("page", reached), min(reached, last))
    language = participant.locale
    context = {
        "trial": participant.trial,
        "wave": wave,
        "wave_count": participant.trial.waves.count(),
        # Before the first answer, the top of the first page says what the study is, who runs
        # it and how long this wave takes: no separate welcome page to click through.
        "welcome": _welcome(participant, wave) if page == 0 and draft is None else None,
        "page": page,
        "page_count": len(pages),
        **_progress(pages, page, saved),
        "is_last": page == last,
        "instruments": [
            _instrument_page(instrument, language, saved.get(instrument.code, {}), errors)
            for instrument in pages[page]
        ],
        "errors": errors,
        "shown": signing.dumps(time.time(), salt=_SHOWN_SALT),
        "data_url": data_path(participant.pk),
        "closes": status.closes,
        "languages": settings.LANGUAGES,
        "language": language,
    }
    return render(request, "surveys/survey.html", context, status=400 if errors else 200)


def _welcome(participant: Participant, wave: Wave) -> dict:
    return {
        "runners": study_runners(participant.trial),
        "minutes": wave_minutes(wave, participant.locale),
    }


def _progress(pages: list[list[Instrument]], page: int, answers: dict) -> dict:
    """How many of the wave's questions asked so far have an answer: the saved ones and those on
    this page, so the bar starts empty and fills as questions are answered. The count of those
    on other pages lets the page's script move the bar as this page's questions are answered."""
    here = {instrument.code for instrument in pages[page]}
    answered = elsewhere = total = 0
    for instrument in (instrument for each in pages for instrument in each):
        given_here = answers.get(instrument.code, {})
        # Only the questions asked so far count: a follow-up whose condition the answers do
        # not meet is not one the participant has left to answer.
        codes = [item.code for item in instrument.definition.shown_items(given_here)]
        given = sum(code in given_here for code in codes)
        total += len(codes)
        answered += given
        elsewhere += 0 if instrument.code in here else given
    return {"answered": answered, "answered_elsewhere": elsewhere, "question_count": total}


def _finish(
    request, token, visit: SurveyVisit, pages, answers, started_at, timings
) -> HttpResponse:
    """Submit the wave; ``visit`` holds the draft as it stands now (None if never saved)."""
    instruments = [instrument for page in pages for instrument in page]
    locale = visit.participant.locale
    languages = {i.code: i.definition.language_version(locale) for i in instruments}
    try:
        response_submit(
            participant=visit.participant,
            wave=visit.wave,
            answers=answers,
            started_at=started_at,
            languages=languages,
            timings=timings,
            visit=visit,
        )
    except ValidationError as error:
        # A page left unanswered (e.g. reached by editing the address): go back to it.
        missing = error.message_dict if hasattr(error, "error_dict") else {}
        for number, page in enumerate(pages):
            items = {code for i in page for code in i.definition.item_codes}
            if items & set(missing):
                return redirect(f"{reverse('surveys:survey', args=[token])}?page={number}")
        return _message(request, _("We could not save your answers"), " ".join(error), 409)
    return redirect("surveys:done", token=token)


@_participant_pages
def survey_done(request, token: str, participant: Participant, wave: Wave) -> HttpResponse:
    if survey_status(participant, wave, timezone.now()).state != WaveState.ANSWERED:
        return redirect("surveys:survey", token=token)
    response = participant.responses.get(wave=wave)
    if safety_answer_given(participant=participant, response_id=response.pk):
        # An answer that calls for help (docs/instruments.md, "Safety items"): the support page
        # comes first, every time this page is opened.
        return _support_page(request, participant, answered=True)
    return _message(
        request,
        _("Thank you!"),
        _("Your answers have been saved. We will invite you to the next survey."),
        data_url=data_path(participant.pk),
        report_url=reverse("surveys:wave_report", kwargs={"token": token}),
    )


@require_GET
@_data_link_pages
def support(request: HttpRequest, token: str, participant: Participant) -> HttpResponse:
    """The trial's support page: where to get help now, linked from "My data and consent"."""
    return _support_page(request, participant)


def _support_resources(participant: Participant) -> str:
    """The support resources of the trial's latest consent document in the participant's
    language, else in the site's default language; empty when neither gives any."""
    documents = ConsentDocument.objects.filter(trial=participant.trial).exclude(
        support_resources=""
    )
    for locale in (participant.locale, settings.LANGUAGE_CODE):
        document = documents.filter(locale=locale).order_by("-version").first()
        if document is not None:
            return document.support_resources
    return ""


def _safety_answer_in(pages: list[list[Instrument]], answers: dict) -> bool:
    return any(
        instrument.definition.safety_answers(answers.get(instrument.code, {}))
        for page in pages
        for instrument in page
    )


def _support_page(
    request, participant: Participant, *, answered: bool = False, saved: str = ""
) -> HttpResponse:
    """Where to get help now; after a submitted wave with a safety answer (``answered``) or a
    part-way save holding one (``saved``: when to carry on), headed by what happened."""
    context = {
        "trial": participant.trial,
        "answered": answered,
        "saved": saved,
        "resources": _support_resources(participant),
        "data_url": data_path(participant.pk),
        "report_url": reverse("surveys:data_report", kwargs={"token": data_token(participant.pk)}),
    }
    return render(request, "surveys/support.html", context)


def _outside_daily_window(request, wave: Wave, status: SurveyStatus) -> HttpResponse:
    """A wave with a time of day answers only on its day, between its two times (in the wave's
    time zone, which the page names): before, the page says when; after, that it has closed."""
    zone = wave_time_zone(wave)
    opens, closes = timezone.localtime(status.opens, zone), timezone.localtime(status.closes, zone)
    window = {
        "date": date_format(opens, "DATE_FORMAT"),
        "opens": f"{opens:%H:%M}",
        "closes": f"{closes:%H:%M}",
        "zone": zone.key,
    }
    if status.state == WaveState.NOT_YET_OPEN:
        heading = _("Not open yet")
        text = _(
            "These questions can be answered on %(date)s from %(opens)s to %(closes)s (%(zone)s)."
        )
        return _message(request, heading, text % window)
    text = _(
        "These questions could be answered on %(date)s from %(opens)s to %(closes)s (%(zone)s) "
        "and have closed. Thank you: we will invite you to the next ones."
    )
    return _message(request, _("This survey has closed"), text % window, status=410)


def _date(moment) -> str:
    return date_format(timezone.localtime(moment), "DATE_FORMAT")


# "My data and consent" ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@_data_link_pages
def my_data(request: HttpRequest, token: str, participant: Participant) -> HttpResponse:
    # Leaving stays possible while a new consent form waits to be signed.
    if request.method == "POST" and request.POST.get("action") == "withdraw":
        return _my_data_change(request, participant)
    document = consent_renewal_due(participant)
    if document is not None:
        return _reconsent(request, participant, document)
    if request.method == "POST":
        return _my_data_change(request, participant)
    return _my_data_page(request, participant)


@require_GET
def my_consent_copy(request: HttpRequest, token: str) -> HttpResponse:
    """The PDF copy of what the participant agreed to, rebuilt from the stored rows (the bytes
    whose SHA-256 was stored and e-mailed at enrolment), behind the my-data page's link."""
    try:
        participant_id = participant_id_from_data_token(token)
    except signing.BadSignature as error:
        return _bad_link(request, error)
    participant = Participant.objects.filter(pk=participant_id).first()
    pdf = consent_copy_download(participant=participant) if participant else None
    if pdf is None:
        return _bad_link(request, signing.BadSignature())
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = 'attachment; filename="consent.pdf"'
    return response


def _my_data_page(request, participant: Participant, status: int = 200, **extra) -> HttpResponse:
    grants = list(participant.consents.select_related("document").order_by("scope", "granted_at"))
    token = data_token(participant.pk)
    stoppable, resumable = _streams_to_change(participant, grants)
    for grant in grants:
        grant.name = SCOPE_NAMES.get(grant.scope, grant.scope)
        if grant.revoked_at is None and grant.scope in stoppable:
            grant.stop_url = _stream_url("surveys:stream_stop", token, grant.scope)
        # The stream's latest grant offers to start it again.
        elif grant.scope in resumable and grant is _latest(grants, grant.scope):
            grant.resume_url = _stream_url("surveys:stream_resume", token, grant.scope)
    documents = {grant.document for grant in grants}
    open_wave = None if participant.withdrawn_at else wave_open_for(participant, timezone.now())
    erase = any(d.withdrawal_rule == ConsentDocument.WithdrawalRule.ERASE for d in documents)
    context = {
        "participant": participant,
        "trial": participant.trial,
        "grants": grants,
        "documents": sorted(documents, key=lambda d: d.version),
        "answered": participant.responses.count(),
        "survey_url": survey_path(participant.pk, open_wave.pk) if open_wave else None,
        "erase_on_withdrawal": erase,
        "support_url": reverse("surveys:support", kwargs={"token": data_token(participant.pk)}),
        "report_url": reverse("surveys:data_report", kwargs={"token": data_token(participant.pk)}),
        "consent_copy_url": reverse(
            "surveys:consent_copy", kwargs={"token": data_token(participant.pk)}
        )
        if consent_copy_made(participant=participant)
        else None,
        **extra,
    }
    return render(request, "surveys/my_data.html", context, status=status)


def _my_data_change(request, participant: Participant) -> HttpResponse:
    action = request.POST.get("action")
    if participant.withdrawn_at is not None:
        return redirect(request.path)
    if action == "withdraw":
        if request.POST.get("confirm") != "yes":
            return _my_data_page(
                request,
                participant,
                400,
                error=_("Tick the box to confirm that you want to leave the study."),
            )
        participant_withdraw(participant=participant, reason="withdrew on the my-data page")
        return redirect(f"{request.path}?changed=withdrawn")
    return _my_data_page(request, participant, 400, error=_("Choose what to change."))


# Stopping and starting again one data stream ---------------------------------------------------


def _latest(grants: list[ConsentGrant], scope: str) -> ConsentGrant:
    return max((grant for grant in grants if grant.scope == scope), key=lambda g: g.granted_at)


def _streams_to_change(
    participant: Participant, grants: list[ConsentGrant]
) -> tuple[set[str], set[str]]:
    """The streams the participant may stop now (optional ones that run) and start again (optional
    ones they stopped, which the consent document they would sign now still asks for)."""
    if participant.withdrawn_at is not None:
        return set(), set()
    running = {grant.scope for grant in grants if grant.revoked_at is None}
    stopped = {grant.scope for grant in grants} - running
    document = consent_document_for(participant) if stopped & REVOCABLE_SCOPES else None
    offered = set(document.scopes or ConsentScope.values) if document else set()
    return running & REVOCABLE_SCOPES, stopped & REVOCABLE_SCOPES & offered


def _stream_url(name: str, token: str, scope: str) -> str:
    return f"{reverse(name, kwargs={'token': token})}?{urlencode({'stream': scope})}"


def _stream_page(*, stopping: bool) -> Callable:
    """A confirmation page for one stream, reached from the my-data page's link (``?stream=``
    on the way in, the form's ``stream`` on the way back): its token resolved, a new consent
    form waiting to be signed shown first, and only a stream the participant may stop
    (``stopping``) or start again now; anything else goes back to the my-data page."""

    def decorate(view: Callable[[HttpRequest, str, Participant, str], HttpResponse]) -> Callable:
        @require_http_methods(["GET", "POST"])
        @_data_link_pages
        @wraps(view)
        def wrapper(request: HttpRequest, token: str, participant: Participant) -> HttpResponse:
            document = consent_renewal_due(participant)
            if document is not None:
                return _reconsent(request, participant, document)
            scope = (request.POST if request.method == "POST" else request.GET).get("stream", "")
            stoppable, resumable = _streams_to_change(participant, list(participant.consents.all()))
            data_url = reverse("surveys:my_data", kwargs={"token": token})
            if scope not in (stoppable if stopping else resumable):
                return redirect(data_url)
            return view(request, data_url, participant, scope)

        return wrapper

    return decorate


@_stream_page(stopping=True)
def stream_stop(request, data_url: str, participant: Participant, scope: str) -> HttpResponse:
    """Stop one optional stream, after the participant confirms on this page."""
    if request.method == "POST":
        consent_revoke(participant=participant, scope=scope)
        return redirect(f"{data_url}?changed=revoked")
    context = {"stopping": True, "data_url": data_url}
    return _stream_confirm_page(request, participant, scope, **context)


@_stream_page(stopping=False)
def stream_resume(request, data_url: str, participant: Participant, scope: str) -> HttpResponse:
    """Start a stopped stream again: consent to it is given anew, under the consent document
    the participant would sign now (``trials.services.consent_grant``, a CONSENT_GRANTED
    event), which this page shows."""
    document = consent_document_for(participant)
    if request.method == "POST":
        consent_grant(participant=participant, scope=scope, document=document)
        return redirect(f"{data_url}?changed=resumed")
    context = {"stopping": False, "data_url": data_url, "document": document}
    return _stream_confirm_page(request, participant, scope, **context)


def _stream_confirm_page(request, participant: Participant, scope: str, **context) -> HttpResponse:
    context = {"trial": participant.trial, "name": SCOPE_NAMES[scope], "scope": scope, **context}
    return render(request, "surveys/stream_confirm.html", context)
