"""What is being tested, on whom, under which rules (docs/architecture.md, "The layers")."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from trials.plan import FrozenRecord, Plan, plan_parse


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
    # The concealed randomisation secret: it seeds the permuted-block sequence and the salted hash.
    # Never shown in the admin; the pre-registration commits to it by hash; the database refuses
    # to change it.
    allocation_salt = models.CharField(max_length=64, default=new_secret, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(excluded_fields=["allocation_salt"])

    def __str__(self) -> str:
        return self.slug


class TrialMember(models.Model):
    """Who works on a trial, and as what: the source of per-trial object permissions."""

    class Role(models.TextChoices):
        COORDINATOR = "coordinator"
        ANALYST = "analyst"

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, choices=Role.choices)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "user", "role"], name="member_unique_role")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) on {self.trial}"


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
    flourishing_profile = models.ForeignKey(
        "FlourishingProfile",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="The community profile this assistant is steered towards, if any.",
    )
    config_hash = models.CharField(max_length=64, editable=False)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "slug"], name="arm_unique_slug")]
        ordering = ["trial", "-is_control", "slug"]

    def __str__(self) -> str:
        return f"{self.trial.slug}/{self.slug}"


class PreRegistration(models.Model):
    """One version of a trial's analysis plan.

    A draft holds the coordinator's plan in ``draft_plan``; freezing stores the canonical record
    (the plan, the arms' configurations and hashes, the allocation commitment: see
    ``trials.services``) in ``record`` with its SHA-256 and clears the draft. The database refuses
    any UPDATE or DELETE of a frozen row (migration 0003). Read the plan through :attr:`plan`,
    which is typed (``trials.plan.Plan``) whichever state the version is in."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="preregistrations")
    version = models.PositiveIntegerField()
    draft_plan = models.JSONField(
        null=True, blank=True, help_text="The plan being written; empty once frozen."
    )
    record = models.JSONField(
        default=dict, help_text="The frozen record that sha256 is the hash of; empty for a draft."
    )
    rationale = models.TextField(blank=True, help_text="Why this version (amendments).")
    frozen_at = models.DateTimeField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trial", "version"], name="prereg_unique_version")
        ]
        ordering = ["trial", "-version"]

    def __str__(self) -> str:
        return f"{self.trial.slug} v{self.version}"

    @property
    def frozen_record(self) -> FrozenRecord | None:
        return FrozenRecord.model_validate(self.record) if self.frozen_at else None

    @property
    def plan(self) -> Plan:
        """The frozen plan, or the draft's (an empty plan while nothing is written)."""
        record = self.frozen_record
        return record.plan if record else plan_parse(self.draft_plan or {})


class ProtocolDeviation(models.Model):
    """A departure from the registered protocol, recorded and never edited or removed."""

    class Kind(models.TextChoices):
        AMENDMENT = "amendment", "plan amendment"
        ARM_CHANGE = "arm_change", "arm configuration change"
        OTHER = "other"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="deviations")
    preregistration = models.ForeignKey(
        PreRegistration,
        on_delete=models.PROTECT,
        help_text="The version in force when the deviation happened.",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.TextField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    chain_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of the audit event that recorded it."
    )

    audit_trial_path = "trial"
    audit_fields = ("trial_id", "preregistration_id", "kind", "description", "recorded_at")

    class Meta:
        ordering = ["trial", "recorded_at"]

    def __str__(self) -> str:
        return f"{self.trial}: {self.get_kind_display()} ({self.recorded_at:%Y-%m-%d})"


class OversightBody(models.Model):
    class Kind(models.TextChoices):
        ETHICS_BOARD = "ethics_board", "ethics board"
        COMMUNITY_COUNCIL = "community_council", "community council"
        DATA_PROTECTION = "data_protection", "data-protection officer"
        # Sees the trial's harms and outcomes per arm, unblinded (the other kinds see them blinded).
        DATA_MONITORING_COMMITTEE = "data_monitoring_committee", "data monitoring committee"
        OTHER = "other"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True)
    history = HistoricalRecords(m2m_fields=[members])

    def __str__(self) -> str:
        return self.name


