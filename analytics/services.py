"""Creating and executing analysis runs."""

import hashlib
import logging
import subprocess
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from statsmodels.stats.multitest import multipletests

from analytics.models import AnalysisRun
from analytics.selectors import trial_scores_frame
from analytics.stats.ancova import ancova
from trials.models import Trial
from trials.services import preregistration_current

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
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> AnalysisRun:
    """Record a run against the current frozen plan; with ``enqueue`` a worker executes it once
    the transaction commits."""
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
    )
    if enqueue:
        from analytics.tasks import analysis_run_execute_task

        analysis_run_execute_task.delay_on_commit(run.pk)
    return run


def _outcomes(run: AnalysisRun) -> list[dict]:
    """The outcomes a run analyses: exactly the frozen plan's, primary first."""
    plan = run.preregistration.plan["plan"]
    outcomes = [dict(o, role="primary") for o in plan.get("primary_outcomes", [])]
    outcomes += [dict(o, role="secondary") for o in plan.get("secondary_outcomes", [])]
    if not outcomes:
        raise ValueError("The pre-registration names no outcomes.")
    return outcomes


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


MULTIPLICITY_METHODS = {"holm": "holm", "bh": "fdr_bh"}


def _analyse(run: AnalysisRun) -> tuple[dict, dict, str]:
    plan = run.preregistration.plan
    arms = plan["plan"]["arms_compared"]  # [control, treatment]
    alpha = float(plan["plan"].get("alpha", 0.05))
    frame = trial_scores_frame(run.trial)
    snapshot = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    outcomes = _outcomes(run)
    estimates = []
    for position, outcome in enumerate(outcomes):
        rows = frame[frame.dimension == outcome["dimension"]]
        wide = rows.pivot_table(index=["participant", "arm"], columns="wave", values="score")
        wide = wide.reset_index()
        wave = outcome["wave"]
        if 0 not in wide or wave not in wide:
            raise ValueError(f"No data for {outcome['dimension']} at waves 0 and {wave}.")
        complete = wide.dropna(subset=[0, wave])
        complete = complete[complete.arm.isin(arms)]
        effect = ancova(
            complete[wave], complete[0], (complete.arm == arms[1]).astype(int), alpha=alpha
        )
        estimates.append(effect)
        _set_progress(run, (position + 1) / (len(outcomes) + 1))
    # The pre-registered correction, in statsmodels' names ("none" leaves p-values as they are).
    correction = plan["plan"].get("multiplicity", "holm")
    p_values = [e.p_value for e in estimates]
    adjusted = (
        p_values
        if correction == "none"
        else multipletests(p_values, alpha=alpha, method=MULTIPLICITY_METHODS[correction])[1]
    )
    results = {
        "model": "ANCOVA on the outcome wave, adjusted for baseline (complete cases)",
        "contrast": f"{arms[1]} − {arms[0]}",
        "alpha": alpha,
        "multiplicity": correction,
        "outcomes": [
            {
                **outcome,
                "estimate": e.estimate,
                "std_error": e.std_error,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "p_value": e.p_value,
                "p_adjusted": float(p_adj),
                "n": e.n,
            }
            for outcome, e, p_adj in zip(outcomes, estimates, adjusted, strict=True)
        ],
    }
    counts = frame.groupby(["wave", "arm"]).participant.nunique()
    diagnostics = {
        "responders_per_wave_and_arm": {f"{w}/{a}": int(n) for (w, a), n in counts.items()},
        "rows": len(frame),
    }
    return results, diagnostics, snapshot
