"""Writes to surveys/."""

import csv
import io
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import Lower
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac

from safety.flags import safety_answers_flag
from stats import quality
from surveys.duration import wave_minutes
from surveys.instrument import DefinitionError, InstrumentDefinition, InstrumentPack
from surveys.links import (
    EnrolmentRequest,
    absolute,
    confirmation_token,
    data_path,
    survey_path,
)
from surveys.models import (
    FrontDoorAttempt,
    Instrument,
    Invitation,
    RecruitmentInvitation,
    Response,
    ResponseDraft,
    Score,
    Wave,
)
from surveys.registry import shipped_definitions
from surveys.schedule import daily_occurrences, schedule_errors, wave_window
from surveys.scoring import applicable_answers, scores, validate_answers
from surveys.selectors import SurveyVisit, recruitment_url
from trials.locks import trial_lock
from trials.models import (
    Community,
    ConsentDocument,
    ConsentScope,
    EligibilityScreening,
    Participant,
    ParticipantContact,
    Trial,
    TrialEvent,
)
from trials.outbox import outbox_send_due
from trials.selectors import consent_active, consent_renewal_due
from trials.services import event_record, participant_enrol

logger = logging.getLogger(__name__)

# Trials whose participants are invited to their waves.
INVITING_STATES = (Trial.State.ENROLLING, Trial.State.FOLLOW_UP)


def _instrument_fields(definition: InstrumentDefinition, origin: str) -> dict:
    return {
        "name": definition.name,
        "version": definition.version,
        "licence": definition.licence,
        "validated": definition.validated,
        "origin": origin,
        "definition": definition,
    }


@transaction.atomic
def instruments_sync() -> list[Instrument]:
    """Create or update the shipped instruments from their data files."""
    return [
        Instrument.objects.update_or_create(
            code=code, defaults=_instrument_fields(definition, Instrument.Origin.REPOSITORY)
        )[0]
        for code, definition in shipped_definitions().items()
    ]


@transaction.atomic
def instrument_pack_load(*, pack: object) -> list[Instrument]:
    """Load a deploying organisation's licensed instruments (an ``InstrumentPack``'s JSON) into
    the database; every definition is checked before any is stored.

    A pack cannot replace a shipped instrument, and loading the same pack again updates it.
    """
    try:
        loaded = InstrumentPack.from_json(pack, reserved_codes=shipped_definitions())
    except DefinitionError as error:
        raise ValidationError(error.problems) from error
    return [
        Instrument.objects.update_or_create(
            code=definition.code,
            defaults=_instrument_fields(definition, Instrument.Origin.PACK),
        )[0]
        for definition in loaded.instruments
    ]


@dataclass(frozen=True)
class WaveDaily:
    """A wave's daily settings (surveys.models.Wave): asked on ``repeat_days`` days, each day
    between two times of day in ``time_zone`` (none: the whole window)."""

    repeat_days: int = 1
    daily_opens_at: time | None = None
    daily_closes_at: time | None = None
    time_zone: str = ""


@transaction.atomic
def wave_create(
    *,
    trial: Trial,
    index: int,
    day_offset: int,
    instrument_codes: Iterable[str],
    window_days: int = 7,
    reminder_days: Iterable[int] = (),
    one_page: bool = False,
    daily: WaveDaily = WaveDaily(),
    actor: AbstractBaseUser | None = None,
) -> Wave:
    """Add a wave to a draft trial's schedule; the whole schedule must still respect every
    instrument's recall window and keep the waves' windows apart. A daily wave (``daily``)
    adds a wave for each of its later days too."""
    wave = Wave(
        trial=trial,
        index=index,
        day_offset=day_offset,
        window_days=window_days,
        reminder_days=sorted(set(reminder_days)),
        one_page=one_page,
        **asdict(daily),
    )
    return _wave_store(wave, instrument_codes, TrialEvent.Kind.WAVE_CREATED, actor)


