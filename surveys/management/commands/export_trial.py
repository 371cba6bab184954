"""``export_trial SLUG --out DIR``: the trial's survey data as tidy long files with a codebook."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from surveys.exchange import FORMATS, trial_export
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Write SLUG-responses and SLUG-scores (one row per participant x wave x item / score) "
        "as CSV and/or Parquet, and SLUG-codebook.csv (a REDCap data dictionary), into DIR."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        parser.add_argument(
            "--format", choices=[*FORMATS, "both"], default="both", dest="file_format"
        )

    def handle(self, *args, slug: str, out: Path, file_format: str, **options) -> None:
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        formats = FORMATS if file_format == "both" else (file_format,)
        try:
            written = trial_export(trial=trial, directory=out, formats=formats)
        except OSError as error:
            raise CommandError(f"Cannot write to {out}: {error.strerror}.") from error
        for path, rows in written.items():
            self.stdout.write(f"wrote {path} ({rows} rows)")
