"""Synthetic trials with known truth, for the demo, the tests and the benchmarks.

Each participant has, per flourishing dimension, a baseline level and a personal growth per wave;
every treatment arm grows ``effect`` score points per wave faster than control on every dimension
(the estimand of the growth models: the difference in growth per wave, in the score's own units).
The arms drift apart symmetrically, control by −effect/2 and treatment by +effect/2 per wave, from
baselines at the middle of each instrument's range: real scores are bounded, and this keeps the
share clipped at either end, which would shrink the observed difference, as small as possible.
Participants drop out monotonically after baseline: completely at random (``missing="mcar"``) or
at random given their last observed score (``missing="mar"``: lower wellbeing, more drop-out),
the mechanism a likelihood-based analysis handles without bias and a complete-case one does not.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit

from surveys.instrument import InstrumentDefinition


@dataclass(frozen=True)
class DimensionModel:
    """Score-scale parameters of one dimension, as measured by one instrument.

    ``sd_slope`` is the between-person SD of growth per wave.
    """

    dimension: str
    instrument: str
    mean: float
    sd_between: float
    sd_slope: float
    sd_noise: float
    low: float
    high: float


# Spreads roughly as in the published norms of each instrument's score, means at the middle of
# the range (WHO-5 0–100, SWLS 5–35, Flourishing Scale 8–56).
DIMENSIONS = (
    DimensionModel("mental_wellbeing", "who5", 50.0, 15.0, 1.5, 8.0, 0.0, 100.0),
    DimensionModel("life_satisfaction", "swls", 20.0, 5.5, 0.5, 2.8, 5.0, 35.0),
    DimensionModel("meaning", "flourishing_scale", 32.0, 7.0, 0.6, 3.5, 8.0, 56.0),
)

# How strongly a lower last score raises the odds of leaving (per baseline SD) under MAR.
MAR_LOG_ODDS_PER_SD = 0.5


@dataclass(frozen=True)
class SimulatedTrial:
    scores: pd.DataFrame
    """One row per participant × wave × dimension: participant, arm, wave, dimension, score."""
    true_effects: dict[str, float]
    """Dimension → true difference in growth per wave (first treatment arm − control), in score
    points."""
    n_participants: int
    n_waves: int
    seed: int
    arm_effects: tuple[float, ...] = ()
    """Each arm's true growth per wave minus the control's (0 for the control), where the
    participant's moderator is 0; any contrast's truth is its weights applied to these."""
    moderator_effect: float = 0.0
    """How much every treatment arm's growth difference from control changes per unit of the
    moderator: the true arm × moderator effect on growth."""


def factorial_cell_effects(
    levels: tuple[int, ...], main_effects: tuple[float, ...], interaction: float = 0.0
) -> tuple[float, ...]:
    """Each cell's growth per wave minus the reference cell's, cells in
    ``itertools.product`` order of the factors' level numbers (0 = reference level).

    A non-reference level of factor f adds ``main_effects[f]``; a cell at non-reference levels
    of both of the first two factors adds ``interaction`` as well. So each interaction contrast
    of those factors (a difference of differences) is ``interaction``, and a main effect of one
    of them, averaged over the other's m levels, is its main effect plus
    ``interaction`` × (m − 1) / m.
    """
    if len(levels) != len(main_effects) or any(n < 2 for n in levels):
        raise ValueError("Give each factor two levels or more and one main effect.")
    effects = []
    for cell in itertools.product(*(range(n) for n in levels)):
        effect = sum(main for level, main in zip(cell, main_effects, strict=True) if level)
        if len(cell) >= 2 and cell[0] and cell[1]:
            effect += interaction
        effects.append(float(effect))
    return tuple(effects)


def simulate_scores(
    *,
    n_participants: int,
    n_waves: int,
    effect: float,
    seed: int,
    dropout: float = 0.1,
    missing: str = "mcar",
    dimensions: tuple[DimensionModel, ...] = DIMENSIONS[:2],
    clip: bool = True,
    arm: np.ndarray | None = None,
    n_arms: int = 2,
    arm_effects: tuple[float, ...] | None = None,
    moderator: np.ndarray | None = None,
    moderator_effect: float = 0.0,
    covariate: np.ndarray | None = None,
    covariate_effect: float = 0.0,
) -> SimulatedTrial:
    """Simulate a longitudinal trial; arm 0 is control, every other arm adds ``effect`` per wave.

    Arms are allocated equally at random unless ``arm`` gives each participant's arm (0 or more),
    as a real allocation does. ``dropout`` is the share of participants expected to leave before
    the final wave. With ``clip=False`` scores are left unbounded, so the true effect holds
    exactly in expectation; with ``clip=True`` they are kept within the instrument's range, as
    real scores are.

    ``arm_effects`` gives each arm its own growth difference from control instead (a factorial
    design's cells: :func:`factorial_cell_effects`; the first is the control's, 0).
    ``moderator`` is a baseline value per participant (e.g. 1 for speakers of one language, 0
    for the others): every treatment arm's growth then changes by ``moderator_effect`` per unit
    of it, and the control's does not. ``covariate`` is a prognostic baseline value: every
    participant's growth, in every arm, changes by ``covariate_effect`` per unit of it (what a
    covariate adjustment gains precision from).
    """
    if n_participants < 4 or n_waves < 2:
        raise ValueError("Need at least 4 participants and 2 waves.")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must lie in [0, 1).")
    if missing not in ("mcar", "mar"):
        raise ValueError("missing must be 'mcar' or 'mar'.")
    rng = np.random.default_rng(seed)
    if arm is None:
        arm = rng.permutation(np.arange(n_participants) % n_arms)
    elif arm.shape != (n_participants,) or arm.min() < 0:
        raise ValueError("arm must hold one arm number (0 = control) per participant.")
    if arm_effects is None:
        arm_effects = (0.0, *[effect] * (max(n_arms, int(arm.max()) + 1) - 1))
    elif len(arm_effects) <= arm.max() or arm_effects[0] != 0:
        raise ValueError("arm_effects needs one effect per arm, the control's (first) 0.")
    # The arms drift apart symmetrically about the middle of their effects (module doc).
    centre = (max(arm_effects) + min(arm_effects)) / 2
    drift = np.asarray(arm_effects, dtype=float)[arm] - centre
    if moderator_effect:
        if moderator is None or moderator.shape != (n_participants,):
            raise ValueError("A moderator effect needs one moderator value per participant.")
        drift = drift + moderator_effect * np.asarray(moderator, dtype=float) * (arm > 0)
    if covariate_effect:
        if covariate is None or covariate.shape != (n_participants,):
            raise ValueError("A covariate effect needs one covariate value per participant.")
        drift = drift + covariate_effect * np.asarray(covariate, dtype=float)
    waves = np.arange(n_waves, dtype=float)
    scores = {}
    truth = {}
    for model in dimensions:
        level = rng.normal(model.mean, model.sd_between, n_participants)
        slope = rng.normal(0.0, model.sd_slope, n_participants) + drift
        truth[model.dimension] = arm_effects[1] if len(arm_effects) > 1 else effect
        mean = level[:, None] + slope[:, None] * waves[None, :]
        score = mean + rng.normal(0.0, model.sd_noise, mean.shape)
        scores[model] = np.clip(score, model.low, model.high) if clip else score
    last_wave = _last_waves(scores[dimensions[0]], dimensions[0], dropout, missing, rng)
    participant, wave = np.nonzero(waves[None, :] <= last_wave[:, None])
    frames = [
        pd.DataFrame(
            {
                "participant": participant,
                "arm": arm[participant],
                "wave": wave,
                "dimension": model.dimension,
                "score": score[participant, wave],
            }
        )
        for model, score in scores.items()
    ]
    return SimulatedTrial(
        scores=pd.concat(frames, ignore_index=True),
        true_effects=truth,
        n_participants=n_participants,
        n_waves=n_waves,
        seed=seed,
        arm_effects=tuple(float(e) for e in arm_effects),
        moderator_effect=moderator_effect,
    )


def _mean_hazard_gap(offset: float, standardised_scores: np.ndarray, hazard: float) -> float:
    return expit(offset - MAR_LOG_ODDS_PER_SD * standardised_scores).mean() - hazard


def _last_waves(
    score: np.ndarray, model: DimensionModel, dropout: float, missing: str, rng
) -> np.ndarray:
    """Each participant's last answered wave. The average per-wave hazard is constant, so that a
    share ``dropout`` leaves in all; under MAR its log-odds fall with the last observed score."""
    n_participants, n_waves = score.shape
    last_wave = np.full(n_participants, n_waves - 1)
    if dropout == 0:
        return last_wave
    hazard = 1 - (1 - dropout) ** (1 / (n_waves - 1))
    for wave in range(1, n_waves):
        if missing == "mar":
            previous = (score[:, wave - 1] - model.mean) / model.sd_between
            at_risk = previous[last_wave == n_waves - 1]
            # The intercept that keeps the average hazard of those still in at ``hazard``.
            offset = optimize.brentq(_mean_hazard_gap, -30, 30, args=(at_risk, hazard))
            chance = expit(offset - MAR_LOG_ODDS_PER_SD * previous)
        else:
            chance = hazard
        leaves = (rng.random(n_participants) < chance) & (last_wave == n_waves - 1)
        last_wave[leaves] = wave - 1
    return last_wave


# Each item answer is the person's level on the scale plus item-specific noise with this SD, as a
# share of the scale's range. With the score spreads of ``DIMENSIONS`` it gives Cronbach's α in
# the range published for WHO-5 (Topp et al. 2015, Psychother Psychosom 84:167) and SWLS (Pavot &
# Diener 2008, J Posit Psychol 3:137); tests/analytics/test_simulate.py checks WHO-5's.
ITEM_NOISE_SHARE = 0.14


def answers_for_score(
    definition: InstrumentDefinition, target: float, rng: np.random.Generator
) -> dict[str, int]:
    """Item answers whose score, under ``definition``'s sum rule, is as close to ``target`` as the
    scale allows.

    The items measure one trait, as a reliable instrument's do: each is the person's level (the
    target's mean item value) plus independent noise of SD ``ITEM_NOISE_SHARE`` × the scale's
    range, rounded to the scale. The rounded answers are then moved one point at a time towards
    the target total, each time the item whose rounding went furthest the other way, so the
    score is matched while the answers stay as close to their draws as the scale allows.
    """
    items = definition.items
    low, high = definition.scale.min, definition.scale.max
    (score,) = definition.scores
    if score.rule != "sum" or score.items is not None:
        raise ValueError(f"{definition.code} is not scored as one sum of all its items.")
    total = int(np.clip(round(target / score.multiplier), low * len(items), high * len(items)))
    drawn = total / len(items) + rng.normal(0.0, ITEM_NOISE_SHARE * (high - low), len(items))
    values = np.clip(np.round(drawn), low, high).astype(int)
    while (gap := total - values.sum()) != 0:
        step = 1 if gap > 0 else -1
        # Items that can still move that way; the one whose draw most wants to move there.
        movable = np.flatnonzero(values < high) if step > 0 else np.flatnonzero(values > low)
        pull = (drawn - values)[movable] * step
        values[movable[np.argmax(pull)]] += step
    answers = {}
    for item, value in zip(items, values, strict=True):
        answers[item.code] = int(low + high - value) if item.reverse else int(value)
    return answers
