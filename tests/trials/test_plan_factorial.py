"""Factorial designs, covariates and moderators in the plan: shape, freezing, allocation balance,
the admin form and the OSF export."""

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from surveys.services import wave_create
from tests.trials.factories import ARM, valid_plan
from tests.trials.test_plan_document import post_data
from trials.canonical import sha256_of
from trials.forms import PlanForm
from trials.plan import PlanError, plan_parse
from trials.randomisation import permuted_block
from trials.registry_export import osf_preregistration, preregistration_markdown
from trials.services import (
    arm_create,
    preregistration_draft_save,
    preregistration_freeze,
    trial_create,
)

MODES = ["text", "voice", "video"]
TYPES = ["open", "personal", "task"]
CELLS = {
    f"m{i}t{j}": {"mode": mode, "type": kind}
    for (i, mode), (j, kind) in itertools.product(enumerate(MODES), enumerate(TYPES))
}
FACTORIAL = {
    "factors": [{"name": "mode", "levels": MODES}, {"name": "type", "levels": TYPES}],
    "cells": CELLS,
    "contrasts": [
        {"kind": "main_effect", "factor": "mode"},
        {"kind": "interaction", "factors": ["mode", "type"]},
        {"kind": "levels", "factor": "type", "level": "task", "versus": "personal"},
    ],
}


def factorial_plan(**overrides) -> dict:
    return (
        valid_plan(
            arms_compared=["m0t0"],
            factorial=FACTORIAL,
            randomisation={"method": "permuted_blocks", "block_sizes": [9, 18]},
        )
        | overrides
    )


def factorial_trial(slug: str = "f"):
    """Nine arms, the cells of a 3 × 3 design, and three WHO-5 waves."""
    trial = trial_create(slug=slug, title=slug.upper())
    for slug_ in CELLS:
        arm_create(
            trial=trial,
            slug=slug_,
            name=slug_,
            is_control=slug_ == "m0t0",
            **ARM | {"system_prompt": f"Cell {slug_}."},
        )
    for index in range(3):
        wave_create(trial=trial, index=index, day_offset=14 * index, instrument_codes=["who5"])
    return trial


@pytest.mark.unit
def test_main_effects_average_over_other_factors_and_interactions_are_differences_of_differences():
    design = plan_parse(factorial_plan()).factorial
    main, interaction, levels = (design.weighted_contrasts(c) for c in design.contrasts)
    assert [row.label for row in main] == ["mode: voice − text", "mode: video − text"]
    voice = main[0].weights
    assert all(voice[f"m1t{j}"] == pytest.approx(1 / 3) for j in range(3))
    assert all(voice[f"m0t{j}"] == pytest.approx(-1 / 3) for j in range(3))
    assert all(voice[f"m2t{j}"] == 0 for j in range(3))
    assert len(interaction) == 4  # (3 − 1) × (3 − 1)
    first = {arm: w for arm, w in interaction[0].weights.items() if w}
    assert first == {"m0t0": 1.0, "m0t1": -1.0, "m1t0": -1.0, "m1t1": 1.0}
    assert levels[0].label == "type: task − personal"
    for row in main + interaction + levels:
        assert sum(row.weights.values()) == pytest.approx(0)
    assert design.reference_arm == "m0t0" and design.cell_count == 9


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"cells": {k: v for k, v in CELLS.items() if k != "m2t2"}},
            "every cell needs exactly one",
        ),
        ({"cells": CELLS | {"extra": {"mode": "text", "type": "open"}}}, "more than one arm"),
        ({"cells": CELLS | {"m2t2": {"mode": "audio", "type": "task"}}}, "'audio' is not a level"),
        ({"cells": CELLS | {"m2t2": {"mode": "video"}}}, "names factors ['mode'], not"),
        ({"contrasts": [{"kind": "main_effect", "factor": "tone"}]}, "no factor tone"),
        ({"contrasts": [{"kind": "interaction", "factors": ["mode"]}]}, "two or more different"),
        (
            {"contrasts": [{"kind": "levels", "factor": "mode", "level": "text"}]},
            "compare two different levels",
        ),
        ({"factors": [{"name": "mode", "levels": ["text", "text"]}]}, "distinct"),
    ],
)
def test_a_malformed_design_is_refused_with_the_reason(change, message):
    with pytest.raises(PlanError) as error:
        plan_parse(factorial_plan(factorial=FACTORIAL | change))
    assert any(message in line for line in error.value.messages), error.value.messages


@pytest.mark.unit
def test_variables_need_their_score_and_are_named_once():
    with pytest.raises(PlanError, match="names its score"):
        plan_parse(valid_plan(covariates=[{"kind": "baseline_score"}]))
    with pytest.raises(PlanError, match="name each variable once"):
        plan_parse(valid_plan(moderators=[{"kind": "language"}, {"kind": "language"}]))
    plan = plan_parse(valid_plan(moderators=[{"kind": "baseline_score", "score": "who5"}]))
    assert plan.moderators[0].name == "baseline who5"


