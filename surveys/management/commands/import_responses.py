"""``import_responses SLUG FILE``: import answers in the long format ``export_trial`` writes."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from surveys.exchange import ImportRejected, responses_import
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Import survey responses from a long CSV or Parquet file (the export_trial format). "
        "Every row is checked first; if any is bad, each is listed and nothing is imported."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("file", type=Path, help="A .csv or .parquet file.")

    def handle(self, *args, slug: str, file: Path, **options) -> None:
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        try:
            report = responses_import(trial=trial, path=file)
        except ImportRejected as error:
            heading = f"Nothing was imported from {file}: {len(error.errors)} problem(s)."
            listing = "".join(f"\n  {message}" for message in error.messages)
            raise CommandError(f"{heading} {error.numbering}".strip() + listing) from error
        self.stdout.write(
            f"{file}: {report.rows} rows; {report.created} responses imported, "
            f"{report.unchanged} unchanged (already stored with the same answers)."
        )
