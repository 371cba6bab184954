"""The exchange files through the management commands: export (long CSV and Parquet, scores,
REDCap codebook), round trips that restore identical answers and scores, idempotent re-imports,
and files refused as a whole with every bad line reported."""

import csv
import io
import re
from datetime import datetime

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from surveys.models import Response, Score
from trials.models import Allocation, ConsentDocument
from trials.services import participant_withdraw
from trials.spreadsheet import unneutralised

pytestmark = pytest.mark.django_db

RESPONSE_COLUMNS = [
    "trial",
    "participant",
    "arm",
    "wave",
    "instrument",
    "item",
    "value",
    "language",
    "submitted_at",
]
SCORE_COLUMNS = [
    "trial",
    "participant",
    "arm",
    "wave",
    "instrument",
    "score",
    "dimension",
    "value",
    "submitted_at",
]
# Spelled as in REDCap's own data dictionary template.
REDCAP_HEADERS = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]


def _export(directory, file_format="both") -> str:
    out = io.StringIO()
    call_command(
        "export_trial", "small", "--out", str(directory), "--format", file_format, stdout=out
    )
    return out.getvalue()


def _import(path) -> str:
    out = io.StringIO()
    call_command("import_responses", "small", str(path), stdout=out)
    return out.getvalue()


def _refusal(path) -> str:
    """The command's error for a refused file; nothing may have been written."""
    responses, scores = Response.objects.count(), Score.objects.count()
    with pytest.raises(CommandError) as refused:
        _import(path)
    assert (Response.objects.count(), Score.objects.count()) == (responses, scores)
    return str(refused.value)


def _snapshot(trial) -> dict:
    """Everything a response stores that the exchange format carries or derives."""
    responses = Response.objects.filter(wave__trial=trial).prefetch_related("scores")
    return {
        (r.participant_id, r.wave.index): {
            "answers": r.answers,
            "languages": r.languages,
            "submitted_at": r.submitted_at,
            "quality": r.quality,
            "flagged": r.flagged,
            "scores": {s.code: (s.instrument_id, s.dimension, s.value) for s in r.scores.all()},
        }
        for r in responses.select_related("wave")
    }


