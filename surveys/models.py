"""Measuring flourishing: instruments, wave schedules, invitations, responses and scores."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KeyTransform

from surveys.instrument import InstrumentDefinition
from trials.models import Participant, Trial


class _DefinitionEncoder(DjangoJSONEncoder):
    def default(self, o):
        return o.to_json() if isinstance(o, InstrumentDefinition) else super().default(o)


class InstrumentDefinitionField(models.JSONField):
    """A JSON column that reads back as an :class:`InstrumentDefinition` and stores one as the
    JSON its author wrote (``InstrumentDefinition.to_json``), so what is stored never changes
    shape. Rows are read with ``InstrumentDefinition.from_stored``."""

    def __init__(self, *args, **kwargs) -> None:
        # The encoder writes a definition wherever Django turns the value into JSON: saving,
        # lookups, the admin's read-only display.
        kwargs["encoder"] = _DefinitionEncoder
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        # Only Python's view of the column is typed; migrations see the plain JSONField it is.
        name, _, args, kwargs = super().deconstruct()
        kwargs.pop("encoder")
        return name, "django.db.models.JSONField", args, kwargs

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        if value is None or isinstance(expression, KeyTransform):  # a key of it, not all of it
            return value
        return InstrumentDefinition.from_stored(value)

    def value_to_string(self, obj) -> object:
        # Serialisers (dumpdata) write plain JSON.
        value = self.value_from_object(obj)
        return value.to_json() if isinstance(value, InstrumentDefinition) else value


class Instrument(models.Model):
    """A questionnaire: shipped in ``surveys/instruments/`` or loaded from a licensed pack.

    ``definition`` is an :class:`~surveys.instrument.InstrumentDefinition`: items, keying,
    response scale, scores and their dimensions, recall window, licence and languages. ``name``,
    ``version``, ``licence`` and ``validated`` are copied from it (by the services that load
    instruments) so the admin can list and filter on them.
    """

    class Origin(models.TextChoices):
        REPOSITORY = "repository", "shipped with Flourish"
        PACK = "pack", "loaded from a licensed pack"

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50, blank=True)
    licence = models.CharField(max_length=50, blank=True)
    validated = models.BooleanField(
        default=True, help_text="False for the project's own items that are still being validated."
    )
    origin = models.CharField(max_length=20, choices=Origin.choices, default=Origin.REPOSITORY)
    definition = InstrumentDefinitionField(
        help_text="Items, scale, scoring rule, languages, licence."
    )
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        # A stable order, so a wave's questionnaires appear the same way on every page load.
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Wave(models.Model):
    """A measurement occasion: opens ``day_offset`` days after enrolment, for ``window_days``.

    Reminders go ``reminder_days`` days after the wave opens, while it is still unanswered.

    A daily wave (``repeat_days`` > 1) is asked once a day for that many days, each day between
    ``daily_opens_at`` and ``daily_closes_at`` in ``time_zone`` when those are set. Every day is
    a wave of its own (the first day's wave is the one coordinators edit; the others point to it
    through ``series`` and are made by surveys.services), so each day's response, scores,
    invitation and link are those of a single wave (docs/architecture.md, "Daily waves").
    """

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="waves")
    index = models.PositiveIntegerField(help_text="0 is baseline.")
    day_offset = models.PositiveIntegerField()
    window_days = models.PositiveIntegerField(default=7)
    reminder_days = models.JSONField(
        default=list, blank=True, help_text="Days after opening to remind, e.g. [3, 6]."
    )
    instruments = models.ManyToManyField(Instrument)
    quality_refreshed_count = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Responses there were when the sample-wide quality indices were last computed.",
    )
    one_page = models.BooleanField(
        default=False,
        help_text="Show every questionnaire on one page (fewer steps; a long page on a phone). "
        "Otherwise one questionnaire per page.",
    )
    repeat_days = models.PositiveSmallIntegerField(
        default=1,
        help_text="Ask this wave every day for this many days from its day on (1: once). Each day "
        "becomes a wave of its own, numbered on from this one.",
    )
    daily_opens_at = models.TimeField(
        null=True,
        blank=True,
        help_text="With a one-day window: the time of day it opens (its invitation goes then).",
    )
    daily_closes_at = models.TimeField(
        null=True, blank=True, help_text="With a one-day window: the time of day it closes."
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="The time zone of the times of day, e.g. Europe/Berlin; empty: the site's. "
        "Participants have no time zone of their own on the platform.",
    )
    series = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="occurrences",
        help_text="The first day's wave of the daily series this day belongs to.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "index"], name="wave_unique_index")]
        ordering = ["trial", "index"]

    def __str__(self) -> str:
        return f"{self.trial.slug} wave {self.index}"


class Invitation(models.Model):
    """A due row: one invitation (``sequence`` 0) or reminder (1, 2, …) per participant and wave.

    The beat sweep claims due rows (``pending`` → ``sending``) in a committed transaction before
    it talks to the mail server, so a row is handed to the mail server at most once. A row left
    in ``sending`` by a worker that died mid-send becomes ``unknown`` and is never resent by
    itself: a coordinator decides.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"
        UNKNOWN = "unknown", "unknown (the sender stopped mid-send)"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="invitations"
    )
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="invitations")
    sequence = models.PositiveSmallIntegerField(help_text="0 is the invitation; 1… reminders.")
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "wave", "sequence"], name="invitation_once"
            )
        ]
        indexes = [models.Index(fields=["state", "due_at"], name="invitation_due")]
        ordering = ["due_at"]

    def __str__(self) -> str:
        kind = "invitation" if self.sequence == 0 else f"reminder {self.sequence}"
        return f"{kind} to {self.participant_id} for wave {self.wave.index}"


