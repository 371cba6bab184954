"""The demo's seeding: the quick part a run does before its pages are up, and the simulated
cohort recorded behind them, resumably."""

import io

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

import analytics.seeding
from analytics.models import AnalysisRun
from analytics.seeding import synthetic_cohort_record, synthetic_trial_open
from analytics.simulate import simulate_scores
from surveys.models import Response
from trials.models import Trial
from trials.rules import permitted


def _seed_demo(*args: str) -> dict[str, str]:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=io.StringIO())
    return dict(line.split("=", 1) for line in out.getvalue().splitlines())


@pytest.mark.django_db
def test_each_run_prints_a_fresh_participant_link_and_one_login_per_role(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first, second = _seed_demo(), _seed_demo()
    assert first["survey"] != second["survey"]
    assert first["cohort"] == "pending"  # recorded behind the pages, by seed_demo --cohort
    assert first["coordinator"] == second["coordinator"]  # logins are kept, not remade
    users = {
        name: get_user_model().objects.get(username=name)
        for name in ("coordinator", "ethics", "analyst", "admin")
    }
    assert [u.is_superuser for u in users.values()] == [False, False, False, True]
    # Every login but the superuser's sees the demo trial and nothing else.
    for name in ("coordinator", "ethics", "analyst"):
        assert list(permitted(users[name], "trials.view_trial").values_list("slug", flat=True)) == [
            "demo"
        ]
    assert set(permitted(users["admin"], "trials.view_trial").values_list("slug", flat=True)) == {
        "demo",
        "other-lab",
    }
    demo = Trial.objects.get(slug="demo")
    assert users["coordinator"].has_perm("trials.change_trial", demo)
    assert not users["ethics"].has_perm("trials.change_trial", demo)
    assert users["ethics"].has_perm("trials.approve_preregistration", demo)
    assert users["analyst"].has_perm("trials.view_results", demo)


@pytest.mark.django_db
def test_an_interrupted_cohort_is_finished_by_the_next_run(monkeypatch):
    trial = synthetic_trial_open(slug="resume", participants=9, waves=2, effect=0.5, seed=5)
    submitted = analytics.seeding._record_response
    calls = 0

    def failing_in_the_second_batch(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 10:
            raise KeyboardInterrupt
        submitted(*args, **kwargs)

    monkeypatch.setattr(analytics.seeding, "_record_response", failing_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        synthetic_cohort_record(trial=trial, participants=9, effect=0.5, seed=5, batch_size=4)
    kept = Response.objects.filter(participant__trial=trial).count()
    assert 0 < kept <= 8  # the first batch (4 participants, 2 waves) committed; the second not
    monkeypatch.setattr(analytics.seeding, "_record_response", submitted)
    synthetic_cohort_record(trial=trial, participants=9, effect=0.5, seed=5, batch_size=4)
    # Every participant once, every simulated answer once (drop-out does not depend on the arm).
    simulated = simulate_scores(
        n_participants=9, n_waves=2, effect=0.5, seed=5, arm=np.zeros(9, dtype=int)
    )
    answered = simulated.scores.query("dimension == 'mental_wellbeing'")
    assert trial.participants.count() == 9
    assert Response.objects.filter(participant__trial=trial).count() == len(answered)
    assert not AnalysisRun.objects.filter(trial=trial).exists()
