"""The broker-independent stale-run rule, in one process: claims, heart-beats, beat's sweep, the
attempt bound and the fence that keeps a superseded attempt from writing. (test_worker_faults.py
kills a real worker on RabbitMQ and Redis.)"""

import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from analytics import services
from analytics.models import AnalysisRun
from analytics.services import (
    MAX_ATTEMPTS,
    analysis_run_create,
    analysis_run_execute,
    analysis_runs_requeue_stale,
)
from analytics.tasks import analysis_run_execute_task
from config.celery import app
from tests.conftest import wait_for
from trials.models import TrialEvent

pytestmark = pytest.mark.django_db

STALE = timedelta(seconds=60)
# What a slow analysis would store: a real results document (the dashboards' golden one), since
# a finished run's safety checks read it (analytics.safety_checks).
_GOLDEN = json.loads((Path(__file__).parents[1] / "dashboards" / "golden_results.json").read_text())
RESULT = (_GOLDEN["results"], _GOLDEN["diagnostics"], "0" * 64)


def _run(trial, **fields) -> AnalysisRun:
    run = analysis_run_create(trial=trial, enqueue=False)
    AnalysisRun.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    return run


def _abandoned(trial, *, attempts: int = 1, silent: timedelta = STALE * 2) -> AnalysisRun:
    """A run whose worker died ``silent`` ago."""
    then = timezone.now() - silent
    return _run(
        trial,
        status=AnalysisRun.Status.RUNNING,
        attempts=attempts,
        started_at=then,
        heartbeat_at=then,
    )


def _events(run: AnalysisRun, kind: str) -> int:
    return TrialEvent.objects.filter(kind=kind, detail__run=run.pk).count()


def test_the_celery_settings_favour_finishing_over_throughput():
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    sweep = conf.beat_schedule["analysis-runs-sweep"]
    assert sweep["task"] == "analytics.tasks.analysis_runs_sweep"
    assert sweep["schedule"] == settings.ANALYSIS_RUN_SWEEP_SECONDS


