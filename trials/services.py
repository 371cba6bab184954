"""Writes to trials/: every change goes through one of these functions, atomically, with its
audit row (docs/architecture.md, "Inside an app")."""

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from trials.audit import audit_append
from trials.canonical import sha256_of
from trials.dimensions import FLOURISHING_DIMENSIONS
from trials.locks import stratum_lock, trial_lock
from trials.models import (
    Allocation,
    Approval,
    Arm,
    Community,
    ConsentDocument,
    ConsentGrant,
    ConsentScope,
    EligibilityScreening,
    FlourishingProfile,
    OversightBody,
    Participant,
    ParticipantContact,
    PreRegistration,
    ProtocolDeviation,
    Suspension,
    SuspensionLift,
    Trial,
    TrialEvent,
    TrialMember,
    TrialOversight,
)
from trials.plan import Plan, PlanError, freeze_errors, plan_parse
from trials.randomisation import (
    BlockCursor,
    block_holding,
    block_layout,
    salted_hash_arm,
    sequence_commitment,
    stratum_key,
)
from trials.selectors import (
    consent_document_for,
    missing_approvals,
    preregistration_current,
    preregistration_draft,
    suspensions_standing,
)
from trials.signals import participant_erased

State = Trial.State
User = AbstractBaseUser

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
# States in which the registered protocol is in force and can only be amended.
AMENDABLE_STATES = {State.REGISTERED, State.ENROLLING, State.FOLLOW_UP, State.SUSPENDED}

ASSIGNMENT_TOKEN_SALT = "flourish.trials.assignment"
# What trials.models.new_participant_id makes: URL-safe base64, at most the column's 32 characters.
PSEUDONYM = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _event(
    trial: Trial, kind: TrialEvent.Kind, actor: User | None, *, record=None, **detail
) -> TrialEvent:
    return audit_append(trial=trial, kind=kind, actor=actor, record=record, detail=detail)


def _actor_id(actor: User | None) -> int | None:
    return actor.pk if actor is not None else None


@transaction.atomic
def event_record(
    *, trial: Trial, kind: TrialEvent.Kind, actor: User | None = None, record=None, **detail
) -> TrialEvent:
    """An audit row on its own, e.g. a refused attempt that rolled back the change it tried;
    with ``record``, the event vouches for that row's content (trials.audit)."""
    return _event(trial, kind, actor, record=record, **detail)


# --- trials and the people who run them ----------------------------------------------------


@transaction.atomic
def trial_create(
    *, slug: str, title: str, description: str = "", actor: User | None = None
) -> Trial:
    """A draft trial; whoever creates it becomes its first coordinator."""
    trial = Trial(slug=slug, title=title, description=description)
    trial.full_clean()
    trial.save()
    _event(trial, TrialEvent.Kind.TRIAL_CREATED, actor)
    if actor is not None:
        TrialMember.objects.create(trial=trial, user=actor, role=TrialMember.Role.COORDINATOR)
    return trial


@transaction.atomic
def trial_describe(
    *, trial: Trial, title: str, description: str, actor: User | None = None
) -> Trial:
    """Change what a trial is called and how it is described (not what it tests)."""
    trial = trial_lock(trial)
    trial.title, trial.description = title, description
    trial.full_clean()
    trial.save(update_fields=["title", "description"])
    _event(trial, TrialEvent.Kind.TRIAL_DESCRIBED, actor)
    return trial


@transaction.atomic
def member_add(
    *, trial: Trial, user: AbstractBaseUser, role: str, actor: User | None = None
) -> TrialMember:
    member, created = TrialMember.objects.get_or_create(trial=trial, user=user, role=role)
    if created:
        _event(trial, TrialEvent.Kind.MEMBER_ADDED, actor, user=user.get_username(), role=role)
    return member


# --- arms -----------------------------------------------------------------------------------


def arm_config(arm: Arm) -> dict[str, Any]:
    """The fields that define an assistant configuration, in the form that is hashed."""
    profile = arm.flourishing_profile
    return {
        "slug": arm.slug,
        "endpoint_url": arm.endpoint_url,
        "model_id": arm.model_id,
        "model_version": arm.model_version,
        "system_prompt": arm.system_prompt,
        "memory_policy": arm.memory_policy,
        "parameters": arm.parameters,
        "flourishing_profile": (
            {"community": profile.community.slug, "version": profile.version} if profile else None
        ),
    }