@transaction.atomic
def wave_change(
    *,
    wave: Wave,
    index: int,
    day_offset: int,
    instrument_codes: Iterable[str],
    window_days: int,
    reminder_days: Iterable[int],
    one_page: bool,
    daily: WaveDaily = WaveDaily(),
    actor: AbstractBaseUser | None = None,
) -> Wave:
    """Change a wave of a draft trial's schedule, under the same rules as adding one; a daily
    wave's later days are made again from it."""
    wave = Wave.objects.get(pk=wave.pk)
    if wave.series_id is not None:
        raise ValidationError(
            f"Wave {wave.index} is a day of the daily wave {wave.series.index}: change that one."
        )
    wave.index, wave.day_offset, wave.window_days = index, day_offset, window_days
    wave.reminder_days, wave.one_page = sorted(set(reminder_days)), one_page
    for field, value in asdict(daily).items():
        setattr(wave, field, value)
    return _wave_store(wave, instrument_codes, TrialEvent.Kind.WAVE_CHANGED, actor)


def schedule_editable(trial: Trial) -> bool:
    """The waves are what the plan's outcomes are measured at: once the trial is registered they
    are part of the protocol, so they change only while it is a draft."""
    return trial.state == Trial.State.DRAFT


def wave_schedule_errors(*, wave: Wave, instruments: Iterable[Instrument]) -> list[str]:
    """Every reason why ``wave`` (new or changed) with ``instruments`` cannot join its trial's
    schedule, as sentences (the admin's form shows them before anything is saved)."""
    trial = wave.trial
    if not schedule_editable(trial):
        return [
            f"The trial is {trial.get_state_display().lower()}: its wave schedule is part of the "
            "registered protocol and can only be changed while the trial is a draft."
        ]
    # A daily wave's later days are checked as schedule_errors makes them from their first day.
    others = trial.waves.exclude(pk=wave.pk).filter(series__isnull=True)
    others = others.prefetch_related("instruments")
    planned = [(other, list(other.instruments.all())) for other in others]
    return schedule_errors([*planned, (wave, list(instruments))])


def _wave_store(
    wave: Wave,
    instrument_codes: Iterable[str],
    kind: TrialEvent.Kind,
    actor: AbstractBaseUser | None,
) -> Wave:
    # The trial's row lock keeps a registration from slipping in between check and save.
    wave.trial = trial_lock(wave.trial)
    codes = list(instrument_codes)
    instruments = list(Instrument.objects.filter(code__in=codes))
    unknown = set(codes) - {i.code for i in instruments}
    if unknown:
        raise ValidationError(f"Unknown instruments: {', '.join(sorted(unknown))}.")
    errors = wave_schedule_errors(wave=wave, instruments=instruments)
    if errors:
        raise ValidationError(errors)
    wave.save()
    wave.instruments.set(instruments)
    # Only a draft trial's schedule changes, so its days have no answers or invitations yet.
    wave.occurrences.all().delete()
    for day in daily_occurrences(wave):
        day.save()
        day.instruments.set(instruments)
    event_record(
        trial=wave.trial,
        kind=kind,
        actor=actor,
        wave=wave.index,
        day_offset=wave.day_offset,
        window_days=wave.window_days,
        reminder_days=wave.reminder_days,
        one_page=wave.one_page,
        instruments=sorted(codes),
        repeat_days=wave.repeat_days,
        daily_opens_at=_time_text(wave.daily_opens_at),
        daily_closes_at=_time_text(wave.daily_closes_at),
        time_zone=wave.time_zone,
    )
    return wave


def _time_text(moment: time | None) -> str | None:
    return moment.isoformat("minutes") if moment is not None else None


def answers_errors(
    wave: Wave, answers: Mapping[str, Mapping[str, object]], *, complete: bool = True
) -> dict[str, str]:
    """Item code → message for every invalid (or, when ``complete``, missing) answer."""
    errors: dict[str, str] = {}
    for instrument in wave.instruments.all():
        given = answers.get(instrument.code, {})
        errors.update(validate_answers(instrument.definition, given, complete=complete))
    return errors


