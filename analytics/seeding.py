"""Building a whole synthetic trial in the database, through the same services users go through:
the demo, ``simulate_trial`` and the benchmarks use it."""

from datetime import timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from analytics.simulate import answers_for_score, simulate_scores
from federated.selectors import telemetry_schema_in_force, windows_ended
from federated.simulate import simulated_devices, simulated_usage
from federated.window import telemetry_window_run
from surveys.models import Instrument
from surveys.services import instruments_sync, response_submit, wave_create
from trials.models import Community, ConsentDocument, ConsentScope, OversightBody, Trial
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

WAVE_SPACING_DAYS = 14  # WHO-5 asks about the last two weeks
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


def _plan(n_waves: int) -> dict:
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
        "telemetry": SYNTHETIC_TELEMETRY,
    }


@transaction.atomic
def synthetic_trial_create(
    *, slug: str, participants: int, waves: int, effect: float, seed: int, title: str = ""
) -> Trial:
    """A registered, approved, enrolling two-arm trial whose cohort has answered its waves.

    Arm ``b`` grows ``effect`` score points per wave faster than arm ``a`` on every dimension
    (the growth models' estimand; see analytics.simulate); the data come in through
    ``participant_enrol`` and ``response_submit``.
    """
    instruments_sync()
    community, _ = Community.objects.get_or_create(
        slug="general", defaults={"name": "General public"}
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
    for day in range(waves):
        wave_create(
            trial=trial,
            index=day,
            day_offset=day * WAVE_SPACING_DAYS,
            instrument_codes=["who5", "swls"],
        )
    prereg = preregistration_freeze(trial=trial, plan=_plan(waves))
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for name, kind in [
        ("Ethics board", OversightBody.Kind.ETHICS_BOARD),
        ("Participants' community council", OversightBody.Kind.COMMUNITY_COUNCIL),
    ]:
        body, _ = OversightBody.objects.get_or_create(name=name, defaults={"kind": kind})
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=prereg)
    trial = trial_transition(trial=trial, to=Trial.State.ENROLLING)
    document = ConsentDocument.objects.create(
        trial=trial,
        version=1,
        text="You agree to answer short surveys about your wellbeing every two weeks.",
        scopes=[ConsentScope.SURVEYS, ConsentScope.TELEMETRY],
    )
    cohort = _enrol_cohort(trial, participants, waves, document, community, seed)
    arm = np.array([1 if p.allocation.arm.slug == "b" else 0 for p in cohort])
    simulated = simulate_scores(
        n_participants=participants, n_waves=waves, effect=effect, seed=seed, arm=arm
    )
    _record_responses(trial, cohort, simulated, seed)
    return trial


def _enrol_cohort(trial, n, waves, document, community, seed: int) -> list:
    rng = np.random.default_rng(seed + 1)
    start = timezone.now() - timedelta(days=WAVE_SPACING_DAYS * waves + 7)
    return [
        participant_enrol(
            trial=trial,
            email=f"participant{number}@example.org",
            consent_document=document,
            scopes=[ConsentScope.SURVEYS, ConsentScope.TELEMETRY],
            community=community,
            enrolled_at=start + timedelta(hours=int(rng.integers(0, 72))),
        )
        for number in range(n)
    ]


def _record_responses(trial, cohort, simulated, seed: int) -> None:
    """Submit, through the survey service, item answers that score as simulated."""
    rng = np.random.default_rng(seed + 2)
    instruments = Instrument.objects.filter(code__in=["who5", "swls"])
    definitions = {i.definition.scores[0].dimension: i.definition for i in instruments}
    waves = {w.index: w for w in trial.waves.all()}
    table = simulated.scores.pivot_table(
        index=["participant", "wave"], columns="dimension", values="score"
    ).reset_index()
    for row in table.to_dict("records"):
        participant = cohort[int(row["participant"])]
        wave = waves[int(row["wave"])]
        answers = {
            definition.code: answers_for_score(definition, row[dimension], rng)
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