class ResponseDraft(models.Model):
    """Answers saved part-way through a wave, so the participant can resume; gone on submit."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="drafts")
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="drafts")
    answers = models.JSONField(default=dict, help_text='{"instrument": {"item": value}}')
    page = models.PositiveSmallIntegerField(default=0)
    timings = models.JSONField(default=dict, help_text="Seconds per page and per item.")
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "wave"], name="draft_once_per_wave")
        ]

    def __str__(self) -> str:
        return f"draft of {self.participant_id} wave {self.wave.index}"


class Response(models.Model):
    """A participant's completed answers to one wave; at most one per participant and wave."""

    # No index of its own: response_once_per_wave's index leads with it.
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    wave = models.ForeignKey(Wave, on_delete=models.PROTECT, related_name="responses")
    answers = models.JSONField(help_text='{"instrument": {"item": value}}')
    languages = models.JSONField(
        default=dict, help_text="The language version each instrument was answered in."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField()
    timings = models.JSONField(default=dict, help_text="Seconds per page and per item.")
    quality = models.JSONField(
        default=dict, help_text="Careless-responding indices per instrument (stats.quality)."
    )
    flagged = models.BooleanField(
        default=False, help_text="Some quality index crossed its threshold; kept, never deleted."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "wave"], name="response_once_per_wave")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} wave {self.wave.index}"


class Score(models.Model):
    """One score of one response, mapped to the flourishing dimension it measures."""

    # No index of its own: score_unique's index leads with it.
    response = models.ForeignKey(
        Response, on_delete=models.CASCADE, related_name="scores", db_index=False
    )
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT)
    code = models.SlugField(help_text="The score's code; an instrument may have several.")
    dimension = models.CharField(max_length=50)
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["response", "code"], name="score_unique")]

    def __str__(self) -> str:
        return f"{self.code}={self.value:g}"


class FrontDoorAttempt(models.Model):
    """One use of a public front-door page that could be abused (surveys.front_door): a
    screening, or a confirmation e-mail sent. Counted by who made it, as a keyed hash of the
    client's address or of the e-mail address, never the address itself; rows older than the
    longest limit are deleted as new ones come (surveys.services.front_door_attempt)."""

    class Kind(models.TextChoices):
        SCREENING = "screening"
        CONFIRMATION = "confirmation", "confirmation e-mail"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=64, help_text="HMAC-SHA256 of who: a client or an address.")
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["kind", "key", "at"], name="front_door_attempt_count")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class RecruitmentInvitation(models.Model):
    """One e-mail with a trial's public recruitment link, sent from a coordinator's contact
    list (surveys.services.recruitment_invitations_send). Keyed by a keyed hash of the address,
    never the address itself, so a list uploaded twice e-mails nobody twice. A row is claimed
    (``claimed_at``) before its e-mail goes out, so it is sent at most once; a send the mail
    server refused releases the claim for the next upload."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=64, help_text="HMAC-SHA256 of the address.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "key"], name="recruitment_once_per_address")
        ]

    def __str__(self) -> str:
        return f"recruitment e-mail {self.pk} of {self.trial_id}"
