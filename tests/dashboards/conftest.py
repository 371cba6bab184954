"""Fixtures for the dashboard tests: an analyst and a trial with one finished analysis run."""

import json

import pytest
from django.contrib.auth.models import Group, User

from analytics.services import analysis_run_create, analysis_run_execute
from trials.models import TrialMember
from trials.services import member_add


@pytest.fixture
def analyst(db) -> User:
    user = User.objects.create_user("ana", password="pw")
    user.groups.add(Group.objects.get(name="Analysts"))
    return user


@pytest.fixture
def analysed_trial(small_trial, analyst):
    """``small_trial`` with a finished confirmatory run (really fitted) and ``analyst`` on it."""
    member_add(trial=small_trial, user=analyst, role=TrialMember.Role.ANALYST)
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    assert run.status == "finished", run.error
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