def _arm_store(arm: Arm) -> Arm:
    arm.config_hash = sha256_of(arm_config(arm))
    arm.full_clean()
    arm.save()
    return arm


@transaction.atomic
def arm_save(*, arm: Arm, actor: User | None = None) -> Arm:
    """Create or change an arm while its trial is a draft; later changes are amendments."""
    trial = trial_lock(arm.trial)
    if trial.state != State.DRAFT:
        raise ValidationError(
            "Arms can only be edited while the trial is a draft; after registration a change "
            "is an amendment (it records a protocol deviation and needs new approvals)."
        )
    created = arm.pk is None
    _arm_store(arm)
    kind = TrialEvent.Kind.ARM_CREATED if created else TrialEvent.Kind.ARM_CHANGED
    _event(trial, kind, actor, arm=arm.slug, config_hash=arm.config_hash)
    return arm


def arm_create(*, trial: Trial, actor: User | None = None, **fields) -> Arm:
    return arm_save(arm=Arm(trial=trial, **fields), actor=actor)


ARM_CONFIG_FIELDS = {
    "endpoint_url",
    "model_id",
    "model_version",
    "system_prompt",
    "memory_policy",
    "parameters",
    "flourishing_profile",
}


@transaction.atomic
def arm_amend(
    *, arm: Arm, changes: dict[str, Any], rationale: str, actor: User | None = None
) -> PreRegistration:
    """Change a registered arm's configuration: a new plan version and a protocol deviation."""
    unknown = set(changes) - ARM_CONFIG_FIELDS
    if unknown:
        raise ValidationError(f"Not part of an arm's configuration: {', '.join(sorted(unknown))}.")
    trial = trial_lock(arm.trial)
    _require_amendable(trial, rationale)
    draft = preregistration_draft(trial)
    if draft is not None:
        raise ValidationError(
            f"Plan version {draft.version} is an open draft: amend with it or discard it first."
        )
    arm = Arm.objects.get(pk=arm.pk)
    previous_hash = arm.config_hash
    for field, value in changes.items():
        setattr(arm, field, value)
    _arm_store(arm)
    current = preregistration_current(trial)
    prereg = _freeze_version(trial, current.plan, rationale, actor)
    _deviation(
        trial,
        current,
        ProtocolDeviation.Kind.ARM_CHANGE,
        f"Arm {arm.slug} changed ({', '.join(sorted(changes))}): {rationale}",
        actor,
    )
    _event(
        trial,
        TrialEvent.Kind.ARM_AMENDED,
        actor,
        arm=arm.slug,
        previous_hash=previous_hash,
        config_hash=arm.config_hash,
        version=prereg.version,
    )
    return prereg


# --- pre-registration -------------------------------------------------------------------------


def _draft_or_next_version(trial: Trial) -> PreRegistration:
    """The open draft, or a new (unsaved) row numbered after the latest version."""
    draft = preregistration_draft(trial)
    if draft is not None:
        return draft
    latest = trial.preregistrations.order_by("-version").first()
    return PreRegistration(trial=trial, version=(latest.version + 1) if latest else 1)


@transaction.atomic
def preregistration_draft_save(
    *, trial: Trial, plan: Plan | dict[str, Any], rationale: str = "", actor: User | None = None
) -> PreRegistration:
    """Keep work on the next version. Only the shape is checked (each section present has the
    right type); what a frozen plan needs is checked when it is frozen."""
    plan = _parsed(plan)
    trial = trial_lock(trial)
    draft = _draft_or_next_version(trial)
    draft.draft_plan = plan.canonical()
    draft.rationale = rationale
    draft.save()
    _event(trial, TrialEvent.Kind.PREREGISTRATION_DRAFT_SAVED, actor, version=draft.version)
    return draft


def _parsed(plan: Plan | dict[str, Any]) -> Plan:
    try:
        return plan_parse(plan)
    except PlanError as error:
        raise ValidationError(error.messages) from None


def _community_weights(plan: Plan) -> dict[str, dict[str, Any]]:
    """The plan's ``{community: profile version}`` with each profile's weights copied in, so the
    frozen plan holds the weights it will be analysed with."""
    resolved = {}
    for slug, named in plan.community_weights.items():
        profile = FlourishingProfile.objects.filter(
            community__slug=slug, version=named.profile_version
        ).first()
        if profile is None:
            versions = FlourishingProfile.objects.filter(community__slug=slug).values_list(
                "version", flat=True
            )
            raise ValidationError(
                f"Community {slug} has no flourishing profile version {named.profile_version} "
                f"(versions: {', '.join(map(str, versions)) or 'none'})."
            )
        resolved[slug] = {"profile_version": profile.version, "weights": profile.weights}
    return resolved