def _check_timings(timings: Mapping[str, Mapping[str, float]] | None) -> None:
    """Seconds are finite and not negative: jsonb refuses NaN and Infinity, and the speed index
    would be meaningless with them. Callers clean what browsers post; this is the last guard."""
    for kind, seconds in (timings or {}).items():
        if not isinstance(seconds, Mapping):
            raise ValidationError(f"Timings {kind!r} are not a mapping of seconds.")
        for key, value in seconds.items():
            try:
                valid = not isinstance(value, bool) and math.isfinite(value) and value >= 0
            except (TypeError, OverflowError):  # not a number; an int too large for a float
                valid = False
            if not valid:
                raise ValidationError(
                    f"Timing {kind}/{key} is {value!r}, not a finite number of seconds."
                )


def _check_may_answer(participant: Participant, *, surveys_consent: bool | None = None) -> None:
    """Refuse a withdrawn participant, or one whose consent to surveys does not stand;
    ``surveys_consent`` is that consent as the caller already read it, else it is read here."""
    if participant.withdrawn_at is not None:
        raise ValidationError("This participant has withdrawn.")
    if surveys_consent is None:
        surveys_consent = consent_active(participant, ConsentScope.SURVEYS)
    if not surveys_consent:
        raise ValidationError("There is no active consent to surveys.")


@transaction.atomic
def draft_save(
    *,
    participant: Participant,
    wave: Wave,
    answers: Mapping[str, Mapping[str, int]],
    page: int,
    timings: Mapping[str, Mapping[str, float]] | None = None,
    started_at: datetime | None = None,
) -> ResponseDraft:
    """Keep part-way answers so the participant can resume; answers given again replace the
    earlier ones, timings add up. Invalid answers are refused before anything is written."""
    _check_may_answer(participant)
    _check_timings(timings)
    errors = answers_errors(wave, answers, complete=False)
    if errors:
        raise ValidationError(errors)
    draft, _ = ResponseDraft.objects.select_for_update().get_or_create(
        participant=participant,
        wave=wave,
        defaults={"started_at": started_at or timezone.now()},
    )
    for code, given in answers.items():
        draft.answers[code] = {**draft.answers.get(code, {}), **given}
    for kind, seconds in (timings or {}).items():
        spent = draft.timings.setdefault(kind, {})
        for key, value in seconds.items():
            spent[key] = round(spent.get(key, 0.0) + float(value), 3)
    draft.page = page
    draft.save()
    return draft


def _answer_vector(definition: InstrumentDefinition, answers: Mapping[str, int]) -> list[float]:
    """Answers in presentation order, NaN where unanswered (the quality indices' input)."""
    return [float(answers.get(code, float("nan"))) for code in definition.item_codes]


def quality_indices(
    definition: InstrumentDefinition,
    answers: Mapping[str, int],
    seconds: float | None,
    mahalanobis_p: float | None = None,
) -> dict:
    """One instrument's careless-responding indices and flags, as stored in Response.quality."""
    return quality.careless_flags(
        _answer_vector(definition, answers), seconds=seconds, mahalanobis_p=mahalanobis_p
    ).to_dict()


def score_fields(instrument: Instrument, answers: Mapping[str, int]) -> list[dict]:
    """The Score rows (less their response) that one instrument's answers give."""
    computed = scores(instrument.definition, answers)
    return [
        {
            "instrument": instrument,
            "code": score.code,
            "dimension": score.dimension,
            "value": computed[score.code],
        }
        for score in instrument.definition.scores
        if score.code in computed
    ]


def _flagged(indices: Mapping[str, Mapping]) -> bool:
    return any(index["flags"] for index in indices.values())


