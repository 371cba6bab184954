"""Building a whole synthetic trial in the database, through the same services users go through:
the demo, ``simulate_trial`` and the benchmarks use it."""

import itertools
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from analytics.simulate import answers_for_score, factorial_cell_effects, simulate_scores
from federated.dose import dose_release_run
from federated.models import DoseRelease
from federated.selectors import telemetry_schema_in_force, windows_ended
from federated.simulate import simulated_devices, simulated_usage
from federated.window import telemetry_window_run
from surveys.models import Instrument
from surveys.services import instruments_sync, response_submit, wave_create
from trials.models import (
    Community,
    ConsentDocument,
    ConsentScope,
    OversightBody,
    Participant,
    ParticipantContact,
    Trial,
)
from trials.selectors import consent_active
from trials.services import (
    approval_record,
    arm_create,
    assignment_token,
    oversight_assign,
    participant_enrol,
    preregistration_freeze,
    profile_create,
    trial_create,
    trial_transition,
)
from trials.telemetry import outcome_changes

WAVE_SPACING_DAYS = 14  # WHO-5 asks about the last two weeks
COMMUNITY = "general"
# Weekly DP telemetry: a budget of ρ = 1 (ε ≈ 8.4 at δ = 1e-7 over the whole trial), 0.05 a week.
SYNTHETIC_TELEMETRY = {
    "window_days": 7,
    "rho_total": 1.0,
    "rho_per_window": 0.05,
    "delta": 1e-7,
    "metrics": [
        {"code": "minutes", "upper": 1200},
        {"code": "sessions", "upper": 40},
        {"code": "late_night_days"},
    ],
}


# A synthetic dose release's usage: minutes over the usage period, its mean and SD per arm
# chosen so that clipping at 0 or at the plan's bound (DOSE_USAGE_UPPER) is rare: clipping would
# flatten the slope the release estimates.
DOSE_USAGE_MEAN, DOSE_USAGE_SD, DOSE_USAGE_UPPER = 1000.0, 250.0, 2000


def _dose(final: int) -> dict:
    """The plan's dose release: minutes over the weeks up to the final wave against the change
    of WHO-5 from baseline to it, costing half the synthetic budget. The bounds are as tight as
    the simulated data allow: the noise grows with them (``federated.mechanism``)."""
    return {
        "outcome": {"instrument": "who5", "score": "who5", "wave": final},
        "usage_metric": "minutes",
        "usage_days": final * WAVE_SPACING_DAYS,
        "usage_upper": DOSE_USAGE_UPPER,
        "change_bound": 30,
        "change_step": 1,
        "rho": 0.5,
    }


def _plan(n_waves: int, *, dose: bool = False) -> dict:
    final = n_waves - 1
    return {
        "hypotheses": [
            "Assistant B (flourishing-oriented constitution) raises mental wellbeing compared "
            "with assistant A by the final wave."
        ],
        "estimand": "intention-to-treat difference between arms in growth per wave (and, by "
        "ANCOVA, at the final wave)",
        "arms_compared": ["a", "b"],
        "primary_outcomes": [
            {"dimension": "mental_wellbeing", "instrument": "who5", "wave": final}
        ],
        "secondary_outcomes": [
            {"dimension": "life_satisfaction", "instrument": "swls", "wave": final}
        ],
        "analysis_model": "Growth per wave by arm: linear mixed model (REML, random intercepts "
        "and slopes) and the Bayesian growth model with participant effects integrated out; "
        "ANCOVA of the outcome wave adjusted for baseline.",
        "alpha": 0.05,
        "multiplicity": "holm",
        "minimal_important_differences": {"mental_wellbeing": 10, "life_satisfaction": 3},
        "randomisation": {
            "method": "permuted_blocks",
            "strata": ["community"],
            "block_sizes": [4, 6],
        },
        "missing_data": "Participants with a missing final wave are left out of the ANCOVA; "
        "the growth models use every observed wave (valid when missing at random).",
        "guardrails": ["Engagement rising while flourishing does not (divergence check)."],
        "community_weights": {"general": 1},
        "telemetry": SYNTHETIC_TELEMETRY | ({"dose": _dose(final)} if dose else {}),
    }


# The share of a synthetic factorial trial's participants who take part in German, the
# language its plan names as a moderator.
GERMAN_SHARE = 0.4