class TrialOversight(models.Model):
    """A body assigned to a trial; a required body must approve before enrolment opens."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="oversight")
    body = models.ForeignKey(OversightBody, on_delete=models.PROTECT)
    required = models.BooleanField(default=True)
    history = HistoricalRecords()

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
    chain_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of the audit event that recorded it."
    )

    # What the audit chain vouches for (trials.audit); who decided is a nullable link, so it is
    # named in the recording event instead.
    audit_trial_path = "preregistration__trial"
    audit_fields = ("body_id", "preregistration_id", "decided_at", "note")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["body", "preregistration"], name="approval_unique")
        ]

    def __str__(self) -> str:
        return f"{self.body} approved {self.preregistration}"


class Suspension(models.Model):
    """A body's suspension of a trial. It stands until it is lifted (``lifted_at`` set), by the
    body itself or, when the plan says ``safety.suspension_lifted_by = "every_required_body"``,
    by every required body as well (one ``SuspensionLift`` each; trials.services.suspension_lift).
    While any stands, no coordinator moves the trial out of suspension. Nothing is deleted:
    lifting only sets ``lifted_at``."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="suspensions")
    body = models.ForeignKey(OversightBody, on_delete=models.PROTECT, related_name="suspensions")
    reason = models.TextField()
    suspended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    suspended_at = models.DateTimeField(default=timezone.now)
    state_before = models.CharField(
        max_length=20,
        choices=Trial.State.choices,
        help_text="The state the trial returns to when the last standing suspension is lifted.",
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    chain_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of the audit event that recorded it."
    )

    # What the suspending event vouches for (trials.audit): what never changes; the lifts are
    # chained rows of their own.
    audit_trial_path = "trial"
    audit_fields = ("trial_id", "body_id", "reason", "suspended_at", "state_before")

    class Meta:
        ordering = ["trial", "suspended_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial", "body"],
                condition=models.Q(lifted_at__isnull=True),
                name="suspension_one_standing_per_body",
            )
        ]

    def __str__(self) -> str:
        return f"{self.body} suspended {self.trial} ({self.suspended_at:%Y-%m-%d})"


class SuspensionLift(models.Model):
    """One body's lifting of a suspension, with its rationale."""

    suspension = models.ForeignKey(Suspension, on_delete=models.PROTECT, related_name="lifts")
    body = models.ForeignKey(OversightBody, on_delete=models.PROTECT, related_name="+")
    rationale = models.TextField()
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    lifted_at = models.DateTimeField(default=timezone.now)
    chain_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of the audit event that recorded it."
    )

    audit_trial_path = "suspension__trial"
    audit_fields = ("suspension_id", "body_id", "rationale", "lifted_at")

    class Meta:
        ordering = ["suspension", "lifted_at"]
        constraints = [
            models.UniqueConstraint(fields=["suspension", "body"], name="suspension_lift_per_body")
        ]

    def __str__(self) -> str:
        return f"{self.body} lifted {self.suspension}"


class Community(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    locale = models.CharField(max_length=10, default="en")
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "communities"

    def __str__(self) -> str:
        return self.name


class FlourishingProfile(models.Model):
    """A community's own, versioned weights over flourishing dimensions."""

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="profiles")
    version = models.PositiveIntegerField()
    weights = models.JSONField(help_text='Dimension → weight, e.g. {"meaning": 0.6, ...}.')
    priorities = models.TextField(blank=True, help_text="The community's own words.")
    locale = models.CharField(max_length=10, default="en")
    authored_by = models.CharField(
        max_length=200, help_text="Who in the community wrote this version (e.g. its council)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

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
    withdrawal_reason = models.CharField(max_length=200, blank=True)
    # Set when withdrawal erased the participant's data; the pseudonym and allocation stay so
    # the CONSORT flow still counts them.
    erased_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.id


class EligibilityScreening(models.Model):
    """One person assessed for eligibility: the top of the CONSORT flow. Holds no PII."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="screenings")
    screened_at = models.DateTimeField()
    eligible = models.BooleanField()
    exclusion_reason = models.CharField(max_length=200, blank=True)
    participant = models.OneToOneField(
        Participant, null=True, blank=True, on_delete=models.SET_NULL, related_name="screening"
    )

    def __str__(self) -> str:
        return f"{self.trial} screening {self.pk}"


class ParticipantContact(models.Model):
    """Personal data, kept apart so analysts never see it and erasure can delete it."""

    participant = models.OneToOneField(
        Participant, primary_key=True, on_delete=models.CASCADE, related_name="contact"
    )
    # Denormalised from the participant so the database can refuse a second enrolment of the
    # same address in one trial, even when two requests race.
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    email = models.EmailField()
    # The consent page's signature: the name the person typed and when they signed (the e-mail
    # confirmation that enrols them comes later).
    signature_name = models.CharField(max_length=200, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    # The PDF copy of what was agreed (surveys.consent_copies): the SHA-256 of the plan in force
    # when it was made, which it names, and the SHA-256 of the copy itself. Set once; a copy
    # rebuilt for a download must hash to it.
    registration_sha256 = models.CharField(max_length=64, blank=True)
    consent_copy_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("trial", Lower("email"), name="contact_one_enrolment_per_email")
        ]

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
    scopes = models.JSONField(
        default=list, help_text="The data streams this document asks consent for."
    )
    withdrawal_rule = models.CharField(
        max_length=10, choices=WithdrawalRule.choices, default=WithdrawalRule.KEEP_UNTIL_WITHDRAWAL
    )
    support_resources = models.TextField(
        blank=True,
        help_text="Where to get help now (crisis lines, services) in this document's language: "
        "shown on the trial's support page when an answer or a report calls for it.",
    )
    history = HistoricalRecords()

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


class AllocationStratum(models.Model):
    """The next unused position of one stratum's concealed permuted-block sequence, and the
    block that allocation walks on from (``trials.randomisation.block_holding``), so that an
    enrolment never re-walks the blocks before it."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="strata")
    key = models.CharField(max_length=200, help_text='e.g. "community=general|locale=en".')
    next_position = models.PositiveIntegerField(default=0)
    block_number = models.PositiveIntegerField(
        default=0, help_text="The number of a block that starts at or before the next position."
    )
    block_start = models.PositiveIntegerField(
        default=0, help_text="The position of that block's first arm."
    )
    block_layout = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="SHA-256 of the ratio and block sizes the block was found under "
        "(trials.randomisation.block_layout); under any other the walk starts again at block 0.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "key"], name="stratum_unique_key")]

    def __str__(self) -> str:
        return f"{self.trial} [{self.key}]"


class Allocation(models.Model):
    """A participant's arm: one per participant, written once (the database refuses changes).

    For permuted blocks, ``stratum`` and ``position`` say which element of the concealed sequence
    was used, so anyone holding the seed can re-derive and audit every allocation."""

    participant = models.OneToOneField(
        Participant, primary_key=True, on_delete=models.PROTECT, related_name="allocation"
    )
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="allocations")
    allocated_at = models.DateTimeField()
    stratum = models.ForeignKey(
        AllocationStratum, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    position = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stratum", "position"], name="allocation_position_used_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} → {self.arm.slug}"


