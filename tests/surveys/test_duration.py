"""The wave's time estimate (surveys.duration), against words counted by hand."""

from types import SimpleNamespace

import pytest

from surveys.duration import (
    ANSWER_SECONDS,
    READING_WORDS_PER_MINUTE,
    instrument_seconds,
    wave_minutes,
)
from surveys.registry import shipped_definitions

pytestmark = pytest.mark.unit

# WHO-5 in English, counted by hand: the instruction 22 words, the six answer labels read once
# 3 + 4 + 6 + 6 + 4 + 4 = 27, the five statements 8 + 6 + 6 + 7 + 11 = 38.
WHO5_WORDS = 22 + 27 + 38


def _wave(*codes: str) -> SimpleNamespace:
    instruments = [SimpleNamespace(definition=shipped_definitions()[code]) for code in codes]
    return SimpleNamespace(instruments=SimpleNamespace(all=lambda: instruments))


def test_an_instrument_takes_its_reading_time_and_an_answer_per_item():
    expected = WHO5_WORDS * 60 / READING_WORDS_PER_MINUTE + 5 * ANSWER_SECONDS
    assert instrument_seconds(shipped_definitions()["who5"], "en") == pytest.approx(expected)


def test_the_participant_s_language_version_is_the_one_counted():
    who5 = shipped_definitions()["who5"]
    # The German wording is longer; a language the instrument lacks reads the English one.
    assert instrument_seconds(who5, "de") > instrument_seconds(who5, "en")
    assert instrument_seconds(who5, "fr") == instrument_seconds(who5, "en")


def test_a_wave_is_whole_minutes_rounded_up_and_at_least_one():
    assert wave_minutes(_wave("who5")) == 1
    seconds = sum(instrument_seconds(shipped_definitions()[c], "en") for c in ("who5", "swls"))
    assert 60 < seconds < 120 and wave_minutes(_wave("who5", "swls")) == 2
    assert wave_minutes(_wave()) == 1
