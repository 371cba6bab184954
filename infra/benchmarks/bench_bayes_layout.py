"""The Bayesian growth fit when participants skip waves and come back: CPU seconds and peak
memory of a cold and a warm fit.

The growth benchmark's trial (``bench_growth``: 12 waves, 3 dimensions, 2 arms, 20% drop-out at
random given the last observed score, unclipped scores), with each participant also skipping
each wave after baseline with probability 0.15 and coming back: many more wave patterns than
monotone drop-out gives (the groups ``stats.bayes_growth.group_totals`` pools participants
into). Each size runs in a fresh process with an empty persistent compilation cache:

- *cold*: the first fit, from the long frame (statistics, tracing, compiling, NUTS, extra draws
  until the gates pass);
- *warm*: a second fit in the same process, of another trial of the same size (other seed),
  with the number of times JAX traced or compiled anything during it (0 when the compiled
  sampler is reused).

Reported in CPU seconds of the process (``resource.getrusage``: user + system, all threads),
because the machines these run on are shared, and peak resident memory (``ru_maxrss``) after
each fit.

    make bench BENCH_ARGS=bayes_layout
    python -m infra.benchmarks.bench_bayes_layout 10000   # one size, printed as JSON
    python -m infra.benchmarks.bench_bayes_layout 10000 --monotone   # nobody skips a wave

``--monotone`` runs the same trials without the skipped waves (drop-out only), the layout with
the fewest groups: with the likelihood on group totals the two should cost about the same.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd

# The deployment's JAX environment, as a worker has it (a CPU device per chain), read when JAX
# is first imported.
import config.settings.base  # noqa: F401
from analytics.simulate import DIMENSIONS, simulate_scores
from infra.bench import Measurement

SIZES = (1_000, 10_000)
WAVES = 12
DROPOUT = 0.2
EFFECT = 0.2
SKIP = 0.15
CAP_S = 3600


def trial(participants: int, seed: int, *, skip: float = SKIP) -> pd.DataFrame:
    simulated = simulate_scores(
        n_participants=participants,
        n_waves=WAVES,
        effect=EFFECT,
        seed=seed,
        dropout=DROPOUT,
        missing="mar",
        dimensions=DIMENSIONS,
        clip=False,
    )
    frame = simulated.scores.assign(arm=simulated.scores["arm"].map({0: "control", 1: "treatment"}))
    skipped = np.random.default_rng(seed).random((participants, WAVES)) < skip
    skipped[:, 0] = False
    return frame[~skipped[frame["participant"].to_numpy(), frame["wave"].to_numpy()]]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fit(participants: int, seed: int, skip: float) -> dict:
    import jax

    from stats.bayes_growth import growth_data_from_frame, growth_fit

    compilations: list[str] = []

    def heard(event: str, duration: float, **_: object) -> None:
        if event.startswith("/jax/core/compile/") and event.endswith(
            ("jaxpr_trace_duration", "backend_compile_duration")
        ):
            compilations.append(event)

    frame = trial(participants, seed, skip=skip)
    jax.monitoring.register_event_duration_secs_listener(heard)
    cpu = _cpu_seconds()
    fit = growth_fit(growth_data_from_frame(frame, control="control"), seed=seed)
    cpu = _cpu_seconds() - cpu
    jax.monitoring.unregister_event_duration_listener(heard)
    return {
        "cpu_seconds": round(cpu, 2),
        "peak_mb": round(_peak_mb()),
        "groups": fit.groups,
        "compilations": len(compilations),
        "gates_passed": fit.gates.passed,
        "draws_per_chain": fit.gates.draws_per_chain,
    }


def measure(participants: int, *, skip: float = SKIP) -> dict:
    """Cold then warm fit in this process, which must not have used JAX yet."""
    import jax

    cache = tempfile.mkdtemp(prefix="bayes-layout-jax-")
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", cache)
    return {
        "participants": participants,
        "skip": skip,
        "cold": _fit(participants, seed=1, skip=skip),
        "warm": _fit(participants, seed=2, skip=skip),
    }


def run() -> list[Measurement]:
    measurements = []
    for participants in SIZES:
        result = subprocess.run(
            [sys.executable, "-m", "infra.benchmarks.bench_bayes_layout", str(participants)],
            capture_output=True,
            text=True,
            timeout=CAP_S,
            check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        cold, warm = row["cold"], row["warm"]
        print(json.dumps(row))
        measurements.append(
            Measurement(
                name=f"bayes_growth {participants // 1000}k×{WAVES}×3 skips (warm, CPU s)",
                seconds=warm["cpu_seconds"],
                baseline_name="cold fit (CPU s)",
                baseline_seconds=cold["cpu_seconds"],
                note=(
                    f"{warm['groups']} groups, peak {warm['peak_mb']} MB, "
                    f"{warm['compilations']} compilations when warm"
                ),
                details=row,
            )
        )
    return measurements


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), skip=0.0 if "--monotone" in sys.argv else SKIP)))