def preregistration_record_build(*, trial: Trial, plan: Plan | dict[str, Any]) -> dict[str, Any]:
    """The record freezing ``plan`` for ``trial`` would store (the plan checked against the
    trial, the arms and the allocation commitment; its ``sha256_of`` is the version's hash), or
    the ValidationError that stops it. Writes nothing: the admin shows the hash to be before a
    coordinator confirms the freeze."""
    plan = _parsed(plan)
    arms = list(trial.arms.select_related("flourishing_profile__community").order_by("slug"))
    if len(arms) < 2:
        raise ValidationError("A trial needs at least two arms before its plan is frozen.")
    errors = freeze_errors(trial, plan, arm_slugs=[a.slug for a in arms])
    if errors:
        raise ValidationError(errors)
    plan = _parsed(plan.canonical() | {"community_weights": _community_weights(plan)})
    return {
        "trial": trial.slug,
        "plan": plan.canonical(),
        "arms": {arm.slug: arm.config_hash for arm in arms},
        "arm_configs": {arm.slug: arm_config(arm) for arm in arms},
        "allocation_sequence_sha256": sequence_commitment(
            trial.allocation_salt, plan.randomisation.model_dump(mode="json")
        ),
    }


def _freeze_version(
    trial: Trial, plan: Plan | dict[str, Any], rationale: str, actor: User | None
) -> PreRegistration:
    """Store ``plan``'s record (``preregistration_record_build``) as the next frozen version
    (the open draft, if any, becomes it)."""
    content = preregistration_record_build(trial=trial, plan=plan)
    prereg = _draft_or_next_version(trial)
    prereg.record = content
    prereg.draft_plan = None
    prereg.rationale = rationale
    prereg.frozen_at = timezone.now()
    prereg.sha256 = sha256_of(content)
    prereg.save()
    _event(
        trial,
        TrialEvent.Kind.PREREGISTRATION_FROZEN,
        actor,
        version=prereg.version,
        sha256=prereg.sha256,
    )
    return prereg


@transaction.atomic
def preregistration_freeze(
    *, trial: Trial, plan: Plan | dict[str, Any] | None = None, actor: User | None = None
) -> PreRegistration:
    """Freeze the first version of a draft trial's plan (``plan``, or the saved draft's)."""
    trial = trial_lock(trial)
    if trial.state != State.DRAFT:
        raise ValidationError(
            "This trial is registered: its plan changes only by amendment, with a rationale."
        )
    if plan is None:
        draft = preregistration_draft(trial)
        if draft is None:
            raise ValidationError("Write a draft plan before freezing it.")
        plan = draft.plan
    return _freeze_version(trial, plan, "", actor)


def _require_amendable(trial: Trial, rationale: str) -> None:
    if trial.state not in AMENDABLE_STATES:
        raise ValidationError(
            f"A {trial.get_state_display().lower()} trial cannot be amended"
            + (": edit the draft instead." if trial.state == State.DRAFT else ".")
        )
    if not rationale.strip():
        raise ValidationError("An amendment needs a rationale.")


def _deviation(
    trial: Trial, prereg: PreRegistration, kind: str, description: str, actor: User | None
) -> ProtocolDeviation:
    deviation = ProtocolDeviation.objects.create(
        trial=trial, preregistration=prereg, kind=kind, description=description, recorded_by=actor
    )
    _event(
        trial,
        TrialEvent.Kind.DEVIATION_RECORDED,
        actor,
        record=deviation,
        deviation=kind,
        version=prereg.version,
    )
    return deviation


@transaction.atomic
def preregistration_amend(
    *,
    trial: Trial,
    rationale: str,
    plan: Plan | dict[str, Any] | None = None,
    actor: User | None = None,
) -> PreRegistration:
    """A new frozen version of a registered trial's plan, recorded as a protocol deviation.

    Enrolment pauses until every required body has approved the new version."""
    trial = trial_lock(trial)
    _require_amendable(trial, rationale)
    current = preregistration_current(trial)
    if plan is None:
        draft = preregistration_draft(trial)
        if draft is None:
            raise ValidationError("Write the amended plan as a draft first.")
        plan = draft.plan
    prereg = _freeze_version(trial, plan, rationale, actor)
    _deviation(trial, current, ProtocolDeviation.Kind.AMENDMENT, rationale, actor)
    return prereg


