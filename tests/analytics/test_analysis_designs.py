"""A confirmatory run of a 2 × 2 factorial trial with a baseline covariate and a moderator:
the plan's contrasts, joint tests, moderator effects and the covariates' precision land in the
results, labelled, with the plan's correction over the mixed model's whole confirmatory family."""

import itertools
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from statsmodels.stats.multitest import multipletests

from analytics.results import DesignEffect, Results
from analytics.services import analysis_run_create, analysis_run_execute
from analytics.simulate import (
    DIMENSIONS,
    answers_for_score,
    factorial_cell_effects,
    simulate_scores,
)
from surveys.models import Instrument
from surveys.services import instruments_sync, response_submit, wave_create
from tests.trials.factories import ARM, bodies
from trials.models import ConsentDocument, ConsentScope, Trial
from trials.selectors import preregistration_current
from trials.services import (
    approval_record,
    arm_create,
    oversight_assign,
    participant_enrol,
    preregistration_freeze,
    trial_create,
    trial_transition,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CELLS = {
    f"m{i}k{j}": {"mode": mode, "kind": kind}
    for (i, mode), (j, kind) in itertools.product(
        enumerate(["text", "voice"]), enumerate(["open", "task"])
    )
}
PLAN = {
    "hypotheses": ["Voice and task conversations change growth in wellbeing."],
    "arms_compared": ["m0k0"],
    "factorial": {
        "factors": [
            {"name": "mode", "levels": ["text", "voice"]},
            {"name": "kind", "levels": ["open", "task"]},
        ],
        "cells": CELLS,
        "contrasts": [
            {"kind": "main_effect", "factor": "mode"},
            {"kind": "main_effect", "factor": "kind"},
            {"kind": "interaction", "factors": ["mode", "kind"]},
        ],
    },
    "covariates": [{"kind": "baseline_score", "score": "swls"}],
    "moderators": [{"kind": "language"}],
    "primary_outcomes": [{"dimension": "mental_wellbeing", "instrument": "who5", "wave": 2}],
    "randomisation": {"method": "permuted_blocks", "strata": [], "block_sizes": [4, 8]},
    "multiplicity": "holm",
}


@pytest.fixture
def factorial_trial() -> Trial:
    """Four arms, the cells of the 2 × 2 design, 96 participants over three waves: voice adds
    3 WHO-5 points a wave, task 1, both together 2 more, and German speakers gain 2 more in
    every treatment arm."""
    instruments_sync()
    trial = trial_create(slug="factorial", title="Factorial")
    for slug in CELLS:
        arm_create(trial=trial, slug=slug, name=slug, is_control=slug == "m0k0", **ARM)
    for index in range(3):
        wave_create(
            trial=trial, index=index, day_offset=14 * index, instrument_codes=["who5", "swls"]
        )
    preregistration_freeze(trial=trial, plan=PLAN)
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies("Ethics", "Council"):
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration_current(trial))
    document = ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=[ConsentScope.SURVEYS]
    )
    trial = trial_transition(trial=trial, to=Trial.State.ENROLLING)
    start = timezone.now() - timedelta(days=40)
    cohort = [
        participant_enrol(
            trial=trial,
            email=f"p{n}@example.org",
            consent_document=document,
            scopes=[ConsentScope.SURVEYS],
            locale="de" if n % 3 == 0 else "en",
            enrolled_at=start,
        )
        for n in range(96)
    ]
    arm = np.array([list(CELLS).index(p.allocation.arm.slug) for p in cohort])
    simulated = simulate_scores(
        n_participants=len(cohort),
        n_waves=3,
        effect=0.0,
        seed=5,
        arm=arm,
        arm_effects=factorial_cell_effects((2, 2), (3.0, 1.0), 2.0),
        moderator=np.array([p.locale == "de" for p in cohort], dtype=float),
        moderator_effect=2.0,
        dimensions=DIMENSIONS[:2],
    )
    definitions = {
        i.definition.scores[0].dimension: i.definition
        for i in Instrument.objects.filter(code__in=["who5", "swls"])
    }
    waves = {w.index: w for w in trial.waves.all()}
    rng = np.random.default_rng(6)
    table = simulated.scores.pivot_table(
        index=["participant", "wave"], columns="dimension", values="score"
    ).reset_index()
    for row in table.to_dict("records"):
        participant, wave = cohort[int(row["participant"])], waves[int(row["wave"])]
        response_submit(
            participant=participant,
            wave=wave,
            answers={
                d.code: answers_for_score(d, row[dimension], rng)
                for dimension, d in definitions.items()
            },
            submitted_at=start + timedelta(days=wave.day_offset, hours=1),
        )
    return trial


