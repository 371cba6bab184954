"""What the typed documents share: the base model and how their validation errors read.

Each JSON document that crosses apps has one owner module that declares its shape with pydantic
(``trials.plan`` the pre-registered plan, ``trials.telemetry`` its telemetry section,
``surveys.instrument`` an instrument definition, ``analytics.results`` an analysis's results); see
docs/architecture.md, "The documents". They all read and write plain JSON, so what is stored and
hashed stays a JSON object.
"""

import json

from pydantic import BaseModel, ConfigDict, ValidationError


class Document(BaseModel):
    """A section of a stored JSON document: unknown keys are refused (a misspelt section would
    otherwise vanish silently), values are never coerced (``"5"`` is not 5, ``true`` is not 1),
    and a parsed document cannot be changed in place."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def error_messages(error: ValidationError, *, prefix: str = "") -> list[str]:
    """One sentence per problem, naming where it is (``primary_outcomes 1 → wave``) in the
    words a coordinator or a pack author wrote, with pydantic's statement of what is allowed."""
    messages = []
    for problem in error.errors(include_url=False):
        where = " → ".join(
            str(part + 1) if isinstance(part, int) else str(part) for part in problem["loc"]
        )
        text = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            text = "not a known field"
        messages.append(f"{prefix}{where}: {text}." if where else f"{prefix}{text}.")
    return messages


def schema_text(model: type[BaseModel]) -> str:
    """``model``'s JSON Schema (draft 2020-12) as the exact text published under docs/."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    return json.dumps(schema | model.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
