"""Analysis runs in the admin: coordinators start them; progress and results are read-only."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from analytics.models import AnalysisRun
from analytics.services import analysis_run_create, analysis_run_execute
from tests.trials.factories import enrolling_trial
from trials.models import TrialMember
from trials.services import member_add, participant_enrol, screening_record

pytestmark = pytest.mark.django_db

START = "/admin/analytics/analysisrun/start/"


def staff(username: str, group: str):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_a_coordinator_starts_a_run_that_is_queued_for_a_worker(
    client, small_trial, django_capture_on_commit_callbacks
):
    coordinator = staff("cora", "Coordinators")
    member_add(trial=small_trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
    client.force_login(coordinator)
    assert "Start an analysis run" in client.get("/admin/analytics/analysisrun/").content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(START, {"trial": small_trial.pk, "kind": "exploratory", "seed": 3})
    assert response.status_code == 302
    run = AnalysisRun.objects.get(trial=small_trial)
    assert (run.kind, run.seed, run.status) == ("exploratory", 3, "queued")
    assert len(callbacks) == 1  # the task is sent once the run row is committed


def test_a_coordinator_cannot_start_runs_for_trials_they_do_not_coordinate(client, small_trial):
    client.force_login(staff("cora", "Coordinators"))
    response = client.post(START, {"trial": small_trial.pk, "kind": "confirmatory", "seed": 1})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not AnalysisRun.objects.exists()


def test_analysts_read_runs_but_cannot_start_them(client, small_trial):
    analyst = staff("ana", "Analysts")
    member_add(trial=small_trial, user=analyst, role=TrialMember.Role.ANALYST)
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    client.force_login(analyst)
    assert client.get(START).status_code == 403
    listing = client.get("/admin/analytics/analysisrun/").content.decode()
    assert '<progress max="100" value="100">' in listing
    detail = client.get(f"/admin/analytics/analysisrun/{run.pk}/change/").content.decode()
    assert "bayes_growth" in detail and "confirmatory" in detail


def test_runs_of_other_trials_are_not_listed(client, small_trial):
    analysis_run_create(trial=small_trial, enqueue=False)
    client.force_login(staff("ana", "Analysts"))  # an analyst of no trial
    listing = client.get("/admin/analytics/analysisrun/").content.decode()
    assert "0 analysis runs" in listing


def test_the_trial_page_shows_its_consort_flow_and_checks_the_ratio(client):
    alice = staff("alice", "Coordinators")
    trial = enrolling_trial("c", actor=alice)
    screening_record(trial=trial, eligible=False, exclusion_reason="Under 18")
    for n in range(6):
        screening = screening_record(trial=trial, eligible=True)
        participant_enrol(
            trial=trial,
            email=f"p{n}@example.org",
            consent_document=trial.consent_documents.get(),
            scopes=["surveys"],
            screening=screening,
        )
    client.force_login(alice)
    consort = f"/admin/trials/trial/{trial.pk}/consort/"
    assert consort in client.get(f"/admin/trials/trial/{trial.pk}/change/").content.decode()
    page = client.get(consort).content.decode()
    assert "Assessed for eligibility</th><td>7" in page
    assert "Under 18: 1" in page and "no mismatch" in page
