"""The instrument definition: the one place that knows what a questionnaire's JSON says.

A definition names its items, their keying, the response scale, how scores are computed, which
flourishing dimension each measures and in which direction it is better, the items whose answers
call for help at once (safety items), its language versions, recall window, licence and
citation.
Shipped instruments are files in ``surveys/instruments/``; licensed ones arrive in a *pack*
(:class:`InstrumentPack`) that a deploying organisation writes (docs/instruments.md). Every
reader gets an :class:`InstrumentDefinition` (``Instrument.definition`` is one) and uses its
attributes; nothing reads the JSON by string keys.

The published JSON Schema (docs/instrument-schema.json) is generated from these models::

    python -m surveys.instrument --schema > docs/instrument-schema.json
    python -m surveys.instrument pack.json      # check a pack before loading it
"""

import argparse
import json
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trials import documents
from trials.dimensions import Dimension
from trials.documents import Document, error_messages

LICENCE_CLASSES = {
    "public-domain": "Public domain; cite the source.",
    "free-with-attribution": "Copyrighted; free to use and redistribute with credit.",
    "CC0-1.0": "Dedicated to the public domain (CC0).",
    "CC-BY-NC-4.0": "Non-commercial use only; never shipped, load as a pack.",
    "licence-required": "Needs the owner's licence; load as a pack.",
}
# Only these may sit in the repository; the rest come from a deploying organisation's pack.
REDISTRIBUTABLE_LICENCES = {"public-domain", "free-with-attribution", "CC0-1.0"}

Licence = Literal[tuple(LICENCE_CLASSES)]  # type: ignore[valid-type]
Number = int | float
# JSON has no tuples: a pair is a two-element array (the container alone is not strict).
TextPair = Annotated[tuple[str, str], Strict(False)]
NumberPair = Annotated[tuple[Number, Number], Strict(False)]
# Language code (e.g. "en", "de") → text in that language.
Texts = dict[str, str]