@transaction.atomic
def deviation_record(
    *, trial: Trial, description: str, actor: User | None = None
) -> ProtocolDeviation:
    """A deviation that is not an amendment (e.g. a wave sent late), for the CONSORT report."""
    current = preregistration_current(trial)
    if current is None:
        raise ValidationError("Deviations are recorded against a registered protocol.")
    if not description.strip():
        raise ValidationError("Describe the deviation.")
    return _deviation(trial, current, ProtocolDeviation.Kind.OTHER, description, actor)


# --- polycentric oversight ------------------------------------------------------------------


def _require_body_member(actor: User | None, body: OversightBody, what: str) -> None:
    # actor None is the platform itself (seeding, simulations); people act for a body only as
    # the rule trials.act_for_body allows.
    if actor is not None and not actor.has_perm("trials.act_for_body", body):
        raise ValidationError(f"Only members of {body.name} can {what} on its behalf.")


@transaction.atomic
def oversight_assign(
    *, trial: Trial, body: OversightBody, required: bool = True, actor: User | None = None
) -> TrialOversight:
    link, created = TrialOversight.objects.get_or_create(
        trial=trial, body=body, defaults={"required": required}
    )
    if created:
        _event(trial, TrialEvent.Kind.OVERSIGHT_ASSIGNED, actor, body=body.name, required=required)
    return link


def _require_body_decides(
    body: OversightBody, preregistration: PreRegistration, actor: User | None, what: str
) -> None:
    """What an oversight body's decision on a version needs: the version frozen and still the
    latest, the body overseeing its trial, the actor acting for the body."""
    trial = preregistration.trial
    if preregistration.frozen_at is None:
        raise ValidationError(f"Only a frozen pre-registration is there to {what}.")
    if not trial.oversight.filter(body=body).exists():
        raise ValidationError(f"{body.name} does not oversee trial {trial.slug}.")
    if preregistration != preregistration_current(trial):
        raise ValidationError(
            f"Version {preregistration.version} has been superseded; turn to the current version."
        )
    _require_body_member(actor, body, what)


@transaction.atomic
def approval_record(
    *,
    body: OversightBody,
    preregistration: PreRegistration,
    actor: User | None = None,
    note: str = "",
) -> Approval:
    """``body`` approves one specific frozen version (approving it twice changes nothing)."""
    trial = preregistration.trial
    _require_body_decides(body, preregistration, actor, "approve")
    approval, created = Approval.objects.get_or_create(
        body=body,
        preregistration=preregistration,
        defaults={"decided_by": actor, "note": note},
    )
    if created:
        _event(
            trial,
            TrialEvent.Kind.APPROVAL_RECORDED,
            actor,
            record=approval,
            body=body.name,
            version=preregistration.version,
            sha256=preregistration.sha256,
        )
    return approval


@transaction.atomic
def preregistration_changes_request(
    *,
    body: OversightBody,
    preregistration: PreRegistration,
    actor: User | None,
    note: str,
) -> TrialEvent:
    """``body`` asks for changes to the version it is asked to approve, saying which: recorded
    in the audit chain; nothing is approved, and the coordinators answer with an amendment."""
    trial = preregistration.trial
    _require_body_decides(body, preregistration, actor, "ask for changes")
    if preregistration.approvals.filter(body=body).exists():
        raise ValidationError(
            f"{body.name} has approved version {preregistration.version}; an approval stands "
            "(suspend the trial if it must stop)."
        )
    if not note.strip():
        raise ValidationError("Say what should change.")
    return _event(
        trial,
        TrialEvent.Kind.CHANGES_REQUESTED,
        actor,
        body=body.name,
        version=preregistration.version,
        sha256=preregistration.sha256,
        note=note.strip(),
    )


def _state_set(trial: Trial, to: str, actor: User | None, reason: str, **detail) -> Trial:
    previous = trial.state
    trial.state = to
    trial.save(update_fields=["state"])
    kind = TrialEvent.Kind.STATE_CHANGED
    _event(trial, kind, actor, previous=previous, to=to, reason=reason, **detail)
    return trial