def _read_csv(path) -> list[dict[str, str]]:
    """The cells as exported, less the apostrophe that keeps a spreadsheet from running a cell
    as a formula (a pseudonym may start with "-")."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: unneutralised(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _write_csv(path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESPONSE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _first_participants(trial, count: int, *, waves: int = 0) -> list[str]:
    """Ids of ``count`` participants who answered at least ``waves`` waves."""
    answered = trial.participants.annotate(answered=Count("responses")).filter(answered__gte=waves)
    return list(answered.order_by("pk").values_list("pk", flat=True)[:count])


def test_export_writes_long_files_scores_and_a_redcap_codebook(small_trial, tmp_path):
    # A participant who withdrew under an erasing consent has no answers left to export.
    ConsentDocument.objects.filter(trial=small_trial).update(withdrawal_rule="erase")
    erased = small_trial.participants.order_by("pk").first()
    participant_withdraw(participant=erased)

    printed = _export(tmp_path)

    names = ["codebook.csv", "responses.csv", "responses.parquet", "scores.csv", "scores.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"small-{name}" for name in names]
    assert all(str(tmp_path / f"small-{name}") in printed for name in names)
    stored = Response.objects.filter(wave__trial=small_trial)
    # Every response holds the five WHO-5 and five SWLS items.
    item_count = sum(len(items) for r in stored for items in r.answers.values())
    assert item_count == 10 * stored.count() > 0

    responses = pd.read_csv(tmp_path / "small-responses.csv", dtype=str, keep_default_na=False)
    responses = responses.map(unneutralised)
    assert list(responses.columns) == RESPONSE_COLUMNS
    assert len(responses) == item_count
    assert erased.pk not in set(responses["participant"])
    allocated = dict(Allocation.objects.values_list("participant_id", "arm__slug"))
    pairs = zip(responses.participant, responses.arm, strict=True)
    assert all(allocated[participant] == arm for participant, arm in pairs)
    assert all(datetime.fromisoformat(t).utcoffset() is not None for t in responses.submitted_at)
    one = stored.first()
    mine = responses[(responses.participant == one.participant_id) & (responses.item == "who5_2")]
    assert mine[mine.wave == str(one.wave.index)].value.tolist() == [
        str(one.answers["who5"]["who5_2"])
    ]

    parquet = pd.read_parquet(tmp_path / "small-responses.parquet")
    assert list(parquet.columns) == RESPONSE_COLUMNS
    assert len(parquet) == item_count
    assert str(parquet["value"].dtype) == "int64"
    assert str(parquet["submitted_at"].dtype) == "datetime64[us, UTC]"

    scores = pd.read_csv(tmp_path / "small-scores.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    assert len(scores) == Score.objects.count() == 2 * stored.count()
    assert set(scores.dimension) == {"mental_wellbeing", "life_satisfaction"}
    assert len(pd.read_parquet(tmp_path / "small-scores.parquet")) == len(scores)

    # Pseudonymous ids only: no contact details in any file.
    for path in tmp_path.glob("*.csv"):
        assert "@example.org" not in path.read_text(encoding="utf-8")

    codebook = pd.read_csv(tmp_path / "small-codebook.csv", dtype=str, keep_default_na=False)
    assert list(codebook.columns) == REDCAP_HEADERS
    # REDCap's record id comes first: the pseudonym.
    first = codebook.iloc[0]
    assert (first["Variable / Field Name"], first["Field Type"]) == ("participant", "text")
    items = codebook[codebook["Field Type"] == "radio"]
    expected_items = [f"swls_{i}" for i in range(1, 6)] + [f"who5_{i}" for i in range(1, 6)]
    assert items["Variable / Field Name"].tolist() == expected_items
    assert set(items["Form Name"]) == {"swls", "who5"}
    who5_1 = items[items["Variable / Field Name"] == "who5_1"].iloc[0]
    assert who5_1["Field Label"] == "I have felt cheerful and in good spirits"
    assert who5_1["Choices, Calculations, OR Slider Labels"] == (
        "0, At no time | 1, Some of the time | 2, Less than half of the time | "
        "3, More than half of the time | 4, Most of the time | 5, All of the time"
    )
    assert who5_1["Section Header"].startswith("Please indicate for each of the five statements")
    calcs = codebook[codebook["Field Type"] == "calc"].set_index("Variable / Field Name")
    assert calcs.loc["who5", "Choices, Calculations, OR Slider Labels"] == (
        "(sum([who5_1], [who5_2], [who5_3], [who5_4], [who5_5])) * 4"
    )
    assert calcs.loc["swls", "Form Name"] == "swls"


def test_csv_round_trip_restores_answers_and_scores_and_reimport_changes_nothing(
    small_trial, tmp_path
):
    _export(tmp_path, "csv")
    before = _snapshot(small_trial)
    total = len(before)
    removed = Response.objects.filter(participant__in=_first_participants(small_trial, 5))
    deleted = removed.count()
    removed.delete()
    assert deleted > 0

    printed = _import(tmp_path / "small-responses.csv")

    rows = 10 * total
    assert f"{rows} rows; {deleted} responses imported, {total - deleted} unchanged" in printed
    # Same answers, languages, submission times, quality indices and identical score values.
    assert _snapshot(small_trial) == before

    scores = Score.objects.count()
    again = _import(tmp_path / "small-responses.csv")
    assert f"0 responses imported, {total} unchanged" in again
    assert (Response.objects.count(), Score.objects.count()) == (total, scores)
    assert _snapshot(small_trial) == before


def test_parquet_round_trip_keeps_the_language_from_the_file(small_trial, tmp_path):
    _export(tmp_path, "parquet")
    path = tmp_path / "small-responses.parquet"
    removed = _first_participants(small_trial, 3)
    frame = pd.read_parquet(path)
    frame.loc[frame.participant.isin(removed), "language"] = "de"
    frame.to_parquet(path, index=False)
    before = _snapshot(small_trial)
    Response.objects.filter(participant__in=removed).delete()
    deleted = sum(key[0] in removed for key in before)

    assert f"{deleted} responses imported, {len(before) - deleted} unchanged" in _import(path)

    after = _snapshot(small_trial)
    for key, stored in before.items():
        expected = {"swls": "de", "who5": "de"} if key[0] in removed else {}
        assert after[key] == {**stored, "languages": expected}
    assert f"0 responses imported, {len(before)} unchanged" in _import(path)


def test_a_file_with_bad_rows_is_refused_whole_with_every_bad_line(small_trial, tmp_path):
    _export(tmp_path, "csv")
    rows = _read_csv(tmp_path / "small-responses.csv")
    removed = _first_participants(small_trial, 6, waves=3)
    Response.objects.filter(participant__in=removed).delete()
    withdrawn = small_trial.participants.get(pk=removed[4])
    participant_withdraw(participant=withdrawn)  # keeps data; accepts no new answers

    def response(number: int, wave: int) -> list[dict]:
        return [r for r in rows if r["participant"] == removed[number] and r["wave"] == str(wave)]

    def first_who5(number: int, wave: int) -> dict:
        return next(r for r in response(number, wave) if r["instrument"] == "who5")

    bad: list[tuple[dict, str]] = []

    def spoil(row: dict, reason: str, **cells) -> None:
        row.update(cells)
        bad.append((row, reason))

    spoil(first_who5(0, 0), "value 9 is outside the scale of who5 (0 to 5)", value="9")
    spoil(first_who5(0, 1), "value '3.5' is not an integer", value="3.5")
    spoil(first_who5(0, 2), "unknown item 'who5_9' of instrument who5", item="who5_9")
    spoil(
        first_who5(1, 0),
        "submitted_at 'yesterday' is not an ISO 8601 date and time with a time zone",
        submitted_at="yesterday",
    )
    spoil(
        first_who5(1, 1),
        "submitted_at '2026-01-05T10:00:00' is not an ISO 8601",
        submitted_at="2026-01-05T10:00:00",
    )
    spoil(first_who5(1, 2), "trial is 'other', not 'small'", trial="other")
    wrong_arm = "b" if first_who5(2, 0)["arm"] == "a" else "a"
    spoil(first_who5(2, 0), f"arm is '{wrong_arm}' but {removed[2]} is allocated to", arm=wrong_arm)
    spoil(
        first_who5(2, 1),
        "instrument 'flourishing_scale' is not asked in wave 1",
        instrument="flourishing_scale",
    )
    kept = next(r for r in rows if r["participant"] not in removed and r["item"] == "swls_2")
    other_value = "1" if kept["value"] != "1" else "2"
    spoil(
        kept,
        f"already answered swls_2 in wave {kept['wave']} with {kept['value']}",
        value=other_value,
    )
    strangers = [dict(kept, participant="nobody"), dict(kept, wave="7")]
    rows += strangers
    bad += [
        (strangers[0], "unknown participant 'nobody' for trial 'small'"),
        (strangers[1], "unknown wave '7' (the waves are 0, 1, 2)"),
    ]
    duplicated = response(2, 2)[3]
    copy = dict(duplicated)
    rows.append(copy)
    incomplete = response(3, 0)
    rows.remove(next(r for r in incomplete if r["item"] == "who5_3"))

    def line(row: dict) -> int:
        return next(number for number, r in enumerate(rows, start=2) if r is row)

    expected = {line(row): reason for row, reason in bad}
    expected[line(copy)] = f"duplicate of line {line(duplicated)}"
    expected[line(incomplete[0])] = "lacks who5 items who5_3"
    for wave in range(3):
        expected[line(response(4, wave)[0])] = f"{withdrawn.pk} withdrew on"
    # Participant 5's responses are valid and new, but are not imported either.
    _write_csv(tmp_path / "bad.csv", rows)

    message = _refusal(tmp_path / "bad.csv")

    assert message.startswith(f"Nothing was imported from {tmp_path / 'bad.csv'}: ")
    assert "the header as line 1" in message
    assert sorted(int(n) for n in re.findall(r"^  line (\d+):", message, re.M)) == sorted(expected)
    for number, reason in expected.items():
        assert re.search(rf"^  line {number}: .*{re.escape(reason)}", message, re.M), reason
    assert not Response.objects.filter(participant=removed[5]).exists()


def test_unreadable_files_are_refused_with_a_clear_reason(small_trial, tmp_path):
    _export(tmp_path)
    good_csv = (tmp_path / "small-responses.csv").read_text(encoding="utf-8")

    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    assert "garbage.csv is not UTF-8 text" in _refusal(garbage)

    lines = good_csv.splitlines(keepends=True)
    truncated = tmp_path / "truncated.csv"
    truncated.write_text("".join(lines[:49]) + lines[49][:20], encoding="utf-8")
    message = _refusal(truncated)
    # Responses take ten lines each: the cut one (lines 42-51) lost its last two items.
    assert "2 problem(s)" in message
    assert "line 42: incomplete: " in message and "lacks who5 items who5_4, who5_5" in message
    assert "line 50: 2 fields where the header has 9 (a cut-off" in message

    parquet_bytes = (tmp_path / "small-responses.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(parquet_bytes[: len(parquet_bytes) // 2])
    message = _refusal(cut)
    assert message.startswith(f"Nothing was imported from {cut}: 1 problem(s).\n  cut.parquet")
    assert "cut.parquet cannot be read as Parquet (corrupt or truncated)" in message

    frame = pd.read_csv(tmp_path / "small-responses.csv", dtype=str, keep_default_na=False)
    narrow = tmp_path / "narrow.csv"
    frame.drop(columns=["value", "language"]).to_csv(narrow, index=False)
    assert "line 1: missing columns: value, language" in _refusal(narrow)

    parquet = pd.read_parquet(tmp_path / "small-responses.parquet")
    parquet.loc[3, "value"] = 99
    one_bad = tmp_path / "one-bad.parquet"
    parquet.to_parquet(one_bad, index=False)
    message = _refusal(one_bad)
    assert "line = row index + 2" in message
    assert re.search(r"^  line 5: value 99 is outside the scale", message, re.M)

    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty.csv is empty" in _refusal(empty)
    assert "extension, .csv or .parquet" in _refusal(tmp_path / "responses.xlsx")
    assert "Cannot read" in _refusal(tmp_path / "missing.csv")
    with pytest.raises(CommandError, match="No trial with slug 'nope'"):
        call_command("import_responses", "nope", str(narrow))
