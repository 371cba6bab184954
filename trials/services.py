"""Writes to trials/: every change goes through one of these functions, atomically, with its
audit row (DESIGN.md §4)."""

import hashlib
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trials.canonical import sha256_of
from trials.models import (
    Allocation,
    Approval,
    Arm,
    Community,
    ConsentDocument,
    ConsentGrant,
    ConsentScope,
    OversightBody,
    Participant,
    ParticipantContact,
    PreRegistration,
    Trial,
    TrialEvent,
    TrialOversight,
)

State = Trial.State

# Lifecycle: which states each state may move to.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    State.DRAFT: {State.REGISTERED, State.TERMINATED},
    State.REGISTERED: {State.ENROLLING, State.TERMINATED},
    State.ENROLLING: {State.FOLLOW_UP, State.SUSPENDED, State.TERMINATED},
    State.FOLLOW_UP: {State.CLOSED, State.SUSPENDED, State.TERMINATED},
    State.SUSPENDED: {State.ENROLLING, State.FOLLOW_UP, State.TERMINATED},
    State.CLOSED: {State.ANALYSED},
    State.ANALYSED: set(),
    State.TERMINATED: set(),
}


def _event(trial: Trial, kind: str, actor: AbstractBaseUser | None, **detail) -> TrialEvent:
    return TrialEvent.objects.create(trial=trial, kind=kind, actor=actor, detail=detail)


@transaction.atomic
def trial_create(
    *, slug: str, title: str, description: str = "", actor: AbstractBaseUser | None = None
) -> Trial:
    trial = Trial(slug=slug, title=title, description=description)
    trial.full_clean()
    trial.save()
    _event(trial, "trial_created", actor)
    return trial


def arm_config(arm: Arm) -> dict:
    """The fields that define an assistant configuration, in the form that is hashed."""
    return {
        "slug": arm.slug,
        "endpoint_url": arm.endpoint_url,
        "model_id": arm.model_id,
        "model_version": arm.model_version,
        "system_prompt": arm.system_prompt,
        "memory_policy": arm.memory_policy,
        "parameters": arm.parameters,
    }


@transaction.atomic
def arm_create(
    *,
    trial: Trial,
    slug: str,
    name: str,
    endpoint_url: str,
    model_id: str,
    model_version: str,
    system_prompt: str,
    memory_policy: str = "none",
    parameters: dict | None = None,
    is_control: bool = False,
    actor: AbstractBaseUser | None = None,
) -> Arm:
    if trial.state != State.DRAFT:
        raise ValidationError("Arms can only be added while the trial is a draft.")
    arm = Arm(
        trial=trial,
        slug=slug,
        name=name,
        endpoint_url=endpoint_url,
        model_id=model_id,
        model_version=model_version,
        system_prompt=system_prompt,
        memory_policy=memory_policy,
        parameters=parameters or {},
        is_control=is_control,
    )
    arm.config_hash = sha256_of(arm_config(arm))
    arm.full_clean()
    arm.save()
    _event(trial, "arm_created", actor, arm=slug, config_hash=arm.config_hash)
    return arm


@transaction.atomic
def preregistration_freeze(
    *, trial: Trial, plan: dict, actor: AbstractBaseUser | None = None
) -> PreRegistration:
    """Store ``plan`` as the next frozen version, bound to the arms' configuration hashes."""
    arms = list(trial.arms.order_by("slug"))
    if len(arms) < 2:
        raise ValidationError("A trial needs at least two arms before its plan is frozen.")
    latest = trial.preregistrations.order_by("-version").first()
    content = {
        "trial": trial.slug,
        "plan": plan,
        "arms": {arm.slug: arm.config_hash for arm in arms},
    }
    prereg = PreRegistration.objects.create(
        trial=trial,
        version=(latest.version + 1) if latest else 1,
        plan=content,
        frozen_at=timezone.now(),
        sha256=sha256_of(content),
    )
    _event(trial, "preregistration_frozen", actor, version=prereg.version, sha256=prereg.sha256)
    return prereg


def preregistration_current(trial: Trial) -> PreRegistration | None:
    return trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version").first()


