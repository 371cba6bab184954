"""Participant pages, reached through a personal signed link; they work without JavaScript."""

from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from surveys.links import participant_id_from_token
from surveys.selectors import wave_open_for
from surveys.services import answers_errors, response_submit
from trials.models import Participant


def _message(request: HttpRequest, heading: str, message: str, status: int = 200) -> HttpResponse:
    return render(
        request, "surveys/message.html", {"heading": heading, "message": message}, status=status
    )


def _parse_answers(wave, data) -> dict[str, dict[str, object]]:
    """Form fields ``<instrument>:<item>`` → nested answers; non-numbers stay as given."""
    answers: dict[str, dict[str, object]] = {}
    for instrument in wave.instruments.all():
        chosen = answers.setdefault(instrument.code, {})
        for item in instrument.definition["items"]:
            raw = data.get(f"{instrument.code}:{item['code']}", "")
            try:
                chosen[item["code"]] = int(raw)
            except ValueError:
                if raw:
                    chosen[item["code"]] = raw
    return answers


def _instruments_context(wave, answers, errors, locale: str) -> list[dict]:
    shown = []
    for instrument in wave.instruments.all():
        definition = instrument.definition
        low = definition["scale"]["min"]
        labels = definition["scale"]["labels"].get(locale) or definition["scale"]["labels"]["en"]
        items = []
        for item in definition["items"]:
            items.append(
                {
                    "field": f"{instrument.code}:{item['code']}",
                    "text": item["text"].get(locale) or item["text"]["en"],
                    "choices": [(low + i, label) for i, label in enumerate(labels)],
                    "selected": answers.get(instrument.code, {}).get(item["code"]),
                    "error": errors.get(item["code"]),
                }
            )
        stem = definition.get("stem", {})
        shown.append({"stem": stem.get(locale) or stem.get("en", ""), "items": items})
    return shown


def survey(request: HttpRequest, token: str) -> HttpResponse:
    try:
        participant_id = participant_id_from_token(token)
    except signing.SignatureExpired:
        return _message(
            request,
            "This link has expired",
            "Please use the most recent invitation you received, or contact the study team.",
            status=410,
        )
    except signing.BadSignature:
        return _message(
            request,
            "This link is not valid",
            "Please check that you copied the whole link from your invitation.",
            status=404,
        )
    participant = Participant.objects.select_related("trial").filter(pk=participant_id).first()
    if participant is None or participant.withdrawn_at is not None:
        return _message(request, "Thank you", "There is no survey for you at the moment.", 404)
    wave = wave_open_for(participant, timezone.now())
    if wave is None:
        return _message(
            request, "Thank you", "You have no survey to answer now. We will invite you again."
        )
    answers: dict = {}
    errors: dict = {}
    if request.method == "POST":
        answers = _parse_answers(wave, request.POST)
        errors = answers_errors(wave, answers)
        if not errors:
            try:
                response_submit(participant=participant, wave=wave, answers=answers)
            except ValidationError as error:
                return _message(request, "We could not save your answers", " ".join(error), 409)
            return _message(request, "Thank you", "Your answers have been saved.")
    context = {
        "trial": participant.trial,
        "wave": wave,
        "wave_count": participant.trial.waves.count(),
        "instruments": _instruments_context(wave, answers, errors, participant.locale),
        "errors": errors,
    }
    return render(request, "surveys/survey.html", context, status=400 if errors else 200)