def response_submit(
    *,
    participant: Participant,
    wave: Wave,
    answers: Mapping[str, Mapping[str, int]],
    submitted_at: datetime | None = None,
    started_at: datetime | None = None,
    languages: Mapping[str, str] | None = None,
    timings: Mapping[str, Mapping[str, float]] | None = None,
    visit: SurveyVisit | None = None,
) -> Response:
    """Store one wave's answers with their scores and quality indices; a repeated submission
    returns the first one.

    Validation happens before anything is written; the response, its scores, the flags of its
    safety answers and the removal of the draft are one transaction, so a failure leaves nothing
    behind. ``visit`` is what the participant's page read (``surveys.selectors.survey_visit``,
    its draft as it stands now): its consent and draft are not read again, and a wave answered
    without a saved draft deletes none, so that a submission sends its reads in one query and
    then only BEGIN, two inserts and COMMIT (docs/architecture.md, "Lean request paths").
    """
    _check_may_answer(
        participant, surveys_consent=visit.surveys_consent if visit is not None else None
    )
    _check_timings(timings)
    instruments = list(wave.instruments.all())
    # Answers to items a show_if condition leaves out are discarded (docs/instruments.md).
    answers = {
        **answers,
        **{
            i.code: applicable_answers(i.definition, answers[i.code])
            for i in instruments
            if i.code in answers
        },
    }
    errors = answers_errors(wave, answers)
    if errors:
        raise ValidationError(errors)
    page_seconds = (timings or {}).get("pages", {})
    indices = {
        i.code: quality_indices(i.definition, answers[i.code], page_seconds.get(i.code))
        for i in instruments
    }
    try:
        with transaction.atomic():
            response = Response.objects.create(
                participant=participant,
                wave=wave,
                answers={i.code: dict(answers[i.code]) for i in instruments},
                languages=dict(languages or {}),
                started_at=started_at,
                submitted_at=submitted_at or timezone.now(),
                timings=dict(timings or {}),
                quality=indices,
                flagged=_flagged(indices),
            )
            Score.objects.bulk_create(
                Score(response=response, **fields)
                for instrument in instruments
                for fields in score_fields(instrument, answers[instrument.code])
            )
            if visit is None or visit.draft is not None:
                ResponseDraft.objects.filter(participant=participant, wave=wave).delete()
            _safety_answers_flag(response, instruments, answers)
    except IntegrityError:
        # A double submission (two clicks, a retried request): keep the first.
        return Response.objects.get(participant=participant, wave=wave)
    return response


def _safety_answers_flag(
    response: Response, instruments: list[Instrument], answers: Mapping[str, Mapping[str, int]]
) -> None:
    """Flag the answers the instruments declare safety items (PHQ-9's item 9), in the
    response's transaction: the flag and its event exist exactly when the response does
    (docs/instruments.md, "Safety items"). A draft saved part-way raises nothing."""
    triggered = {
        instrument.code: hits
        for instrument in instruments
        if (hits := instrument.definition.safety_answers(answers[instrument.code]))
    }
    if triggered:
        safety_answers_flag(
            participant=response.participant,
            response_id=response.pk,
            wave_index=response.wave.index,
            triggered=triggered,
        )


@transaction.atomic
def wave_quality_refresh(*, wave: Wave) -> int:
    """Recompute the quality indices of every response to ``wave``, now including the
    Mahalanobis distance, which needs the whole sample; returns how many are flagged.

    Flags mark responses for review and sensitivity analyses; nothing is deleted.
    """
    responses = list(Response.objects.select_for_update().filter(wave=wave).order_by("pk"))
    if not responses:
        Wave.objects.filter(pk=wave.pk).update(quality_refreshed_count=0)
        return 0
    for instrument in wave.instruments.all():
        code, definition = instrument.code, instrument.definition
        given = [response.answers.get(code, {}) for response in responses]
        vectors = [_answer_vector(definition, answers) for answers in given]
        try:
            p_values = quality.mahalanobis_distance(vectors).p_value
        except ValueError:
            p_values = [None] * len(responses)  # too few complete answers for a covariance
        for response, answers, p_value in zip(responses, given, p_values, strict=True):
            seconds = response.timings.get("pages", {}).get(code)
            response.quality[code] = quality_indices(definition, answers, seconds, p_value)
    for response in responses:
        response.flagged = _flagged(response.quality)
    Response.objects.bulk_update(responses, ["quality", "flagged"])
    Wave.objects.filter(pk=wave.pk).update(quality_refreshed_count=len(responses))
    return sum(response.flagged for response in responses)


