"""A worker killed mid-run on a real broker: the run is re-queued by beat's sweep once its
heartbeat stops, and a new worker finishes it exactly once, on RabbitMQ and on Redis alike."""

import os
import signal

import pytest

from analytics.models import AnalysisRun
from analytics.results import Results
from analytics.seeding import synthetic_trial_create
from analytics.services import analysis_run_create
from analytics.tasks import analysis_run_execute_task
from config.celery import app
from tests.analytics.conftest import start_celery_beat
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from trials.models import TrialEvent

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Seconds of silence after which a run counts as abandoned, and between sweeps: short, so the
# test takes seconds; the worker heart-beats ten times per stale span.
FAULT_ENV = {"ANALYSIS_RUN_STALE_SECONDS": "8", "ANALYSIS_RUN_SWEEP_SECONDS": "1"}


def test_a_run_whose_worker_is_killed_finishes_once_on_another(broker, artifacts_dir, tmp_path):
    trial = synthetic_trial_create(slug="k", participants=30, waves=3, effect=0.5, seed=5)
    run = analysis_run_create(trial=trial, enqueue=False, ordinal=False)
    env = broker.env(**FAULT_ENV)
    first = start_celery_worker(
        artifacts_dir, name=f"fault-worker-1-{broker.name}", queue=broker.queue, extra_env=env
    )
    beat = start_celery_beat(artifacts_dir, tmp_path, name=f"fault-beat-{broker.name}", env=env)
    second = None
    try:
        with app.connection_for_write(broker.url) as connection:
            task_id = analysis_run_execute_task.apply_async(
                (run.pk,), connection=connection, queue=broker.queue
            ).id
        wait_for(
            lambda: AnalysisRun.objects.filter(pk=run.pk, progress__gt=0).exists(),
            timeout=120,
            what="the first worker to be under way",
        )
        os.killpg(first.process.pid, signal.SIGKILL)  # the worker and its pool, mid-run
        first.process.wait()
        killed = AnalysisRun.objects.get(pk=run.pk)
        assert (killed.status, killed.attempts) == (AnalysisRun.Status.RUNNING, 1)

        second = start_celery_worker(
            artifacts_dir, name=f"fault-worker-2-{broker.name}", queue=broker.queue, extra_env=env
        )
        done = wait_for(
            lambda: AnalysisRun.objects.filter(
                pk=run.pk, status__in=[AnalysisRun.Status.FINISHED, AnalysisRun.Status.FAILED]
            ).first(),
            timeout=240,
            what="the second worker to finish the run",
        )
    finally:
        for process in (second, beat, first):
            if process is not None:
                stop_celery_worker(process)
    assert done.status == AnalysisRun.Status.FINISHED, done.error
    assert done.attempts == 2 and Results.model_validate(done.results).estimates
    events = TrialEvent.objects.filter(trial=trial, detail__run=run.pk)
    assert events.filter(kind="analysis_run_finished").count() == 1
    if broker.name == "rabbitmq":
        # Acknowledged late, the killed worker's message went back to the queue at once.
        assert f"analysis_run_execute_task[{task_id}] received" in second.log()
    else:
        # Redis holds the killed worker's message until its visibility timeout (40 min): the
        # sweep, not the broker, brought the run back.
        assert events.filter(kind="analysis_run_requeued").exists()
