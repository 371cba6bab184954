"""Simulated growth panels with intermittent missing waves and drop-out, for the growth-model
benchmark and for the lme4 golden numbers in tests/stats (``infra/benchmarks/lme4_golden.R``
fits the same data, written to CSV by ``python -m infra.benchmarks.growth_panel``).

Written with numpy alone and with a fixed order of draws, so one seed gives the same panel in
every process, and independently of the platform's own simulator (``analytics.simulate``): it is
the data the estimates are checked on, not the code under test.

    python -m infra.benchmarks.growth_panel PARTICIPANTS WAVES ARMS SEED OUT.csv
"""

import sys

import numpy as np
import pandas as pd

# Baseline level 50, growth 0.3 a wave in the control arm; every other arm k grows 0.1·k faster
# and starts 0.5·k higher. Participant intercepts SD 4, slopes SD 0.6, correlation −0.3;
# residual SD 2.
LEVEL, GROWTH = 50.0, 0.3
INTERCEPT_SD, SLOPE_SD, CORRELATION, RESIDUAL_SD = 4.0, 0.6, -0.3, 2.0
# After baseline a participant skips each wave with this probability and comes back, and
# leaves the study for good after each wave with the drop-out probability.
SKIP, DROPOUT = 0.15, 0.04


def arm_names(arms: int) -> tuple[str, ...]:
    return ("control", *(f"arm{k}" for k in range(1, arms)))


def growth_panel(
    participants: int, waves: int, arms: int, seed: int, *, skip: float = SKIP
) -> pd.DataFrame:
    """Long data ``participant, arm, wave, score``: one row per wave attended (wave 0 always)."""
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, arms, participants)
    covariance = np.array(
        [
            [INTERCEPT_SD**2, CORRELATION * INTERCEPT_SD * SLOPE_SD],
            [CORRELATION * INTERCEPT_SD * SLOPE_SD, SLOPE_SD**2],
        ]
    )
    effects = rng.standard_normal((participants, 2)) @ np.linalg.cholesky(covariance).T
    t = np.arange(waves, dtype=float)
    mean = (LEVEL + 0.5 * arm + effects[:, 0])[:, None] + (GROWTH + 0.1 * arm + effects[:, 1])[
        :, None
    ] * t
    score = mean + RESIDUAL_SD * rng.standard_normal((participants, waves))
    skipped = rng.random((participants, waves)) < skip
    skipped[:, 0] = False
    left = np.cumsum(rng.random((participants, waves)) < DROPOUT, axis=1) > 0
    left = np.concatenate([np.zeros((participants, 1), bool), left[:, :-1]], axis=1)
    person, wave = np.nonzero(~skipped & ~left)
    names = np.array(arm_names(arms))
    return pd.DataFrame(
        {
            "participant": person,
            "arm": names[arm[person]],
            "wave": wave,
            "score": score[person, wave],
        }
    )


def write_csv(frame: pd.DataFrame, path: str) -> None:
    """Scores with 17 significant digits: R reads back exactly the doubles numpy drew."""
    frame.to_csv(path, index=False, float_format="%.17g")


if __name__ == "__main__":
    participants, waves, arms, seed, out = sys.argv[1:]
    write_csv(growth_panel(int(participants), int(waves), int(arms), int(seed)), out)
