"""Response headers: a Content-Security-Policy on every kind of page, and no caching or leaking
of the personal links' tokens. (That the pages work under the policy in a browser is proven by
the browser tests, which fail on any violation.)"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from config.security import client_ip, csp_hash
from dashboards.dash_app import dash_app
from dashboards.views import PLOTLY_TAG_STYLES
from surveys.links import data_path, survey_path
from trials.models import ConsentDocument, TrialMember
from trials.services import assignment_token, member_add, participant_enrol

pytestmark = pytest.mark.django_db


def _policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: sources}."""
    directives = [part.split() for part in response["Content-Security-Policy"].split(";")]
    return {name: sources for name, *sources in directives}


@pytest.fixture
def participant(small_trial):
    return participant_enrol(
        trial=small_trial,
        email="headers@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )


@pytest.fixture
def analyst(small_trial):
    user = get_user_model().objects.create_user("ada", password="a-long-password")
    user.groups.add(Group.objects.get(name="Analysts"))
    member_add(trial=small_trial, user=user, role=TrialMember.Role.ANALYST)
    return user


def test_every_kind_of_page_has_a_policy_without_inline_scripts(
    client, participant, analyst, admin_user
):
    wave = participant.trial.waves.get(index=0)
    pages = {
        "/admin/login/": client,
        "/accounts/login/": client,
        survey_path(participant.pk, wave.pk): client,
        data_path(participant.pk): client,
    }
    signed_in = Client()
    signed_in.force_login(admin_user)
    pages["/admin/"] = pages["/admin/trials/trial/"] = signed_in
    analyst_client = Client()
    analyst_client.force_login(analyst)
    pages["/dashboards/"] = pages[f"/dashboards/{participant.trial.slug}/"] = analyst_client
    for path, as_user in pages.items():
        response = as_user.get(path)
        assert response.status_code == 200, path
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"], path
        assert "'unsafe-inline'" not in policy["script-src"], path
        assert "'unsafe-eval'" not in policy["script-src"], path
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_the_dashboard_page_allows_only_dashs_own_inline_scripts(client, small_trial, analyst):
    client.force_login(analyst)
    response = client.get(f"/dashboards/{small_trial.slug}/")
    policy = _policy(response)
    assert policy["script-src"] == ["'self'", *dash_app().csp_hashes()]
    # Every inline script on the page is one of those (Dash's config is JSON, not a script).
    html = response.content.decode()
    assert html.count("<script>") + html.count('type="application/javascript"') == 1
    # Elsewhere <style> elements and blob: images are refused; here Dash and Plotly use them.
    assert policy["style-src-elem"] == ["'self'", "'unsafe-inline'"]
    assert policy["img-src"] == ["'self'", "blob:"]
    elsewhere = _policy(client.get("/dashboards/"))
    assert "style-src-elem" not in elsewhere and "img-src" not in elsewhere
    # Style attributes: the site's two, and Plotly's rich-text styles, by their hashes only.
    assert policy["style-src-attr"][0] == "'unsafe-hashes'"
    added = set(policy["style-src-attr"]) - set(elsewhere["style-src-attr"])
    assert added == {csp_hash(style) for style in PLOTLY_TAG_STYLES}
    assert csp_hash("font-weight:bold") in added  # the figures' <b> titles


def test_personal_pages_are_never_cached_and_keep_their_token_out_of_referers(client, participant):
    wave = participant.trial.waves.get(index=0)
    personal = [
        survey_path(participant.pk, wave.pk),
        data_path(participant.pk),
        f"/api/v1/assignment/{assignment_token(participant)}/",
        "/s/tampered-token/",  # the friendly "bad link" page too
    ]
    for path in personal:
        response = client.get(path)
        assert "no-store" in response["Cache-Control"], path
        assert response["Referrer-Policy"] == "strict-origin", path
    # A page without a token keeps the site's defaults.
    other = client.get("/")
    assert "Cache-Control" not in other
    assert other["Referrer-Policy"] == "same-origin"


def test_the_login_throttle_counts_the_socket_peer_unless_behind_a_proxy(rf, settings):
    request = rf.post("/admin/login/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")
    # Without a proxy the header is the client's own claim: ignored.
    assert client_ip(request) == "10.0.0.5"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Behind one, the right-most entry is the one the proxy appended; the rest is the client's.
    request.META["HTTP_X_FORWARDED_FOR"] = "6.6.6.6, 203.0.113.9"
    assert client_ip(request) == "203.0.113.9"
    del request.META["HTTP_X_FORWARDED_FOR"]
    assert client_ip(request) == "10.0.0.5"