def waves_quality_refresh() -> list[int]:
    """Refresh the quality indices of every wave whose responses changed in number since the
    last refresh (new submissions, imports, erasures); returns the waves' ids."""
    stale = Wave.objects.annotate(answered=Count("responses")).exclude(
        answered=F("quality_refreshed_count")
    )
    refreshed = []
    for wave in stale:
        wave_quality_refresh(wave=wave)
        refreshed.append(wave.pk)
    return refreshed


@transaction.atomic
def participant_locale_set(*, participant: Participant, locale: str) -> Participant:
    """The language the participant's pages and e-mails use from now on."""
    if locale not in dict(settings.LANGUAGES):
        raise ValidationError(f"{locale} is not one of the offered languages.")
    Participant.objects.filter(pk=participant.pk).update(locale=locale)
    participant.locale = locale
    return participant


def participant_responses_erase(sender, *, participant: Participant, **kwargs) -> None:
    """Answers ``trials.signals.participant_erased``: answers, drafts, scores and pending
    invitations go."""
    Response.objects.filter(participant=participant).delete()
    ResponseDraft.objects.filter(participant=participant).delete()
    Invitation.objects.filter(participant=participant, state=Invitation.State.PENDING).delete()


# Invitations and reminders ------------------------------------------------------------------


def _invitation_rows(wave: Wave, participant: Participant) -> list[Invitation]:
    """The wave's invitation (sequence 0) and reminders for ``participant``, not yet saved."""
    opens, _ = wave_window(wave, participant.enrolled_at)
    return [
        Invitation(
            participant=participant,
            wave=wave,
            sequence=sequence,
            due_at=opens + timedelta(days=days),
        )
        for sequence, days in enumerate([0, *wave.reminder_days])
    ]


def invitations_plan() -> int:
    """Create the due rows (invitation and reminders) of every wave for every participant of an
    inviting trial who has none yet; returns how many rows were created.

    Safe to run any number of times at once: the unique key makes a second insert a no-op.
    """
    created = 0
    waves = Wave.objects.filter(trial__state__in=INVITING_STATES).select_related("trial")
    for wave in waves:
        planned = Invitation.objects.filter(participant=OuterRef("pk"), wave=wave, sequence=0)
        newcomers = Participant.objects.filter(trial=wave.trial, withdrawn_at__isnull=True).exclude(
            Exists(planned)
        )
        rows = []
        for participant in newcomers.only("pk", "enrolled_at"):
            rows += _invitation_rows(wave, participant)
        created += len(Invitation.objects.bulk_create(rows, ignore_conflicts=True))
    return created


def participant_invitations_plan(*, participant: Participant) -> int:
    """The due rows of every wave for one newly enrolled participant, as ``invitations_plan``
    makes them (a later sweep adds nothing twice); returns how many were created."""
    rows = [
        row for wave in participant.trial.waves.all() for row in _invitation_rows(wave, participant)
    ]
    return len(Invitation.objects.bulk_create(rows, ignore_conflicts=True))


def _skip_reason(invitation: Invitation, now: datetime) -> str:
    participant = invitation.participant
    if participant.withdrawn_at is not None:
        return "withdrawn"
    # A stream paused for a new consent version is still invited: the invitation's link opens
    # the new version first, which is the participant's next visit (surveys.views).
    if not consent_active(participant, ConsentScope.SURVEYS) and not consent_renewal_due(
        participant
    ):
        return "no active consent to surveys"
    if not hasattr(participant, "contact"):  # erased, or never given
        return "no contact details"
    if Response.objects.filter(participant=participant, wave=invitation.wave).exists():
        return "already answered"
    _, closes = wave_window(invitation.wave, participant.enrolled_at)
    if now >= closes:
        return "the wave has closed"
    return ""


