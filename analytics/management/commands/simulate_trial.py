from django.core.management.base import BaseCommand, CommandError

from analytics.seeding import synthetic_telemetry_release, synthetic_trial_create
from trials.models import Trial


class Command(BaseCommand):
    help = "Create a registered two-arm trial with a simulated cohort whose true effect is known."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--participants", type=int, default=300)
        parser.add_argument("--waves", type=int, default=4)
        parser.add_argument(
            "--effect",
            type=float,
            default=1.0,
            help="True difference in growth per wave between the first treatment arm and "
            "control, for every dimension's score, in that score's own units.",
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--telemetry-effect",
            type=float,
            default=None,
            help="Also release every ended weekly DP telemetry window from simulated devices, "
            "arm b using the assistant this many minutes a week more than control.",
        )

    def handle(
        self,
        *args,
        slug: str,
        participants: int,
        waves: int,
        effect: float,
        seed: int,
        telemetry_effect: float | None,
        **kw,
    ):
        if Trial.objects.filter(slug=slug).exists():
            raise CommandError(f"A trial with slug {slug!r} already exists.")
        if participants < 4 or waves < 2:
            raise CommandError("Use at least 4 participants and 2 waves.")
        trial = synthetic_trial_create(
            slug=slug, participants=participants, waves=waves, effect=effect, seed=seed
        )
        self.stdout.write(self.style.SUCCESS(f"Created {trial.slug}: {trial.description}"))
        if telemetry_effect is not None:
            released = synthetic_telemetry_release(
                trial=trial, minutes_effect=telemetry_effect, seed=seed
            )
            self.stdout.write(f"Released {released} telemetry windows with differential privacy.")
