"""Analysis runs executed by a real ``celery worker`` process over the real broker."""

import pytest

from analytics.models import AnalysisRun
from analytics.seeding import synthetic_trial_create
from analytics.services import analysis_run_create
from analytics.tasks import analysis_run_execute_task
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _finished(run_id: int):
    run = AnalysisRun.objects.get(pk=run_id)
    return run if run.status in (AnalysisRun.Status.FINISHED, AnalysisRun.Status.FAILED) else None


def test_worker_executes_an_enqueued_run(celery_worker_process):
    trial = synthetic_trial_create(slug="w", participants=30, waves=3, effect=0.5, seed=3)
    run = analysis_run_create(trial=trial)  # enqueued when this (autocommit) write commits
    done = wait_for(lambda: _finished(run.pk), timeout=120, what="the worker to finish the run")
    assert done.status == AnalysisRun.Status.FINISHED, done.error
    assert {e["method"] for e in done.results["estimates"]} >= {"mixedlm", "bayes_growth"}
    assert "analysis_run_execute_task[" in celery_worker_process.log()


def test_duplicate_deliveries_store_one_result(celery_worker_process):
    trial = synthetic_trial_create(slug="d", participants=30, waves=3, effect=0.5, seed=4)
    run = analysis_run_create(trial=trial, enqueue=False)
    task_ids = [analysis_run_execute_task.delay(run.pk).id for _ in range(3)]
    wait_for(
        lambda: all(
            f"[{task_id}] succeeded" in celery_worker_process.log() for task_id in task_ids
        ),
        timeout=120,
        what="all three deliveries to complete on the worker",
    )
    done = AnalysisRun.objects.get(pk=run.pk)
    assert done.status == AnalysisRun.Status.FINISHED, done.error
    # The first delivery computed the result; the other two saw a finished run and left it alone.
    assert done.started_at <= done.finished_at
    assert AnalysisRun.objects.filter(trial=trial).count() == 1
