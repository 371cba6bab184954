from django.core.management.base import BaseCommand, CommandError

from trials.audit import audit_chain_verify
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Recompute a trial's audit hash chain and compare every approval, deviation and "
        "privacy charge with the event that recorded it; exits 1 when anything was deleted, "
        "reordered, edited or inserted behind the trail. Compare the printed head with the one "
        "published at registration or in the OSF export to see that no newest events are gone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")

    def handle(self, *args, slug: str, **options) -> None:
        trial = Trial.objects.filter(slug=slug).first()
        if trial is None:
            raise CommandError(f"No trial {slug!r}.")
        report = audit_chain_verify(trial)
        head = f"head: event {report.head_sequence}, SHA-256 {report.head_hash}"
        if report.intact:
            self.stdout.write(f"{slug}: audit chain intact, {report.events} events; {head}")
            return
        for problem in report.problems:
            self.stderr.write(problem)
        raise CommandError(
            f"{slug}: audit chain BROKEN ({len(report.problems)} problems); {head}", returncode=1
        )
