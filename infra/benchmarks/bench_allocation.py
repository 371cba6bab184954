"""Permuted-block allocation of N participants in one stratum: walking on from the stored block,
as ``trials.services`` allocates, against finding each position's block from the first block, as
``trials.randomisation.permuted_block_arm`` defines the arm at a position (and as every enrolment
did before strata stored their block).

The baseline grows with the square of N and the measured path with N, so the ratio grows with N.
Both give the same arms, which the benchmark checks before it reports.

    make bench BENCH_ARGS=allocation
"""

import time

from infra.bench import Measurement, best_of
from trials.randomisation import BlockCursor, block_holding, permuted_block_arm

SEED = "b" * 64
STRATUM = "community=-"
RATIO = {"a": 1, "b": 1}
BLOCK_SIZES = [4, 6]  # the plan's default
SIZES = (500, 2000)


def _from_the_first_block(n: int) -> list[str]:
    return [permuted_block_arm(SEED, STRATUM, p, RATIO, BLOCK_SIZES) for p in range(n)]


def _walking_on(n: int) -> list[str]:
    cursor, arms = BlockCursor(), []
    for position in range(n):
        cursor, block = block_holding(SEED, STRATUM, position, RATIO, BLOCK_SIZES, cursor)
        arms.append(block[position - cursor.start])
    return arms


def run() -> list[Measurement]:
    measurements = []
    for n in SIZES:
        # The baseline once: it is the slow side, and its arms are the reference.
        start = time.perf_counter()
        expected = _from_the_first_block(n)
        baseline = time.perf_counter() - start
        if _walking_on(n) != expected:
            raise RuntimeError("The two allocation paths disagree.")
        seconds = best_of(lambda n=n: _walking_on(n))
        measurements.append(
            Measurement(
                name=f"allocation, {n:,} in one stratum",
                seconds=seconds,
                baseline_name="from the first block",
                baseline_seconds=baseline,
                note=f"blocks of {BLOCK_SIZES}, ratio 1:1",
                details={"participants": n, "per_enrolment_seconds": seconds / n},
            )
        )
    return measurements
