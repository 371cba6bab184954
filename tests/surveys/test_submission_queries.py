"""A wave's submission through the participant page sends few SQL statements, and concurrent
double submissions store it once.

What is counted: every statement Django sends while the test client's POST is handled, on a
fresh client holding nothing but the participant's signed link: the reads, BEGIN, the inserts and
COMMIT (Django logs transaction statements since 4.2, and savepoints like any other). The page
touches no session and the test client skips the CSRF check, so no session or CSRF statement is
among them; the benchmark (infra/benchmarks/bench_survey_submissions.py) sends the CSRF cookie
and token, which cost no statement either. A bare insert of the same rows sends 4 (BEGIN, the
Response, its Score rows in one insert, COMMIT); the page may add one read."""

import json
import os
import subprocess
import sys
import threading

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from surveys.links import survey_path
from surveys.models import Response, ResponseDraft, Score
from tests.config.test_startup_imports import NUMERICAL_STACK, PROBE, REPO
from trials.models import ConsentDocument, ConsentScope
from trials.services import consent_revoke, participant_enrol

# A pytest-django transaction of its own per test: the submission's BEGIN and COMMIT are then
# the real ones, as in production, rather than savepoints inside the test's transaction.
pytestmark = pytest.mark.django_db(transaction=True)

ANSWERS = {
    **{f"swls:swls_{i}": "5" for i in range(1, 6)},
    **{f"who5:who5_{i}": "3" for i in range(1, 6)},
}
MOST_STATEMENTS = 5


@pytest.fixture
def participant(small_trial):
    small_trial.waves.filter(index=0).update(one_page=True)
    return participant_enrol(
        trial=small_trial,
        email="counted@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys", "telemetry"],
    )


@pytest.fixture
def link(participant):
    return survey_path(participant.pk, participant.trial.waves.get(index=0).pk)


def _finish(link):
    """The one POST that stores a one-page wave, from a browser that holds only the link."""
    return Client().post(link, {"page": "0", "action": "finish", **ANSWERS})


def test_a_submission_sends_at_most_five_statements(link, participant):
    with CaptureQueriesContext(connection) as queries:
        done = _finish(link)
    assert done.status_code == 302 and done.url.endswith("/done/")
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) <= MOST_STATEMENTS, "\n".join(statements)
    # One read (participant, trial, wave, instruments, draft, answered, consent), then the
    # writes: no savepoint, and no draft to delete.
    kinds = [sql.split(maxsplit=1)[0] for sql in statements]
    assert kinds == ["SELECT", "BEGIN", "INSERT", "INSERT", "COMMIT"], "\n".join(statements)
    response = Response.objects.get(participant=participant)
    assert set(response.quality) == {"swls", "who5"}
    assert dict(Score.objects.filter(response=response).values_list("code", "value")) == {
        "swls": 25.0,
        "who5": 60.0,
    }


def test_a_submission_after_a_saved_page_removes_the_draft(link, participant, small_trial):
    small_trial.waves.filter(index=0).update(one_page=False)
    client = Client()
    swls = {key: value for key, value in ANSWERS.items() if key.startswith("swls:")}
    who5 = {key: value for key, value in ANSWERS.items() if key.startswith("who5:")}
    assert client.post(link, {"page": "0", "action": "next", **swls}).status_code == 302
    assert ResponseDraft.objects.filter(participant=participant).exists()
    done = client.post(link, {"page": "1", "action": "finish", **who5})
    assert done.status_code == 302 and done.url.endswith("/done/")
    assert not ResponseDraft.objects.filter(participant=participant).exists()
    assert Response.objects.get(participant=participant).answers["swls"]["swls_1"] == 5


def test_the_one_read_still_refuses_without_consent_to_surveys(link, participant):
    # Leaving the surveys means leaving the study, so stand the grant down directly.
    grant = participant.consents.get(scope=ConsentScope.SURVEYS)
    grant.revoked_at = grant.granted_at
    grant.save()
    refused = _finish(link)
    assert refused.status_code == 409
    assert "no active consent to surveys" in refused.content.decode()
    assert not Response.objects.filter(participant=participant).exists()
    # Revoking another stream changes nothing for the surveys.
    grant.revoked_at = None
    grant.save()
    consent_revoke(participant=participant, scope=ConsentScope.TELEMETRY)
    assert _finish(link).status_code == 302
    assert Response.objects.filter(participant=participant).count() == 1


@pytest.mark.parametrize("clients", [2, 4])
def test_concurrent_double_submissions_store_one_response(link, participant, clients):
    barrier = threading.Barrier(clients)
    outcomes = []

    def click():
        try:
            barrier.wait()
            done = _finish(link)
            outcomes.append((done.status_code, done.get("Location", "")))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every click lands on the thank-you page, whichever of them stored the answers.
    assert len(outcomes) == clients
    assert all(status == 302 and url.endswith("/done/") for status, url in outcomes), outcomes
    response = Response.objects.get(participant=participant)
    assert Score.objects.filter(response=response).count() == 2
    assert Score.objects.filter(response__participant=participant).count() == 2
    assert not ResponseDraft.objects.filter(participant=participant).exists()


def test_the_survey_benchmark_s_workers_start_without_the_numerical_stack():
    """The survey benchmark's gunicorn (infra/benchmarks/survey_settings.py and survey_urls.py)
    starts as the product's does (tests/config/test_startup_imports.py), or its workers would
    spend the timed run importing JAX and statsmodels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "infra.benchmarks.survey_settings",
        # Named, never connected to: starting up reads no row.
        "SURVEY_BENCH_DATABASE": "bench_surveys_import_probe",
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(stack=set(NUMERICAL_STACK))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout.splitlines()[-1]) == []
