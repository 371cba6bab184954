"""Permuted-block sequences: balance within every block, concealment, reproducibility."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from trials.randomisation import (
    BlockCursor,
    block_holding,
    block_layout,
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


def concatenated_blocks(seed, stratum, length, ratio, block_sizes) -> list[str]:
    """The first ``length`` arms of a stratum: its blocks laid end to end, which is what the
    sequence is."""
    sequence: list[str] = []
    block = 0
    while len(sequence) < length:
        sequence += permuted_block(seed, stratum, block, ratio, block_sizes)
        block += 1
    return sequence[:length]


def allocated_one_by_one(seed, stratum, length, ratio, block_sizes) -> list[str]:
    """The arms allocation gives ``length`` enrolments, carrying the cursor from one to the next
    as the stratum's row does."""
    cursor, arms = BlockCursor(), []
    for position in range(length):
        cursor, block = block_holding(seed, stratum, position, ratio, block_sizes, cursor)
        arms.append(block[position - cursor.start])
    return arms


@st.composite
def layouts(draw) -> tuple[dict[str, int], list[int]]:
    """A ratio over two to four arms and one to three block sizes, each a multiple of the
    ratio's sum (as freezing requires)."""
    weights = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    ratio = {arm: weight for arm, weight in zip("abcd", weights, strict=False)}
    multiples = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return ratio, [multiple * sum(weights) for multiple in multiples]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.text(min_size=1, max_size=12),
    strata=st.lists(st.sampled_from(["community=-", "community=north", "locale=de"]), min_size=1),
    layout=layouts(),
)
def test_allocating_one_by_one_gives_the_sequence_of_the_blocks(seed, strata, layout):
    ratio, sizes = layout
    for stratum in dict.fromkeys(strata):
        expected = concatenated_blocks(seed, stratum, 150, ratio, sizes)
        assert allocated_one_by_one(seed, stratum, 150, ratio, sizes) == expected
        for position in range(0, 150, 7):
            assert permuted_block_arm(seed, stratum, position, ratio, sizes) == expected[position]


def test_one_to_two_allocation_with_mixed_blocks_matches_the_reference_far_along():
    ratio, sizes = {"a": 1, "b": 2}, [3, 6, 9]
    expected = concatenated_blocks("seed", "s", 2000, ratio, sizes)
    assert allocated_one_by_one("seed", "s", 2000, ratio, sizes) == expected
    for position in (0, 1, 2, 999, 1000, 1998, 1999):
        assert permuted_block_arm("seed", "s", position, ratio, sizes) == expected[position]
    assert expected.count("b") == pytest.approx(2 * expected.count("a"), abs=9)


def test_a_walk_may_start_from_any_block_at_or_before_the_position():
    ratio, sizes = {"a": 1, "b": 1}, [2, 4, 6]
    found, arms = block_holding("seed", "s", 500, ratio, sizes)
    assert found.start <= 500 < found.start + len(arms) and found.number > 0
    earlier, _arms = block_holding("seed", "s", 123, ratio, sizes)
    assert block_holding("seed", "s", 500, ratio, sizes, earlier) == (found, arms)
    assert block_holding("seed", "s", 500, ratio, sizes, found) == (found, arms)
    with pytest.raises(ValueError, match="before the block"):
        block_holding("seed", "s", found.start - 1, ratio, sizes, found)


def test_the_block_layout_names_the_ratio_and_the_sizes_in_their_order():
    base = block_layout({"a": 1, "b": 2}, [3, 6])
    assert base == block_layout({"b": 2, "a": 1}, [3, 6])
    assert base != block_layout({"a": 1, "b": 2}, [6, 3])  # the size draw indexes the list
    assert base != block_layout({"a": 2, "b": 1}, [3, 6])


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