@transaction.atomic
def oversight_assign(*, trial: Trial, body: OversightBody, required: bool = True) -> None:
    TrialOversight.objects.get_or_create(trial=trial, body=body, defaults={"required": required})
    _event(trial, "oversight_assigned", None, body=body.name, required=required)


@transaction.atomic
def approval_record(
    *,
    body: OversightBody,
    preregistration: PreRegistration,
    actor: AbstractBaseUser | None = None,
    note: str = "",
) -> Approval:
    if preregistration.frozen_at is None:
        raise ValidationError("Only a frozen pre-registration can be approved.")
    approval, _ = Approval.objects.get_or_create(
        body=body,
        preregistration=preregistration,
        defaults={"decided_by": actor, "note": note},
    )
    _event(
        preregistration.trial,
        "approval_recorded",
        actor,
        body=body.name,
        version=preregistration.version,
    )
    return approval


def missing_approvals(trial: Trial) -> list[str]:
    """Names of required bodies that have not approved the current pre-registration version."""
    current = preregistration_current(trial)
    required = trial.oversight.filter(required=True).select_related("body")
    approved = set()
    if current is not None:
        approved = set(current.approvals.values_list("body_id", flat=True))
    return sorted(link.body.name for link in required if link.body_id not in approved)


@transaction.atomic
def trial_transition(
    *, trial: Trial, to: str, actor: AbstractBaseUser | None = None, reason: str = ""
) -> Trial:
    trial = Trial.objects.select_for_update().get(pk=trial.pk)
    if to not in ALLOWED_TRANSITIONS[trial.state]:
        raise ValidationError(
            f"A trial cannot move from {trial.get_state_display().lower()} to "
            f"{State(to).label.lower()}."
        )
    if to == State.REGISTERED and preregistration_current(trial) is None:
        raise ValidationError("Freeze a pre-registration before registering the trial.")
    if to == State.ENROLLING:
        missing = missing_approvals(trial)
        if missing:
            raise ValidationError(
                "Enrolment needs the approval of every required body for the current "
                f"pre-registration; missing: {', '.join(missing)}."
            )
    previous = trial.state
    trial.state = to
    trial.save(update_fields=["state"])
    _event(trial, "state_changed", actor, previous=previous, to=to, reason=reason)
    return trial


def allocate_salted_hash(trial: Trial, participant_id: str, arms: list[Arm]) -> Arm:
    """Deterministic allocation: the same trial salt and participant always give the same arm."""
    digest = hashlib.sha256(f"{trial.allocation_salt}:{participant_id}".encode()).digest()
    return arms[int.from_bytes(digest[:8], "big") % len(arms)]


@transaction.atomic
def participant_enrol(
    *,
    trial: Trial,
    email: str,
    consent_document: ConsentDocument,
    scopes: Iterable[str],
    community: Community | None = None,
    locale: str = "en",
    enrolled_at: datetime | None = None,
) -> Participant:
    if trial.state != State.ENROLLING:
        raise ValidationError("This trial is not enrolling.")
    scopes = list(scopes)
    if ConsentScope.SURVEYS not in scopes:
        raise ValidationError("Taking part requires consent to the surveys.")
    unknown = set(scopes) - set(ConsentScope.values)
    if unknown:
        raise ValidationError(f"Unknown consent scopes: {', '.join(sorted(unknown))}.")
    enrolled_at = enrolled_at or timezone.now()
    participant = Participant.objects.create(
        trial=trial, community=community, locale=locale, enrolled_at=enrolled_at
    )
    ParticipantContact.objects.create(participant=participant, email=email)
    ConsentGrant.objects.bulk_create(
        ConsentGrant(
            participant=participant, document=consent_document, scope=scope, granted_at=enrolled_at
        )
        for scope in scopes
    )
    arm = allocate_salted_hash(trial, participant.id, list(trial.arms.order_by("slug")))
    Allocation.objects.create(participant=participant, arm=arm, allocated_at=enrolled_at)
    # The audit row names the pseudonym only, never contact details.
    _event(trial, "participant_enrolled", None, participant=participant.id, scopes=scopes)
    return participant