class TrialEvent(models.Model):
    """Audit row, written in the same transaction as the change it records, as the next link of
    the trial's hash chain (trials.audit): deleting, reordering or editing any row shows."""

    class Kind(models.TextChoices):
        """Every kind of event, in one place (trials.audit refuses any other). The value is part
        of each event's hash: a value never changes once events of its kind exist."""

        # The trial and the people who run it
        TRIAL_CREATED = "trial_created"
        TRIAL_DESCRIBED = "trial_described"
        MEMBER_ADDED = "member_added"
        STATE_CHANGED = "state_changed"
        # Arms and the plan
        ARM_CREATED = "arm_created"
        ARM_CHANGED = "arm_changed"
        ARM_AMENDED = "arm_amended"
        PREREGISTRATION_DRAFT_SAVED = "preregistration_draft_saved"
        PREREGISTRATION_FROZEN = "preregistration_frozen"
        DEVIATION_RECORDED = "deviation_recorded"
        # Oversight
        OVERSIGHT_ASSIGNED = "oversight_assigned"
        APPROVAL_RECORDED = "approval_recorded"
        CHANGES_REQUESTED = "changes_requested"
        SUSPENSION_LIFTED = "suspension_lifted"
        # Participants and consent
        PARTICIPANT_ENROLLED = "participant_enrolled"
        PARTICIPANT_WITHDREW = "participant_withdrew"
        CONSENT_GRANTED = "consent_granted"
        CONSENT_REVOKED = "consent_revoked"
        # Surveys
        WAVE_CREATED = "wave_created"
        WAVE_CHANGED = "wave_changed"
        INVITATION_RELEASED = "invitation_released"
        RECRUITMENT_INVITED = "recruitment_invited"
        # Analyses
        ANALYSIS_RUN_STARTED = "analysis_run_started"
        ANALYSIS_RUN_REQUEUED = "analysis_run_requeued"
        ANALYSIS_RUN_FINISHED = "analysis_run_finished"
        ANALYSIS_RUN_FAILED = "analysis_run_failed"
        # Telemetry and the privacy ledger
        PRIVACY_BUDGET_RESERVED = "privacy_budget_reserved"
        PRIVACY_BUDGET_REFUSED = "privacy_budget_refused"
        TELEMETRY_RELEASED = "telemetry_released"
        TELEMETRY_WINDOW_WAITING = "telemetry_window_waiting"
        # Refusals and integrity
        ACCESS_REFUSED = "access_refused"
        EDIT_REFUSED = "edit_refused"
        ARM_INTEGRITY_FAILURE = "arm_integrity_failure"
        # Safety: harms, deterioration, crisis answers, the harm boundaries
        ADVERSE_EVENT_REPORTED = "adverse_event_reported"
        ADVERSE_EVENT_RECORDED = "adverse_event_recorded"
        ADVERSE_EVENT_ASSESSED = "adverse_event_assessed"
        DETERIORATION_FLAGGED = "deterioration_flagged"
        SAFETY_ANSWER_FLAGGED = "safety_answer_flagged"
        SAFETY_FLAG_ACKNOWLEDGED = "safety_flag_acknowledged"
        HARM_BOUNDARY_CROSSED = "harm_boundary_crossed"
        GUARDRAIL_FLAGGED = "guardrail_flagged"
        # A row written before the chain existed, vouched for by a migration
        RECORD_CHAINED = "record_chained"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="events")
    sequence = models.PositiveIntegerField(help_text="1, 2, 3, … within the trial.")
    kind = models.CharField(max_length=50, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="Who acted, kept when their account is deleted."
    )
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "sequence"], name="one_event_per_position")
        ]

    def __str__(self) -> str:
        return f"{self.trial} {self.kind}"