class DefinitionError(ValueError):
    """A definition or pack that cannot be used, with one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


class LanguageVersion(Document):
    """Where one language version of the wording comes from."""

    source: str = Field(description="Its origin: the published version or the translation.")
    verified: bool = Field(
        default=True,
        description="False while a translation is not yet checked against a published or "
        "back-translated version.",
    )


class Scale(Document):
    """The response scale every item shares: whole numbers from min to max, worded by labels
    (every point) or anchors (the two ends; the points between are shown as numbers)."""

    min: int = Field(description="The lowest answer.")
    max: int = Field(description="The highest answer; at least min + 1.")
    labels: dict[str, list[str]] | None = Field(
        default=None, description="Language → one label per point, lowest first."
    )
    anchors: dict[str, TextPair] | None = Field(
        default=None, description="Language → [words at the lowest point, at the highest]."
    )

    @model_validator(mode="after")
    def _worded_once(self) -> Self:
        if self.max <= self.min:
            raise ValueError(f"needs at least two points (min {self.min}, max {self.max})")
        if (self.labels is None) == (self.anchors is None):
            raise ValueError("give labels (one per point) or anchors (the two ends), not both")
        points = len(self.points)
        for language, labels in (self.labels or {}).items():
            if len(labels) != points:
                raise ValueError(
                    f"labels ({language}) need one label per point: {points}, not {len(labels)}"
                )
        return self

    @property
    def points(self) -> range:
        return range(self.min, self.max + 1)


# How an item is answered (docs/instruments.md, "Item types"). Every type's answer is a whole
# number, so answers, exports and the quality indices keep one shape.
ITEM_TYPES = {
    "likert": "One of the scale's points, each a labelled choice.",
    "slider": "A point of the scale shown as a row of numbers with its end words (0–10).",
    "number": "A whole number from the item's min to its max, typed.",
    "yes_no": "Yes (1) or no (0).",
}
ItemType = Literal[tuple(ITEM_TYPES)]  # type: ignore[valid-type]
YES, NO = 1, 0


class ShowIf(Document):
    """The condition under which an item is asked: an earlier item's answer equals a value or
    lies at or above (``at_least``) or at or below (``at_most``) one. When it does not hold the
    item is not asked and an answer to it is discarded (surveys.scoring.applicable_answers)."""

    item: str = Field(min_length=1, description="The code of an earlier item.")
    equals: int | Literal["yes", "no"] | None = Field(
        default=None, description='The answer that shows the item ("yes"/"no" for yes/no items).'
    )
    at_least: int | None = Field(default=None, description="The lowest answer that shows it.")
    at_most: int | None = Field(default=None, description="The highest answer that shows it.")

    @model_validator(mode="after")
    def _one_condition(self) -> Self:
        given = [self.equals, self.at_least, self.at_most]
        if sum(condition is not None for condition in given) != 1:
            raise ValueError("show_if needs exactly one of equals, at_least, at_most")
        return self

    @property
    def wanted(self) -> int | None:
        """``equals`` as the answer it means (yes/no as 1/0)."""
        return {"yes": YES, "no": NO}.get(self.equals, self.equals)  # type: ignore[arg-type]

    def holds(self, answer: object) -> bool:
        """Whether ``answer`` (the earlier item's, None when unanswered) shows the item."""
        if not isinstance(answer, int) or isinstance(answer, bool):
            return False
        if self.equals is not None:
            return answer == self.wanted
        if self.at_least is not None:
            return answer >= self.at_least
        return answer <= self.at_most  # type: ignore[operator]


class Item(Document):
    """One question."""

    code: str = Field(min_length=1, description="Unique within the instrument.")
    type: ItemType = Field(
        default="likert",
        description=" ".join(f"{code}: {text}" for code, text in ITEM_TYPES.items()),
    )
    reverse: bool = Field(description="True when agreeing more means less of what is measured.")
    text: Texts = Field(description="Language → the question.")
    anchors: dict[str, TextPair] | None = Field(
        default=None,
        description="Language → this item's own end words, on a scale worded by anchors.",
    )
    min: int | None = Field(default=None, description="A number item's lowest answer.")
    max: int | None = Field(default=None, description="A number item's highest answer.")
    show_if: ShowIf | None = Field(
        default=None, description="Asked only when an earlier item's answer meets this."
    )

    @model_validator(mode="after")
    def _bounds_for_numbers_only(self) -> Self:
        bounded = self.min is not None or self.max is not None
        if self.type == "number":
            if self.min is None or self.max is None:
                raise ValueError(f"number item {self.code} needs min and max")
            if self.max <= self.min:
                raise ValueError(f"number item {self.code}: max must be above min")
        elif bounded:
            raise ValueError(f"item {self.code}: only a number item has min and max")
        if self.anchors is not None and self.type in ("number", "yes_no"):
            raise ValueError(f"item {self.code}: a {self.type} item has no anchors")
        return self


class ScoreRule(Document):
    """How one score is computed from the items, and the flourishing dimension it measures."""

    code: str = Field(min_length=1, description="Unique within the instrument.")
    dimension: Dimension = Field(description="The flourishing dimension the score measures.")
    rule: Literal["sum", "mean", "value"] = Field(
        description="sum: a sum with gaps is prorated (mean × number of items) to keep the "
        "published range; mean: the mean of the answered items; value: the one item's answer "
        "(items must name exactly one)."
    )
    items: list[str] | None = Field(
        default=None, min_length=1, description="The scored item codes; all items when absent."
    )
    multiplier: Number = Field(default=1, gt=0, description="Applied last (WHO-5: 4).")
    min_answered: int | None = Field(
        default=None,
        ge=1,
        description="Answered items a score needs; all of its items when absent.",
    )
    range: NumberPair = Field(description="[lowest, highest] possible score.")
    higher_is_better: bool = Field(
        default=True,
        description="False for a symptom score (PHQ-9, GAD-7), where a higher score is worse: "
        "reliable deterioration is then a rise (analytics.safety_checks).",
    )

    @model_validator(mode="after")
    def _value_of_one_item(self) -> Self:
        if self.rule == "value" and (self.items is None or len(self.items) != 1):
            raise ValueError(f"score {self.code}: the value rule names exactly one item")
        return self


class SafetyItem(Document):
    """An item whose answer calls for help at once (PHQ-9's item 9): answering it with one of
    ``answers`` shows the participant the trial's support page and alerts the coordinators
    (surveys.services.response_submit, safety.flags)."""

    item: str = Field(min_length=1, description="The item's code.")
    answers: list[int] = Field(
        min_length=1, description="The answers (scale points, before reverse keying) that trigger."
    )


class InstrumentDefinition(Document):
    """A questionnaire: shipped with Flourish or loaded from a pack.

    Every text (stem, items, labels, anchors) exists in every language listed in languages.
    """

    code: str = Field(
        pattern=r"^[A-Za-z0-9_]+$",
        max_length=50,
        description="Letters, digits and underscores; names the instrument everywhere.",
    )
    name: str = Field(min_length=1, max_length=200)
    version: str = Field(max_length=50, description="The published version, e.g. its year.")
    citation: str = Field(description="The reference to cite.")
    licence: Licence = Field(
        description=" ".join(f"{code}: {text}" for code, text in LICENCE_CLASSES.items())
    )
    licence_note: str = Field(default="", description="The owner's terms in their words.")
    validated: bool = Field(description="False for items still being validated.")
    recall_window_days: int = Field(
        ge=0,
        description="The period the questions ask about, in days (0: now). A wave schedule "
        "never asks the instrument again sooner.",
    )
    languages: dict[str, LanguageVersion] = Field(
        min_length=1, description="Language code (e.g. en, de) → its version's origin."
    )
    scale: Scale
    stem: Texts = Field(description="Language → the instruction above the items.")
    items: list[Item] = Field(min_length=1)
    scores: list[ScoreRule] = Field(min_length=1)
    safety_items: list[SafetyItem] = Field(
        default=[],
        description="Items whose answers call for help at once: the participant sees the "
        "trial's support page and the coordinators are alerted.",
    )

    # Cross-field checks run after the fields they read (``info.data`` holds the ones before).
    @field_validator("scale")
    @classmethod
    def _scale_in_every_language(cls, scale: Scale, info: ValidationInfo) -> Scale:
        languages = info.data.get("languages", {})
        missing = _missing("labels", scale.labels, languages) + _missing(
            "anchors", scale.anchors, languages
        )
        if missing:
            raise ValueError("; ".join(missing))
        return scale

    @field_validator("stem")
    @classmethod
    def _stem_in_every_language(cls, stem: Texts, info: ValidationInfo) -> Texts:
        missing = _missing("the stem", stem, info.data.get("languages", {}))
        if missing:
            raise ValueError("; ".join(missing))
        return stem

    @field_validator("items")
    @classmethod
    def _items_unique_and_worded(cls, items: list[Item], info: ValidationInfo) -> list[Item]:
        languages = info.data.get("languages", {})
        problems = _duplicates("item", (item.code for item in items))
        scale = info.data.get("scale")
        earlier: dict[str, Item] = {}
        for item in items:
            problems += _missing(f"item {item.code}", item.text, languages)
            problems += _missing(f"item {item.code} anchors", item.anchors, languages)
            if item.anchors is not None and scale is not None and scale.anchors is None:
                problems.append(f"item {item.code} has anchors but the scale is worded by labels")
            if item.show_if is not None:
                problems += _show_if_problems(item.code, item.show_if, earlier)
            earlier[item.code] = item
        if problems:
            raise ValueError("; ".join(problems))
        return items

    @field_validator("scores")
    @classmethod
    def _scores_name_known_items(
        cls, scores: list[ScoreRule], info: ValidationInfo
    ) -> list[ScoreRule]:
        problems = _duplicates("score", (score.code for score in scores))
        if "items" in info.data:
            codes = [item.code for item in info.data["items"]]
            for score in scores:
                scored = score.items or codes
                unknown = sorted(set(scored) - set(codes))
                if unknown:
                    problems.append(
                        f"score {score.code} names unknown items {', '.join(unknown)} "
                        f"(the items are {', '.join(codes)})"
                    )
                if (score.min_answered or 0) > len(scored):
                    problems.append(
                        f"score {score.code}: min_answered must be between 1 and {len(scored)}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return scores

    @field_validator("safety_items")
    @classmethod
    def _safety_items_name_known_items_and_points(
        cls, safety_items: list[SafetyItem], info: ValidationInfo
    ) -> list[SafetyItem]:
        problems = _duplicates("safety item", (safety.item for safety in safety_items))
        codes = [item.code for item in info.data.get("items", [])]
        scale = info.data.get("scale")
        items = {item.code: item for item in info.data.get("items", [])}
        for safety in safety_items:
            if "items" in info.data and safety.item not in codes:
                problems.append(
                    f"safety item {safety.item} is not an item (the items are {', '.join(codes)})"
                )
            if scale is None or safety.item not in items:
                continue
            low, high = answer_range(items[safety.item], scale)
            outside = sorted(answer for answer in safety.answers if not low <= answer <= high)
            if outside:
                problems.append(
                    f"safety item {safety.item}: answers {', '.join(map(str, outside))} are not "
                    f"on the scale ({low} to {high})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return safety_items

    @classmethod
    def from_json(cls, document: object) -> Self:
        """A definition an author wrote; raises :class:`DefinitionError` naming each problem."""
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            raise DefinitionError(error_messages(error)) from error

    @classmethod
    def from_stored(cls, document: object) -> Self:
        """A definition read back from the database. Rows stored before this model refused
        unknown keys may carry some; they are ignored, so a running trial keeps its instruments."""
        return cls.model_validate(document, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The JSON object as its author wrote it (defaults left out), as stored."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def item_codes(self) -> list[str]:
        return [item.code for item in self.items]

    def score(self, code: str) -> ScoreRule:
        for score in self.scores:
            if score.code == code:
                return score
        known = ", ".join(score.code for score in self.scores)
        raise KeyError(f"{self.code} has no score {code} (its scores: {known}).")

    def safety_answers(self, answers: Mapping[str, int]) -> dict[str, int]:
        """Item code → answer for every safety item that ``answers`` trigger."""
        return {
            safety.item: answers[safety.item]
            for safety in self.safety_items
            if answers.get(safety.item) in safety.answers
        }

    def item(self, code: str) -> Item:
        for item in self.items:
            if item.code == code:
                return item
        raise KeyError(f"{self.code} has no item {code}.")

    def answer_range(self, item: Item) -> tuple[int, int]:
        """The lowest and highest answer ``item`` takes."""
        return answer_range(item, self.scale)

    def shown_items(self, answers: Mapping[str, object]) -> list[Item]:
        """The items asked given ``answers``: those without a condition, and those whose
        condition the earlier item's answer meets (an item not asked counts as unanswered, so
        a condition on it does not hold either)."""
        shown: list[Item] = []
        asked: set[str] = set()
        for item in self.items:
            condition = item.show_if
            if condition is None or (
                condition.item in asked and condition.holds(answers.get(condition.item))
            ):
                shown.append(item)
                asked.add(item.code)
        return shown

    def scored_items(self, score: ScoreRule) -> list[str]:
        """The items ``score`` is computed from."""
        return score.items or self.item_codes

    def min_answered(self, score: ScoreRule) -> int:
        """How many of its items ``score`` needs (all of them unless it says fewer, as the SWLS
        and WHO-5 manuals require)."""
        return score.min_answered or len(self.scored_items(score))

    def language_version(self, language: str) -> str:
        """The language version shown to a participant who reads ``language``: that one when
        the instrument has it, else English, else the first version it has."""
        if language in self.languages:
            return language
        return "en" if "en" in self.languages else next(iter(self.languages))

    def point_labels(self, item: Item, version: str) -> list[tuple[int, str | None]]:
        """Each answer ``item`` offers, with its words in language ``version``: every point of a
        labelled scale; only the two ends of an anchored one (its middle points are numbers)."""
        points = self.scale.points
        if self.scale.labels is not None:
            return list(zip(points, self.scale.labels[version], strict=True))
        lowest, highest = (item.anchors or self.scale.anchors)[version]
        return list(zip(points, [lowest, *[None] * (len(points) - 2), highest], strict=True))


class InstrumentPack(Document):
    """A deploying organisation's licensed instruments, in one JSON file (docs/instruments.md).

    Their text is stored in that organisation's database only, never in the repository.
    """

    pack: str = Field(default="", description="The pack's name, e.g. whose licence it is.")
    instruments: list[InstrumentDefinition] = Field(min_length=1)

    @field_validator("instruments")
    @classmethod
    def _codes_unique(cls, instruments: list[InstrumentDefinition]) -> list[InstrumentDefinition]:
        problems = _duplicates("instrument", (i.code for i in instruments))
        if problems:
            raise ValueError("; ".join(problems))
        return instruments

    @classmethod
    def from_json(cls, document: object, *, reserved_codes: Collection[str] = ()) -> Self:
        """A pack as its author wrote it; raises :class:`DefinitionError` naming each problem,
        each instrument's prefixed with its position and code. No instrument may take one of
        ``reserved_codes`` (the shipped instruments')."""
        if not isinstance(document, Mapping) or not isinstance(document.get("instruments"), list):
            raise DefinitionError(['A pack is a JSON object with an "instruments" list.'])
        problems: list[str] = []
        for position, definition in enumerate(document["instruments"], start=1):
            code = definition.get("code") if isinstance(definition, Mapping) else None
            where = f"Instrument {position} ({code}): "
            try:
                InstrumentDefinition.model_validate(definition)
            except ValidationError as error:
                problems += error_messages(error, prefix=where)
            if code in reserved_codes:
                problems.append(f"{where}a shipped instrument has that code.")
        if problems:
            raise DefinitionError(problems)
        try:
            return cls.model_validate(document)
        except ValidationError as error:  # the pack's own fields, or a shared code
            raise DefinitionError(error_messages(error)) from error


def answer_range(item: Item, scale: Scale) -> tuple[int, int]:
    """The lowest and highest answer ``item`` takes on an instrument with ``scale``."""
    if item.type == "number":
        return item.min, item.max  # type: ignore[return-value]
    if item.type == "yes_no":
        return NO, YES
    return scale.min, scale.max


def _show_if_problems(code: str, condition: ShowIf, earlier: Mapping[str, Item]) -> list[str]:
    """A condition names an earlier item (so one pass in order decides what is asked) and an
    answer that item can give."""
    source = earlier.get(condition.item)
    if source is None:
        return [f"item {code}: show_if must name an earlier item, not {condition.item}"]
    if isinstance(condition.equals, str) and source.type != "yes_no":
        return [f"item {code}: show_if equals {condition.equals!r} needs a yes/no item"]
    if source.type == "yes_no" and condition.equals is None:
        return [f'item {code}: show_if on a yes/no item uses equals "yes" or "no"']
    return []


def _missing(where: str, texts: Mapping | None, languages: Iterable[str]) -> list[str]:
    if texts is None:
        return []
    missing = sorted(set(languages) - set(texts))
    return [f"{where} has no {', '.join(missing)} version"] if missing else []


def _duplicates(kind: str, codes: Iterable[str]) -> list[str]:
    counts = Counter(codes)
    return [f"two {kind}s share the code {code}" for code in sorted(counts) if counts[code] > 1]


def schema_text() -> str:
    """The JSON Schema of a pack file (the definition under ``$defs``), as published in
    docs/instrument-schema.json."""
    return documents.schema_text(InstrumentPack)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m surveys.instrument",
        description="Print the instrument JSON Schema, or check pack files against it.",
    )
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema")
    parser.add_argument("packs", nargs="*", type=Path, help="pack files to check")
    options = parser.parse_args(argv)
    if options.schema:
        sys.stdout.write(schema_text())
    # Imported here: the registry imports this module, which may be running as __main__.
    from surveys.registry import shipped_definitions

    failed = False
    for path in options.packs:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            pack = InstrumentPack.from_json(document, reserved_codes=shipped_definitions())
        except (OSError, ValueError) as error:  # DefinitionError and JSON errors are ValueErrors
            failed = True
            problems = getattr(error, "problems", [str(error)])
            print(f"{path}: not loadable", *problems, sep="\n  ", file=sys.stderr)
        else:
            print(f"{path}: {', '.join(i.code for i in pack.instruments)} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
