"""Synthetic trials with known truth, for the demo, the tests and the benchmarks.

Each participant has, per flourishing dimension, a baseline level and a personal slope; the
treatment arm adds ``effect`` between-person standard deviations by the final wave, growing
linearly over the waves. Participants drop out monotonically at random (MCAR), with probability
``dropout`` per follow-up wave.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DimensionModel:
    """Score-scale parameters of one dimension, as measured by one instrument."""

    dimension: str
    instrument: str
    mean: float
    sd_between: float
    sd_slope: float
    sd_noise: float
    low: float
    high: float


# Roughly the published norms of each instrument's score (WHO-5 0–100, SWLS 5–35).
DIMENSIONS = (
    DimensionModel("mental_wellbeing", "who5", 56.0, 15.0, 2.0, 8.0, 0.0, 100.0),
    DimensionModel("life_satisfaction", "swls", 23.0, 5.5, 0.7, 2.8, 5.0, 35.0),
)


@dataclass(frozen=True)
class SimulatedTrial:
    scores: pd.DataFrame
    """One row per participant × wave × dimension: participant, arm, wave, dimension, score."""
    true_effects: dict[str, float]
    """Dimension → true difference (treatment − control) at the final wave, in score points."""
    n_participants: int
    n_waves: int
    seed: int


def simulate_scores(
    *,
    n_participants: int,
    n_waves: int,
    effect: float,
    seed: int,
    dropout: float = 0.1,
    dimensions: tuple[DimensionModel, ...] = DIMENSIONS,
    clip: bool = True,
    arm: np.ndarray | None = None,
) -> SimulatedTrial:
    """Simulate a two-arm longitudinal trial (arm 1 = treatment, allocated 1:1 at random unless
    ``arm`` gives each participant's arm, as a real allocation does).

    With ``clip=False`` scores are left unbounded, so the true effect holds exactly in
    expectation; with ``clip=True`` they are kept within the instrument's range, as real scores
    are.
    """
    if n_participants < 4 or n_waves < 2:
        raise ValueError("Need at least 4 participants and 2 waves.")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must lie in [0, 1).")
    rng = np.random.default_rng(seed)
    if arm is None:
        arm = rng.permutation(np.arange(n_participants) % 2)
    elif arm.shape != (n_participants,) or not np.isin(arm, (0, 1)).all():
        raise ValueError("arm must hold one 0 or 1 per participant.")
    # Last wave each participant answers (monotone drop-out after baseline).
    last_wave = np.full(n_participants, n_waves - 1)
    for wave in range(1, n_waves):
        drops = (rng.random(n_participants) < dropout) & (last_wave == n_waves - 1)
        last_wave[drops] = wave - 1
    time = np.arange(n_waves) / (n_waves - 1)  # 0 at baseline, 1 at the final wave
    frames = []
    truth = {}
    for model in dimensions:
        level = rng.normal(model.mean, model.sd_between, n_participants)
        slope = rng.normal(0.0, model.sd_slope, n_participants)
        true_effect = effect * model.sd_between
        truth[model.dimension] = true_effect
        mean = level[:, None] + (slope + true_effect * arm)[:, None] * time[None, :]
        score = mean + rng.normal(0.0, model.sd_noise, mean.shape)
        if clip:
            score = np.clip(score, model.low, model.high)
        participant, wave = np.nonzero(np.arange(n_waves)[None, :] <= last_wave[:, None])
        frames.append(
            pd.DataFrame(
                {
                    "participant": participant,
                    "arm": arm[participant],
                    "wave": wave,
                    "dimension": model.dimension,
                    "score": score[participant, wave],
                }
            )
        )
    return SimulatedTrial(
        scores=pd.concat(frames, ignore_index=True),
        true_effects=truth,
        n_participants=n_participants,
        n_waves=n_waves,
        seed=seed,
    )


def answers_for_score(definition: dict, target: float, rng: np.random.Generator) -> dict[str, int]:
    """Item answers whose score, under ``definition``'s sum rule, is as close to ``target`` as the
    scale allows; the total is spread over the items at random."""
    items = definition["items"]
    low, high = definition["scale"]["min"], definition["scale"]["max"]
    (rule,) = definition["scores"]
    if rule["rule"] != "sum" or "items" in rule:
        raise ValueError(f"{definition['code']} is not scored as one sum of all its items.")
    multiplier = rule.get("multiplier", 1)
    total = int(np.clip(round(target / multiplier), low * len(items), high * len(items)))
    values = np.full(len(items), low)
    for _ in range(total - low * len(items)):
        open_items = np.flatnonzero(values < high)
        values[rng.choice(open_items)] += 1
    answers = {}
    for item, value in zip(items, values, strict=True):
        answers[item["code"]] = int(low + high - value) if item["reverse"] else int(value)
    return answers
