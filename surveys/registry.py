"""The instrument registry: what a questionnaire definition must say, and the shipped ones.

Only instruments whose terms allow redistribution are shipped in ``surveys/instruments/`` (see
research/anchors-flourishing-measures.md). Licensed instruments (Harvard Flourish, PERMA-Profiler,
…) arrive as *packs*: a JSON file the deploying organisation supplies to ``load_instrument_pack``;
their text lives only in its database, never in the repository.

A definition (JSON)::

    code, name, version, citation, licence, licence_note, validated (bool),
    recall_window_days,                      # the period the questions ask about (0: now)
    languages: {lang: {"source": ...}},      # every language version offered, with its origin
    scale: {min, max, labels: {lang: [one per point]} | anchors: {lang: [lowest, highest]}},
    stem: {lang: text},
    items: [{code, reverse, text: {lang: text}, anchors?: {lang: [lowest, highest]}}],
    scores: [{code, dimension, rule: "sum"|"mean", items?: [codes], multiplier?,
              min_answered?, range: [low, high]}]
"""

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from trials.dimensions import FLOURISHING_DIMENSIONS

INSTRUMENT_DIR = Path(__file__).resolve().parent / "instruments"

LICENCE_CLASSES = {
    "public-domain": "Public domain; cite the source.",
    "free-with-attribution": "Copyrighted; free to use and redistribute with credit.",
    "CC0-1.0": "Dedicated to the public domain (CC0).",
    "CC-BY-NC-4.0": "Non-commercial use only; never shipped, load as a pack.",
    "licence-required": "Needs the owner's licence; load as a pack.",
}
# Only these may sit in the repository; the rest come from a deploying organisation's pack.
REDISTRIBUTABLE_LICENCES = {"public-domain", "free-with-attribution", "CC0-1.0"}
SCORE_RULES = {"sum", "mean"}
REQUIRED_KEYS = {
    "code",
    "name",
    "version",
    "citation",
    "licence",
    "validated",
    "recall_window_days",
    "languages",
    "scale",
    "stem",
    "items",
    "scores",
}


def _texts_errors(where: str, texts: object, languages: set[str]) -> list[str]:
    if not isinstance(texts, Mapping):
        return [f"{where} must map each language to its text."]
    missing = languages - set(texts)
    return [f"{where} has no {', '.join(sorted(missing))} version."] if missing else []


def definition_errors(definition: object) -> list[str]:
    """Every problem with an instrument definition, as sentences (empty when it is usable)."""
    if not isinstance(definition, Mapping):
        return ["An instrument definition must be a JSON object."]
    missing = REQUIRED_KEYS - set(definition)
    if missing:
        return [f"Missing keys: {', '.join(sorted(missing))}."]
    errors: list[str] = []
    code = definition["code"]
    if not isinstance(code, str) or not code.replace("_", "").isalnum():
        errors.append("code must be letters, digits and underscores.")
    if definition["licence"] not in LICENCE_CLASSES:
        errors.append(f"licence must be one of {', '.join(LICENCE_CLASSES)}.")
    recall = definition["recall_window_days"]
    if not isinstance(recall, int) or recall < 0:
        errors.append("recall_window_days must be a whole number of days, 0 or more.")
    offered = definition["languages"]
    languages = set(offered) if isinstance(offered, Mapping) else set()
    if not languages:
        errors.append("languages must list at least one language version.")
    scale = definition["scale"]
    if not isinstance(scale, Mapping) or not all(
        isinstance(scale.get(key), int) for key in ("min", "max")
    ):
        return [*errors, "scale needs whole-number min and max."]
    points = scale["max"] - scale["min"] + 1
    if points < 2:
        errors.append("scale needs at least two points.")
    if "labels" in scale:
        errors += _texts_errors("scale labels", scale["labels"], languages)
        for language, labels in scale["labels"].items():
            if len(labels) != points:
                errors.append(f"scale labels ({language}) need one label per point ({points}).")
    elif "anchors" in scale:
        errors += _texts_errors("scale anchors", scale["anchors"], languages)
    else:
        errors.append("scale needs labels for every point or anchors for both ends.")
    errors += _texts_errors("stem", definition["stem"], languages)
    items = definition["items"]
    if not isinstance(items, list) or not items:
        return [*errors, "items must be a non-empty list."]
    item_codes = [item.get("code") for item in items]
    if len(set(item_codes)) != len(item_codes):
        errors.append("item codes must be unique.")
    for item in items:
        if not isinstance(item.get("reverse"), bool):
            errors.append(f"item {item.get('code')}: reverse must be true or false.")
        errors += _texts_errors(f"item {item.get('code')}", item.get("text"), languages)
        if "anchors" in item:
            errors += _texts_errors(f"item {item['code']} anchors", item["anchors"], languages)
    scores = definition["scores"]
    if not isinstance(scores, list) or not scores:
        return [*errors, "scores must list at least one score."]
    for rule in scores:
        where = f"score {rule.get('code')}"
        if rule.get("dimension") not in FLOURISHING_DIMENSIONS:
            errors.append(f"{where}: dimension must be one of {', '.join(FLOURISHING_DIMENSIONS)}.")
        if rule.get("rule") not in SCORE_RULES:
            errors.append(f"{where}: rule must be sum or mean.")
        unknown = set(rule.get("items", item_codes)) - set(item_codes)
        if unknown:
            errors.append(f"{where}: unknown items {', '.join(sorted(unknown))}.")
        scored = len(rule.get("items", item_codes))
        if not 1 <= rule.get("min_answered", scored) <= scored:
            errors.append(f"{where}: min_answered must be between 1 and {scored}.")
        if not (isinstance(rule.get("range"), list) and len(rule["range"]) == 2):
            errors.append(f"{where}: range must be [lowest, highest].")
    return errors


def load_definition(path: Path) -> dict:
    definition = json.loads(path.read_text(encoding="utf-8"))
    errors = definition_errors(definition)
    if errors:
        raise ValueError(f"{path.name}: {' '.join(errors)}")
    return definition


@cache
def shipped_definitions() -> dict[str, dict]:
    """Code → definition for every instrument file in the repository."""
    definitions = [load_definition(path) for path in sorted(INSTRUMENT_DIR.glob("*.json"))]
    for definition in definitions:
        if definition["licence"] not in REDISTRIBUTABLE_LICENCES:
            code, licence = definition["code"], definition["licence"]
            raise ValueError(f"{code}: a {licence} instrument is loaded as a pack, not shipped.")
    return {definition["code"]: definition for definition in definitions}


def language_version(definition: Mapping, language: str) -> str:
    """The language version shown to a participant who reads ``language``: that one when the
    instrument has it, else English, else the first version it has."""
    offered = list(definition["languages"])
    if language in offered:
        return language
    return "en" if "en" in offered else offered[0]


def point_labels(definition: Mapping, item: Mapping, version: str) -> list[tuple[int, str | None]]:
    """Each answer ``item`` offers, with its words in language ``version``: every point of a
    labelled scale; only the two ends of an anchored one (its middle points are numbers)."""
    scale = definition["scale"]
    points = range(scale["min"], scale["max"] + 1)
    if "labels" in scale:
        return list(zip(points, scale["labels"][version], strict=True))
    lowest, highest = item.get("anchors", scale["anchors"])[version]
    return list(zip(points, [lowest, *[None] * (len(points) - 2), highest], strict=True))
