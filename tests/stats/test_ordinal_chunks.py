"""Ordinal data read in chunks (``ordinal_data_from_chunks``) equal those of the whole frame
(``ordinal_data_from_frame``), wherever the chunk boundaries fall, and bad input raises the same
errors."""

import numpy as np
import pandas as pd
import pytest

from stats.ordinal import ordinal_data_from_chunks, ordinal_data_from_frame

pytestmark = pytest.mark.unit

CATEGORIES = {"a": (0, 4), "unused": (1, 3), "b": (1, 7), "c": (0, 1)}


def _frame(rng: np.random.Generator, participants: int = 60) -> pd.DataFrame:
    rows = []
    for number in rng.permutation(participants):
        arm = ["control", "coach", "peer"][number % 3]
        for wave in range(int(rng.integers(1, 4))):
            for item, (low, high) in CATEGORIES.items():
                if item == "unused" or rng.random() < 0.1:
                    continue
                rows.append((f"p{number}", arm, wave, item, int(rng.integers(low, high + 1))))
    return pd.DataFrame.from_records(rows, columns=["participant", "arm", "wave", "item", "value"])


def _chunks(frame: pd.DataFrame, size: int):
    return (frame.iloc[start : start + size] for start in range(0, len(frame), size))


@pytest.mark.parametrize("size", [1, 7, 50, 10_000])
def test_chunked_data_equal_the_whole_frame_s(size):
    frame = _frame(np.random.default_rng(size))
    expected = ordinal_data_from_frame(frame, control="control", categories=CATEGORIES)
    actual = ordinal_data_from_chunks(
        _chunks(frame, size), control="control", categories=CATEGORIES
    )
    assert actual.arm_names == expected.arm_names == ("control", "coach", "peer")
    for name in ("participant", "arm", "wave", "item", "response", "categories"):
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name), name)
    assert actual.categories.tolist() == [5, 7, 2]  # the unanswered item is dropped


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.assign(value=f.value.where(f.index != 0, 9)), "outside"),
        (lambda f: f.assign(value=f.value.astype(float).where(f.index != 0, 2.5)), "whole"),
        (lambda f: f.assign(item="other"), "No response scale"),
        (lambda f: f.assign(arm=["a", "b", "control", "control"]), "more than one arm"),
        (lambda f: f.assign(arm="coach"), "control arm"),
        (lambda f: f.assign(arm="control"), "two arms"),
        (lambda f: f.drop(columns="wave"), "wave"),
        (lambda f: f.iloc[:0], "no answers"),
    ],
)
def test_chunked_bad_input_raises_the_frame_s_error(change, message):
    frame = change(
        pd.DataFrame(
            {
                "participant": [1, 1, 2, 2],
                "arm": ["coach", "coach", "control", "control"],
                "wave": [0, 1, 0, 1],
                "item": ["q", "q", "q", "q"],
                "value": [1, 2, 3, 4],
            }
        )
    )
    with pytest.raises(ValueError, match=message) as whole:
        ordinal_data_from_frame(frame, control="control", categories={"q": (1, 5)})
    # One row per chunk: a participant's two arms are in different chunks.
    with pytest.raises(ValueError, match=message) as chunked:
        ordinal_data_from_chunks(_chunks(frame, 1), control="control", categories={"q": (1, 5)})
    assert str(chunked.value) == str(whole.value)
