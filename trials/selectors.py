"""Reads for trials/, above all who may see which trial (per-trial object permissions).

A user sees a trial when they are a superuser, a member of it (coordinator or analyst), or a
member of an oversight body assigned to it. Only coordinators (and superusers) change it; body
members act on it only through their body's approvals and suspensions.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from trials.models import OversightBody, Trial, TrialMember

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