@pytest.mark.django_db
def test_a_three_by_three_trial_freezes_with_blocks_that_hold_every_cell():
    trial = factorial_trial()
    frozen = preregistration_freeze(trial=trial, plan=factorial_plan())
    assert frozen.plan.factorial.cell_count == 9 and frozen.plan.planned_arm is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"randomisation": {"block_sizes": [4, 6]}}, "multiples of 9"),
        ({"randomisation": {"method": "salted_hash"}}, "must be permuted_blocks"),
        ({"arms_compared": ["m1t1"]}, "reference cell m0t0"),
        ({"factorial": FACTORIAL | {"contrasts": []}}, "at least one main effect"),
        (
            {
                "factorial": FACTORIAL
                | {
                    "factors": [{"name": "mode", "levels": MODES}],
                    "cells": {f"m{i}t0": {"mode": m} for i, m in enumerate(MODES)},
                    "contrasts": [{"kind": "main_effect", "factor": "mode"}],
                }
            },
            "give each arm of this trial its cell",
        ),
    ],
)
def test_freezing_refuses_a_design_that_does_not_fit_the_trial(change, message):
    trial = factorial_trial()
    with pytest.raises(ValidationError) as error:
        preregistration_freeze(trial=trial, plan=factorial_plan(**change))
    assert any(message in line for line in error.value.messages), error.value.messages


@pytest.mark.unit
def test_permuted_blocks_balance_the_nine_cells_in_every_block():
    ratio = dict.fromkeys(CELLS, 1)
    for stratum, block in itertools.product(["community=a", "community=b"], range(40)):
        arms = permuted_block("seed", stratum, block, ratio, [9, 18])
        counts = Counter(arms)
        assert set(counts) == set(CELLS) and len(set(counts.values())) == 1


@pytest.mark.django_db
def test_the_plan_form_writes_and_reads_a_factorial_design():
    trial = factorial_trial()
    plan = factorial_plan(
        covariates=[{"kind": "baseline_score", "score": "who5"}, {"kind": "language"}],
        moderators=[{"kind": "community"}],
    )
    draft = preregistration_draft_save(trial=trial, plan=plan)
    form = PlanForm(instance=draft)
    assert form.initial["factorial_contrasts"].splitlines() == [
        "main effect: mode",
        "interaction: mode × type",
        "levels: type task vs personal",
    ]
    assert form.initial["covariates"] == "baseline score: who5\nlanguage"
    submitted = PlanForm(post_data(form.initial, trial), instance=draft)
    assert submitted.is_valid(), submitted.errors
    assert submitted.plan == draft.plan
    typed = post_data(
        form.initial,
        trial,
        factorial_contrasts="main effect: type\ninteraction: type x mode",
        moderators="baseline score: who5",
    )
    retyped = PlanForm(typed, instance=draft)
    assert retyped.is_valid(), retyped.errors
    assert retyped.plan.factorial.contrasts[1].factors == ["type", "mode"]
    assert retyped.plan.moderators[0].score == "who5"
    bad = PlanForm(
        post_data(form.initial, trial, factorial_contrasts="simple: mode", moderators="age"),
        instance=draft,
    )
    assert not bad.is_valid()
    assert "starts with “main effect”" in str(bad.errors["factorial_contrasts"])
    assert "baseline score: score code" in str(bad.errors["moderators"])


@pytest.mark.unit
def test_the_export_states_the_cells_the_contrasts_and_the_moderators():
    plan = plan_parse(
        factorial_plan(
            covariates=[{"kind": "baseline_score", "score": "swls"}],
            moderators=[{"kind": "baseline_score", "score": "who5"}],
        )
    )
    content = {
        "trial": "f",
        "plan": plan.canonical(),
        "arms": dict.fromkeys(CELLS, "a" * 64),
        "arm_configs": {slug: {"slug": slug} for slug in CELLS},
        "allocation_sequence_sha256": "c" * 64,
    }
    arguments = {
        "trial_slug": "f",
        "title": "F",
        "version": 1,
        "frozen_at": datetime(2026, 5, 1, tzinfo=UTC),
        "sha256": sha256_of(content),
        "content": content,
    }
    models = osf_preregistration(**arguments)["analysis_plan"]["statistical_models"]
    assert (
        "Factorial design, 9 cells: mode (text, voice, video; reference text)" in models["answer"]
    )
    assert (
        "main effect of mode on growth per wave: mode: voice − text; mode: video − text"
        in (models["answer"])
    )
    assert (
        "Baseline covariates (precision adjustment, with their × wave terms): baseline swls"
        in (models["answer"])
    )
    assert (
        "Confirmatory moderators (arm × moderator on growth per wave): baseline who5"
        in (models["answer"])
    )
    assert models["data"]["factorial"]["cells"]["m2t1"] == {"mode": "video", "type": "personal"}
    assert "- Factorial design, 9 cells" in preregistration_markdown(**arguments)
