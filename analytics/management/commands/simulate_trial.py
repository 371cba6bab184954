from django.core.management.base import BaseCommand, CommandError

from analytics.seeding import (
    SyntheticFactorial,
    synthetic_dose_release,
    synthetic_telemetry_release,
    synthetic_trial_create,
)
from federated.selectors import POOLED, dose_slopes
from trials.models import Trial


class Command(BaseCommand):
    help = (
        "Create a registered two-arm trial (or a factorial one, --factorial) with a simulated "
        "cohort whose true effects are known."
    )

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
            "--factorial",
            default=None,
            metavar="LEVELS",
            help="A full factorial design instead of two arms, its factors' level counts as "
            "3x3: factors f1, f2, … with levels l0 (the control's), l1, …, one arm per cell.",
        )
        parser.add_argument(
            "--main-effects",
            default=None,
            metavar="E1,E2,…",
            help="With --factorial: each factor's main effect on growth per wave (a "
            "non-reference level adds it), in score points; default --effect for each.",
        )
        parser.add_argument(
            "--interaction",
            type=float,
            default=0.0,
            help="With --factorial: added to growth per wave in cells at non-reference levels "
            "of both of the first two factors (each difference of differences).",
        )
        parser.add_argument(
            "--moderator-effect",
            type=float,
            default=0.0,
            help="With --factorial: how much faster every treatment cell grows for the 40%% of "
            "participants taking part in German (the plan's moderator, language).",
        )
        parser.add_argument(
            "--telemetry-effect",
            type=float,
            default=None,
            help="Also release every ended weekly DP telemetry window from simulated devices, "
            "arm b using the assistant this many minutes a week more than control.",
        )
        parser.add_argument(
            "--dose-slope",
            type=float,
            default=None,
            metavar="POINTS_PER_MINUTE",
            help="Declare a dose release in the plan and run it from simulated devices whose "
            "minutes of use over the trial go with their participant's WHO-5 change by this "
            "slope (change per minute, within arms; exploratory and non-causal).",
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
        dose_slope: float | None,
        factorial: str | None,
        main_effects: str | None,
        interaction: float,
        moderator_effect: float,
        **kw,
    ):
        if Trial.objects.filter(slug=slug).exists():
            raise CommandError(f"A trial with slug {slug!r} already exists.")
        if participants < 4 or waves < 2:
            raise CommandError("Use at least 4 participants and 2 waves.")
        design = None
        if factorial is not None:
            design = _factorial(factorial, main_effects, effect, interaction, moderator_effect)
        elif main_effects is not None or interaction or moderator_effect:
            raise CommandError(
                "--main-effects, --interaction and --moderator-effect need --factorial."
            )
        trial = synthetic_trial_create(
            slug=slug,
            participants=participants,
            waves=waves,
            effect=effect,
            seed=seed,
            factorial=design,
            dose=dose_slope is not None,
        )
        self.stdout.write(self.style.SUCCESS(f"Created {trial.slug}: {trial.description}"))
        if dose_slope is not None:
            # Before the windows, so that they cannot have spent the budget it reserves.
            try:
                synthetic_dose_release(trial=trial, slope=dose_slope, seed=seed)
            except ValueError as error:
                raise CommandError(str(error)) from None
            pooled = next(s for s in dose_slopes(trial) if s.arm == POOLED)
            self.stdout.write(
                f"Released the usage-outcome slope with differential privacy: {pooled.slope:.4g} "
                f"points per minute (95% CI {pooled.ci_low:.4g} to {pooled.ci_high:.4g}); "
                f"simulated {dose_slope:g}."
            )
        if telemetry_effect is not None:
            released = synthetic_telemetry_release(
                trial=trial, minutes_effect=telemetry_effect, seed=seed
            )
            self.stdout.write(f"Released {released} telemetry windows with differential privacy.")


def _factorial(
    levels: str, main_effects: str | None, effect: float, interaction: float, moderator: float
) -> SyntheticFactorial:
    """The design the options describe, or a CommandError that says what to write."""
    try:
        counts = tuple(int(n) for n in levels.lower().split("x"))
        mains = (
            tuple(float(e) for e in main_effects.split(","))
            if main_effects is not None
            else (effect,) * len(counts)
        )
    except ValueError:
        raise CommandError(
            "Write --factorial as level counts like 3x3 and --main-effects as numbers like 0.5,0.2."
        ) from None
    if any(n < 2 for n in counts) or len(mains) != len(counts):
        raise CommandError(
            f"--factorial {levels} needs two levels or more per factor, and --main-effects one "
            f"number per factor ({len(counts)})."
        )
    return SyntheticFactorial(counts, mains, interaction, moderator)