def _require_no_standing_suspension(trial: Trial, to: str) -> None:
    """A body's suspension is the body's to lift (``suspension_lift``): until every standing
    one is lifted, the trial leaves suspension only to be terminated, which stops it for good
    and so never undoes what a body asked for."""
    if trial.state != State.SUSPENDED or to == State.TERMINATED:
        return
    standing = suspensions_standing(trial)
    if standing:
        raise ValidationError(
            "The trial stays suspended while an oversight body's suspension stands: "
            + "; ".join(s.describe() for s in standing)
            + "."
        )


@transaction.atomic
def trial_transition(
    *, trial: Trial, to: str, actor: User | None = None, reason: str = ""
) -> Trial:
    trial = trial_lock(trial)
    if to not in ALLOWED_TRANSITIONS[trial.state]:
        raise ValidationError(
            f"A trial cannot move from {trial.get_state_display().lower()} to "
            f"{State(to).label.lower()}."
        )
    _require_no_standing_suspension(trial, to)
    if to == State.REGISTERED and preregistration_current(trial) is None:
        raise ValidationError("Freeze a pre-registration before registering the trial.")
    if to == State.ENROLLING:
        if not trial.oversight.filter(required=True).exists():
            raise ValidationError("Assign at least one required oversight body first.")
        missing = missing_approvals(trial)
        if missing:
            raise ValidationError(
                "Enrolment needs the approval of every required body for the current "
                f"pre-registration; missing: {', '.join(missing)}."
            )
    return _state_set(trial, to, actor, reason)


@transaction.atomic
def trial_suspend(
    *, trial: Trial, body: OversightBody, reason: str, actor: User | None = None
) -> Trial:
    """Any body overseeing a trial can suspend it, alone: there is no single chokepoint. Each
    body's suspension is its own (a ``Suspension``), recorded as a move to suspended that
    names the body (from suspended to suspended when another body's suspension stands
    already), and stands until lifted as ``suspension_lift`` says."""
    trial = trial_lock(trial)
    if not trial.oversight.filter(body=body).exists():
        raise ValidationError(f"{body.name} does not oversee trial {trial.slug}.")
    _require_body_member(actor, body, "suspend a trial")
    if not reason.strip():
        raise ValidationError("Give the reason for suspending the trial.")
    if trial.suspensions.filter(body=body, lifted_at__isnull=True).exists():
        raise ValidationError(f"{body.name}'s suspension of this trial stands already.")
    if trial.state == State.SUSPENDED:
        # Joining the suspensions that stand: the trial returns where they would return it.
        # Suspended without any (before suspensions were the bodies'), it stays suspended
        # when this one is lifted, and its coordinators resume it.
        earlier = trial.suspensions.filter(lifted_at__isnull=True).order_by("suspended_at")
        state_before = earlier.first().state_before if earlier.exists() else State.SUSPENDED
    elif State.SUSPENDED in ALLOWED_TRANSITIONS[trial.state]:
        state_before = trial.state
    else:
        raise ValidationError(
            f"A trial cannot move from {trial.get_state_display().lower()} to suspended."
        )
    suspension = Suspension.objects.create(
        trial=trial, body=body, reason=reason.strip(), suspended_by=actor, state_before=state_before
    )
    return _state_set(
        trial,
        State.SUSPENDED,
        actor,
        f"{body.name}: {reason.strip()}",
        body=body.name,
        record=suspension,
    )


@transaction.atomic
def suspension_lift(
    *, trial: Trial, body: OversightBody, rationale: str, actor: User | None = None
) -> list[SuspensionLift]:
    """``body`` lifts, with a rationale, every standing suspension of ``trial`` that waits for
    its lift (trials.selectors.suspension_lifters: the suspending body's own, or, under the
    plan's ``every_required_body``, any on which every required body must agree), one
    SUSPENSION_LIFTED event each. A suspension stops standing when the last body it waits for
    has lifted it; when none stands any more, the trial returns to the state it had before the
    first of them (STATE_CHANGED), unless it was terminated meanwhile."""
    trial = trial_lock(trial)
    _require_body_member(actor, body, "lift a suspension")
    if not rationale.strip():
        raise ValidationError("Say why the suspension can be lifted.")
    standing = suspensions_standing(trial)
    waiting_on_body = [s for s in standing if body in s.waiting_for]
    if not waiting_on_body:
        if not standing:
            raise ValidationError(f"No oversight body's suspension of trial {trial.slug} stands.")
        raise ValidationError(
            f"{body.name} has no suspension to lift: "
            + "; ".join(s.describe() for s in standing)
            + "."
        )
    lifts, state_before = [], None
    for entry in waiting_on_body:
        suspension = entry.suspension
        lift = SuspensionLift.objects.create(
            suspension=suspension, body=body, rationale=rationale.strip(), lifted_by=actor
        )
        still_waiting = [b.name for b in entry.waiting_for if b != body]
        if not still_waiting:
            suspension.lifted_at = lift.lifted_at
            suspension.save(update_fields=["lifted_at"])
            state_before = suspension.state_before
        _event(
            trial,
            TrialEvent.Kind.SUSPENSION_LIFTED,
            actor,
            record=lift,
            body=body.name,
            rationale=rationale.strip(),
            suspended_by=suspension.body.name,
            reason=suspension.reason,
            waiting_for=still_waiting,
        )
        lifts.append(lift)
    returns = state_before not in (None, State.SUSPENDED)
    if returns and trial.state == State.SUSPENDED and not suspensions_standing(trial):
        _state_set(
            trial,
            state_before,
            actor,
            f"Every suspension lifted, the last by {body.name}: {rationale.strip()}",
            body=body.name,
        )
    return lifts