@dataclass(frozen=True)
class SyntheticFactorial:
    """A full factorial design for a synthetic trial: ``levels`` per factor (factors ``f1``,
    ``f2``, …; levels ``l0``, the reference, ``l1``, …), each factor's main effect and the first
    two factors' interaction on growth per wave (``analytics.simulate.factorial_cell_effects``),
    and ``moderator_effect``: how much faster every treatment arm grows for participants taking
    part in German than in English (the plan's moderator, language)."""

    levels: tuple[int, ...]
    main_effects: tuple[float, ...]
    interaction: float = 0.0
    moderator_effect: float = 0.0

    @property
    def cells(self) -> dict[str, dict[str, str]]:
        """Arm slug → factor → level, in ``factorial_cell_effects``' order; the first is the
        control."""
        return {
            "-".join(f"l{level}" for level in cell): {
                f"f{f + 1}": f"l{level}" for f, level in enumerate(cell)
            }
            for cell in itertools.product(*(range(n) for n in self.levels))
        }

    def plan(self) -> dict:
        """What the factorial trial's plan has beyond the two-arm plan's sections."""
        factors = [f"f{f + 1}" for f in range(len(self.levels))]
        contrasts = [{"kind": "main_effect", "factor": name} for name in factors]
        if len(factors) >= 2:
            contrasts.append({"kind": "interaction", "factors": factors[:2]})
        cells = len(self.cells)
        return {
            "hypotheses": [
                "Each factor of the assistant's configuration changes growth in mental "
                "wellbeing, and the first two interact; the effect differs by language."
            ],
            "arms_compared": [next(iter(self.cells))],
            "factorial": {
                "factors": [
                    {"name": name, "levels": [f"l{level}" for level in range(n)]}
                    for name, n in zip(factors, self.levels, strict=True)
                ],
                "cells": self.cells,
                "contrasts": contrasts,
            },
            "moderators": [{"kind": "language"}],
            "randomisation": {
                "method": "permuted_blocks",
                "strata": ["community"],
                "block_sizes": [cells, 2 * cells],
            },
        }


@transaction.atomic
def synthetic_trial_create(
    *,
    slug: str,
    participants: int,
    waves: int,
    effect: float,
    seed: int,
    title: str = "",
    factorial: SyntheticFactorial | None = None,
    dose: bool = False,
) -> Trial:
    """A registered, approved, enrolling two-arm trial whose cohort has answered its waves.

    Arm ``b`` grows ``effect`` score points per wave faster than arm ``a`` on every dimension
    (the growth models' estimand; see analytics.simulate); the data come in through
    ``participant_enrol`` and ``response_submit``. With ``factorial`` the arms are its cells
    instead, growing as it says on every dimension, and the plan pre-registers its main effects,
    the interaction and language as a moderator. With ``dose`` its telemetry declares a dose
    release (``synthetic_dose_release`` runs it).
    """
    trial = synthetic_trial_open(
        slug=slug,
        participants=participants,
        waves=waves,
        effect=effect,
        seed=seed,
        title=title,
        factorial=factorial,
        dose=dose,
    )
    synthetic_cohort_record(
        trial=trial, participants=participants, effect=effect, seed=seed, factorial=factorial
    )
    return trial


@transaction.atomic
def synthetic_trial_open(
    *,
    slug: str,
    participants: int,
    waves: int,
    effect: float,
    seed: int,
    title: str = "",
    factorial: SyntheticFactorial | None = None,
    dose: bool = False,
) -> Trial:
    """The trial of ``synthetic_trial_create`` before its cohort: registered, approved, enrolling,
    with its consent document; ``synthetic_cohort_record`` fills it in."""
    instruments_sync()
    community, _ = Community.objects.get_or_create(
        slug=COMMUNITY, defaults={"name": "General public"}
    )
    if not community.profiles.exists():
        profile_create(
            community=community,
            weights={"mental_wellbeing": 0.5, "life_satisfaction": 0.5},
            authored_by="Simulated community council",
        )
    trial = trial_create(
        slug=slug,
        title=title or f"Synthetic trial {slug}",
        description=f"Simulated cohort: {participants} participants, {waves} waves, "
        f"true growth difference {effect:g} points per wave on every score, seed {seed}.",
    )
    common = {
        "endpoint_url": "http://127.0.0.1:9000/v1",
        "model_id": "assistant-model",
        "model_version": "2026-10-01",
    }
    if factorial is None:
        arm_create(
            trial=trial,
            slug="a",
            name="A: helpful assistant",
            system_prompt="You are a helpful assistant.",
            is_control=True,
            **common,
        )
        arm_create(
            trial=trial,
            slug="b",
            name="B: flourishing-oriented assistant",
            system_prompt="You are a helpful assistant. Support the user's own judgement and "
            "long-term wellbeing; avoid flattery; encourage offline relationships.",
            memory_policy="session",
            **common,
        )
    for position, (cell, levels) in enumerate((factorial.cells if factorial else {}).items()):
        arm_create(
            trial=trial,
            slug=cell,
            name=f"Cell {', '.join(f'{f} {level}' for f, level in levels.items())}",
            system_prompt=f"You are a helpful assistant (cell {cell}).",
            is_control=position == 0,
            **common,
        )
    for day in range(waves):
        wave_create(
            trial=trial,
            index=day,
            day_offset=day * WAVE_SPACING_DAYS,
            instrument_codes=["who5", "swls"],
        )
    plan = _plan(waves, dose=dose) | (factorial.plan() if factorial else {})
    prereg = preregistration_freeze(trial=trial, plan=plan)
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for name, kind in [
        ("Ethics board", OversightBody.Kind.ETHICS_BOARD),
        ("Participants' community council", OversightBody.Kind.COMMUNITY_COUNCIL),
    ]:
        body, _ = OversightBody.objects.get_or_create(name=name, defaults={"kind": kind})
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=prereg)
    trial = trial_transition(trial=trial, to=Trial.State.ENROLLING)
    ConsentDocument.objects.create(
        trial=trial,
        version=1,
        text="You agree to answer short surveys about your wellbeing every two weeks.",
        scopes=[ConsentScope.SURVEYS, ConsentScope.TELEMETRY],
    )
    return trial


