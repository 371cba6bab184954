import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from trials.canonical import sha256_of
from trials.models import PreRegistration, Trial
from trials.registry_export import export_arguments, osf_preregistration, preregistration_markdown


class Command(BaseCommand):
    help = (
        "Export a frozen pre-registration as OSF Preregistration JSON or Markdown "
        "(the latest frozen version unless --version is given)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        # Our --version (of the pre-registration) replaces Django's --version (of Django).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--version", type=int, dest="prereg_version", metavar="N", help="Version to export."
        )
        parser.add_argument(
            "--format", choices=["osf", "markdown"], default="osf", dest="output_format"
        )
        parser.add_argument("--out", metavar="FILE", help="Write here instead of to stdout.")

    def handle(
        self,
        *args,
        slug: str,
        prereg_version: int | None,
        output_format: str,
        out: str | None,
        **kw,
    ):
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial with slug {slug!r}.")
        prereg = _preregistration(trial, prereg_version)
        # Refuse to publish an export whose content no longer matches the hash it was frozen with.
        if sha256_of(prereg.record) != prereg.sha256:
            raise CommandError(
                f"Version {prereg.version} of {slug!r} does not match its stored SHA-256."
            )
        fields = export_arguments(prereg)
        try:
            if output_format == "markdown":
                text = preregistration_markdown(**fields)
            else:
                text = json.dumps(osf_preregistration(**fields), indent=2, ensure_ascii=False)
                text += "\n"
        except ValueError as error:
            raise CommandError(f"Cannot export version {prereg.version}: {error}") from error
        if out is None:
            self.stdout.write(text, ending="")
        else:
            Path(out).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {out}.")


def _preregistration(trial: Trial, version: int | None) -> PreRegistration:
    if version is None:
        prereg = trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version").first()
        if prereg is None:
            raise CommandError(f"Trial {trial.slug!r} has no frozen pre-registration.")
        return prereg
    prereg = trial.preregistrations.filter(version=version).first()
    if prereg is None:
        raise CommandError(f"Trial {trial.slug!r} has no pre-registration version {version}.")
    if prereg.frozen_at is None:
        raise CommandError(
            f"Version {version} of {trial.slug!r} is not frozen; only frozen versions are exported."
        )
    return prereg
