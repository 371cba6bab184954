"""Fixtures for the dashboard tests: an analyst, the golden analysis run (the results and
diagnostics documents a real fit of ``small_trial`` stored, ``golden_results.json``; see
``test_golden``), and ``small_trial`` with that run finished, so no panel test runs a sampler."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from analytics.models import AnalysisRun
from analytics.results import Diagnostics, Results
from analytics.services import analysis_run_create
from trials.models import TrialMember
from trials.services import member_add

GOLDEN_PATH = Path(__file__).with_name("golden_results.json")


@dataclass(frozen=True)
class Golden:
    results: Results
    diagnostics: Diagnostics


def golden_document() -> dict:
    """The stored JSON: ``{"results": …, "diagnostics": …}``."""
    return json.loads(GOLDEN_PATH.read_text())


@pytest.fixture(scope="session")
def golden() -> Golden:
    document = golden_document()
    return Golden(
        results=Results.model_validate(document["results"]),
        diagnostics=Diagnostics.model_validate(document["diagnostics"]),
    )


def analyst_create(username: str = "ana", password: str = "pw") -> User:
    user = User.objects.create_user(username, password=password)
    user.groups.add(Group.objects.get(name="Analysts"))
    return user


@pytest.fixture
def analyst(db) -> User:
    return analyst_create()


def finish_with_golden_run(trial, analyst: User) -> AnalysisRun:
    """Put ``analyst`` on ``trial`` and store a finished confirmatory run holding the golden
    documents (what fitting a trial made like ``small_trial`` stored, without fitting it)."""
    member_add(trial=trial, user=analyst, role=TrialMember.Role.ANALYST)
    run = analysis_run_create(trial=trial, enqueue=False)
    document = golden_document()
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=AnalysisRun.Status.FINISHED,
        progress=1.0,
        results=document["results"],
        diagnostics=document["diagnostics"],
        data_snapshot_sha256="0" * 64,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


@pytest.fixture
def analysed_trial(small_trial, analyst):
    """``small_trial`` with ``analyst`` on it and a finished run of the golden documents."""
    finish_with_golden_run(small_trial, analyst)
    return small_trial


def callback_body(slug: str) -> str:
    """What Dash's renderer posts to render the dashboard of ``slug``."""
    return json.dumps(
        {
            "output": "dashboard.children",
            "outputs": {"id": "dashboard", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": f"/dashboards/{slug}/"}],
            "changedPropIds": ["url.pathname"],
            "state": [],
        }
    )


def render_dashboard(client, slug: str):
    return client.post(
        "/dashboards/_dash-update-component",
        data=callback_body(slug),
        content_type="application/json",
    )