# --- communities --------------------------------------------------------------------------


def profile_weights_errors(weights: Any) -> list[str]:
    if not isinstance(weights, dict) or not weights:
        return ["A profile weights at least one flourishing dimension."]
    unknown = set(weights) - set(FLOURISHING_DIMENSIONS)
    if unknown:
        return [f"Unknown flourishing dimensions: {', '.join(sorted(unknown))}."]
    if not all(isinstance(w, int | float) and w >= 0 for w in weights.values()):
        return ["Weights must be numbers of 0 or more."]
    if abs(sum(weights.values()) - 1) > 1e-9:
        return [f"Weights must sum to 1 (they sum to {sum(weights.values()):g})."]
    return []


@transaction.atomic
def profile_create(
    *,
    community: Community,
    weights: dict[str, float],
    authored_by: str,
    priorities: str = "",
    locale: str = "",
) -> FlourishingProfile:
    """The community's next profile version; earlier versions stay as they were."""
    errors = profile_weights_errors(weights)
    if errors:
        raise ValidationError(errors)
    latest = community.profiles.order_by("-version").first()
    return FlourishingProfile.objects.create(
        community=community,
        version=(latest.version + 1) if latest else 1,
        weights=weights,
        authored_by=authored_by,
        priorities=priorities,
        locale=locale or community.locale,
    )


# --- participants, consent, allocation -------------------------------------------------------


@transaction.atomic
def screening_record(
    *, trial: Trial, eligible: bool, exclusion_reason: str = "", at: datetime | None = None
) -> EligibilityScreening:
    if not eligible and not exclusion_reason.strip():
        raise ValidationError("Say why the person is not eligible.")
    return EligibilityScreening.objects.create(
        trial=trial,
        eligible=eligible,
        exclusion_reason=exclusion_reason,
        screened_at=at or timezone.now(),
    )


