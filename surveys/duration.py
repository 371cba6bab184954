"""How long a wave takes: the one estimate the survey's first page and the invitation e-mail
give (docs/architecture.md, "The flow").

A participant reads each questionnaire's instruction and its answer words once, then reads each
question and picks an answer. Reading time is the words at the adult silent reading rate for
non-fiction, 238 words a minute (Brysbaert, M. (2019). How many words do we read per minute? A
review and meta-analysis of reading rate. *Journal of Memory and Language*, 109, 104047).
Picking an answer on a shared scale takes ``ANSWER_SECONDS`` beyond reading: Pew Research
Center's question counting rules (Pew Research Center Decoded, 2022, "How we keep our online
surveys from running too long") time an ordinary stand-alone question at about ten seconds,
of which reading its question and answer words (a couple of dozen) takes about six at that rate.

The words are counted in the language version the participant reads
(``InstrumentDefinition.language_version``), so a wave in a language with longer wording is
estimated as longer.
"""

import math
import re

from surveys.instrument import InstrumentDefinition
from surveys.models import Wave

READING_WORDS_PER_MINUTE = 238
ANSWER_SECONDS = 4.0

_WORD = re.compile(r"\w+")


def _words(text: str | None) -> int:
    return len(_WORD.findall(text or ""))


def _reading_seconds(words: int) -> float:
    return words * 60 / READING_WORDS_PER_MINUTE


def instrument_seconds(definition: InstrumentDefinition, language: str) -> float:
    """Seconds to answer every item of one questionnaire in ``language`` (or the version shown
    instead): its instruction and shared answer words read once, then each question read and
    answered."""
    version = definition.language_version(language)
    shared = {
        words for item in definition.items for _, words in definition.point_labels(item, version)
    }
    seconds = _reading_seconds(_words(definition.stem[version]) + sum(map(_words, shared)))
    for item in definition.items:
        seconds += _reading_seconds(_words(item.text[version])) + ANSWER_SECONDS
    return seconds


def wave_minutes(wave: Wave, language: str = "en") -> int:
    """About how many whole minutes ``wave`` takes a participant who reads ``language``; at
    least one."""
    seconds = sum(
        instrument_seconds(instrument.definition, language) for instrument in wave.instruments.all()
    )
    return max(1, math.ceil(seconds / 60))
