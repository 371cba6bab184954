"""Reads for trials/: the plan's versions (in force, pending, latest, draft), approvals still
missing, consent in force, and the bodies through which a person acts. Who may see or change
which trial is decided by the rules of ``trials.rules``."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from trials.models import OversightBody, Participant, PreRegistration, Trial
from trials.rules import permitted


def bodies_of(user: AbstractBaseUser, trial: Trial) -> QuerySet[OversightBody]:
    """The oversight bodies through which ``user`` acts on ``trial``."""
    return permitted(user, "trials.act_for_body").filter(trialoversight__trial=trial)


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


def consent_active(participant: Participant, scope: str) -> bool:
    """Whether ``participant``'s consent to ``scope`` stands now."""
    return participant.consents.filter(scope=scope, revoked_at__isnull=True).exists()
