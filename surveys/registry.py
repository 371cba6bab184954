"""The instrument registry: the instruments shipped with Flourish.

Only instruments whose terms allow redistribution are shipped in ``surveys/instruments/``; each
file names its citation and licence class (docs/instruments.md). Licensed instruments
(Harvard Flourish, PERMA-Profiler, …) arrive as *packs*
(``surveys.services.instrument_pack_load``); their text lives only in the deploying
organisation's database, never in the repository. What a definition says is
``surveys.instrument``'s to decide.
"""

import json
from functools import cache
from pathlib import Path

from surveys.instrument import REDISTRIBUTABLE_LICENCES, DefinitionError, InstrumentDefinition

INSTRUMENT_DIR = Path(__file__).resolve().parent / "instruments"


def load_definition(path: Path) -> InstrumentDefinition:
    try:
        return InstrumentDefinition.from_json(json.loads(path.read_text(encoding="utf-8")))
    except DefinitionError as error:
        raise ValueError(f"{path.name}: {' '.join(error.problems)}") from error


@cache
def shipped_definitions() -> dict[str, InstrumentDefinition]:
    """Code → definition for every instrument file in the repository."""
    definitions = [load_definition(path) for path in sorted(INSTRUMENT_DIR.glob("*.json"))]
    for definition in definitions:
        if definition.licence not in REDISTRIBUTABLE_LICENCES:
            code, licence = definition.code, definition.licence
            raise ValueError(f"{code}: a {licence} instrument is loaded as a pack, not shipped.")
    return {definition.code: definition for definition in definitions}