def invitation_message(invitation: Invitation) -> EmailMessage:
    """The e-mail, in the participant's language, with their personal links."""
    participant = invitation.participant
    context = {
        "trial": invitation.wave.trial,
        "wave": invitation.wave,
        "reminder": invitation.sequence > 0,
        "survey_url": absolute(survey_path(participant.pk, invitation.wave_id)),
        "data_url": absolute(data_path(participant.pk)),
        "closes": wave_window(invitation.wave, participant.enrolled_at)[1],
        "minutes": wave_minutes(invitation.wave, participant.locale),
    }
    with translation.override(participant.locale):
        subject = render_to_string("surveys/email/invitation_subject.txt", context).strip()
        body = render_to_string("surveys/email/invitation_body.txt", context)
    return EmailMessage(subject=subject, body=body, to=[participant.contact.email])


def invitations_send_due(
    *, now: datetime | None = None, participant: Participant | None = None
) -> dict[str, int]:
    """Send every due invitation and reminder at most once (the claim-then-send outbox,
    trials.outbox); returns what happened. A row whose participant withdrew, lost consent or
    answered already is skipped with the reason. With ``participant``, only theirs: the front
    door sends the baseline wave's invitation at once (surveys.front_door), and a sweep running
    at the same time never takes the same row."""
    return outbox_send_due(
        Invitation,
        message=invitation_message,
        lease_seconds=settings.INVITATION_SEND_LEASE_SECONDS,
        max_attempts=settings.INVITATION_MAX_ATTEMPTS,
        now=now,
        scope=Q(participant=participant) if participant is not None else Q(),
        # The message needs the address and the trial's title; read them with the row.
        related=("participant__contact", "wave__trial"),
        skip_reason=_skip_reason,
    )


