"""The instrument registry: the definitions shipped in ``surveys/instruments/``.

Only instruments whose terms allow redistribution are shipped (see
research/anchors-flourishing-measures.md); licensed ones are loaded by the deploying organisation.
"""

import json
from functools import cache
from pathlib import Path

INSTRUMENT_DIR = Path(__file__).resolve().parent / "instruments"
REQUIRED_KEYS = {"code", "name", "citation", "licence", "dimension", "scale", "scoring", "items"}


def load_definition(path: Path) -> dict:
    definition = json.loads(path.read_text(encoding="utf-8"))
    missing = REQUIRED_KEYS - set(definition)
    if missing:
        raise ValueError(f"{path.name}: missing keys {sorted(missing)}")
    return definition


@cache
def shipped_definitions() -> dict[str, dict]:
    """Code → definition for every instrument file in the repository."""
    definitions = [load_definition(path) for path in sorted(INSTRUMENT_DIR.glob("*.json"))]
    return {definition["code"]: definition for definition in definitions}