def test_a_factorial_run_reports_its_contrasts_moderators_and_precision(factorial_trial):
    run = analysis_run_execute(run_id=analysis_run_create(trial=factorial_trial, enqueue=False).pk)
    results = Results.model_validate(run.results)
    assert results.planned_contrast is None and results.factorial.cells == CELLS
    who5 = [e for e in results.design_effects if e.outcome == "who5"]
    for method in ("mixedlm", "bayes_growth"):
        labels = {(e.kind, e.label) for e in who5 if e.method == method and e.kind != "moderator"}
        assert labels == {
            ("main_effect", "mode: voice − text"),
            ("main_effect", "kind: task − open"),
            ("interaction", "mode: voice − text × kind: task − open"),
        }
    assert all(e.confirmatory for e in who5)
    # Other scores are exploratory outcomes: their design effects are too.
    assert all(not e.confirmatory for e in results.design_effects if e.outcome != "who5")
    moderators = [e for e in who5 if e.kind == "moderator"]
    assert {e.label for e in moderators if e.method == "mixedlm"} == {
        f"{arm} × language=de" for arm in CELLS if arm != "m0k0"
    }
    # The plan's Holm correction runs over the mixed model's whole confirmatory family.
    family = [
        e
        for e in [*results.estimates, *results.design_effects]
        if e.method == "mixedlm" and e.confirmatory
    ]
    assert len(family) == 3 + 3  # three contrasts, three arm × language effects
    expected = multipletests([e.p_value for e in family], method="holm")[1]
    assert [e.p_adjusted for e in family] == pytest.approx(list(expected))
    # Two-level factors give one estimate per contrast, so no joint tests.
    assert results.joint_tests == []
    (voice,) = [e for e in who5 if e.method == "mixedlm" and e.label == "mode: voice − text"]
    assert isinstance(voice, DesignEffect) and voice.df > 10
    # The Bayesian model: language as a partially pooled subgroup, its precision compared.
    bayes = [e for e in moderators if e.method == "bayes_growth"]
    assert {e.label for e in bayes} == {
        f"{arm} within language={language}"
        for arm in CELLS
        if arm != "m0k0"
        for language in ("de", "en")
    }
    assert {a.arm for a in results.covariate_adjustment if a.method == "bayes_growth"} == set(
        CELLS
    ) - {"m0k0"}
    adjustment = {
        a.arm: a
        for a in results.covariate_adjustment
        if a.outcome == "who5" and a.method == "mixedlm"
    }
    assert set(adjustment) == set(CELLS) - {"m0k0"}
    for a in adjustment.values():
        assert a.covariates == ["baseline swls"]
        assert a.variance_ratio == pytest.approx(
            (a.std_error_adjusted / a.std_error_unadjusted) ** 2
        )
    # The arm contrasts of the mixed model are the covariate-adjusted ones.
    mixed = {e.arm: e for e in results.estimates if e.method == "mixedlm" and e.outcome == "who5"}
    assert all(mixed[arm].std_error == adjustment[arm].std_error_adjusted for arm in adjustment)
    assert not any(e.confirmatory for e in mixed.values())  # the plan names no pairwise contrast
