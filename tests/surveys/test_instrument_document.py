"""The instrument definition as a typed document: its published schema, the messages a pack
author gets, and stored definitions that read and hash as before."""

import html
import io
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from surveys import instrument
from surveys.instrument import DefinitionError, InstrumentDefinition, InstrumentPack
from surveys.models import Instrument
from surveys.registry import INSTRUMENT_DIR, shipped_definitions
from trials.canonical import sha256_of

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_FILE = DOCS / "instrument-schema.json"


def _file(code: str) -> dict:
    return json.loads((INSTRUMENT_DIR / f"{code}.json").read_text(encoding="utf-8"))


def _problems(document: object, **options) -> str:
    with pytest.raises(DefinitionError) as error:
        InstrumentPack.from_json(document, **options)
    return "\n".join(error.value.problems)


@pytest.mark.unit
def test_the_published_schema_is_the_generated_one():
    # Regenerate with: python -m surveys.instrument --schema > docs/instrument-schema.json
    assert SCHEMA_FILE.read_text(encoding="utf-8") == instrument.schema_text()
    schema = json.loads(instrument.schema_text())
    definition = schema["$defs"]["InstrumentDefinition"]
    assert schema["required"] == ["instruments"] and definition["additionalProperties"] is False
    dimension = schema["$defs"]["ScoreRule"]["properties"]["dimension"]
    assert "autonomy" in dimension["enum"] and "happiness" not in dimension["enum"]


@pytest.mark.unit
def test_the_documented_example_is_a_loadable_pack():
    guide = (DOCS / "instruments.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(.*?)```", guide, re.DOTALL).group(1))
    pack = InstrumentPack.from_json(example, reserved_codes=shipped_definitions())
    assert [i.code for i in pack.instruments] == ["example_index"]


@pytest.mark.unit
@pytest.mark.parametrize("code", ["who5", "swls", "flourishing_scale", "ai_assistant"])
def test_a_shipped_file_reads_and_writes_back_unchanged(code):
    # What is stored is to_json(): equal to the file, so any hash of a definition is unchanged.
    written = _file(code)
    definition = shipped_definitions()[code]
    assert definition.to_json() == written
    assert sha256_of(definition.to_json()) == sha256_of(written)
    assert InstrumentDefinition.from_stored(written) == definition


@pytest.mark.unit
def test_a_malformed_pack_names_each_field_and_its_valid_choices():
    who5 = _file("who5")
    swls = _file("swls")
    swls["code"] = "my swls"
    swls["licence"] = "MIT"
    swls["scale"]["labels"]["de"] = swls["scale"]["labels"]["de"][:-1]
    del swls["items"][1]["text"]["de"]
    swls["scores"][0].update(dimension="happiness", items=["swls_1", "swls_9"], multipler=4)
    problems = _problems({"pack": "demo", "instruments": [swls, who5]}, reserved_codes={"who5"})
    assert problems.splitlines() == [
        "Instrument 1 (my swls): code: String should match pattern '^[A-Za-z0-9_]+$'.",
        "Instrument 1 (my swls): licence: Input should be 'public-domain', "
        "'free-with-attribution', 'CC0-1.0', 'CC-BY-NC-4.0' or 'licence-required'.",
        "Instrument 1 (my swls): scale: labels (de) need one label per point: 7, not 6.",
        "Instrument 1 (my swls): items: item swls_2 has no de version.",
        "Instrument 1 (my swls): scores → 1 → dimension: Input should be 'life_satisfaction', "
        "'mental_wellbeing', 'physical_health', 'meaning', 'character', 'relationships', "
        "'financial_stability' or 'autonomy'.",
        "Instrument 1 (my swls): scores → 1 → multipler: not a known field.",
        "Instrument 2 (who5): a shipped instrument has that code.",
    ]