def _allocate(trial: Trial, participant: Participant, prereg: PreRegistration) -> Allocation:
    settings = prereg.plan.randomisation
    arms = {arm.slug: arm for arm in trial.arms.all()}
    if settings.method == "salted_hash":
        slug = salted_hash_arm(trial.allocation_salt, participant.id, list(arms))
        return Allocation.objects.create(
            participant=participant, arm=arms[slug], allocated_at=participant.enrolled_at
        )
    attributes = {
        "community": participant.community.slug if participant.community else "",
        "locale": participant.locale,
    }
    stratum = stratum_lock(trial, stratum_key(attributes, settings.strata))
    ratio = settings.ratio_for(list(arms))
    layout = block_layout(ratio, settings.block_sizes)
    # Walk on from the stored block (one or two blocks' work), unless it was found under another
    # layout: then from the first, as trials.randomisation.permuted_block_arm does.
    start = BlockCursor(stratum.block_number, stratum.block_start)
    cursor, block = block_holding(
        trial.allocation_salt,
        stratum.key,
        stratum.next_position,
        ratio,
        settings.block_sizes,
        start if stratum.block_layout == layout else BlockCursor(),
    )
    allocation = Allocation.objects.create(
        participant=participant,
        arm=arms[block[stratum.next_position - cursor.start]],
        allocated_at=participant.enrolled_at,
        stratum=stratum,
        position=stratum.next_position,
    )
    stratum.next_position += 1
    stratum.block_number, stratum.block_start, stratum.block_layout = (
        cursor.number,
        cursor.start,
        layout,
    )
    stratum.save(update_fields=["next_position", "block_number", "block_start", "block_layout"])
    return allocation


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
    screening: EligibilityScreening | None = None,
    signature_name: str = "",
    signed_at: datetime | None = None,
) -> Participant:
    """Consent, then exactly one allocation, in one transaction.

    The database refuses a second enrolment of the same address in a trial, so two racing
    requests give one participant and one clear error (code ``already_enrolled``). A screening
    leads to one enrolment at most: its row is locked first, so two requests that carry the same
    screening enrol in turn, and the second is refused (code ``screening_used``).
    ``signature_name`` and ``signed_at`` are the name the person typed on the consent page and
    when; they are kept with the contact details (erased with them)."""
    if trial.state != State.ENROLLING:
        raise ValidationError("This trial is not enrolling.")
    if missing_approvals(trial):
        raise ValidationError(
            "Enrolment is paused until every required body approves the amended plan."
        )
    if consent_document.trial_id != trial.pk:
        raise ValidationError("That consent document belongs to another trial.")
    scopes = list(dict.fromkeys(scopes))
    if ConsentScope.SURVEYS not in scopes:
        raise ValidationError("Taking part requires consent to the surveys.")
    offered = set(consent_document.scopes or ConsentScope.values)
    if not set(scopes) <= offered:
        raise ValidationError(
            f"The consent document does not ask for: {', '.join(sorted(set(scopes) - offered))}."
        )
    if screening is not None:
        screening = EligibilityScreening.objects.select_for_update().get(pk=screening.pk)
        if screening.trial_id != trial.pk or not screening.eligible:
            raise ValidationError("Only eligible people can be enrolled.")
    enrolled_at = enrolled_at or timezone.now()
    participant = Participant.objects.create(
        trial=trial, community=community, locale=locale, enrolled_at=enrolled_at
    )
    try:
        with transaction.atomic():
            ParticipantContact.objects.create(
                participant=participant,
                trial=trial,
                email=email,
                signature_name=signature_name,
                signed_at=signed_at,
            )
    except IntegrityError:
        raise ValidationError(
            "This email address is already enrolled in this trial.", code="already_enrolled"
        ) from None
    if screening is not None and screening.participant_id is not None:
        raise ValidationError(
            "This screening has already led to an enrolment.", code="screening_used"
        )
    ConsentGrant.objects.bulk_create(
        ConsentGrant(
            participant=participant, document=consent_document, scope=scope, granted_at=enrolled_at
        )
        for scope in scopes
    )
    allocation = _allocate(trial, participant, preregistration_current(trial))
    if screening is not None:
        screening.participant = participant
        screening.save(update_fields=["participant"])
    # The audit row names the pseudonym only, never contact details.
    _event(
        trial,
        TrialEvent.Kind.PARTICIPANT_ENROLLED,
        None,
        participant=participant.id,
        scopes=scopes,
        consent_version=consent_document.version,
        stratum=allocation.stratum.key if allocation.stratum else None,
        position=allocation.position,
    )
    return participant


@transaction.atomic
def consent_grant(
    *, participant: Participant, scope: str, document: ConsentDocument, actor: User | None = None
) -> ConsentGrant:
    """Grant ``scope`` (again) under ``document``; granting an active scope changes nothing."""
    if participant.withdrawn_at is not None:
        raise ValidationError("A withdrawn participant cannot grant consent.")
    if scope not in (document.scopes or ConsentScope.values):
        raise ValidationError(f"The consent document does not ask for {scope}.")
    active = participant.consents.filter(scope=scope, revoked_at__isnull=True).first()
    if active is not None:
        return active
    return _grant(participant, document, scope, actor, timezone.now())


def _grant(
    participant: Participant,
    document: ConsentDocument,
    scope: str,
    actor: User | None,
    at: datetime,
    **detail,
) -> ConsentGrant:
    """A new grant of ``scope`` under ``document``, with its audit event."""
    grant = ConsentGrant.objects.create(
        participant=participant, document=document, scope=scope, granted_at=at
    )
    _event(
        participant.trial,
        TrialEvent.Kind.CONSENT_GRANTED,
        actor,
        participant=participant.id,
        scope=scope,
        consent_version=document.version,
        **detail,
    )
    return grant


