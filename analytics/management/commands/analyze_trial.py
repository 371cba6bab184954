"""``analyze_trial S``: analyse a trial under its frozen pre-registration, or read one of its
stored runs (``--run``), and print it (a table, or ``--json``) or write its report (``--report
FILE``).

The report is a page of the dashboards, a layer above this one that ``analytics`` may not import
(docs/architecture.md, The layers): ``dashboards.apps`` registers its renderer here with
:func:`register_report_renderer`, as ``surveys`` registers its freeze check with
``trials.plan``. The command keeps the file writing, so a report appears whole or not at all."""

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from analytics.models import AnalysisRun
from analytics.results import Diagnostics, FrequentistEstimate, Results
from analytics.services import analysis_run_create, analysis_run_execute
from trials.models import Trial

# A finished run → its report, one HTML document.
ReportRenderer = Callable[[AnalysisRun], str]
_report_renderers: list[ReportRenderer] = []


def register_report_renderer(render: ReportRenderer) -> None:
    """Name the function that renders a run's report (``DashboardsConfig.ready`` does)."""
    if render not in _report_renderers:
        _report_renderers.append(render)


class Command(BaseCommand):
    help = (
        "Analyse a trial under its frozen pre-registration (here, or on a worker with --enqueue)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--exploratory", action="store_true", help="Label the run exploratory.")
        parser.add_argument("--json", action="store_true", help="Print the stored run as JSON.")
        parser.add_argument("--enqueue", action="store_true", help="Leave the run to a worker.")
        parser.add_argument(
            "--seed", type=int, default=None, help="The run's seed (default 20260101)."
        )
        parser.add_argument(
            "--run",
            type=int,
            metavar="RUN_ID",
            help="Read this stored run of the trial instead of analysing it again.",
        )
        parser.add_argument(
            "--report",
            type=Path,
            metavar="FILE",
            help="Write the run's report, one self-contained HTML file, to FILE (replacing it).",
        )
        parser.add_argument(
            "--ordinal",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Add (or leave out) the item-level ordinal sensitivity model; by default it runs "
            "where a GPU is present.",
        )

    def handle(
        self,
        *args,
        slug: str,
        exploratory: bool,
        json: bool,
        enqueue: bool,
        seed: int | None,
        ordinal: bool | None,
        run: int | None,
        report: Path | None,
        **kw,
    ):
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        if report is not None:
            _check_report_target(report, enqueue=enqueue)
        if run is not None:
            asked = [
                option
                for option, given in (
                    ("--exploratory", exploratory),
                    ("--enqueue", enqueue),
                    ("--seed", seed is not None),
                    ("--ordinal/--no-ordinal", ordinal is not None),
                )
                if given
            ]
            if asked:
                raise CommandError(
                    f"--run reads a stored run; {', '.join(asked)} only apply to a new analysis."
                )
            self._show(_stored_run(trial, run), json=json, report=report)
            return
        kind = AnalysisRun.Kind.EXPLORATORY if exploratory else AnalysisRun.Kind.CONFIRMATORY
        try:
            run = analysis_run_create(
                trial=trial,
                kind=kind,
                ordinal=ordinal,
                enqueue=enqueue,
                **({} if seed is None else {"seed": seed}),
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        if enqueue:
            self.stdout.write(f"Queued analysis run {run.pk}.")
            return
        self._show(analysis_run_execute(run_id=run.pk), json=json, report=report)

    def _show(self, run: AnalysisRun, *, json: bool, report: Path | None) -> None:
        if json:
            self.stdout.write(_dumps(run))
        elif run.status == AnalysisRun.Status.FAILED:
            raise CommandError(f"Analysis run {run.pk} failed: {run.error}")
        elif run.status != AnalysisRun.Status.FINISHED:
            raise CommandError(f"Analysis run {run.pk} is {run.status}: it has no results yet.")
        else:
            self.stdout.write(_table(run))
        if report is not None:
            if run.status != AnalysisRun.Status.FINISHED:
                raise CommandError(
                    f"Analysis run {run.pk} is {run.status}, so it has no results to report; "
                    f"nothing was written to {report}."
                )
            size = _write_atomically(report, _report_renderers[0](run))
            # On stderr, so that --json's output stays one JSON document.
            self.stderr.write(f"Wrote the report of run {run.pk} to {report} ({size} bytes).")


def _check_report_target(report: Path, *, enqueue: bool) -> None:
    """Refuse, before any analysis, a report that could not be written."""
    if enqueue:
        raise CommandError(
            "--report needs the finished run, and --enqueue leaves it to a worker: write the "
            "report once it has finished, with --run RUN_ID --report FILE."
        )
    if not _report_renderers:
        raise CommandError(
            "No report renderer is registered: the report is made by the dashboards app, "
            "which is not installed."
        )
    if report.is_dir():
        raise CommandError(f"{report} is a directory; give the report's file name.")
    if not report.parent.is_dir():
        raise CommandError(f"Cannot write {report}: the directory {report.parent} does not exist.")


def _stored_run(trial: Trial, run_id: int) -> AnalysisRun:
    run = trial.analysis_runs.filter(pk=run_id).first()
    if run is None:
        runs = ", ".join(str(pk) for pk in trial.analysis_runs.values_list("pk", flat=True)[:10])
        raise CommandError(
            f"Trial {trial.slug!r} has no analysis run {run_id} "
            + (f"(its latest runs: {runs})." if runs else "(it has no runs yet).")
        )
    return run


def _write_atomically(path: Path, text: str) -> int:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``, so that
    a reader or an interrupted write never leaves half a report; returns the bytes written."""
    content = text.encode("utf-8")
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as part:
        try:
            part.write(content)
            part.flush()
            os.fsync(part.fileno())
        except BaseException:
            part.close()
            os.unlink(part.name)
            raise
    # A temporary file is private (0600); a report is for sharing.
    os.chmod(part.name, 0o644)
    os.replace(part.name, path)
    return len(content)


def _table(run: AnalysisRun) -> str:
    results = Results.model_validate(run.results)
    lines = [f"Run {run.pk} ({run.kind}), against {results.control}:"]
    for e in results.estimates:
        uncertainty = (
            f"p={e.p_value:.4f} (adjusted {e.p_adjusted:.4f})"
            if isinstance(e, FrequentistEstimate)
            else f"P(benefit)={e.prob_benefit:.3f}"
        )
        label = "confirmatory" if e.confirmatory else "exploratory"
        flag = "" if e.reportable else "  NOT REPORTABLE: " + "; ".join(e.not_reportable_because)
        lines.append(
            f"  {e.outcome:16} {e.arm:>6} {e.method:13} {e.estimand:26} "
            f"{e.estimate:+9.3f} [{e.ci_low:+.3f}, {e.ci_high:+.3f}]  {uncertainty}  "
            f"{label}{flag}"
        )
    return "\n".join(lines)


def _dumps(run: AnalysisRun) -> str:
    """The run as one JSON document; ``estimates`` is lifted to the top level, where scripts
    look for it."""
    # Only a finished run has stored its results and diagnostics.
    finished = run.status == AnalysisRun.Status.FINISHED
    results = Results.model_validate(run.results) if finished else None
    diagnostics = Diagnostics.model_validate(run.diagnostics) if finished else None
    return json.dumps(
        {
            "run": run.pk,
            "trial": run.trial.slug,
            "kind": run.kind,
            "status": run.status,
            "preregistration_version": run.preregistration.version,
            "preregistration_sha256": run.preregistration_sha256,
            "code_version": run.code_version,
            "data_snapshot_sha256": run.data_snapshot_sha256,
            "seed": run.seed,
            "estimates": [e.model_dump(mode="json") for e in results.estimates] if results else [],
            "results": results.model_dump(mode="json", exclude={"estimates"}) if results else {},
            "diagnostics": diagnostics.model_dump(mode="json") if diagnostics else {},
            "error": run.error,
        },
        indent=2,
    )
