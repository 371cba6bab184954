"""Analysis runs executed by a real ``celery worker`` process over the real broker."""

import os
import socket

import pytest
from django.conf import settings

from analytics.models import AnalysisRun
from analytics.results import Results
from analytics.seeding import synthetic_trial_create
from analytics.services import analysis_run_create
from analytics.tasks import analysis_run_execute_task, analysis_runs_sweep
from config.celery import app
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _finished(run_id: int):
    run = AnalysisRun.objects.get(pk=run_id)
    return run if run.status in (AnalysisRun.Status.FINISHED, AnalysisRun.Status.FAILED) else None


def test_runs_have_a_queue_of_their_own_that_a_worker_started_like_the_stack_s_consumes(
    celery_worker_process,
):
    def queue(task) -> str:
        return app.amqp.router.route({}, task.name)["queue"].name

    assert queue(analysis_run_execute_task) == settings.ANALYSIS_QUEUE
    assert queue(analysis_runs_sweep) == settings.CELERY_TASK_DEFAULT_QUEUE
    assert settings.ANALYSIS_QUEUE != settings.CELERY_TASK_DEFAULT_QUEUE
    # Started without -Q, the worker lists both queues it consumes in its banner.
    for name in (settings.ANALYSIS_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE):
        assert f".> {name} " in celery_worker_process.log()


def test_the_worker_replaces_a_pool_process_after_max_tasks(celery_worker_process):
    node = f"celery-worker-{os.getpid()}@{socket.gethostname()}"
    stats = app.control.inspect(destination=[node], timeout=10, limit=1).stats() or {}
    assert node in stats, f"{node} did not answer"
    max_tasks = stats[node]["pool"]["max-tasks-per-child"]
    assert max_tasks == settings.CELERY_WORKER_MAX_TASKS_PER_CHILD > 0


def test_worker_executes_an_enqueued_run(celery_worker_process):
    trial = synthetic_trial_create(slug="w", participants=30, waves=3, effect=0.5, seed=3)
    run = analysis_run_create(trial=trial)  # enqueued when this (autocommit) write commits
    done = wait_for(lambda: _finished(run.pk), timeout=120, what="the worker to finish the run")
    assert done.status == AnalysisRun.Status.FINISHED, done.error
    methods = {e.method for e in Results.model_validate(done.results).estimates}
    assert methods >= {"mixedlm", "bayes_growth"}
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
