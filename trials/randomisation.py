"""Concealed, reproducible allocation sequences (pure functions; the services store the results).

Permuted blocks: each stratum has its own endless sequence of blocks. A block's size is drawn from
the registered sizes and its order is a random permutation of the arms in the registered ratio.
Every draw is an HMAC-SHA256 of the trial's secret seed, the stratum and the block number, so the
sequence

- is concealed: without the seed nobody can predict the next allocation;
- is fixed at registration: the pre-registration stores ``sequence_commitment``, a SHA-256 over
  the seed and the settings, so the seed cannot be swapped later without the hash changing;
- is reproducible from the seed on any machine and any library version (no PRNG stream is relied
  on), so an auditor can re-derive every allocation from its stratum and position.

:func:`permuted_block_arm` finds a position's block by walking the stratum's blocks from the
first, which is what "the arm at position p" means. Allocation instead remembers where the current
block starts (a :class:`BlockCursor`, stored with the stratum) and walks on from there, so each
enrolment computes one block (two when it crosses into the next), however long the stratum is.

Salted hashing (the option GrowthBook and PlanOut use) maps a participant id to an arm directly.
"""

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trials.canonical import sha256_of


def _draw(seed: str, *parts: object) -> int:
    message = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hmac.new(seed.encode(), message, hashlib.sha256).digest()[:8], "big")


def stratum_key(attributes: Mapping[str, str], strata: Sequence[str]) -> str:
    """A stable name for the stratum of a participant with ``attributes``."""
    return "|".join(f"{factor}={attributes.get(factor) or '-'}" for factor in sorted(strata))


def permuted_block(
    seed: str, stratum: str, block: int, ratio: Mapping[str, int], block_sizes: Sequence[int]
) -> list[str]:
    """The arms of block number ``block`` of ``stratum``, in allocation order."""
    unit = sum(ratio.values())
    size = block_sizes[_draw(seed, stratum, block, "size") % len(block_sizes)]
    slots = [arm for arm in sorted(ratio) for _ in range(ratio[arm] * size // unit)]
    # Ordering by independent 64-bit keys is a uniformly random permutation.
    keyed = sorted((_draw(seed, stratum, block, "slot", i), arm) for i, arm in enumerate(slots))
    return [arm for _key, arm in keyed]


@dataclass(frozen=True)
class BlockCursor:
    """A block of a stratum's sequence: its number and the position of its first arm."""

    number: int = 0
    start: int = 0


def block_holding(
    seed: str,
    stratum: str,
    position: int,
    ratio: Mapping[str, int],
    block_sizes: Sequence[int],
    start: BlockCursor = BlockCursor(),
) -> tuple[BlockCursor, list[str]]:
    """The block holding ``position`` and its arms, walking forward from the block ``start``,
    which must begin at or before ``position`` (the first block always does)."""
    if position < start.start:
        raise ValueError("position must not come before the block the walk starts from.")
    cursor = start
    while True:
        arms = permuted_block(seed, stratum, cursor.number, ratio, block_sizes)
        if position < cursor.start + len(arms):
            return cursor, arms
        cursor = BlockCursor(cursor.number + 1, cursor.start + len(arms))


def block_layout(ratio: Mapping[str, int], block_sizes: Sequence[int]) -> str:
    """SHA-256 of what decides where blocks start besides the seed and the stratum: a cursor
    found under one layout means nothing under another (an amended plan walks again)."""
    return sha256_of({"ratio": dict(ratio), "block_sizes": list(block_sizes)})


def permuted_block_arm(
    seed: str, stratum: str, position: int, ratio: Mapping[str, int], block_sizes: Sequence[int]
) -> str:
    """The arm at ``position`` (0-based) of the stratum's sequence."""
    if position < 0:
        raise ValueError("position must be 0 or more.")
    cursor, arms = block_holding(seed, stratum, position, ratio, block_sizes)
    return arms[position - cursor.start]


def sequence_commitment(seed: str, settings: Mapping[str, object]) -> str:
    """SHA-256 committing to the seed and the randomisation settings (stored in the plan)."""
    return sha256_of({"seed": seed, "settings": dict(settings)})


def salted_hash_arm(seed: str, participant_id: str, arms: Sequence[str]) -> str:
    """Deterministic allocation: the same seed and participant always give the same arm."""
    digest = hashlib.sha256(f"{seed}:{participant_id}".encode()).digest()
    return sorted(arms)[int.from_bytes(digest[:8], "big") % len(arms)]
