"""Every URL the admin serves, for every registered model, refuses an object outside the user's
trials, for every role, on GET and on POST, and a POST changes nothing.

The routes are enumerated from the admin site itself (``ModelAdmin.get_urls``, which includes the
views that third-party mixins such as simple-history add), so a view added later is covered
without anyone remembering to list it. A model registered later needs a target below: the test
fails until it has one.
"""

import hashlib

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.forms.models import model_to_dict
from django.urls import URLPattern, reverse
from django.utils import timezone

from analytics.models import AnalysisRun
from analytics.seeding import synthetic_trial_create
from federated.models import PrivacyBudget, PrivacyCharge, TelemetryRelease
from notifications.models import Notification, NotificationPreference
from notifications.services import notification_preference_set
from safety.canary import CanaryTarget, Reply, canary_check_record
from safety.flags import safety_answers_flag
from safety.models import AdverseEvent, CanaryCheck, SafetyFlag
from safety.services import adverse_event_report
from surveys.models import Invitation, Response, Wave
from surveys.services import invitations_plan
from tests.trials.factories import bodies, enrolling_trial
from trials.models import (
    Approval,
    Arm,
    ConsentDocument,
    OversightBody,
    Participant,
    PreRegistration,
    ProtocolDeviation,
    Trial,
    TrialEvent,
    TrialMember,
)
from trials.services import (
    arm_config,
    deviation_record,
    event_record,
    member_add,
    oversight_assign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Models of a trial's record: the target is the other trial's object.
TRIAL_MODELS = {
    Trial: lambda b: b,
    Arm: lambda b: b.arms.first(),
    PreRegistration: lambda b: b.preregistrations.first(),
    ProtocolDeviation: lambda b: b.deviations.first(),
    Approval: lambda b: Approval.objects.filter(preregistration__trial=b).first(),
    ConsentDocument: lambda b: b.consent_documents.first(),
    Participant: lambda b: b.participants.first(),
    Wave: lambda b: Wave.objects.filter(trial=b).first(),
    Invitation: lambda b: Invitation.objects.filter(participant__trial=b).first(),
    Response: lambda b: Response.objects.filter(participant__trial=b).first(),
    AnalysisRun: lambda b: AnalysisRun.objects.filter(trial=b).first(),
    PrivacyBudget: lambda b: PrivacyBudget.objects.filter(trial=b).first(),
    TelemetryRelease: lambda b: TelemetryRelease.objects.filter(trial=b).first(),
    AdverseEvent: lambda b: AdverseEvent.objects.filter(trial=b).first(),
    SafetyFlag: lambda b: SafetyFlag.objects.filter(trial=b).first(),
    CanaryCheck: lambda b: CanaryCheck.objects.filter(arm__trial=b).first(),
    # The other trial's oversight body, of which none of the roles is a member.
    OversightBody: lambda b: OversightBody.objects.get(name="Ethics board"),
    # Someone else's notification and preference: each person reads and sets only their own.
    Notification: lambda b: Notification.objects.filter(trial=b).first(),
    NotificationPreference: lambda b: NotificationPreference.objects.get(user__username="other"),
}
# Registries shared by every trial (instruments, communities and their profiles, user accounts,
# login records): no trial owns them, so the check is that a role without the model permission
# can change nothing through any of their routes.
SHARED_APPS = {"auth", "axes"}
SHARED_MODELS = {"instrument", "community", "flourishingprofile"}

# Values for the URL parameters that are not object keys.
PARAMETER_VALUES = {
    "fmt": ["osf", "markdown"],
    "decision": ["approve", "suspend"],
}
REFUSED = {403, 404, 405}
# Audit rows that a refusal itself writes.
REFUSAL_EVENTS = {"access_refused", "edit_refused"}
# Bookkeeping tables a request may touch without changing anyone's record.
UNTRACKED_TABLES = {"django_session", "django_admin_log", "trials_trialevent"}
UNTRACKED_PREFIXES = ("axes_",)  # login records


def _staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def world():
    """Trial A with one user per role; trial B, fully populated, that none of them works on."""
    users = {
        "coordinator of another trial": _staff("coord", "Coordinators"),
        "analyst of another trial": _staff("analyst", "Analysts"),
        "member of another body": _staff("member", "Oversight members"),
        "community author": _staff("author", "Community authors"),
    }
    trial_a = enrolling_trial("a", actor=users["coordinator of another trial"])
    member_add(trial=trial_a, user=users["analyst of another trial"], role=TrialMember.Role.ANALYST)
    (own_body,) = bodies("Body of trial A")
    own_body.members.add(users["member of another body"])
    oversight_assign(trial=trial_a, body=own_body, required=False)

    trial_b = synthetic_trial_create(slug="b", participants=6, waves=2, effect=0.5, seed=1)
    deviation_record(trial=trial_b, description="A wave was sent a day late.")
    invitations_plan()
    AnalysisRun.objects.create(
        trial=trial_b,
        preregistration=trial_b.preregistrations.first(),
        preregistration_sha256=trial_b.preregistrations.first().sha256,
        seed=1,
    )
    response = Response.objects.filter(participant__trial=trial_b).first()
    safety_answers_flag(
        participant=response.participant,
        response_id=response.pk,
        wave_index=0,
        triggered={"phq9": {"phq9_9": 1}},
    )
    arm = trial_b.arms.first()
    canary_check_record(  # a check that opened an integrity incident
        target=CanaryTarget(arm=arm, config=arm_config(arm), prompts=["Hello?"]),
        sweep="sweep-1",
        prompt_index=0,
        reply=Reply(served_model="another-model", system_fingerprint="", stats={}),
    )
    adverse_event_report(
        participant=trial_b.participants.first(),
        category=AdverseEvent.Category.OTHER,
        severity=AdverseEvent.Severity.MILD,
        report_key="0" * 32,
    )
    # A coordinator of trial B, told of a failed run, who chose a daily digest.
    other = _staff("other", "Coordinators")
    member_add(trial=trial_b, user=other, role=TrialMember.Role.COORDINATOR)
    notification_preference_set(user=other, delivery="daily_digest")
    event_record(trial=trial_b, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED, run=0, error="Lost.")
    budget = PrivacyBudget.objects.create(trial=trial_b, total_nano_rho=10**9, delta=1e-7)
    charge = PrivacyCharge.objects.create(budget=budget, key="b-0", nano_rho=10, measurements={})
    TelemetryRelease.objects.create(
        trial=trial_b,
        preregistration=trial_b.preregistrations.first(),
        charge=charge,
        window_index=0,
        window_start=timezone.localdate(),
        window_end=timezone.localdate(),
    )
    return users, trial_b


def _history_id(obj) -> int | None:
    if not hasattr(type(obj), "history"):
        return None
    return obj.history.values_list("history_id", flat=True).first()


def _arguments(pattern: URLPattern, obj) -> list[dict[str, str] | list[str]]:
    """Every combination of parameter values for ``pattern`` aimed at ``obj``: keyword values,
    or positional ones for a regular expression with unnamed groups (simple-history's)."""
    regex = pattern.pattern.regex
    names = list(pattern.pattern.converters or regex.groupindex)
    if not names and regex.groups:
        positional = [str(obj.pk), str(_history_id(obj))]
        if regex.groups > len(positional):
            raise AssertionError(f"{pattern.name}: give the test values for {regex.pattern}")
        return [positional[: regex.groups]]
    options = [{}]
    for name in names:
        if name in ("object_id", "pk", "id"):
            values = [str(obj.pk)]
        elif name in ("history_id", "version_id"):
            values = [str(_history_id(obj))]
        elif name == "trial_id":
            values = [str(obj.pk if isinstance(obj, Trial) else obj.trial_id)]
        elif name in PARAMETER_VALUES:
            values = PARAMETER_VALUES[name]
        else:
            raise AssertionError(
                f"{pattern.name}: give the test values for the URL parameter {name!r}"
            )
        options = [option | {name: value} for option in options for value in values]
    return options


def _routes(model_admin, obj) -> list[tuple[str, bool]]:
    """(url, aims at obj) for every route of ``model_admin``."""
    opts = model_admin.model._meta
    routes = []
    for pattern in model_admin.get_urls():
        if pattern.name is None:  # Django's catch-all redirect to the change page
            changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
            routes.append((f"{changelist}{obj.pk}/", True))
            continue
        for arguments in _arguments(pattern, obj):
            if isinstance(arguments, list):
                url = reverse(f"admin:{pattern.name}", args=arguments)
            else:
                url = reverse(f"admin:{pattern.name}", kwargs=arguments)
            routes.append((url, bool(arguments)))
    return routes


def _action_names(model_admin) -> list[str]:
    own = [a if isinstance(a, str) else a.__name__ for a in model_admin.actions or []]
    return [*own, "delete_selected"]


def _fingerprint() -> dict[str, str]:
    """A digest of every table's rows, to see that a request wrote nothing."""
    digests = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            if table in UNTRACKED_TABLES or table.startswith(UNTRACKED_PREFIXES):
                continue
            cursor.execute(
                f'SELECT string_agg(t::text, chr(10) ORDER BY t::text) FROM "{table}" AS t'
            )
            digests[table] = hashlib.sha256((cursor.fetchone()[0] or "").encode()).hexdigest()
    return digests


def _hostile_form(obj) -> dict:
    """The object's own values with every text replaced, and every action of the changelist."""
    data = {}
    for key, value in model_to_dict(obj).items():
        if isinstance(value, str):
            value = "changed by an attacker"
        if isinstance(value, list):
            value = [getattr(v, "pk", v) for v in value]
        data[key] = "" if value is None else value
    return data | {"_selected_action": [obj.pk], "index": 0}


def _refused(client, method: str, url: str, data: dict) -> tuple[bool, int]:
    response = getattr(client, method)(url, data) if method == "post" else client.get(url)
    if response.status_code in (301, 302):
        target = response["Location"]
        if target.startswith(reverse("admin:login")):
            return True, response.status_code
        response = client.get(target)
    return response.status_code in REFUSED, response.status_code


def test_every_admin_route_refuses_another_trial_s_objects_for_every_role(client, world):
    users, trial_b = world
    registry = admin.site._registry
    targets = {}
    for model, model_admin in registry.items():
        opts = model._meta
        if model in TRIAL_MODELS:
            targets[model] = (model_admin, TRIAL_MODELS[model](trial_b), True)
        elif opts.app_label in SHARED_APPS or opts.model_name in SHARED_MODELS:
            targets[model] = (model_admin, model._default_manager.first(), False)
        else:
            pytest.fail(f"{opts.label} is registered in the admin: give this test a target for it")
    events_before = TrialEvent.objects.count()
    checked = 0
    for role, user in users.items():
        client.force_login(user)
        before = _fingerprint()
        for model, (model_admin, obj, scoped) in targets.items():
            if obj is None:
                continue
            form = _hostile_form(obj)
            for url, aims_at_object in _routes(model_admin, obj):
                for method in ("get", "post"):
                    actions = [{}]
                    if method == "post" and not aims_at_object:
                        actions = [{"action": name} for name in _action_names(model_admin)]
                    for action in actions:
                        refused, status = _refused(client, method, url, form | action)
                        assert status < 500, f"{role}: {method.upper()} {url} gave {status}"
                        if scoped and aims_at_object:
                            assert refused, f"{role}: {method.upper()} {url} answered {status}"
                        checked += 1
            after = _fingerprint()
            changed = [table for table in before if before[table] != after[table]]
            assert not changed, f"{role} changed {changed} through the {model.__name__} admin"
    new_events = TrialEvent.objects.order_by("id")[events_before:]
    assert {event.kind for event in new_events} <= REFUSAL_EVENTS
    assert checked > 400


def test_every_admin_route_answers_a_superuser_without_an_error(client, world):
    """The same routes on real objects, read by someone allowed to: no view is a 500."""
    _, trial_b = world
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.org", "pw"))
    for model, model_admin in admin.site._registry.items():
        obj = TRIAL_MODELS[model](trial_b) if model in TRIAL_MODELS else model.objects.first()
        if obj is None:
            continue
        for url, _ in _routes(model_admin, obj):
            status = client.get(url).status_code
            assert status < 500, f"GET {url} gave {status}"
