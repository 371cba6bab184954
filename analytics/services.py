"""Creating and executing analysis runs."""

import logging
import subprocess
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from analytics.analysis import analyse
from analytics.models import AnalysisRun
from trials.models import Trial
from trials.services import event_record, preregistration_current

logger = logging.getLogger(__name__)
REPO_DIR = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """The commit the code runs from, so a result can be traced to the code that made it."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_DIR,
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
    """Record a run against the current frozen plan; with ``enqueue`` a worker executes it once
    the transaction commits. ``ordinal`` asks for (True) or leaves out (False) the item-level
    sensitivity model; by default it runs where a GPU is present."""
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
    )
    event_record(
        trial=trial,
        kind="analysis_run_started",
        actor=actor,
        run=run.pk,
        run_kind=kind,
        preregistration_version=prereg.version,
    )
    if enqueue:
        from analytics.tasks import analysis_run_execute_task

        analysis_run_execute_task.delay_on_commit(run.pk)
    return run


def _set_progress(run: AnalysisRun, progress: float) -> None:
    AnalysisRun.objects.filter(pk=run.pk).update(progress=progress)


def analysis_run_execute(*, run_id: int) -> AnalysisRun:
    """Execute a run; safe to call again (a redelivered task re-runs an unfinished run with the
    same data and seed and so writes the same result; a finished or failed run is left alone)."""
    with transaction.atomic():
        run = (
            AnalysisRun.objects.select_for_update().select_related("preregistration").get(pk=run_id)
        )
        if run.status in (AnalysisRun.Status.FINISHED, AnalysisRun.Status.FAILED):
            return run
        run.status = AnalysisRun.Status.RUNNING
        run.started_at = timezone.now()
        run.save(update_fields=["status", "started_at"])
    try:
        results, diagnostics, snapshot = _analyse(run)
    except ValueError as error:
        logger.warning("analysis run %s failed: %s", run.pk, error)
        run.status = AnalysisRun.Status.FAILED
        run.error = str(error)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        return run
    run.results = results
    run.diagnostics = diagnostics
    run.data_snapshot_sha256 = snapshot
    run.status = AnalysisRun.Status.FINISHED
    run.progress = 1.0
    run.finished_at = timezone.now()
    run.save(
        update_fields=[
            "results",
            "diagnostics",
            "data_snapshot_sha256",
            "status",
            "progress",
            "finished_at",
        ]
    )
    return run


def _analyse(run: AnalysisRun) -> tuple[dict, dict, str]:
    return analyse(
        trial=run.trial,
        plan=run.preregistration.plan["plan"],
        confirmatory=run.kind == AnalysisRun.Kind.CONFIRMATORY,
        seed=run.seed,
        progress=lambda fraction: _set_progress(run, fraction),
        ordinal=run.options.get("ordinal"),
    )
