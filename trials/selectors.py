"""Reads for trials/, above all who may see which trial (per-trial object permissions).

A user sees a trial when they are a superuser, a member of it (coordinator or analyst), or a
member of an oversight body assigned to it. Only coordinators (and superusers) change it; body
members act on it only through their body's approvals and suspensions.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from trials.models import OversightBody, PreRegistration, Trial, TrialMember

Role = TrialMember.Role


def trials_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Trial]:
    if not user.is_authenticated or not user.is_active:
        return Trial.objects.none()
    if user.is_superuser:
        return Trial.objects.all()
    visible = Q(members__user=user) | Q(oversight__body__members=user)
    # The subquery keeps the result free of join duplicates without DISTINCT.
    return Trial.objects.filter(pk__in=Trial.objects.filter(visible).values("pk"))


def trials_coordinated_by(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Trial]:
    if not user.is_authenticated or not user.is_active:
        return Trial.objects.none()
    if user.is_superuser:
        return Trial.objects.all()
    return Trial.objects.filter(
        pk__in=TrialMember.objects.filter(user=user, role=Role.COORDINATOR).values("trial")
    )


def trials_analysed_by(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Trial]:
    """Trials whose results ``user`` may read: analysts and coordinators of the trial."""
    if not user.is_authenticated or not user.is_active:
        return Trial.objects.none()
    if user.is_superuser:
        return Trial.objects.all()
    return Trial.objects.filter(pk__in=TrialMember.objects.filter(user=user).values("trial"))


def can_coordinate(user, trial: Trial) -> bool:
    return trials_coordinated_by(user).filter(pk=trial.pk).exists()


def bodies_of(user, trial: Trial) -> QuerySet[OversightBody]:
    """The oversight bodies through which ``user`` acts on ``trial``."""
    bodies = OversightBody.objects.filter(trialoversight__trial=trial)
    if user.is_superuser:
        return bodies
    return bodies.filter(members=user)


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
