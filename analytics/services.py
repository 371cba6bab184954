"""Creating and executing analysis runs."""

import logging
import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from analytics.models import AnalysisRun
from trials.models import Trial, TrialEvent
from trials.selectors import preregistration_current, preregistration_in_force
from trials.services import event_record

logger = logging.getLogger(__name__)
REPO_DIR = Path(__file__).resolve().parent.parent
# A run whose worker dies this many times is marked failed rather than tried again.
MAX_ATTEMPTS = 3


def _stale_after() -> timedelta:
    """How long a running run's worker may stay silent before the run is handed on."""
    return timedelta(seconds=settings.ANALYSIS_RUN_STALE_SECONDS)


def code_version(*, repo_dir: Path = REPO_DIR) -> str:
    """The commit the code runs from, so a result can be traced to the code that made it: the
    ``FLOURISH_CODE_VERSION`` setting where one was given (the Docker image, which has no
    ``.git``, is built with it: infra/Dockerfile), else the checkout's commit in ``repo_dir``,
    else ``"unknown"``."""
    if settings.FLOURISH_CODE_VERSION:
        return settings.FLOURISH_CODE_VERSION
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@transaction.atomic
def analysis_run_create(
    *,
    trial: Trial,
    kind: str = AnalysisRun.Kind.CONFIRMATORY,
    seed: int = 20260101,
    ordinal: bool | None = None,
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> AnalysisRun:
    """Record a run; with ``enqueue`` a worker executes it once the transaction commits. A
    confirmatory run analyses the plan in force (the latest version every required body
    approved); an exploratory one the latest frozen version. ``ordinal`` asks for (True) or
    leaves out (False) the item-level sensitivity model; by default it runs where a GPU is
    present."""
    if kind == AnalysisRun.Kind.CONFIRMATORY:
        prereg = preregistration_in_force(trial)
        if prereg is None:
            raise ValidationError(
                "No version of the plan has been approved by every required oversight body: a "
                "confirmatory run analyses only an approved plan (an exploratory run can "
                "analyse the latest frozen version)."
            )
    else:
        prereg = preregistration_current(trial)
        if prereg is None:
            raise ValidationError("The trial has no frozen pre-registration to analyse against.")
    run = AnalysisRun.objects.create(
        trial=trial,
        preregistration=prereg,
        preregistration_sha256=prereg.sha256,
        kind=kind,
        code_version=code_version(),
        seed=seed,
        options={} if ordinal is None else {"ordinal": ordinal},
        # Queued for a worker now: if no worker ever takes it, beat's sweep sends it again.
        heartbeat_at=timezone.now() if enqueue else None,
    )
    event_record(
        trial=trial,
        kind=TrialEvent.Kind.ANALYSIS_RUN_STARTED,
        actor=actor,
        run=run.pk,
        run_kind=kind,
        preregistration_version=prereg.version,
    )
    if enqueue:
        from analytics.tasks import analysis_run_execute_task

        analysis_run_execute_task.delay_on_commit(run.pk)
    return run


def _claim(run_id: int, *, stale_after: timedelta, max_attempts: int) -> AnalysisRun | None:
    """Take the run for this worker, or None when it is not ours to execute: finished, failed,
    or held by a worker that is alive. A queued run can be taken, and so can a running one whose
    worker has been silent longer than ``stale_after`` (the sweep normally re-queues those first).
    The row lock makes the check and the take one step, so two workers handed the same run (a
    redelivered message, a re-queue) never both execute it; each take is a numbered attempt."""
    now = timezone.now()
    with transaction.atomic():
        run = (
            AnalysisRun.objects.select_for_update(skip_locked=True)
            .filter(pk=run_id)
            .filter(Q(status=AnalysisRun.Status.QUEUED) | _silent_since(now - stale_after))
            .first()
        )
        if run is None:
            return None
        if run.attempts >= max_attempts:
            _give_up(run, now)
            return None
        run.status = AnalysisRun.Status.RUNNING
        run.attempts += 1
        run.started_at = run.heartbeat_at = now
        run.save(update_fields=["status", "attempts", "started_at", "heartbeat_at"])
    return run


def _silent_since(cutoff: datetime) -> Q:
    """Running, and no word from its worker since ``cutoff`` (rows from before heartbeats
    count from their start)."""
    return Q(status=AnalysisRun.Status.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def _give_up(run: AnalysisRun, now: datetime) -> None:
    run.status = AnalysisRun.Status.FAILED
    run.error = (
        f"The worker executing this run stopped {run.attempts} times without finishing it "
        "(killed, out of memory, or past its time limit); it is not tried again. Start a new "
        "run once the cause is found."
    )
    run.finished_at = now
    run.save(update_fields=["status", "error", "finished_at"])
    event_record(
        trial=run.trial, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED, run=run.pk, attempts=run.attempts
    )


def _mine(run: AnalysisRun) -> QuerySet[AnalysisRun]:
    """This attempt's row: once the sweep has handed the run to another worker, writes of a
    worker that was only slow, not dead, change nothing."""
    return AnalysisRun.objects.filter(
        pk=run.pk, status=AnalysisRun.Status.RUNNING, attempts=run.attempts
    )


class _Heartbeat:
    """Touches the run's ``heartbeat_at`` every ``every`` seconds from a thread of its own while
    the run executes, so that the sweep tells a live worker from a dead one whatever the broker
    (a long fit holds no progress callback for minutes)."""

    def __init__(self, run: AnalysisRun, every: float) -> None:
        self.run, self.every = run, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"run-{run.pk}-heartbeat")

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        try:
            while not self.stop.wait(self.every):
                try:
                    _mine(self.run).update(heartbeat_at=timezone.now())
                except DatabaseError:  # the next beat may get through; the sweep is patient
                    logger.warning("analysis run %s: heartbeat not recorded", self.run.pk)
        finally:
            connection.close()  # this thread's own connection


def _set_progress(run: AnalysisRun, progress: float) -> None:
    _mine(run).update(progress=progress, heartbeat_at=timezone.now())


def analysis_run_execute(
    *,
    run_id: int,
    stale_after: timedelta | None = None,
    heartbeat_every: float | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> AnalysisRun:
    """Execute a run once, however often it is delivered: a finished or failed run, or one a
    live worker holds, is left alone; an unfinished run re-runs with the same data and seed and
    so writes the same result. While it executes, the worker heart-beats; if it dies, or the
    analysis raises anything but a ValueError (bad data, a failed run), beat's sweep hands the
    run to another worker once the heartbeat is stale."""
    run = _claim(run_id, stale_after=stale_after or _stale_after(), max_attempts=max_attempts)
    if run is None:
        return AnalysisRun.objects.get(pk=run_id)
    # Ten reports in the span after which the run counts as abandoned.
    with _Heartbeat(run, heartbeat_every or _stale_after().total_seconds() / 10):
        try:
            results, diagnostics, snapshot = _analyse(run)
        except ValueError as error:
            logger.warning("analysis run %s failed: %s", run.pk, error)
            return _finish(run, AnalysisRun.Status.FAILED, error=str(error))
    return _finish(
        run,
        AnalysisRun.Status.FINISHED,
        results=results,
        diagnostics=diagnostics,
        data_snapshot_sha256=snapshot,
        progress=1.0,
    )


def _finish(run: AnalysisRun, status: str, **fields: object) -> AnalysisRun:
    """Store the outcome of this attempt with its audit row, unless another attempt owns the
    run by now (then that attempt's outcome stands). A finished run's safety checks (reliable
    deterioration, the guardrail, the harm boundaries) are written in the same transaction, so
    they happen exactly once per run."""
    finished = status == AnalysisRun.Status.FINISHED
    kind = (
        TrialEvent.Kind.ANALYSIS_RUN_FINISHED if finished else TrialEvent.Kind.ANALYSIS_RUN_FAILED
    )
    with transaction.atomic():
        if _mine(run).update(status=status, finished_at=timezone.now(), **fields):
            event_record(
                trial=run.trial,
                kind=kind,
                run=run.pk,
                attempt=run.attempts,
            )
            if finished:
                # pandas and scipy: imported by the worker that finishes a run, never the web
                # process (docs/architecture.md, "The layers").
                from analytics.safety_checks import analysis_run_safety_check

                analysis_run_safety_check(AnalysisRun.objects.get(pk=run.pk))
        else:
            logger.warning("analysis run %s: attempt %s was superseded", run.pk, run.attempts)
    return AnalysisRun.objects.get(pk=run.pk)


def analysis_run_fail(*, run_id: int, error: str) -> AnalysisRun:
    """Mark a run that cannot succeed by trying again (e.g. it ran past the time limit) failed,
    unless it has finished."""
    with transaction.atomic():
        run = AnalysisRun.objects.select_for_update().get(pk=run_id)
        if run.status in (AnalysisRun.Status.QUEUED, AnalysisRun.Status.RUNNING):
            run.status, run.error, run.finished_at = (
                AnalysisRun.Status.FAILED,
                error,
                timezone.now(),
            )
            run.save(update_fields=["status", "error", "finished_at"])
            event_record(
                trial=run.trial, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED, run=run.pk, error=error
            )
    return run


def analysis_runs_requeue_stale(
    *, stale_after: timedelta | None = None, max_attempts: int = MAX_ATTEMPTS
) -> list[int]:
    """Beat's sweep: hand every run whose worker went silent (killed, its machine lost) back to
    the queue, and every queued run whose message never reached a worker to the broker again;
    a run that has used up its attempts is marked failed instead. One row per transaction with
    ``SKIP LOCKED``, so overlapping sweeps and executing workers never block each other. The ids
    re-queued."""
    requeued = []
    stale_after = stale_after or _stale_after()
    while (run := _take_stale(stale_after, max_attempts)) is not None:
        if run.status == AnalysisRun.Status.QUEUED:
            requeued.append(run.pk)
    return requeued


def _take_stale(stale_after: timedelta, max_attempts: int) -> AnalysisRun | None:
    """The next stale run, re-queued (or failed, its attempts used up); None when none is left."""
    from analytics.tasks import analysis_run_execute_task

    now = timezone.now()
    cutoff = now - stale_after
    with transaction.atomic():
        run = (
            AnalysisRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                _silent_since(cutoff) | Q(status=AnalysisRun.Status.QUEUED, heartbeat_at__lt=cutoff)
            )
            .select_related("trial")
            .order_by("heartbeat_at", "pk")
            .first()
        )
        if run is None:
            return None
        if run.status == AnalysisRun.Status.RUNNING and run.attempts >= max_attempts:
            _give_up(run, now)
            return run
        silent_since = run.heartbeat_at or run.started_at
        run.status, run.heartbeat_at = AnalysisRun.Status.QUEUED, now
        run.save(update_fields=["status", "heartbeat_at"])
        event_record(
            trial=run.trial,
            kind=TrialEvent.Kind.ANALYSIS_RUN_REQUEUED,
            run=run.pk,
            attempts=run.attempts,
            silent_since=silent_since.isoformat(),
        )
        analysis_run_execute_task.delay_on_commit(run.pk)
    return run


def _analyse(run: AnalysisRun) -> tuple[dict, dict, str]:
    # The models load JAX, numpyro and statsmodels: only the worker that runs them imports them,
    # never the web process (tests/config/test_startup_imports.py).
    from analytics.analysis import analyse

    return analyse(
        trial=run.trial,
        plan=run.preregistration.plan,
        confirmatory=run.kind == AnalysisRun.Kind.CONFIRMATORY,
        seed=run.seed,
        progress=lambda fraction: _set_progress(run, fraction),
        ordinal=run.options.get("ordinal"),
    )
