"""Reads from surveys/."""

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.urls import reverse

from surveys.links import absolute
from surveys.models import Instrument, Response, ResponseDraft, Wave
from surveys.schedule import wave_window
from trials.models import ConsentDocument, Participant, Trial
from trials.plan import Plan


class WaveState(StrEnum):
    NOT_YET_OPEN = "not_yet_open"
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


@dataclass(frozen=True)
class SurveyStatus:
    state: WaveState
    opens: datetime
    closes: datetime
    draft: ResponseDraft | None


def survey_status(participant: Participant, wave: Wave, now: datetime) -> SurveyStatus:
    """Where ``participant`` stands with ``wave`` at ``now``."""
    opens, closes = wave_window(wave, participant.enrolled_at)
    draft = None
    if Response.objects.filter(participant=participant, wave=wave).exists():
        state = WaveState.ANSWERED
    elif now < opens:
        state = WaveState.NOT_YET_OPEN
    elif now >= closes:
        state = WaveState.CLOSED
    else:
        state = WaveState.OPEN
        draft = ResponseDraft.objects.filter(participant=participant, wave=wave).first()
    return SurveyStatus(state=state, opens=opens, closes=closes, draft=draft)


def wave_open_for(participant: Participant, now: datetime) -> Wave | None:
    """The earliest wave whose window is open now and that the participant has not answered."""
    answered = participant.responses.values_list("wave_id", flat=True)
    for wave in participant.trial.waves.exclude(pk__in=answered).order_by("index"):
        opens, closes = wave_window(wave, participant.enrolled_at)
        if opens <= now < closes:
            return wave
    return None


def plan_survey_errors(trial: Trial, plan: Plan) -> list[str]:
    """What a plan names that the surveys do not have: instruments, their scores on the named
    dimension, and waves of the trial's schedule that give that instrument. Registered as a
    freeze check (``trials.plan.register_freeze_check``) by this app's ``ready()``."""
    instruments = {i.code: i for i in Instrument.objects.all()}
    waves = {
        wave.index: {i.code for i in wave.instruments.all()}
        for wave in trial.waves.prefetch_related("instruments")
    }
    errors = []
    for role, outcome in plan.outcomes:
        where = f"{role} outcome {outcome.instrument}, {outcome.dimension}, wave {outcome.wave}"
        instrument = instruments.get(outcome.instrument)
        if instrument is None:
            errors.append(
                f"{where}: no instrument has the code {outcome.instrument!r} "
                f"(instruments: {', '.join(sorted(instruments)) or 'none loaded'})."
            )
            continue
        scores = {score.code: score.dimension for score in instrument.definition.scores}
        on_dimension = sorted(code for code, d in scores.items() if d == outcome.dimension)
        if not on_dimension:
            measured = sorted(set(scores.values()))
            errors.append(
                f"{where}: {outcome.instrument} does not measure {outcome.dimension} "
                f"(it measures {', '.join(measured)})."
            )
        elif outcome.score is not None and outcome.score not in on_dimension:
            errors.append(
                f"{where}: {outcome.instrument} has no score {outcome.score!r} on "
                f"{outcome.dimension} (scores: {', '.join(on_dimension)})."
            )
        else:
            # The analyses read a rise as benefit (analytics.analysis: P(benefit) is P(effect >
            # 0)); a score where lower is better would have its verdict reversed. Such an
            # instrument is asked in a wave and watched by the safety checks instead.
            reversed_scores = [
                rule.code
                for rule in instrument.definition.scores
                if rule.code in ([outcome.score] if outcome.score else on_dimension)
                and not rule.higher_is_better
            ]
            if reversed_scores:
                errors.append(
                    f"{where}: on {', '.join(reversed_scores)} lower is better, and the analyses "
                    "read a rise as benefit; give the instrument in a wave without making it an "
                    "outcome (the safety checks still watch its answers)."
                )
        if outcome.wave not in waves:
            errors.append(
                f"{where}: the trial's schedule has no wave {outcome.wave} "
                f"(waves: {', '.join(map(str, sorted(waves))) or 'none yet'})."
            )
        elif outcome.instrument not in waves[outcome.wave]:
            given = sorted(waves[outcome.wave])
            errors.append(
                f"{where}: wave {outcome.wave} does not give {outcome.instrument} "
                f"(it gives {', '.join(given) or 'nothing'})."
            )
        if 0 in waves and outcome.instrument not in waves[0]:
            errors.append(
                f"{where}: the baseline wave (0) does not give {outcome.instrument}, so the "
                "growth from baseline cannot be estimated."
            )
    return errors


# A generous reading-and-answering time per closed item, so the estimate shown to people before
# they join is rarely exceeded (stats.quality flags answering faster than 2 s an item).
SECONDS_PER_ITEM = 10


def wave_minutes(wave: Wave) -> int:
    """About how many minutes ``wave`` takes, from its questionnaires' number of items."""
    items = sum(len(instrument.definition.items) for instrument in wave.instruments.all())
    return max(1, math.ceil(items * SECONDS_PER_ITEM / 60))


def consent_documents_current(trial: Trial) -> dict[str, ConsentDocument]:
    """The consent document people are asked to sign now, per language: the latest version, in
    every language it was written in."""
    latest = trial.consent_documents.order_by("-version").first()
    if latest is None:
        return {}
    documents = trial.consent_documents.filter(version=latest.version).order_by("locale")
    return {document.locale: document for document in documents}


def recruitment_url(trial: Trial) -> str | None:
    """The trial's public recruitment link (surveys.front_door) while it recruits: enrolling,
    with a consent document to sign. Registered with ``trials.selectors.register_recruitment_link``
    by this app's ``ready()``, for the trial page's setup checklist."""
    if trial.state != Trial.State.ENROLLING or not trial.consent_documents.exists():
        return None
    return absolute(reverse("join:landing", args=[trial.slug]))
