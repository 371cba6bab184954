"""Who may read a trial's dashboard: every Dash route passes Django's login and per-trial checks,
and reading never writes."""

import json

import pytest
from django.contrib.auth.models import User

from analytics.models import AnalysisRun
from dashboards.answer import run_answers
from tests.dashboards.conftest import render_dashboard
from trials.models import TrialEvent, TrialMember
from trials.services import member_add, trial_create

pytestmark = pytest.mark.django_db

DASH_ROUTES = ["/dashboards/_dash-layout", "/dashboards/_dash-dependencies"]


def test_anonymous_users_are_sent_to_login(client, small_trial):
    for url in ["/dashboards/", "/dashboards/small/", *DASH_ROUTES]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    response = render_dashboard(client, "small")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_participants_and_users_without_permission_get_403(client, small_trial):
    client.force_login(User.objects.create_user("participant", password="pw"))
    for url in ["/dashboards/", "/dashboards/small/", *DASH_ROUTES]:
        assert client.get(url).status_code == 403, url
    assert render_dashboard(client, "small").status_code == 403


def test_analysts_of_another_trial_get_403_and_do_not_see_it_listed(client, analyst, small_trial):
    other = trial_create(slug="other", title="Other trial")
    member_add(trial=other, user=analyst, role=TrialMember.Role.ANALYST)
    client.force_login(analyst)
    assert client.get("/dashboards/small/").status_code == 403
    # The callback checks the trial itself: knowing Dash's route is not enough.
    assert render_dashboard(client, "small").status_code == 403
    assert render_dashboard(client, "other").status_code == 200
    assert "Synthetic trial small" not in client.get("/dashboards/").content.decode()


def test_unknown_trials_are_404(client, analyst):
    client.force_login(analyst)
    assert client.get("/dashboards/nope/").status_code == 404
    assert render_dashboard(client, "nope").status_code == 404


def test_analyst_reads_the_stored_result_with_its_labels(client, analyst, analysed_trial):
    client.force_login(analyst)
    page = client.get("/dashboards/small/")
    assert page.status_code == 200 and b"_dash-config" in page.content
    # Dash's scripts come from this server, never from a CDN.
    assert b"cdn" not in page.content.lower() and b"https://" not in page.content
    rendered = render_dashboard(client, "small")
    assert rendered.status_code == 200
    text = rendered.content.decode()
    run = AnalysisRun.objects.get(trial=analysed_trial)
    [answer] = run_answers(run)
    assert str(round(answer.estimate, 4)) in text  # the estimates table's precision
    assert analysed_trial.preregistrations.get().sha256 in text
    assert '"data-label":"confirmatory"' in text and '"data-label":"exploratory"' in text
    # The answer comes first, before the integrity record.
    assert text.index(json.dumps(answer.verdict_key)) < text.index("panel-status")
    listing = client.get("/dashboards/").content.decode()
    assert "Synthetic trial small" in listing and answer.summary in listing
    assert answer.verdict.capitalize() in listing


def test_the_header_switches_between_readable_trials_and_signs_out(client, analyst, analysed_trial):
    hidden = trial_create(slug="hidden", title="A trial this analyst does not read")
    client.force_login(analyst)
    for url in ["/dashboards/", "/dashboards/small/"]:
        page = client.get(url).content.decode()
        assert 'class="site-header"' in page and "Signed in as <strong>ana</strong>" in page
        assert 'href="/dashboards/small/"' in page and hidden.title not in page
        assert 'name="csrfmiddlewaretoken"' in page and 'action="/accounts/logout/"' in page
    assert (
        'aria-current="page">Synthetic trial small'
        in client.get("/dashboards/small/").content.decode()
    )
    signed_out = client.post("/accounts/logout/", {"next": "/accounts/login/"})
    assert signed_out.status_code == 302 and signed_out["Location"] == "/accounts/login/"
    assert client.get("/dashboards/").status_code == 302


def test_reading_writes_nothing_and_analysts_cannot_write(client, analyst, analysed_trial):
    client.force_login(analyst)
    run = AnalysisRun.objects.get(trial=analysed_trial)
    before = (AnalysisRun.objects.count(), TrialEvent.objects.count(), json.dumps(run.results))
    assert render_dashboard(client, "small").status_code == 200
    run.refresh_from_db()
    assert (AnalysisRun.objects.count(), TrialEvent.objects.count(), json.dumps(run.results)) == (
        before
    )
    assert not any(
        analyst.has_perm(f"analytics.{action}_analysisrun")
        for action in ("add", "change", "delete")
    )
    # Dash's routes are the only dashboard routes that take a POST, and they only render.
    assert client.post("/dashboards/small/").status_code in (403, 405)
