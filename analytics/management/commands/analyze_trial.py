import argparse
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from analytics.models import AnalysisRun
from analytics.results import Diagnostics, FrequentistEstimate, Results
from analytics.services import analysis_run_create, analysis_run_execute
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Analyse a trial under its frozen pre-registration (here, or on a worker with --enqueue)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--exploratory", action="store_true", help="Label the run exploratory.")
        parser.add_argument("--json", action="store_true", help="Print the stored run as JSON.")
        parser.add_argument("--enqueue", action="store_true", help="Leave the run to a worker.")
        parser.add_argument("--seed", type=int, default=20260101)
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
        seed: int,
        ordinal: bool | None,
        **kw,
    ):
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        kind = AnalysisRun.Kind.EXPLORATORY if exploratory else AnalysisRun.Kind.CONFIRMATORY
        try:
            run = analysis_run_create(
                trial=trial, kind=kind, seed=seed, ordinal=ordinal, enqueue=enqueue
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        if enqueue:
            self.stdout.write(f"Queued analysis run {run.pk}.")
            return
        run = analysis_run_execute(run_id=run.pk)
        if json:
            self.stdout.write(_dumps(run))
        elif run.status == AnalysisRun.Status.FAILED:
            raise CommandError(f"Analysis run {run.pk} failed: {run.error}")
        else:
            self.stdout.write(_table(run))


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