def test_redis_keeps_a_message_from_a_second_worker_longer_than_any_task_runs():
    """Redis hands an unacknowledged message to another worker after its visibility timeout,
    even while the first still executes it; the Celery app sets it past the hard time limit."""
    probe = (
        "import json, django; django.setup(); from config.celery import app; "
        "print(json.dumps([app.conf.broker_transport_options, app.conf.task_time_limit]))"
    )
    env = dict(os.environ, CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    output = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    options, time_limit = json.loads(output.splitlines()[-1])
    assert options["visibility_timeout"] > time_limit


def test_a_live_run_is_never_taken_twice(small_trial):
    run = _run(
        small_trial,
        status=AnalysisRun.Status.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now(),
    )
    with mock.patch.object(services, "_analyse") as analyse:
        again = analysis_run_execute(run_id=run.pk, stale_after=STALE)
    analyse.assert_not_called()
    assert (again.status, again.attempts) == (AnalysisRun.Status.RUNNING, 1)


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_handed_the_same_run_at_once_one_executes_it(small_trial):
    run = _run(small_trial)
    ready = threading.Barrier(2)
    executed = []

    def analyse(run):
        executed.append(run.attempts)
        return RESULT

    def worker():
        ready.wait()
        try:
            analysis_run_execute(run_id=run.pk, stale_after=STALE)
        finally:
            from django.db import connection

            connection.close()

    with mock.patch.object(services, "_analyse", side_effect=analyse):
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    run.refresh_from_db()
    assert executed == [1]
    assert (run.status, run.attempts) == (AnalysisRun.Status.FINISHED, 1)
    assert _events(run, "analysis_run_finished") == 1


def test_the_sweep_requeues_a_silent_run_and_a_worker_finishes_it(
    small_trial, django_capture_on_commit_callbacks
):
    run = _abandoned(small_trial)
    alive = _run(
        small_trial, status=AnalysisRun.Status.RUNNING, attempts=1, heartbeat_at=timezone.now()
    )
    with (
        mock.patch.object(analysis_run_execute_task, "delay") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert analysis_runs_requeue_stale(stale_after=STALE) == [run.pk]
    enqueue.assert_called_once_with(run.pk)  # only once the re-queue committed
    run.refresh_from_db()
    assert run.status == AnalysisRun.Status.QUEUED and run.heartbeat_at > timezone.now() - STALE
    assert _events(run, "analysis_run_requeued") == 1
    assert analysis_runs_requeue_stale(stale_after=STALE) == []  # nothing twice

    with mock.patch.object(services, "_analyse", return_value=RESULT):
        done = analysis_run_execute(run_id=run.pk, stale_after=STALE)
    assert (done.status, done.attempts, done.progress) == (AnalysisRun.Status.FINISHED, 2, 1.0)
    assert done.results == RESULT[0]
    alive.refresh_from_db()
    assert alive.status == AnalysisRun.Status.RUNNING


def test_a_queued_run_whose_message_was_lost_is_sent_again(small_trial):
    lost = _run(small_trial, heartbeat_at=timezone.now() - STALE * 2)
    waiting = _run(small_trial, heartbeat_at=timezone.now())
    never_enqueued = _run(small_trial)  # executed in-process by analyze_trial, not by a worker
    with mock.patch.object(analysis_run_execute_task, "delay"):
        assert analysis_runs_requeue_stale(stale_after=STALE) == [lost.pk]
    for run in (waiting, never_enqueued):
        run.refresh_from_db()
        assert (
            run.status == AnalysisRun.Status.QUEUED and _events(run, "analysis_run_requeued") == 0
        )


def test_a_run_whose_workers_keep_dying_fails_with_a_reason(small_trial):
    run = _abandoned(small_trial, attempts=MAX_ATTEMPTS)
    with mock.patch.object(analysis_run_execute_task, "delay") as enqueue:
        assert analysis_runs_requeue_stale(stale_after=STALE) == []
    enqueue.assert_not_called()
    run.refresh_from_db()
    assert run.status == AnalysisRun.Status.FAILED and run.finished_at is not None
    assert f"stopped {MAX_ATTEMPTS} times" in run.error and "not tried again" in run.error
    assert _events(run, "analysis_run_failed") == 1


def test_a_redelivered_message_may_take_a_silent_run_itself(small_trial):
    run = _abandoned(small_trial)
    with mock.patch.object(services, "_analyse", return_value=RESULT):
        done = analysis_run_execute(run_id=run.pk, stale_after=STALE)
    assert (done.status, done.attempts) == (AnalysisRun.Status.FINISHED, 2)


def test_a_superseded_attempt_writes_nothing(small_trial):
    """A worker that was only paused (not dead) past the stale limit finds, when it resumes,
    that the run was handed on: its result is dropped, the other attempt's stands."""
    run = _run(small_trial)

    def paused_past_the_limit(first):
        AnalysisRun.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - STALE * 2)
        with mock.patch.object(services, "_analyse", return_value=RESULT):
            analysis_run_execute(run_id=first.pk, stale_after=STALE)  # attempt 2 finishes
        services._set_progress(first, 0.5)  # attempt 1's late progress changes nothing
        return {"estimates": [{"method": "late"}]}, {}, "1" * 64

    with mock.patch.object(services, "_analyse", side_effect=paused_past_the_limit):
        analysis_run_execute(run_id=run.pk, stale_after=STALE)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.progress) == (AnalysisRun.Status.FINISHED, 2, 1.0)
    assert run.results == RESULT[0]
    assert _events(run, "analysis_run_finished") == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_heart_beats_while_a_long_step_runs(small_trial):
    run = _run(small_trial)
    seen = []

    def long_fit(run):
        before = AnalysisRun.objects.get(pk=run.pk).heartbeat_at
        seen.append(
            wait_for(
                lambda: AnalysisRun.objects.get(pk=run.pk).heartbeat_at > before,
                timeout=10,
                what="a heartbeat during the fit",
            )
        )
        return RESULT

    with mock.patch.object(services, "_analyse", side_effect=long_fit):
        done = analysis_run_execute(run_id=run.pk, stale_after=STALE, heartbeat_every=0.05)
    assert seen == [True] and done.status == AnalysisRun.Status.FINISHED


def test_a_run_past_the_time_limit_fails_instead_of_retrying(small_trial):
    run = _run(small_trial)
    with mock.patch.object(services, "_analyse", side_effect=SoftTimeLimitExceeded):
        assert analysis_run_execute_task(run.pk) == AnalysisRun.Status.FAILED
    run.refresh_from_db()
    assert "longer than a worker may spend" in run.error
    assert _events(run, "analysis_run_failed") == 1
