"""Access is decided by the rules of trials.rules, and every route of the project asks them.

The first tests pin what each rule decides for each kind of person, and that a rule's list form
(``permitted``) and its object form (``has_perm``) agree. The last ones enumerate every URL
pattern the project serves (not only the admin's), so a view added later is covered without
anyone remembering to list it: anonymous visitors are refused everywhere but on the public
pages named below, and a signed-in person who works on no trial sees nothing of one.
"""

import re

import pytest
import rules
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.dashboards.conftest import callback_body
from tests.trials.factories import bodies, enrolling_trial
from trials.models import TrialMember
from trials.rules import OBJECT_RULES, permitted
from trials.services import member_add, oversight_assign, participant_enrol, participant_withdraw

pytestmark = pytest.mark.django_db

ALL_GROUPS = ["Coordinators", "Analysts", "Oversight members", "Community authors"]

# Who holds each rule on the trial (superusers hold every one).
EXPECTED_ON_TRIAL = {
    "trials.view_trial": {"coordinator", "analyst", "overseer", "member without a group"},
    "trials.change_trial": {"coordinator"},
    "trials.approve_preregistration": {"overseer"},
    "trials.suspend_trial": {"overseer"},
    "trials.view_oversight_page": {"overseer"},
    "trials.view_results": {"coordinator", "analyst"},
}
# Who holds each rule on the body overseeing the trial.
EXPECTED_ON_BODY = {
    "trials.view_oversightbody": {"coordinator", "analyst", "overseer", "member without a group"},
    "trials.act_for_body": {"overseer"},
}


def _user(username: str, *groups: str, **flags):
    user = get_user_model().objects.create_user(username=username, password="pw", **flags)
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


@pytest.fixture
def world():
    """Trial "a" with one person in each relation to it, and an outsider in every group."""
    people = {
        "coordinator": _user("coordinator", "Coordinators", is_staff=True),
        "analyst": _user("analyst", "Analysts", is_staff=True),
        "overseer": _user("overseer", "Oversight members", is_staff=True),
        "member without a group": _user("bare"),
        "outsider": _user("outsider", *ALL_GROUPS, is_staff=True),
        "inactive coordinator": _user("gone", "Coordinators", is_staff=True, is_active=False),
        "superuser": get_user_model().objects.create_superuser("root", "r@example.org", "pw"),
    }
    trial = enrolling_trial("a", actor=people["coordinator"])
    member_add(trial=trial, user=people["analyst"], role=TrialMember.Role.ANALYST)
    member_add(trial=trial, user=people["member without a group"], role=TrialMember.Role.ANALYST)
    member_add(trial=trial, user=people["inactive coordinator"], role=TrialMember.Role.COORDINATOR)
    (body,) = bodies("Board of trial a")
    body.members.add(people["overseer"])
    oversight_assign(trial=trial, body=body, required=False)
    return people, trial, body


def test_every_rule_has_its_expected_holders():
    assert set(OBJECT_RULES) == set(EXPECTED_ON_TRIAL) | set(EXPECTED_ON_BODY), (
        "a new rule needs a row in this test"
    )


@pytest.mark.parametrize(
    ("expected", "target"), [(EXPECTED_ON_TRIAL, "trial"), (EXPECTED_ON_BODY, "body")]
)
def test_each_rule_holds_for_exactly_its_people_in_both_forms(world, expected, target):
    people, trial, body = world
    obj = trial if target == "trial" else body
    people = people | {"anonymous": AnonymousUser()}
    for permission, holders in expected.items():
        for who, user in people.items():
            allowed = who in holders or who == "superuser"
            assert user.has_perm(permission, obj) is allowed, (permission, who)
            listed = permitted(user, permission).filter(pk=obj.pk).exists()
            assert listed is allowed, (permission, who, "permitted() disagrees with has_perm")


def test_a_rule_with_a_model_permission_asked_without_an_object_asks_for_that_permission(world):
    people, _, _ = world
    assert people["analyst"].has_perm("trials.view_results")
    assert not people["member without a group"].has_perm("trials.view_results")
    # The others leave the question to the groups' model permissions.
    assert people["coordinator"].has_perm("trials.change_trial")
    assert not people["analyst"].has_perm("trials.change_trial")


def test_the_assignment_rule_serves_only_allocated_participants_of_running_trials(world):
    _, trial, _ = world
    participant = participant_enrol(
        trial=trial,
        email="p@example.org",
        consent_document=trial.consent_documents.get(),
        scopes=["surveys"],
    )
    assert rules.test_rule("trials.receive_assignment", participant)
    participant_withdraw(participant=participant)
    participant.refresh_from_db()
    assert not rules.test_rule("trials.receive_assignment", participant)