def synthetic_cohort_record(
    *,
    trial: Trial,
    participants: int,
    effect: float,
    seed: int,
    batch_size: int | None = None,
    factorial: SyntheticFactorial | None = None,
) -> None:
    """Enrol the simulated cohort of a trial from ``synthetic_trial_open`` and submit the item
    answers that score as simulated.

    Resumable: a participant already enrolled is kept and one who has answered is skipped, and
    every participant's answers come from their own random stream, so an interrupted seeding
    finishes as an uninterrupted one would. With ``batch_size`` each batch of participants is
    its own transaction, so a seeding beside a running web server (the demo's) holds SQLite's
    one write lock only briefly.
    """
    numbers = range(participants)
    batches = [numbers] if batch_size is None else _batches(numbers, batch_size)
    for batch in batches:
        with transaction.atomic():
            _enrol_cohort(trial, batch, seed, german_share=GERMAN_SHARE if factorial else 0.0)
    cohort = _cohort(trial, participants)
    if factorial is None:
        arm = np.array([1 if p.allocation.arm.slug == "b" else 0 for p in cohort])
        design = {}
    else:
        arm = np.array([list(factorial.cells).index(p.allocation.arm.slug) for p in cohort])
        design = {
            "arm_effects": factorial_cell_effects(
                factorial.levels, factorial.main_effects, factorial.interaction
            ),
            "moderator": np.array([p.locale == "de" for p in cohort], dtype=float),
            "moderator_effect": factorial.moderator_effect,
        }
    simulated = simulate_scores(
        n_participants=participants,
        n_waves=trial.waves.count(),
        effect=effect,
        seed=seed,
        arm=arm,
        **design,
    )
    table = simulated.scores.pivot_table(
        index=["participant", "wave"], columns="dimension", values="score"
    ).reset_index()
    rows = dict(tuple(table.groupby("participant")))
    instruments = Instrument.objects.filter(code__in=["who5", "swls"])
    definitions = {i.definition.scores[0].dimension: i.definition for i in instruments}
    waves = {w.index: w for w in trial.waves.all()}
    for batch in batches:
        with transaction.atomic():
            for number in batch:
                if cohort[number].responses.exists():
                    continue
                rng = np.random.default_rng([seed + 2, number])
                for row in rows[number].to_dict("records"):
                    _record_response(cohort[number], waves[int(row["wave"])], row, definitions, rng)


def _batches(numbers: range, size: int) -> list[range]:
    if size < 1:
        raise ValueError("batch_size must be at least 1.")
    return [numbers[start : start + size] for start in range(0, len(numbers), size)]


def _cohort_email(number: int) -> str:
    return f"participant{number}@example.org"


def _enrol_cohort(trial: Trial, numbers: range, seed: int, german_share: float = 0.0) -> None:
    document = trial.consent_documents.get(version=1)
    community = Community.objects.get(slug=COMMUNITY)
    n_waves = trial.waves.count()
    start = timezone.now() - timedelta(days=WAVE_SPACING_DAYS * n_waves + 7)
    enrolled = set(
        ParticipantContact.objects.filter(
            trial=trial, email__in=[_cohort_email(number) for number in numbers]
        ).values_list("email", flat=True)
    )
    for number in numbers:
        if _cohort_email(number) in enrolled:
            continue
        rng = np.random.default_rng([seed + 1, number])
        enrolled_at = start + timedelta(hours=int(rng.integers(0, 72)))
        german = german_share and np.random.default_rng([seed + 3, number]).random() < german_share
        participant_enrol(
            trial=trial,
            email=_cohort_email(number),
            consent_document=document,
            scopes=[ConsentScope.SURVEYS, ConsentScope.TELEMETRY],
            community=community,
            locale="de" if german else "en",
            enrolled_at=enrolled_at,
        )