@pytest.mark.unit
def test_cross_field_rules_are_checked():
    who5 = _file("who5")
    who5["scale"]["anchors"] = {"en": ["never", "always"], "de": ["nie", "immer"]}
    assert "give labels (one per point) or anchors (the two ends), not both" in _problems(
        {"instruments": [who5]}
    )
    who5 = _file("who5")
    who5["scale"].update(min=3, max=3)
    who5["items"].append(dict(who5["items"][1]))
    who5["scores"].append(dict(who5["scores"][0]))
    problems = _problems({"instruments": [who5]}).splitlines()
    assert problems == [
        "Instrument 1 (who5): scale: needs at least two points (min 3, max 3).",
        "Instrument 1 (who5): items: two items share the code who5_2.",
        "Instrument 1 (who5): scores: two scores share the code who5.",
    ]
    who5 = _file("who5")
    who5["items"][0]["anchors"] = {"en": ["never", "always"], "de": ["nie", "immer"]}
    assert _problems({"instruments": [who5]}) == (
        "Instrument 1 (who5): items: item who5_1 has anchors but the scale is worded by labels."
    )
    who5 = _file("who5")
    who5["scores"][0].update(items=["who5_1", "who5_6"], min_answered=3)
    assert _problems({"instruments": [who5]}).splitlines() == [
        "Instrument 1 (who5): scores: score who5 names unknown items who5_6 (the items are "
        "who5_1, who5_2, who5_3, who5_4, who5_5); score who5: min_answered must be between 1 "
        "and 2.",
    ]


@pytest.mark.unit
def test_a_pack_itself_must_be_an_object_with_instruments_of_distinct_codes():
    assert _problems([1, 2]) == 'A pack is a JSON object with an "instruments" list.'
    assert _problems({"instruments": []}) == (
        "instruments: List should have at least 1 item after validation, not 0."
    )
    swls = _file("swls")
    assert _problems({"instruments": [swls, swls], "licence": "x"}).splitlines() == [
        "instruments: two instruments share the code swls.",
        "licence: not a known field.",
    ]


@pytest.mark.unit
def test_the_command_prints_the_schema_and_checks_packs(tmp_path, capsys):
    assert instrument.main(["--schema"]) == 0
    assert capsys.readouterr().out == instrument.schema_text()
    good = _file("swls") | {"code": "my_swls", "licence": "licence-required"}
    (tmp_path / "good.json").write_text(json.dumps({"instruments": [good]}))
    (tmp_path / "bad.json").write_text(json.dumps({"instruments": [_file("swls")]}))
    assert instrument.main([str(tmp_path / "good.json"), str(tmp_path / "bad.json")]) == 1
    out = capsys.readouterr()
    assert "good.json: my_swls ok" in out.out
    assert "bad.json: not loadable\n  Instrument 1 (swls): a shipped instrument has that code." in (
        out.err
    )


@pytest.mark.django_db
def test_the_database_stores_each_shipped_file_as_written():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT code, definition FROM surveys_instrument WHERE origin = %s", ["repository"]
        )
        rows = cursor.fetchall()
    stored = {code: json.loads(value) if isinstance(value, str) else value for code, value in rows}
    assert {code: sha256_of(value) for code, value in stored.items()} == {
        code: sha256_of(_file(code)) for code in shipped_definitions()
    }
    typed = {i.code: i.definition for i in Instrument.objects.all()}
    assert typed == shipped_definitions()
    # A key of the definition is read as the JSON value it is, not as a definition.
    assert Instrument.objects.filter(code="who5").values_list("definition__name", flat=True)[0] == (
        "WHO-5 Well-Being Index"
    )


@pytest.mark.django_db
def test_a_row_stored_before_unknown_keys_were_refused_still_reads():
    older = _file("who5") | {"notes": "an author's remark the earlier check let through"}
    Instrument.objects.filter(code="who5").update(definition=older)
    definition = Instrument.objects.get(code="who5").definition
    assert definition == shipped_definitions()["who5"]
    with pytest.raises(DefinitionError, match="notes: not a known field"):
        InstrumentDefinition.from_json(older)


@pytest.mark.django_db
def test_the_admin_and_dumpdata_show_a_definition_as_json(client):
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client.force_login(user)
    who5 = Instrument.objects.get(code="who5")
    page = client.get(f"/admin/surveys/instrument/{who5.pk}/change/").content.decode()
    page = html.unescape(page)
    assert '"code": "who5"' in page and '"multiplier": 4' in page
    out = io.StringIO()
    call_command("dumpdata", "surveys.instrument", stdout=out)
    dumped = {row["fields"]["definition"]["code"]: row for row in json.loads(out.getvalue())}
    assert dumped["who5"]["fields"]["definition"] == _file("who5")