@transaction.atomic
def invitation_release(
    *, invitation: Invitation, actor: AbstractBaseUser | None = None
) -> Invitation:
    """A coordinator who checked that an ``unknown`` or ``failed`` invitation did not arrive
    lets the sweep send it again (a second e-mail to a person: audited, with who decided)."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("wave__trial")
        .get(pk=invitation.pk)
    )
    if invitation.state not in (Invitation.State.UNKNOWN, Invitation.State.FAILED):
        raise ValidationError("Only an unknown or failed invitation can be sent again.")
    previous = invitation.state
    invitation.state, invitation.note = Invitation.State.PENDING, "released by a coordinator"
    invitation.save(update_fields=["state", "note"])
    event_record(
        trial=invitation.wave.trial,
        kind=TrialEvent.Kind.INVITATION_RELEASED,
        actor=actor,
        invitation=invitation.pk,
        participant=invitation.participant_id,
        wave=invitation.wave.index,
        sequence=invitation.sequence,
        previous=previous,
    )
    return invitation


# The front door (surveys.front_door) --------------------------------------------------------


def enrolment_confirmation_send(*, request: EnrolmentRequest) -> None:
    """E-mail the link that confirms the address and enrols (``participant_join``); nothing is
    stored before it is opened."""
    trial = Trial.objects.get(pk=request.trial_id)
    path = reverse(
        "join:confirm", kwargs={"slug": trial.slug, "token": confirmation_token(request)}
    )
    context = {"trial": trial, "confirm_url": absolute(path), "name": request.name}
    with translation.override(request.language):
        subject = render_to_string("surveys/email/confirmation_subject.txt", context).strip()
        body = render_to_string("surveys/email/confirmation_body.txt", context)
    EmailMessage(subject=subject, body=body, to=[request.email]).send()


def participant_join(*, request: EnrolmentRequest) -> Participant:
    """Enrol the person whose confirmation link was opened: consent as signed, allocation, the
    due rows of every wave; then the baseline wave's invitation goes out at once (after the
    commit, so the enrolment stands even when the mail server is down: the sweep retries).

    Refuses (ValidationError) what ``participant_enrol`` refuses, with code
    ``already_enrolled`` for an address that is enrolled already."""
    trial = Trial.objects.get(pk=request.trial_id)
    document = ConsentDocument.objects.filter(pk=request.document_id, trial=trial).first()
    screening = EligibilityScreening.objects.filter(pk=request.screening_id, trial=trial).first()
    if document is None or screening is None:
        raise ValidationError("The link names a consent form or screening this trial lacks.")
    with transaction.atomic():
        participant = participant_enrol(
            trial=trial,
            email=request.email,
            consent_document=document,
            scopes=request.scopes,
            community=Community.objects.filter(slug=request.community).first(),
            locale=request.language,
            screening=screening,
            signature_name=request.name,
            signed_at=datetime.fromisoformat(request.signed_at),
        )
        participant_invitations_plan(participant=participant)
    invitations_send_due(participant=participant)
    return participant


@dataclass(frozen=True)
class AttemptLimit:
    """At most ``count`` attempts of ``kind`` by one ``who`` (a client or an address) within
    ``window``."""

    kind: str
    who: str
    count: int
    window: timedelta


# Enough for a household behind one address to join, few enough that a script cannot try
# screening answers until one passes or flood a stranger's mailbox with confirmation links.
FRONT_DOOR_LIMITS = (
    AttemptLimit(FrontDoorAttempt.Kind.SCREENING, "client", 20, timedelta(hours=1)),
    AttemptLimit(FrontDoorAttempt.Kind.CONFIRMATION, "client", 10, timedelta(hours=1)),
    AttemptLimit(FrontDoorAttempt.Kind.CONFIRMATION, "address", 3, timedelta(days=1)),
)


def _attempt_key(who: str, value: str) -> str:
    # Keyed, so the table cannot be turned back into addresses by hashing guesses.
    return salted_hmac(f"flourish.surveys.front-door.{who}", value, algorithm="sha256").hexdigest()


@transaction.atomic
def front_door_attempt(*, kind: str, client: str, address: str = "") -> str | None:
    """Count one attempt of ``kind`` by ``client`` (and, for a confirmation e-mail, to
    ``address``); returns the ``who`` of the limit it would exceed (``client`` or
    ``address``), recording nothing, or None when it is allowed and recorded."""
    now = timezone.now()
    longest = max(limit.window for limit in FRONT_DOOR_LIMITS)
    FrontDoorAttempt.objects.filter(at__lt=now - longest).delete()
    keys = {"client": _attempt_key("client", client)}
    if address:
        keys["address"] = _attempt_key("address", address.strip().lower())
    for limit in FRONT_DOOR_LIMITS:
        if limit.kind != kind or limit.who not in keys:
            continue
        recent = FrontDoorAttempt.objects.filter(
            kind=kind, key=keys[limit.who], at__gte=now - limit.window
        )
        if recent.count() >= limit.count:
            return limit.who
    FrontDoorAttempt.objects.bulk_create(
        FrontDoorAttempt(kind=kind, key=key, at=now) for key in keys.values()
    )
    return None


# Recruitment from a coordinator's contact list -------------------------------------------------


@dataclass(frozen=True)
class RecruitmentContact:
    """One line of an uploaded contact list: an address, and optionally the name to greet, the
    community whose recruitment link to send, and the language of the e-mail."""

    line: int
    email: str
    name: str = ""
    community: str = ""
    language: str = ""


def recruitment_contacts_read(*, text: str) -> list[RecruitmentContact]:
    """The lines of a contact list (CSV: e-mail, name, community slug, language; all but the
    address optional, a header line allowed); blank lines are skipped. Checked by
    ``recruitment_contact_errors``."""
    contacts = []
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells) or (number == 1 and cells[0].lower() in ("email", "e-mail")):
            continue
        email, name, community, language = (cells + ["", "", ""])[:4]
        contacts.append(RecruitmentContact(number, email, name, community, language))
    return contacts


def _contact_languages(trial: Trial) -> set[str]:
    # The recruitment pages and the consent form speak the consent documents' languages.
    return set(trial.consent_documents.values_list("locale", flat=True))


def recruitment_contact_errors(*, trial: Trial, contacts: list[RecruitmentContact]) -> list[str]:
    """Every reason not to send, each naming its line; empty when all may be e-mailed."""
    if recruitment_url(trial) is None:
        return ["The trial does not recruit now: it must be enrolling, with a consent document."]
    if not contacts:
        return ["The file lists no addresses."]
    languages = _contact_languages(trial)
    communities = set(
        Community.objects.filter(slug__in={c.community for c in contacts}).values_list(
            "slug", flat=True
        )
    )
    addresses = [contact.email.lower() for contact in contacts]
    enrolled = set(
        ParticipantContact.objects.filter(trial=trial)
        .annotate(address=Lower("email"))
        .filter(address__in=addresses)
        .values_list("address", flat=True)
    )
    errors, first_line = [], {}
    for contact, address in zip(contacts, addresses, strict=True):
        problems = []
        try:
            validate_email(contact.email)
        except ValidationError:
            problems.append(f"{contact.email!r} is not an e-mail address")
        if address in first_line:
            problems.append(f"{contact.email} is listed already on line {first_line[address]}")
        first_line.setdefault(address, contact.line)
        if address in enrolled:
            problems.append(f"{contact.email} is enrolled in this trial already")
        if contact.community and contact.community not in communities:
            problems.append(f"no community {contact.community!r}")
        if contact.language and contact.language not in languages:
            offered = ", ".join(sorted(languages))
            problems.append(f"the consent form has no language {contact.language!r} ({offered})")
        errors.extend(f"line {contact.line}: {problem}" for problem in problems)
    return errors


def _recruitment_message(trial: Trial, contact: RecruitmentContact) -> EmailMessage:
    if contact.community:
        path = reverse("join:landing_community", args=[trial.slug, contact.community])
    else:
        path = reverse("join:landing", args=[trial.slug])
    languages = _contact_languages(trial)
    language = contact.language or ("en" if "en" in languages else min(languages))
    # The study's page opens in the language the e-mail is written in.
    url = absolute(path) + (f"?lang={language}" if len(languages) > 1 else "")
    context = {"trial": trial, "name": contact.name, "join_url": url}
    with translation.override(language):
        subject = render_to_string("surveys/email/recruitment_subject.txt", context).strip()
        body = render_to_string("surveys/email/recruitment_body.txt", context)
    return EmailMessage(subject=subject, body=body, to=[contact.email])


def recruitment_invitations_send(
    *, trial: Trial, contacts: list[RecruitmentContact], actor: AbstractBaseUser | None = None
) -> int:
    """E-mail the trial's recruitment link to every contact not e-mailed before for this trial;
    returns how many e-mails went out. Refuses the whole list (ValidationError, every problem
    with its line) when any line is bad, so nothing is sent from a list with a mistake in it.

    Sent in the request, after the commit: a list is a few dozen addresses, and the claim on
    each row (``RecruitmentInvitation``) keeps a second upload, even a concurrent one, from
    sending the same address again."""
    errors = recruitment_contact_errors(trial=trial, contacts=contacts)
    if errors:
        raise ValidationError(errors)
    keys = {contact.email: _attempt_key("address", contact.email.lower()) for contact in contacts}
    with transaction.atomic():
        known = RecruitmentInvitation.objects.filter(trial=trial, key__in=keys.values())
        new = len(keys) - known.count()
        RecruitmentInvitation.objects.bulk_create(
            [RecruitmentInvitation(trial=trial, key=key) for key in keys.values()],
            ignore_conflicts=True,
        )
        event_record(
            trial=trial,
            kind=TrialEvent.Kind.RECRUITMENT_INVITED,
            actor=actor,
            listed=len(contacts),
            new=new,
        )
    sent = 0
    connection = get_connection()
    try:
        for contact in contacts:
            rows = RecruitmentInvitation.objects.filter(trial=trial, key=keys[contact.email])
            if not rows.filter(claimed_at__isnull=True).update(claimed_at=timezone.now()):
                continue  # e-mailed already, or being e-mailed by another upload
            try:
                connection.send_messages([_recruitment_message(trial, contact)])
            except Exception as error:  # noqa: BLE001 — the next upload tries this address again
                logger.warning("Recruitment e-mail on line %s not sent: %s", contact.line, error)
                connection.close()
                rows.update(claimed_at=None)
                continue
            rows.update(sent_at=timezone.now())
            sent += 1
    finally:
        connection.close()
    return sent