def _cohort(trial: Trial, participants: int) -> list[Participant]:
    """The cohort's participants in their numbers' order."""
    contacts = ParticipantContact.objects.filter(
        trial=trial, email__in=[_cohort_email(number) for number in range(participants)]
    ).select_related("participant__allocation__arm")
    by_email = {contact.email: contact.participant for contact in contacts}
    return [by_email[_cohort_email(number)] for number in range(participants)]


def _record_response(participant, wave, scores: dict, definitions: dict, rng) -> None:
    """Submit, through the survey service, item answers that score as simulated."""
    answers = {
        definition.code: answers_for_score(definition, scores[dimension], rng)
        for dimension, definition in definitions.items()
    }
    submitted = participant.enrolled_at + timedelta(
        days=wave.day_offset, hours=int(rng.integers(1, 96))
    )
    response_submit(participant=participant, wave=wave, answers=answers, submitted_at=submitted)


def synthetic_telemetry_release(
    *, trial: Trial, minutes_effect: float, seed: int, windows: int | None = None
) -> int:
    """Release every ended telemetry window of a synthetic trial (or the first ``windows``) from
    simulated devices, through the real ServerApp logic, ledger and OpenDP mechanism; the number
    of windows released. Arm ``b`` uses the assistant ``minutes_effect`` minutes a week more."""
    _, schema = telemetry_schema_in_force(trial)
    consenting = [
        p
        for p in trial.participants.select_related("allocation__arm")
        if consent_active(p, ConsentScope.TELEMETRY)
    ]
    tokens = [assignment_token(p) for p in consenting]
    arms = [p.allocation.arm.slug for p in consenting]
    ended = list(windows_ended(trial, schema))[:windows]
    for index in ended:
        usage = simulated_usage(
            arms,
            treated="b",
            minutes_effect=minutes_effect,
            window_days=schema.window_days,
            seed=seed + index,
        )
        telemetry_window_run(
            grid=simulated_devices(dict(zip(tokens, usage, strict=True))),
            trial=trial,
            window_index=index,
        )
    return len(ended)


def synthetic_dose_release(*, trial: Trial, slope: float, seed: int) -> DoseRelease:
    """Run the dose release of a synthetic trial (``synthetic_trial_create(dose=True)``) through
    the real release, its ledger and OpenDP, from simulated devices whose usage goes with their
    participant's outcome change as ``slope`` says.

    The changes are the cohort's own (from its recorded scores), so the usage is drawn given
    them: within each arm, usage = mean + g (change − arm's mean change) + e with e normal and
    independent, g and e's SD chosen so that usage has SD ``DOSE_USAGE_SD`` and the least-squares
    slope of change on usage within arms (what ``federated.slope`` estimates) is ``slope`` in the
    population. That needs |slope| × ``DOSE_USAGE_SD`` below each arm's SD of the change."""
    _, schema = telemetry_schema_in_force(trial)
    if schema.dose is None:
        raise ValueError(f"The plan of {trial.slug} declares no dose release.")
    cohort = [
        p
        for p in trial.participants.select_related("allocation__arm")
        if consent_active(p, ConsentScope.TELEMETRY) and consent_active(p, ConsentScope.SURVEYS)
    ]
    changes = outcome_changes(trial, schema.dose.outcome, [p.pk for p in cohort])
    rng = np.random.default_rng(seed)
    usage: dict[str, int] = {}
    for arm in sorted({p.allocation.arm.slug for p in cohort}):
        people = [p for p in cohort if p.allocation.arm.slug == arm and p.pk in changes]
        change = np.array([changes[p.pk] for p in people])
        spread = change.std(ddof=1) if len(change) > 1 else 0.0
        if abs(slope) * DOSE_USAGE_SD >= spread:
            raise ValueError(
                f"A slope of {slope:g} needs the change to vary more than "
                f"{abs(slope) * DOSE_USAGE_SD:.3g} points (SD) in arm {arm}; it varies "
                f"{spread:.3g}."
            )
        gain = slope * DOSE_USAGE_SD**2 / spread**2
        noise_sd = np.sqrt(DOSE_USAGE_SD**2 - gain**2 * spread**2)
        minutes = (
            DOSE_USAGE_MEAN + gain * (change - change.mean()) + rng.normal(0, noise_sd, len(change))
        )
        for participant, value in zip(people, minutes, strict=True):
            usage[assignment_token(participant)] = int(np.clip(round(value), 0, DOSE_USAGE_UPPER))
    return dose_release_run(grid=simulated_devices({}, dose_usage=usage), trial=trial)
