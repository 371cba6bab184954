"""Reads from surveys/."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import (
    Aggregate,
    Exists,
    F,
    JSONField,
    Model,
    OuterRef,
    Subquery,
    TextField,
)
from django.db.models.functions import Cast, JSONObject
from django.urls import reverse
from django.utils import timezone

from surveys.links import absolute
from surveys.models import Instrument, Response, ResponseDraft, Wave
from surveys.schedule import wave_window
from trials.models import (
    ConsentDocument,
    ConsentGrant,
    ConsentScope,
    Participant,
    Trial,
    TrialMember,
)
from trials.plan import Plan
from trials.selectors import consent_standing, preregistration_in_force


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


def _wave_state(wave: Wave, participant: Participant, now: datetime, *, answered: bool):
    opens, closes = wave_window(wave, participant.enrolled_at)
    if answered:
        state = WaveState.ANSWERED
    elif now < opens:
        state = WaveState.NOT_YET_OPEN
    elif now >= closes:
        state = WaveState.CLOSED
    else:
        state = WaveState.OPEN
    return state, opens, closes


def survey_status(participant: Participant, wave: Wave, now: datetime) -> SurveyStatus:
    """Where ``participant`` stands with ``wave`` at ``now``."""
    answered = Response.objects.filter(participant=participant, wave=wave).exists()
    state, opens, closes = _wave_state(wave, participant, now, answered=answered)
    draft = None
    if state == WaveState.OPEN:
        draft = ResponseDraft.objects.filter(participant=participant, wave=wave).first()
    return SurveyStatus(state=state, opens=opens, closes=closes, draft=draft)


@dataclass(frozen=True)
class SurveyVisit:
    """Everything a participant's survey page reads before it answers, from one query
    (:func:`survey_visit`): a submission then sends only its writes (docs/architecture.md,
    "Lean request paths")."""

    participant: Participant  # with its trial
    wave: Wave  # with its trial and its instruments, in code order
    draft: ResponseDraft | None
    answered: bool
    # The participant's consent to surveys stands (trials.selectors.consent_standing).
    surveys_consent: bool
    # A grant of theirs waits for a new version of the consent document: the page asks for it
    # first (trials.selectors.consent_renewal_due names the document).
    consent_paused: bool

    def status(self, now: datetime) -> SurveyStatus:
        """What :func:`survey_status` says, from what was read."""
        state, opens, closes = _wave_state(self.wave, self.participant, now, answered=self.answered)
        draft = self.draft if state == WaveState.OPEN else None
        return SurveyStatus(state=state, opens=opens, closes=closes, draft=draft)


class _JSONArray(Aggregate):
    """The aggregated values as one JSON array, in PostgreSQL and in SQLite (the demo)."""

    function = "JSONB_AGG"
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra_context)


def _json_row(model: type[Model], path: str = "") -> JSONObject:
    """Every column of ``model`` (reached through ``path``) as one JSON object, JSON columns as
    their text, so that rows of other tables come back in one query (read by :func:`_from_json`
    with the fields' own conversions)."""
    return JSONObject(
        **{
            field.attname: Cast(F(path + field.attname), TextField())
            if isinstance(field, JSONField)
            else F(path + field.attname)
            for field in model._meta.concrete_fields
        }
    )


def _from_json(model: type[Model], row: dict) -> Model:
    """The model instance whose columns :func:`_json_row` wrote."""
    connection = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    values = []
    for field in fields:
        value = row[field.attname]
        if value is not None and isinstance(field, JSONField):
            value = field.from_db_value(value, None, connection)
        elif value is not None:
            value = field.to_python(value)
            # SQLite keeps times as text without an offset, in UTC (USE_TZ).
            if isinstance(value, datetime) and timezone.is_naive(value):
                value = timezone.make_aware(value, UTC)
        values.append(value)
    return model.from_db(DEFAULT_DB_ALIAS, [field.attname for field in fields], values)


def _instruments_attach(wave: Wave, instruments: list[Instrument]) -> None:
    """Leave ``instruments`` where ``prefetch_related("instruments")`` leaves them (Django's
    ``prefetch_one_level``), so that ``wave.instruments.all()`` reads them without a query."""
    prefetched = wave.instruments.all()
    prefetched._result_cache = instruments
    prefetched._prefetch_done = True
    wave._prefetched_objects_cache = {"instruments": prefetched}


# Stand-ins for the participant and the wave while the visit's query is compiled: never ids
# (participant ids are 22 URL-safe characters, wave ids positive), so every parameter equal to
# one of them is where the visit's own goes.
_PARTICIPANT_STAND_IN = "participant stand-in"
_WAVE_STAND_IN = -1


@cache
def _visit_sql() -> tuple[str, tuple]:
    """The visit's query as SQL and parameters, compiled once per process: building and
    compiling its expressions (the consent rules above all) costs a page several times what
    running it does, and only the two ids change between visits."""
    participant_id, wave_id = _PARTICIPANT_STAND_IN, _WAVE_STAND_IN
    mine = {"participant": OuterRef("pk"), "wave_id": wave_id}
    paused = ConsentGrant.objects.filter(participant=OuterRef("pk"), revoked_at__isnull=True)
    paused = paused.exclude(Exists(consent_standing().filter(pk=OuterRef("pk"))))
    instruments = Wave.instruments.through.objects.filter(wave_id=wave_id).values("wave_id")
    instruments = instruments.annotate(rows=_JSONArray(_json_row(Instrument, "instrument__")))
    query = Participant.objects.filter(pk=participant_id).values(
        visit_participant=_json_row(Participant),
        visit_trial=Subquery(
            Trial.objects.filter(pk=OuterRef("trial")).values(row=_json_row(Trial))
        ),
        visit_wave=Subquery(
            Wave.objects.filter(pk=wave_id, trial=OuterRef("trial")).values(row=_json_row(Wave))
        ),
        visit_instruments=Subquery(instruments.values("rows")),
        visit_draft=Subquery(
            ResponseDraft.objects.filter(**mine).values(row=_json_row(ResponseDraft))
        ),
        visit_answered=Exists(Response.objects.filter(**mine)),
        visit_surveys_consent=Exists(
            consent_standing().filter(participant=OuterRef("pk"), scope=ConsentScope.SURVEYS)
        ),
        visit_consent_paused=Exists(paused),
    )
    sql, params = query.query.sql_with_params()
    return sql, tuple(params)


def _json_value(value: object) -> object:
    # JSON as text (PostgreSQL's jsonb as Django reads it, SQLite's json), or already decoded.
    return json.loads(value) if isinstance(value, str) else value


def survey_visit(participant_id: str, wave_id: int) -> SurveyVisit | None:
    """The participant, their trial, the wave (which must be their trial's) with its
    instruments, their draft of it, whether they answered it, and where their consent stands,
    in one query; None when the participant or the wave is unknown."""
    sql, compiled = _visit_sql()
    stand_ins = {_PARTICIPANT_STAND_IN: participant_id, _WAVE_STAND_IN: wave_id}
    params = [
        stand_ins[value] if isinstance(value, str | int) and value in stand_ins else value
        for value in compiled
    ]
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
        columns = [column[0].removeprefix("visit_") for column in cursor.description]
    read = dict(zip(columns, found or (), strict=False))
    if not read or read["wave"] is None:
        return None
    participant_row, trial, wave_row, instruments, draft_row = (
        _json_value(read[name]) for name in ("participant", "trial", "wave", "instruments", "draft")
    )
    participant = _from_json(Participant, participant_row)
    participant.trial = _from_json(Trial, trial)
    wave = _from_json(Wave, wave_row)
    wave.trial = participant.trial
    _instruments_attach(
        wave,
        sorted((_from_json(Instrument, row) for row in instruments or []), key=lambda i: i.code),
    )
    draft = None
    if draft_row is not None:
        draft = _from_json(ResponseDraft, draft_row)
        draft.participant, draft.wave = participant, wave
    return SurveyVisit(
        participant=participant,
        wave=wave,
        draft=draft,
        answered=bool(read["answered"]),
        surveys_consent=bool(read["surveys_consent"]),
        consent_paused=bool(read["consent_paused"]),
    )


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


@dataclass(frozen=True)
class StudyRunners:
    """Who runs a trial, as participants are told before they answer: the study team (its
    coordinators' names) and the oversight bodies that approved the plan in force."""

    team: list[str]
    bodies: list[str]


def study_runners(trial: Trial) -> StudyRunners:
    coordinators = TrialMember.objects.filter(
        trial=trial, role=TrialMember.Role.COORDINATOR
    ).select_related("user")
    in_force = preregistration_in_force(trial)
    approvals = in_force.approvals.select_related("body") if in_force else []
    return StudyRunners(
        team=sorted(filter(None, (m.user.get_full_name() for m in coordinators))),
        bodies=sorted(a.body.name for a in approvals),
    )


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
