"""The item answers streamed in chunks (analytics.item_rows) are the rows of
``trial_item_frame`` restricted to the model's items and waves, in the same order, and the
ordinal model's data built from the chunks equal those built from that frame."""

import numpy as np
import pandas as pd
import pytest

from analytics.item_rows import trial_item_chunks
from analytics.selectors import trial_item_frame
from stats.ordinal import ordinal_data_from_chunks, ordinal_data_from_frame
from surveys.models import Instrument, Response, Score

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant_trial(small_trial):
    """The small trial whose responses also answer the AI-assistant items (reverse-keyed ones
    among them, some left unanswered) and carry a score of that instrument."""
    assistant = Instrument.objects.get(code="ai_assistant")
    rng = np.random.default_rng(4)
    for response in Response.objects.filter(participant__trial=small_trial).order_by("id"):
        answers = {
            item.code: int(rng.integers(1, 6))
            for item in assistant.definition.items
            if rng.random() > 0.1
        }
        response.answers = {**response.answers, "ai_assistant": answers}
        response.save(update_fields=["answers"])
        Score.objects.create(
            response=response,
            instrument=assistant,
            code="ai_independence",
            dimension="autonomy",
            value=3.0,
        )
    return small_trial


@pytest.mark.parametrize("code", ["who5", "ai_assistant"])
def test_chunks_are_the_item_frame_s_rows_for_the_model(assistant_trial, code):
    instrument = Instrument.objects.get(code=code)
    definition = instrument.definition
    items = definition.item_codes[1:]  # a subset, as a score's items may be
    frame = trial_item_frame(assistant_trial, instrument)
    expected = frame[frame["item"].isin(items) & (frame["wave"] <= 1)].reset_index(drop=True)
    chunks = list(
        trial_item_chunks(assistant_trial, instrument, items=items, last_wave=1, chunk=37)
    )
    assert len(chunks) > 1 and all(len(c) <= 37 for c in chunks)
    actual = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(
        actual, expected.astype({"value": float, "wave": actual["wave"].dtype})
    )
    if code == "ai_assistant":
        # Reverse-keyed items are mirrored within 1–5, as keyed_values does.
        assert definition.item("rel_2").reverse and "rel_2" in set(actual["item"])

    categories = {c: definition.answer_range(definition.item(c)) for c in items}
    control = "a"
    whole = ordinal_data_from_frame(expected, control=control, categories=categories)
    streamed = ordinal_data_from_chunks(
        trial_item_chunks(assistant_trial, instrument, items=items, last_wave=1, chunk=37),
        control=control,
        categories=categories,
    )
    assert streamed.arm_names == whole.arm_names
    for name in ("participant", "arm", "wave", "item", "response", "categories"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name), name)
