"""What can go wrong for participants and with the assistants under test: adverse events,
flags on a participant (reliable deterioration, a crisis answer) and the arms' canary checks
(docs/architecture.md, "Safety")."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from trials.models import Arm, Participant, Trial


class AdverseEvent(models.Model):
    """Something that went wrong for a participant, reported by them or recorded by a
    coordinator, with the fields a trial registry asks for (ICH E2A; ClinicalTrials.gov's adverse
    event module). A participant's report is assessed later by a coordinator, who fills in
    seriousness, relatedness, expectedness and outcome; nothing is deleted."""

    class Source(models.TextChoices):
        PARTICIPANT = "participant", "reported by the participant"
        COORDINATOR = "coordinator", "recorded by a coordinator"

    class Category(models.TextChoices):
        DISTRESS = "distress", "felt worse, distressed or anxious"
        HARMFUL_REPLY = "harmful_reply", "the assistant said something harmful or upsetting"
        BAD_ADVICE = "bad_advice", "the assistant gave wrong or unsafe advice"
        DEPENDENCE = "dependence", "relied on the assistant too much"
        PRIVACY = "privacy", "a privacy concern"
        OTHER = "other"

    class Severity(models.TextChoices):
        MILD = "mild"
        MODERATE = "moderate"
        SEVERE = "severe"

    class Relatedness(models.TextChoices):
        NOT_ASSESSED = "not_assessed", "not yet assessed"
        NOT_RELATED = "not_related", "not related"
        UNLIKELY = "unlikely", "unlikely related"
        POSSIBLY = "possibly", "possibly related"
        PROBABLY = "probably", "probably related"
        DEFINITELY = "definitely", "definitely related"

    class Outcome(models.TextChoices):
        UNKNOWN = "unknown"
        RECOVERING = "recovering", "recovering or resolving"
        RECOVERED = "recovered", "recovered or resolved"
        RECOVERED_WITH_SEQUELAE = "sequelae", "recovered with lasting effects"
        NOT_RECOVERED = "not_recovered", "not recovered or not resolved"
        FATAL = "fatal"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="adverse_events")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="adverse_events"
    )
    source = models.CharField(max_length=20, choices=Source.choices)
    category = models.CharField(max_length=20, choices=Category.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    description = models.TextField(
        blank=True, help_text="Free text, optional; may hold personal details."
    )
    # What a coordinator assesses (set when recorded by one, later for a participant's report).
    serious = models.BooleanField(
        null=True,
        blank=True,
        help_text="Death, life-threatening, hospitalisation, lasting disability, or another "
        "medically important event (ICH E2A); empty until assessed.",
    )
    relatedness = models.CharField(
        max_length=20, choices=Relatedness.choices, default=Relatedness.NOT_ASSESSED
    )
    expected = models.BooleanField(
        null=True, blank=True, help_text="Listed as a foreseeable risk in the consent document."
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.UNKNOWN)
    onset_date = models.DateField(null=True, blank=True)
    resolved_date = models.DateField(null=True, blank=True)
    # The wave whose end the participant reported from, if any (surveys.Wave's index).
    wave_index = models.PositiveIntegerField(null=True, blank=True)
    reported_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assessed_at = models.DateTimeField(null=True, blank=True)
    assessed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial", "-reported_at"]
        indexes = [models.Index(fields=["trial", "serious"], name="adverse_event_serious")]

    def __str__(self) -> str:
        return f"{self.trial}: {self.get_category_display()} ({self.reported_at:%Y-%m-%d})"


class SafetyFlag(models.Model):
    """A participant who needs a coordinator's attention: a reliable deterioration on a primary
    outcome, or an answer an instrument declares a safety item (PHQ-9's item 9). It names no arm,
    so blinded roles can act on it. ``source_key`` makes raising it idempotent (the analysis run
    and outcome, or the response and item)."""

    class Kind(models.TextChoices):
        DETERIORATION = "deterioration", "reliable deterioration"
        SAFETY_ANSWER = "safety_answer", "safety answer"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="safety_flags")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="safety_flags"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source_key = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True, help_text="What the coordinator did.")

    class Meta:
        ordering = ["trial", "-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "kind", "source_key"], name="safety_flag_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial}: {self.get_kind_display()} of {self.participant_id}"


class CanaryCheck(models.Model):
    """One canary prompt sent to an arm's endpoint by the drift watch, and what came back: the
    ``model`` and ``system_fingerprint`` the endpoint reported (OpenAI's chat completion object)
    and simple statistics of the reply. ``drifted`` is true when the served model is not the
    arm's pinned version."""

    class Status(models.TextChoices):
        OK = "ok"
        DRIFTED = "drifted", "model changed"
        UNREACHABLE = "unreachable", "endpoint did not answer"

    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="canary_checks")
    sweep = models.CharField(max_length=40, help_text="The sweep that sent it (one per beat).")
    prompt_index = models.PositiveSmallIntegerField()
    checked_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices)
    served_model = models.CharField(max_length=200, blank=True)
    system_fingerprint = models.CharField(max_length=200, blank=True)
    reply_stats = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["arm", "-checked_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["arm", "sweep", "prompt_index"], name="canary_check_once_per_sweep"
            )
        ]

    def __str__(self) -> str:
        return f"{self.arm}: {self.get_status_display()} ({self.checked_at:%Y-%m-%d %H:%M})"