# --- every route of the project ---------------------------------------------------------------

# Pages anyone may open: the health check, signing in and resetting a password, the front page
# (a redirect to the dashboards, which ask for a login), the admin's own sign-in and out, and the
# front door's recruitment, screening, consent and confirmation pages (surveys.front_door).
PUBLIC = {
    "",
    "healthz",
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "admin:login",
    "admin:logout",
    "join:landing",
    "join:landing_community",
    "join:screening",
    "join:consent",
    "join:confirm",
}
# A value for every URL parameter: each aims at trial "b" where it names something.
SAMPLES = {
    "slug": "b",
    "community": "b",
    "token": "forged-token",
    "uidb64": "MQ",
    "resource": "_dash-layout",
    "url": "nowhere",
    "app_label": "trials",
    "fmt": "osf",
    "decision": "approve",
}
LOGIN_PAGES = ("/accounts/login/", "/admin/login/")
REFUSED = {403, 404, 405}
SECRET_TITLE = "Trial B: nobody outside it may read this"


def _sample(pattern: RoutePattern | RegexPattern) -> str:
    """A path that ``pattern`` matches, with each parameter's value from SAMPLES (object keys
    are 1: the routes that take them are the admin's, checked per object in
    test_admin_routes)."""

    def value(name: str | None) -> str:
        if name is None or name in SAMPLES:
            return SAMPLES.get(name, "1")
        if name.endswith("id") or name in ("pk", "content_type_id"):
            return "1"
        raise AssertionError(f"give this test a value for the URL parameter {name!r}")

    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: value(m[1]), str(pattern))
    text = pattern.regex.pattern.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    text = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", lambda m: value(m[1]), text)
    text = re.sub(r"\((?:[^()])*\)", "1", text)  # unnamed groups
    return text.replace("\\", "")


def _routes(resolver: URLResolver | None = None, prefix: str = "/", namespace: str = ""):
    """(path, name, pattern) for every URL pattern the project serves."""
    for entry in (resolver or get_resolver()).url_patterns:
        path = prefix + _sample(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from _routes(entry, path, inner)
        else:
            name = ":".join(filter(None, [namespace, entry.name])) if entry.name else None
            yield path, name, entry


def _parameters(pattern: URLPattern) -> set[str]:
    return set(pattern.pattern.regex.groupindex)


def _is_public(name: str | None, pattern: URLPattern) -> bool:
    return name in PUBLIC or (name is None and str(pattern.pattern) in PUBLIC)


def _refused(response) -> bool:
    if response.status_code in (301, 302):
        return response["Location"].startswith(LOGIN_PAGES)
    return response.status_code in REFUSED


@pytest.fixture
def trial_b(world):
    people, _, _ = world
    trial = enrolling_trial("b")
    trial.title = SECRET_TITLE
    trial.save(update_fields=["title"])
    return people["outsider"], trial


def test_the_route_samples_reach_their_own_views(world):
    routes = list(_routes())
    assert len(routes) > 100  # the admin's and everyone else's
    for path, name, pattern in routes:
        assert resolve(path).func == pattern.callback, f"{name or pattern.pattern}: {path}"
    named = {name for _, name, _ in routes} | {str(p.pattern) for _, _, p in routes}
    assert PUBLIC <= named, f"public routes that no longer exist: {PUBLIC - named}"


def test_anonymous_visitors_are_refused_on_every_route_but_the_public_ones(client, trial_b):
    checked = 0
    for path, name, pattern in _routes():
        if _is_public(name, pattern):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert _refused(response), (
                f"{method.upper()} {path} ({name}) answered {response.status_code} to anyone"
            )
            checked += 1
    assert checked > 200


def test_someone_who_works_on_no_trial_sees_nothing_of_one_on_any_route(client, trial_b):
    """The admin's routes are checked object by object, for every role, in
    test_admin_routes; here every other route, GET and POST, as a member of every group."""
    outsider, trial = trial_b
    client.force_login(outsider)
    checked = 0
    for path, name, pattern in _routes():
        if name and name.startswith("admin:") or _is_public(name, pattern):
            continue
        names_trial = "slug" in _parameters(pattern)
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            shown = response.status_code == 200 and SECRET_TITLE in response.content.decode()
            # A route that names the trial refuses; any other shows nothing of it.
            assert _refused(response) or not (
                names_trial or shown or response.status_code >= 400
            ), f"{method.upper()} {path} ({name}) answered {response.status_code}"
            checked += 1
    # The Dash callback renders the trial its posted URL names: it asks the rule itself.
    rendered = client.post(
        "/dashboards/_dash-update-component",
        data=callback_body(trial.slug),
        content_type="application/json",
    )
    assert rendered.status_code == 403
    assert checked > 10
