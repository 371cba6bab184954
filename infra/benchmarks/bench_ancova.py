"""ANCOVA on a large final wave, against solving the normal equations with NumPy.

The baseline is the least any implementation must do (one 3 × 3 solve); the ratio shows what
statsmodels' richer fit costs at the size of a large trial.
"""

import numpy as np

from analytics.simulate import simulate_scores
from infra.bench import Measurement, best_of
from stats.ancova import ancova


def run() -> list[Measurement]:
    simulated = simulate_scores(n_participants=100_000, n_waves=2, effect=0.2, seed=1)
    frame = simulated.scores[simulated.scores.dimension == "mental_wellbeing"]
    wide = frame.pivot_table(index=["participant", "arm"], columns="wave", values="score")
    wide = wide.reset_index().dropna()
    y, x, z = (wide[1].to_numpy(), wide[0].to_numpy(), wide["arm"].to_numpy().astype(float))

    def normal_equations() -> None:
        design = np.column_stack([np.ones_like(z), z, x])
        np.linalg.solve(design.T @ design, design.T @ y)

    return [
        Measurement(
            name=f"ancova, {len(y):,} complete cases",
            seconds=best_of(lambda: ancova(y, x, z)),
            baseline_name="numpy normal equations",
            baseline_seconds=best_of(normal_equations),
        )
    ]