@transaction.atomic
def consent_revoke(
    *, participant: Participant, scope: str, actor: User | None = None
) -> ConsentGrant | None:
    """Stop one data stream from this instant; the other streams carry on."""
    if scope == ConsentScope.SURVEYS:
        raise ValidationError(
            "Surveys are what taking part means: to stop them, withdraw from the trial."
        )
    grant = participant.consents.filter(scope=scope, revoked_at__isnull=True).first()
    if grant is None:
        return None
    grant.revoked_at = timezone.now()
    grant.save(update_fields=["revoked_at"])
    _event(
        participant.trial,
        TrialEvent.Kind.CONSENT_REVOKED,
        actor,
        participant=participant.id,
        scope=scope,
    )
    return grant


@transaction.atomic
def consent_renew(
    *,
    participant: Participant,
    document: ConsentDocument,
    scopes: Iterable[str],
    actor: User | None = None,
) -> list[ConsentGrant]:
    """Consent again under a new version of the consent document: each stream it asks for and
    ``scopes`` names is granted under it (replacing the grant under the older version at the same
    instant, so the stream carries on); each optional stream it asks for and ``scopes`` leaves out
    stops. Surveys cannot be declined here: stopping them means withdrawing."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    if participant.withdrawn_at is not None:
        raise ValidationError("A withdrawn participant cannot grant consent.")
    current = consent_document_for(participant)
    if current is None or document.trial_id != participant.trial_id:
        raise ValidationError("That consent document belongs to another trial.")
    if document.version != current.version:
        raise ValidationError(f"Consent is now asked under version {current.version}.")
    offered = document.scopes or ConsentScope.values
    scopes = set(scopes)
    if not scopes <= set(offered):
        raise ValidationError(
            f"The consent document does not ask for: {', '.join(sorted(scopes - set(offered)))}."
        )
    if ConsentScope.SURVEYS in offered and ConsentScope.SURVEYS not in scopes:
        raise ValidationError(
            "Surveys are what taking part means: to stop them, withdraw from the trial."
        )
    now = timezone.now()
    granted = []
    for scope in offered:
        active = participant.consents.filter(scope=scope, revoked_at__isnull=True).first()
        if scope not in scopes:
            if active is not None:
                consent_revoke(participant=participant, scope=scope, actor=actor)
            continue
        if active is not None and active.document.version >= document.version:
            granted.append(active)
            continue
        if active is not None:
            active.revoked_at = now
            active.save(update_fields=["revoked_at"])
        granted.append(_grant(participant, document, scope, actor, now, renewed=active is not None))
    return granted


@transaction.atomic
def participant_withdraw(
    *, participant: Participant, reason: str = "", actor: User | None = None
) -> Participant:
    """Withdraw: every stream stops; data are kept or erased as the consent document says."""
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    if participant.withdrawn_at is not None:
        return participant
    now = timezone.now()
    grants = list(participant.consents.filter(revoked_at__isnull=True).select_related("document"))
    participant.consents.filter(revoked_at__isnull=True).update(revoked_at=now)
    participant.withdrawn_at = now
    participant.withdrawal_reason = reason[:200]
    erase = any(g.document.withdrawal_rule == ConsentDocument.WithdrawalRule.ERASE for g in grants)
    if erase:
        ParticipantContact.objects.filter(participant=participant).delete()
        participant_erased.send(sender=Participant, participant=participant)
        participant.erased_at = now
    participant.save(update_fields=["withdrawn_at", "withdrawal_reason", "erased_at"])
    _event(
        participant.trial,
        TrialEvent.Kind.PARTICIPANT_WITHDREW,
        actor,
        participant=participant.id,
        reason=participant.withdrawal_reason,
        erased=erase,
    )
    return participant


# --- the assignment API's tokens ---------------------------------------------------------------


def assignment_token(participant: Participant) -> str:
    """The bearer token an assistant app uses to fetch this participant's arm configuration.

    Signed, so it cannot be forged from a participant id an analyst has seen."""
    return signing.dumps(participant.id, salt=ASSIGNMENT_TOKEN_SALT, compress=False)


def assignment_token_participant_id(token: str) -> str | None:
    """The pseudonym a token names, or None for anything that is not one of our tokens. A
    validly signed payload is checked too: it must look like a pseudonym (a short URL-safe
    string), since only a pseudonym is ever signed here."""
    try:
        payload = signing.loads(token, salt=ASSIGNMENT_TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, str) or not PSEUDONYM.fullmatch(payload):
        return None
    return payload
