"""Reads for trials/: the plan's versions (in force, pending, latest, draft, last approved by a
body), approvals still missing and changes requested, consent in force, the bodies through which
a person acts, how pages name the arms (blinded or not), the bodies' standing suspensions, a
trial's effective status and its setup checklist. Who may see or change which trial is decided by
the rules of ``trials.rules``."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse

from trials.models import (
    ConsentDocument,
    ConsentGrant,
    ConsentScope,
    OversightBody,
    Participant,
    PreRegistration,
    Suspension,
    Trial,
    TrialEvent,
)
from trials.rules import permitted


def bodies_of(user: AbstractBaseUser, trial: Trial) -> QuerySet[OversightBody]:
    """The oversight bodies through which ``user`` acts on ``trial``."""
    return permitted(user, "trials.act_for_body").filter(trialoversight__trial=trial)


def arm_labels(trial: Trial, *, blinded: bool) -> dict[str, str]:
    """How a page or a message names each of ``trial``'s arms, by slug.

    Blinded (every reader but a data monitoring committee and the trial's analysts): "Arm 1",
    "Arm 2", … in the order of the SHA-256 of "<trial slug>/<arm slug>", which is fixed for the
    trial but says nothing about which arm is the control or what an arm is (ordering by slug
    would put an arm named "control" first). Unblinded: the arm's name, the control marked."""
    arms = list(trial.arms.order_by("slug"))
    if not blinded:
        return {a.slug: f"{a.name} (control)" if a.is_control else a.name for a in arms}

    def position(arm) -> str:
        return hashlib.sha256(f"{trial.slug}/{arm.slug}".encode()).hexdigest()

    return {arm.slug: f"Arm {n}" for n, arm in enumerate(sorted(arms, key=position), start=1)}


def preregistration_in_force(trial: Trial) -> PreRegistration | None:
    """The latest frozen version that every required oversight body has approved: the only one
    served to assistant apps, participants and dashboards. A newer frozen version that some body
    has not approved yet is pending (``preregistrations_pending``), never in force."""
    required = set(trial.oversight.filter(required=True).values_list("body_id", flat=True))
    if not required:
        return None
    frozen = trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version")
    for prereg in frozen.prefetch_related("approvals"):
        if required <= {approval.body_id for approval in prereg.approvals.all()}:
            return prereg
    return None


def preregistrations_pending(
    trial: Trial, in_force: PreRegistration | None
) -> list[PreRegistration]:
    """Frozen versions newer than ``in_force`` (``preregistration_in_force``, which the caller
    has at hand), awaiting approval (newest first)."""
    frozen = trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version")
    if in_force is not None:
        frozen = frozen.filter(version__gt=in_force.version)
    return list(frozen)


def preregistration_current(trial: Trial) -> PreRegistration | None:
    """The latest frozen version (in force once every required body approves it)."""
    return trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version").first()


def preregistration_draft(trial: Trial) -> PreRegistration | None:
    """The version being written, if any (there is at most one)."""
    return trial.preregistrations.filter(frozen_at__isnull=True).first()


def missing_approvals(trial: Trial) -> list[str]:
    """Names of required bodies that have not approved the latest frozen version."""
    current = preregistration_current(trial)
    required = trial.oversight.filter(required=True).select_related("body")
    approved = set()
    if current is not None:
        approved = set(current.approvals.values_list("body_id", flat=True))
    return sorted(link.body.name for link in required if link.body_id not in approved)


def preregistration_last_approved(trial: Trial, body: OversightBody) -> PreRegistration | None:
    """The newest version of ``trial``'s plan that ``body`` approved, if any: what an oversight
    page compares the version to approve with."""
    return trial.preregistrations.filter(approvals__body=body).order_by("-version").first()


def changes_requested(prereg: PreRegistration | None) -> list[TrialEvent]:
    """The bodies' requests for changes to ``prereg`` (``preregistration_changes_request``),
    oldest first; their ``detail`` names the body and says what should change."""
    if prereg is None:
        return []
    requests = prereg.trial.events.filter(
        kind=TrialEvent.Kind.CHANGES_REQUESTED, detail__version=prereg.version
    )
    return list(requests.order_by("sequence"))


@dataclass(frozen=True)
class StandingSuspension:
    """A body's suspension that stands, and the bodies whose lift it still waits for."""

    suspension: Suspension
    waiting_for: list[OversightBody]

    def describe(self) -> str:
        waiting = ", ".join(body.name for body in self.waiting_for)
        return (
            f"{self.suspension.body.name} suspended it ({self.suspension.reason}); "
            f"it stands until lifted by {waiting}"
        )


def suspension_lifters(suspension: Suspension) -> list[OversightBody]:
    """The bodies that must each lift ``suspension`` before it no longer stands: the body that
    suspended, and, when the plan (in force, else the latest frozen version) says
    ``safety.suspension_lifted_by = "every_required_body"``, every required body of the trial
    as well (trials.plan.Safety)."""
    trial = suspension.trial
    prereg = preregistration_in_force(trial) or preregistration_current(trial)
    bodies = {suspension.body}
    if prereg is not None and prereg.plan.safety.suspension_lifted_by == "every_required_body":
        required = OversightBody.objects.filter(
            trialoversight__trial=trial, trialoversight__required=True
        )
        bodies |= set(required)
    return sorted(bodies, key=lambda body: body.name)


def suspensions_standing(trial: Trial) -> list[StandingSuspension]:
    """The bodies' suspensions of ``trial`` not lifted yet, oldest first: while any stands, no
    coordinator moves the trial out of suspension (trials.services.trial_transition)."""
    standing = []
    rows = trial.suspensions.filter(lifted_at__isnull=True).select_related("body", "trial")
    for suspension in rows.order_by("suspended_at", "pk"):
        lifted = set(suspension.lifts.values_list("body_id", flat=True))
        waiting = [b for b in suspension_lifters(suspension) if b.pk not in lifted]
        standing.append(StandingSuspension(suspension, waiting))
    return standing


def _superseded() -> Q:
    """For a consent grant: whether its trial has published a later version of the consent
    document that asks for the grant's stream, in the participant's language (in any language
    while none is written in theirs). A coordinator publishes a new version when the terms
    change, so a stream it lists waits for the person's consent to the new terms.

    Written with one condition per stream and a match on the JSON text of ``scopes``, which
    PostgreSQL and SQLite (the demo) both run; JSON containment with a column on the right is
    PostgreSQL's alone."""
    own_language = ConsentDocument.objects.filter(
        trial=OuterRef(OuterRef("participant__trial")),
        locale=OuterRef(OuterRef("participant__locale")),
    )
    later = ConsentDocument.objects.filter(
        Q(locale=OuterRef("participant__locale")) | Q(~Exists(own_language)),
        trial=OuterRef("participant__trial"),
        version__gt=OuterRef("document__version"),
    )
    # No scopes listed means the document asks for every stream (ConsentDocument).
    return reduce(
        or_,
        (
            Q(scope=scope) & Exists(later.filter(Q(scopes=[]) | Q(scopes__icontains=f'"{scope}"')))
            for scope in ConsentScope.values
        ),
    )


def consent_standing() -> QuerySet[ConsentGrant]:
    """The grants that stand now: not revoked, and made under the latest version of the consent
    document that asks for their stream. Every stream asks this (one query for any number of
    participants); a grant superseded by a new version pauses its stream until the participant
    consents again (``trials.services.consent_renew``)."""
    return ConsentGrant.objects.filter(revoked_at__isnull=True).exclude(_superseded())


def consent_active(participant: Participant, scope: str) -> bool:
    """Whether ``participant``'s consent to ``scope`` stands now."""
    return consent_standing().filter(participant=participant, scope=scope).exists()


def consent_document_for(participant: Participant) -> ConsentDocument | None:
    """The consent document ``participant`` signs now: the latest version in their language, or
    the latest in any language while none is written in theirs (the rule of ``_superseded``)."""
    documents = ConsentDocument.objects.filter(trial_id=participant.trial_id)
    documents = documents.order_by("-version", "locale")
    return documents.filter(locale=participant.locale).first() or documents.first()


def consent_renewal_due(participant: Participant) -> ConsentDocument | None:
    """The new consent document ``participant`` is asked to sign before anything else, while a
    stream they consented to is paused for its new terms; None when nothing waits for them."""
    if participant.withdrawn_at is not None:
        return None
    paused = participant.consents.filter(revoked_at__isnull=True).filter(_superseded())
    return consent_document_for(participant) if paused.exists() else None


@dataclass(frozen=True)
class ConsentRenewals:
    """How far re-consent to one consent document has come."""

    renewed: int  # participants who consented under an earlier version, then under this one
    waiting: int  # participants of the trial (any language) with a stream paused for new terms


def consent_renewals(document: ConsentDocument) -> ConsentRenewals:
    renewed = Participant.objects.filter(
        consents__document=document,
        pk__in=ConsentGrant.objects.filter(document__version__lt=document.version).values(
            "participant"
        ),
    )
    paused = ConsentGrant.objects.filter(revoked_at__isnull=True).filter(_superseded())
    waiting = Participant.objects.filter(
        trial_id=document.trial_id,
        withdrawn_at__isnull=True,
        pk__in=paused.values("participant"),
    )
    return ConsentRenewals(renewed=renewed.distinct().count(), waiting=waiting.count())


def trial_status(trial: Trial) -> str:
    """The trial's state as it acts: an enrolling trial whose latest frozen version some
    required body has not approved refuses enrolment (``participant_enrol``), so it reads
    paused, with the version and the bodies it waits for."""
    label = trial.get_state_display()
    label = label[:1].upper() + label[1:]
    if trial.state != Trial.State.ENROLLING:
        return label
    missing = missing_approvals(trial)
    if not missing:
        return label
    current = preregistration_current(trial)
    return f"{label} — paused: version {current.version} awaits approval by {', '.join(missing)}"


@dataclass(frozen=True)
class SetupItem:
    """One line of a trial's setup checklist: done or what is missing, and the admin page
    where it is done."""

    key: str
    label: str
    done: bool
    detail: str
    url: str | None


RecruitmentLink = Callable[[Trial], str | None]
_recruitment_links: list[RecruitmentLink] = []


def register_recruitment_link(provider: RecruitmentLink) -> None:
    """The app that serves the public recruitment pages (above trials, docs/architecture.md)
    registers, in its ``ready()``, the function that gives a trial's link, or None while the
    trial does not recruit."""
    if provider not in _recruitment_links:
        _recruitment_links.append(provider)


def recruitment_link(trial: Trial) -> str | None:
    """The trial's public recruitment link, from the registered providers; None without one."""
    for provider in _recruitment_links:
        link = provider(trial)
        if link:
            return link
    return None


def _changelist(model: str, trial: Trial) -> str:
    return f"{reverse(f'admin:trials_{model}_changelist')}?trial__id__exact={trial.pk}"


def _arms_item(trial: Trial) -> SetupItem:
    arms = list(trial.arms.order_by("slug"))
    named = ", ".join(f"{a.slug} (control)" if a.is_control else a.slug for a in arms)
    if len(arms) >= 2:
        return SetupItem("arms", "Arms", True, named, _changelist("arm", trial))
    detail = f"{len(arms)} arm{'' if len(arms) == 1 else 's'}"
    detail += f" ({named})" if arms else ""
    url = f"{reverse('admin:trials_arm_add')}?trial={trial.pk}"
    return SetupItem("arms", "Arms", False, f"{detail}; a trial compares at least two.", url)


def _plan_item(trial: Trial) -> SetupItem:
    url = _changelist("preregistration", trial)
    current = preregistration_current(trial)
    if current is None:
        draft = preregistration_draft(trial)
        detail = f"version {draft.version} is a draft: freeze it." if draft else "not written yet."
        return SetupItem("plan", "Plan", False, detail, url)
    in_force = preregistration_in_force(trial)
    detail = f"version {current.version} frozen (SHA-256 {current.sha256[:12]}…); "
    if in_force is None:
        detail += "no version in force until every required body approves one."
    elif in_force == current:
        detail += "it is in force."
    else:
        detail += f"version {in_force.version} is in force until it is approved."
    return SetupItem("plan", "Plan", True, detail, url)


def _oversight_item(trial: Trial) -> SetupItem:
    url = reverse("admin:trials_trial_change", args=[trial.pk]) + "#oversight-group"
    required = sorted(trial.oversight.filter(required=True).values_list("body__name", flat=True))
    if not required:
        return SetupItem("oversight", "Oversight", False, "no required body assigned yet.", url)
    current = preregistration_current(trial)
    names = ", ".join(required)
    if current is None:
        return SetupItem(
            "oversight", "Oversight", False, f"{names}; no frozen plan to approve yet.", url
        )
    missing = missing_approvals(trial)
    if missing:
        detail = f"version {current.version} awaits approval by {', '.join(missing)}."
        return SetupItem("oversight", "Oversight", False, detail, url)
    return SetupItem(
        "oversight", "Oversight", True, f"{names} approved version {current.version}.", url
    )


def _consent_item(trial: Trial) -> SetupItem:
    documents = list(trial.consent_documents.order_by("version", "locale"))
    if not documents:
        url = f"{reverse('admin:trials_consentdocument_add')}?trial={trial.pk}"
        return SetupItem("consent", "Consent document", False, "none written yet.", url)
    detail = ", ".join(f"version {d.version} ({d.locale})" for d in documents)
    return SetupItem(
        "consent", "Consent document", True, detail, _changelist("consentdocument", trial)
    )


def _recruitment_item(trial: Trial) -> SetupItem:
    link = recruitment_link(trial)
    if link is None:
        return SetupItem("recruitment", "Recruitment link", False, "not yet available.", None)
    return SetupItem("recruitment", "Recruitment link", True, link, link)


def trial_setup_checklist(trial: Trial) -> list[SetupItem]:
    """What a trial needs before people can join it, as far as trials/ knows: arms, the plan,
    oversight, consent documents and the recruitment link. The wave schedule is the surveys'
    and is added by the page that may read them (``analytics.admin.TrialFlowAdmin``, the
    layers in docs/architecture.md)."""
    return [
        _arms_item(trial),
        _plan_item(trial),
        _oversight_item(trial),
        _consent_item(trial),
        _recruitment_item(trial),
    ]
