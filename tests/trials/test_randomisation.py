"""Permuted-block sequences: balance within every block, concealment, reproducibility."""

from collections import Counter

import pytest
from scipy import stats

from trials.randomisation import (
    permuted_block,
    permuted_block_arm,
    salted_hash_arm,
    sequence_commitment,
    stratum_key,
)

pytestmark = pytest.mark.unit
RATIO = {"a": 1, "b": 1}


def test_every_block_holds_the_arms_in_the_registered_ratio():
    for block in range(500):
        arms = permuted_block("seed", "s", block, {"a": 1, "b": 2}, [3, 6])
        assert len(arms) in (3, 6) and arms.count("b") == 2 * arms.count("a")


def test_sequence_is_a_pure_function_of_seed_stratum_and_position():
    first = [permuted_block_arm("seed", "s", i, RATIO, [4, 6]) for i in range(200)]
    again = [permuted_block_arm("seed", "s", i, RATIO, [4, 6]) for i in range(200)]
    other_seed = [permuted_block_arm("other", "s", i, RATIO, [4, 6]) for i in range(200)]
    other_stratum = [permuted_block_arm("seed", "t", i, RATIO, [4, 6]) for i in range(200)]
    assert first == again
    assert first != other_seed and first != other_stratum


def test_imbalance_never_exceeds_half_the_largest_block():
    sequence = [permuted_block_arm("seed", "s", i, RATIO, [4, 6]) for i in range(1000)]
    running = 0
    for arm in sequence:
        running += 1 if arm == "a" else -1
        assert abs(running) <= 3


def test_block_orders_are_uniformly_random():
    # All C(4,2) = 6 orders of a size-4 block should be equally likely: χ² goodness of fit.
    orders = Counter(tuple(permuted_block(f"seed-{n}", "s", 0, RATIO, [4])) for n in range(6000))
    assert len(orders) == 6
    assert stats.chisquare(list(orders.values())).pvalue > 0.001


def test_block_sizes_are_drawn_evenly():
    sizes = Counter(len(permuted_block("seed", "s", b, RATIO, [2, 4, 6])) for b in range(3000))
    assert stats.chisquare([sizes[2], sizes[4], sizes[6]]).pvalue > 0.001


def test_commitment_changes_with_the_seed_or_any_setting():
    settings = {"method": "permuted_blocks", "strata": ["community"], "block_sizes": [4, 6]}
    base = sequence_commitment("seed", settings)
    assert base == sequence_commitment("seed", dict(settings))
    assert base != sequence_commitment("seed2", settings)
    assert base != sequence_commitment("seed", settings | {"block_sizes": [4]})


def test_stratum_key_is_stable_and_names_missing_factors():
    assert stratum_key({"locale": "de", "community": "x"}, ["locale", "community"]) == (
        "community=x|locale=de"
    )
    assert stratum_key({}, ["community"]) == "community=-"


def test_salted_hash_is_deterministic_and_roughly_balanced():
    counts = Counter(salted_hash_arm("salt", f"id-{n}", ["b", "a"]) for n in range(2000))
    assert salted_hash_arm("salt", "id-1", ["a", "b"]) == salted_hash_arm(
        "salt", "id-1", ["b", "a"]
    )
    assert stats.binomtest(counts["a"], 2000).pvalue > 0.001
