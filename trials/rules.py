"""Who may do what with which trial: every per-trial access decision is one rule here
(django-rules), and the admin, the dashboards' views and their Dash callback ask it with
``user.has_perm(permission, obj)``.

A decision has two halves. *What kind of record* a role may read or change is a model permission
of its group (``trials.roles``), which Django's ``ModelBackend`` answers for ``has_perm(perm)``
without an object. *Which trial's records* a person may read or change is their relation to the
trial, which these rules answer through rules' ``ObjectPermissionBackend`` for
``has_perm(perm, obj)``. The admin asks both: a model permission for the kind of record, then
``trials.view_trial`` or ``trials.change_trial`` on the record's trial. A rule that stands alone
holds its model permission itself (``requires``): reading a trial's results needs the analysts'
``analytics.view_analysisrun`` as well as membership of the trial, and asked without an object it
says whether the user may read any results at all.

Each relation is written once, as a query condition, so the same words answer "may this user …
this trial?" (the permission) and "which trials may this user …?" (``permitted``, for lists,
choices and querysets).

The assignment API has no signed-in user: its caller holds a participant's token, and the rule
``trials.receive_assignment`` (``rules.test_rule``) says whether that participant is served.
"""

from collections.abc import Callable
from dataclasses import dataclass

import rules
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.db.models import Q, QuerySet

from trials.models import OversightBody, Participant, Trial, TrialMember

User = AbstractBaseUser | AnonymousUser
# The states in which participants take part: assistant apps are served their arm.
RUNNING_STATES = (Trial.State.ENROLLING, Trial.State.FOLLOW_UP)


@dataclass(frozen=True)
class ObjectRule:
    """A permission on objects of ``model``: the user may act on the objects matching
    ``relation(user)``, if they also hold the model permission ``requires`` (when given)."""

    model: type[models.Model]
    relation: Callable[[AbstractBaseUser], Q]
    requires: str = ""


def _member(user: AbstractBaseUser) -> Q:
    """Coordinators and analysts of the trial."""
    return Q(members__user=user)


def _coordinator(user: AbstractBaseUser) -> Q:
    # One filter() condition, so user and role are matched on the same membership row.
    return Q(members__user=user, members__role=TrialMember.Role.COORDINATOR)


def _overseer(user: AbstractBaseUser) -> Q:
    """Members of an oversight body assigned to the trial."""
    return Q(oversight__body__members=user)


def _body_reader(user: AbstractBaseUser) -> Q:
    # A body's membership is its own business and that of the trials it oversees.
    visible = permitted(user, "trials.view_trial")
    return Q(members=user) | Q(trialoversight__trial__in=visible)


OBJECT_RULES: dict[str, ObjectRule] = {
    # See the trial and its records (what kind of record: the group's model permissions).
    "trials.view_trial": ObjectRule(Trial, lambda user: _member(user) | _overseer(user)),
    # Change its configuration, add members and bodies, move it through its lifecycle.
    "trials.change_trial": ObjectRule(Trial, _coordinator),
    # A body's decisions: bodies act only through them (trials.services checks the body).
    "trials.approve_preregistration": ObjectRule(Trial, _overseer),
    "trials.suspend_trial": ObjectRule(Trial, _overseer),
    # Read a body's own pages of the trial (dashboards.oversight): its bodies' members.
    "trials.view_oversight_page": ObjectRule(Trial, _overseer),
    # Read the stored results (the dashboards): the trial's analysts and coordinators.
    "trials.view_results": ObjectRule(Trial, _member, requires="analytics.view_analysisrun"),
    "trials.view_oversightbody": ObjectRule(OversightBody, _body_reader),
    # Decide on a body's behalf: its members.
    "trials.act_for_body": ObjectRule(OversightBody, lambda user: Q(members=user)),
}


def _signed_in(user: User) -> bool:
    return user.is_authenticated and user.is_active


def permitted(user: User, permission: str) -> QuerySet:
    """The objects on which ``user`` holds ``permission`` (a key of ``OBJECT_RULES``): the
    same rule as ``user.has_perm(permission, obj)``, as one query."""
    rule = OBJECT_RULES[permission]
    manager = rule.model._default_manager
    if not _signed_in(user) or (rule.requires and not user.has_perm(rule.requires)):
        return manager.none()
    if user.is_superuser:
        return manager.all()
    # The subquery keeps the result free of join duplicates without DISTINCT.
    return manager.filter(pk__in=manager.filter(rule.relation(user)).values("pk"))


def _object_predicate(permission: str) -> rules.Predicate:
    rule = OBJECT_RULES[permission]

    def holds(user: User, obj: models.Model | None) -> bool:
        if obj is None:
            # Asked without an object, a rule with a model permission says whether the user may
            # act on some objects at all; the others leave the question to the groups.
            return bool(rule.requires) and _signed_in(user) and user.has_perm(rule.requires)
        if not isinstance(obj, rule.model):
            raise TypeError(f"{permission} is decided on a {rule.model.__name__}, not {obj!r}.")
        return permitted(user, permission).filter(pk=obj.pk).exists()

    return rules.predicate(holds, name=permission)


for _permission in OBJECT_RULES:
    rules.add_perm(_permission, _object_predicate(_permission))


@rules.predicate
def receives_assignment(participant: Participant) -> bool:
    """Enrolled, allocated, not withdrawn, in a running trial."""
    return (
        participant.withdrawn_at is None
        and participant.trial.state in RUNNING_STATES
        and hasattr(participant, "allocation")
    )


rules.add_rule("trials.receive_assignment", receives_assignment)
