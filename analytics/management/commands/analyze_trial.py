import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from analytics.models import AnalysisRun
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

    def handle(
        self, *args, slug: str, exploratory: bool, json: bool, enqueue: bool, seed: int, **kw
    ):
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        kind = AnalysisRun.Kind.EXPLORATORY if exploratory else AnalysisRun.Kind.CONFIRMATORY
        try:
            run = analysis_run_create(trial=trial, kind=kind, seed=seed, enqueue=enqueue)
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
            self.stdout.write(f"Run {run.pk} ({run.kind}), {run.results['contrast']}:")
            for o in run.results["outcomes"]:
                self.stdout.write(
                    f"  {o['role']:9} {o['dimension']:18} {o['estimate']:+.2f} "
                    f"[{o['ci_low']:+.2f}, {o['ci_high']:+.2f}]  p_holm={o['p_adjusted']:.4f}"
                )


def _dumps(run: AnalysisRun) -> str:
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
            "results": run.results,
            "diagnostics": run.diagnostics,
            "error": run.error,
        },
        indent=2,
    )
