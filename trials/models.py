"""What is being tested, on whom, under which rules (DESIGN.md §2 "trials/")."""

import secrets

from django.conf import settings
from django.db import models


def new_secret() -> str:
    return secrets.token_hex(32)


class Trial(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        REGISTERED = "registered"
        ENROLLING = "enrolling"
        FOLLOW_UP = "follow_up", "follow-up"
        CLOSED = "closed"
        ANALYSED = "analysed"
        SUSPENDED = "suspended"
        TERMINATED = "terminated"

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Changed only through trials.services.trial_transition, which guards and audits each move.
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    # Secret per trial, so salted-hash allocation cannot be predicted from participant ids.
    allocation_salt = models.CharField(max_length=64, default=new_secret, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Arm(models.Model):
    """An assistant configuration under test; ``config_hash`` is its canonical JSON's SHA-256."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="arms")
    slug = models.SlugField()
    name = models.CharField(max_length=200)
    is_control = models.BooleanField(default=False)
    endpoint_url = models.URLField(help_text="OpenAI-compatible chat completions base URL.")
    model_id = models.CharField(max_length=200)
    model_version = models.CharField(max_length=200, help_text="Pinned model version or snapshot.")
    system_prompt = models.TextField(help_text="Constitution / system prompt.")
    memory_policy = models.CharField(max_length=100, default="none")
    parameters = models.JSONField(default=dict, blank=True)
    config_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "slug"], name="arm_unique_slug")]
        ordering = ["trial", "-is_control", "slug"]

    def __str__(self) -> str:
        return f"{self.trial.slug}/{self.slug}"


class PreRegistration(models.Model):
    """One version of a trial's analysis plan; frozen versions are never changed."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="preregistrations")
    version = models.PositiveIntegerField()
    plan = models.JSONField(default=dict)
    rationale = models.TextField(blank=True, help_text="Why this version (amendments).")
    frozen_at = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "version"], name="prereg_unique_version")
        ]
        ordering = ["trial", "-version"]

    def __str__(self) -> str:
        return f"{self.trial.slug} v{self.version}"


class OversightBody(models.Model):
    class Kind(models.TextChoices):
        ETHICS_BOARD = "ethics_board", "ethics board"
        COMMUNITY_COUNCIL = "community_council", "community council"
        DATA_PROTECTION = "data_protection", "data-protection officer"
        OTHER = "other"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True)

    def __str__(self) -> str:
        return self.name


class TrialOversight(models.Model):
    """A body assigned to a trial; a required body must approve before enrolment opens."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="oversight")
    body = models.ForeignKey(OversightBody, on_delete=models.PROTECT)
    required = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "body"], name="oversight_unique_body")
        ]

    def __str__(self) -> str:
        return f"{self.body} on {self.trial}"


class Approval(models.Model):
    """A body's approval of one specific pre-registration version."""

    body = models.ForeignKey(OversightBody, on_delete=models.PROTECT)
    preregistration = models.ForeignKey(
        PreRegistration, on_delete=models.PROTECT, related_name="approvals"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["body", "preregistration"], name="approval_unique")
        ]

    def __str__(self) -> str:
        return f"{self.body} approved {self.preregistration}"


class Community(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    locale = models.CharField(max_length=10, default="en")

    class Meta:
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name


class FlourishingProfile(models.Model):
    """A community's own, versioned weights over flourishing dimensions."""

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="profiles")
    version = models.PositiveIntegerField()
    weights = models.JSONField(help_text='Dimension → weight, e.g. {"meaning": 0.6, ...}.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["community", "version"], name="profile_unique_version")
        ]

    def __str__(self) -> str:
        return f"{self.community} profile v{self.version}"


def new_participant_id() -> str:
    # 128 random bits: pseudonymous and not enumerable.
    return secrets.token_urlsafe(16)


class Participant(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_participant_id)
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="participants")
    community = models.ForeignKey(Community, null=True, blank=True, on_delete=models.PROTECT)
    locale = models.CharField(max_length=10, default="en")
    enrolled_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.id


class ParticipantContact(models.Model):
    """Personal data, kept apart so analysts never see it and erasure can delete it."""

    participant = models.OneToOneField(
        Participant, primary_key=True, on_delete=models.CASCADE, related_name="contact"
    )
    email = models.EmailField()

    def __str__(self) -> str:
        return f"contact of {self.participant_id}"


class ConsentScope(models.TextChoices):
    SURVEYS = "surveys"
    TELEMETRY = "telemetry"
    CONVERSATION_CONTENT = "conversation_content", "conversation content"
    DATA_SHARING = "data_sharing", "data sharing"


class ConsentDocument(models.Model):
    class WithdrawalRule(models.TextChoices):
        KEEP_UNTIL_WITHDRAWAL = "keep", "keep data collected until withdrawal"
        ERASE = "erase", "erase all data on withdrawal"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="consent_documents")
    version = models.PositiveIntegerField()
    locale = models.CharField(max_length=10, default="en")
    text = models.TextField()
    withdrawal_rule = models.CharField(
        max_length=10, choices=WithdrawalRule.choices, default=WithdrawalRule.KEEP_UNTIL_WITHDRAWAL
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "version", "locale"], name="consent_doc_unique_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trial} consent v{self.version} ({self.locale})"


class ConsentGrant(models.Model):
    """One data stream consented to under one document; revoking sets ``revoked_at``."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="consents")
    document = models.ForeignKey(ConsentDocument, on_delete=models.PROTECT)
    scope = models.CharField(max_length=30, choices=ConsentScope.choices)
    granted_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "scope"],
                condition=models.Q(revoked_at__isnull=True),
                name="consent_one_active_grant_per_scope",
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}: {self.scope}"


class Allocation(models.Model):
    """A participant's arm: one per participant, written once."""

    participant = models.OneToOneField(
        Participant, primary_key=True, on_delete=models.CASCADE, related_name="allocation"
    )
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="allocations")
    allocated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.participant_id} → {self.arm.slug}"


class TrialEvent(models.Model):
    """Audit row, written in the same transaction as the change it records."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=50)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    at = models.DateTimeField(auto_now_add=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.trial} {self.kind}"
