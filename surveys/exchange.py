"""Exchange files for a trial's survey data: a tidy long export for analysts and the import of
the same format, with a REDCap-style data dictionary as its codebook.

Files
-----
``SLUG-responses.{csv,parquet}``
    One row per participant × wave × item: ``trial, participant, arm, wave, instrument, item,
    value, language, submitted_at``. ``participant`` is the pseudonymous id (contact details are
    never exported), ``arm`` the slug of the participant's allocated arm, ``language`` the language
    version the instrument was answered in (empty when it was not recorded), ``submitted_at`` ISO
    8601 with its time zone in the CSV and a UTC timestamp (microseconds) in the Parquet file.
``SLUG-scores.{csv,parquet}``
    One row per stored score: ``trial, participant, arm, wave, instrument, score, dimension,
    value, submitted_at``.
``SLUG-codebook.csv``
    A REDCap data dictionary: one ``radio`` field per item (form = instrument, English choices
    ``"value, label | value, label"``) and one ``calc`` field per score, whose equation documents
    the scoring rule in REDCap's own syntax so that the score columns are described too.

The CSV files are written by :mod:`trials.spreadsheet`: text quoted, numbers bare, and a text
cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return at
its start) written with a leading apostrophe, which the import removes again.

An import is all or nothing: every row is checked before anything is written, each bad row is
reported with its line number, and only then are the new responses written, in bulk (PostgreSQL
``COPY``) and in one transaction, with the scores and quality indices
:func:`surveys.services.response_submit` stores, computed for all the responses to an instrument
at once by functions tested equal to the ones it uses (:func:`surveys.scoring.scores_rows`,
:func:`stats.quality.careless_flags_rows`), so they are what the participant pages would have
stored, and the same safety flags and audit events. Checking works by column: each check of a
row runs once per distinct combination of the cells it reads. A response already stored with the
same answers is counted as unchanged, which makes importing the same file twice harmless.
"""

import csv
import gc
import io
import itertools
import json
import math
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from safety.flags import safety_answers_flag
from stats.quality import careless_flags_rows
from surveys.instrument import InstrumentDefinition, Item, ScoreRule, ShowIf
from surveys.models import Instrument, Response, ResponseDraft, Score, Wave
from surveys.scoring import scores_rows
from trials.models import Allocation, ConsentScope, Participant, Trial
from trials.selectors import consent_standing
from trials.spreadsheet import csv_file, unneutralised

RESPONSE_COLUMNS = (
    "trial",
    "participant",
    "arm",
    "wave",
    "instrument",
    "item",
    "value",
    "language",
    "submitted_at",
)
SCORE_COLUMNS = (
    "trial",
    "participant",
    "arm",
    "wave",
    "instrument",
    "score",
    "dimension",
    "value",
    "submitted_at",
)
# The data dictionary headers exactly as REDCap writes and expects them.
REDCAP_COLUMNS = (
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
)
FORMATS = ("csv", "parquet")

_UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = pa.string()
# Typed Parquet columns, so analysts' tools read integers and time stamps without guessing.
RESPONSES_SCHEMA = pa.schema(
    [
        ("trial", _TEXT),
        ("participant", _TEXT),
        ("arm", _TEXT),
        ("wave", pa.int64()),
        ("instrument", _TEXT),
        ("item", _TEXT),
        ("value", pa.int64()),
        ("language", _TEXT),
        ("submitted_at", _UTC_TIMESTAMP),
    ]
)
SCORES_SCHEMA = pa.schema(
    [
        ("trial", _TEXT),
        ("participant", _TEXT),
        ("arm", _TEXT),
        ("wave", pa.int64()),
        ("instrument", _TEXT),
        ("score", _TEXT),
        ("dimension", _TEXT),
        ("value", pa.float64()),
        ("submitted_at", _UTC_TIMESTAMP),
    ]
)
_NUMBERING = {
    ".csv": "Lines are counted with the header as line 1.",
    ".parquet": (
        "Parquet rows are numbered like the lines of the same CSV file: line = row index + 2 "
        "(the first row, index 0, is line 2)."
    ),
}
# Answers and wave numbers are small: more digits than this is not a value anyone wrote (and
# Python refuses to convert more than 4,300 digits at all).
_MAX_DIGITS = 18
_INTEGER = re.compile(rf"\s*[+-]?[0-9]{{1,{_MAX_DIGITS}}}\s*")
# How much of a bad cell a message quotes.
_SHOWN_CHARS = 60


# Export ---------------------------------------------------------------------------------------


def _arms(trial: Trial) -> dict[str, str]:
    return dict(
        Allocation.objects.filter(participant__trial=trial).values_list(
            "participant_id", "arm__slug"
        )
    )


def _frame(rows: list[dict], schema: pa.Schema) -> pd.DataFrame:
    # Through Arrow, so an empty trial still gets typed columns in the right order.
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def responses_frame(trial: Trial) -> pd.DataFrame:
    """The trial's stored answers, one row per participant × wave × item (see the module
    docstring), items in questionnaire order. Erased participants have no rows."""
    arms = _arms(trial)
    responses = list(
        Response.objects.filter(wave__trial=trial)
        .order_by("participant_id", "wave__index")
        .values_list("participant_id", "wave__index", "answers", "languages", "submitted_at")
    )
    codes = {code for response in responses for code in response[2]}
    items = {i.code: i.definition.item_codes for i in Instrument.objects.filter(code__in=codes)}
    rows = [
        {
            "trial": trial.slug,
            "participant": participant,
            "arm": arms.get(participant, ""),
            "wave": wave,
            "instrument": code,
            "item": item,
            "value": answers[code][item],
            "language": languages.get(code, ""),
            "submitted_at": submitted_at,
        }
        for participant, wave, answers, languages, submitted_at in responses
        for code in sorted(answers)
        for item in items[code]
        if item in answers[code]
    ]
    return _frame(rows, RESPONSES_SCHEMA)


def scores_frame(trial: Trial) -> pd.DataFrame:
    """The trial's stored scores, one row per response × score, with the dimension it measures."""
    arms = _arms(trial)
    scores = (
        Score.objects.filter(response__wave__trial=trial)
        .order_by("response__participant_id", "response__wave__index", "instrument__code", "code")
        .values_list(
            "response__participant_id",
            "response__wave__index",
            "instrument__code",
            "code",
            "dimension",
            "value",
            "response__submitted_at",
        )
    )
    rows = [
        {
            "trial": trial.slug,
            "participant": participant,
            "arm": arms.get(participant, ""),
            "wave": wave,
            "instrument": instrument,
            "score": code,
            "dimension": dimension,
            "value": value,
            "submitted_at": submitted_at,
        }
        for participant, wave, instrument, code, dimension, value, submitted_at in scores
    ]
    return _frame(rows, SCORES_SCHEMA)


def _redcap_row(
    *,
    name: str,
    form: str,
    field_type: str,
    label: str,
    choices: str,
    section: str = "",
    required: str = "",
    annotation: str = "",
) -> dict[str, str]:
    row = dict.fromkeys(REDCAP_COLUMNS, "")
    row.update(
        {
            "Variable / Field Name": name,
            "Form Name": form,
            "Section Header": section,
            "Field Type": field_type,
            "Field Label": label,
            "Choices, Calculations, OR Slider Labels": choices,
            "Required Field?": required,
            "Field Annotation": annotation,
        }
    )
    return row


def _choices(definition: InstrumentDefinition, item: Item, language: str) -> str:
    """REDCap's ``"value, label | …"``; a scale with anchors only labels its two ends, as the
    participant pages do."""
    labels = definition.point_labels(item, language)
    return " | ".join(f"{value}, {words or value}" for value, words in labels)


# REDCap's field type for each item type: a 0–10 row is radio buttons as on the participant
# pages; REDCap's yesno codes 1 = Yes, 0 = No, as the definition does.
REDCAP_FIELD_TYPES = {"likert": "radio", "slider": "radio", "number": "text", "yes_no": "yesno"}


def _branching(condition: ShowIf) -> str:
    """A show_if condition in REDCap's branching-logic syntax."""
    if condition.equals is not None:
        return f"[{condition.item}] = '{condition.wanted}'"
    if condition.at_least is not None:
        return f"[{condition.item}] >= {condition.at_least}"
    return f"[{condition.item}] <= {condition.at_most}"


def _item_row(definition: InstrumentDefinition, item: Item, position: int) -> dict[str, str]:
    english = definition.language_version("en")
    row = _redcap_row(
        name=item.code,
        form=definition.code,
        # The instruction is shown once, above the instrument's first question.
        section=definition.stem[english] if position == 0 else "",
        field_type=REDCAP_FIELD_TYPES[item.type],
        label=item.text[english],
        choices=_choices(definition, item, english) if item.type in ("likert", "slider") else "",
        # An item asked on a condition is required only when asked, which branching expresses.
        required="y" if item.show_if is None else "",
        annotation="reverse-keyed" if item.reverse else "",
    )
    if item.type == "number":
        row["Text Validation Type OR Show Slider Number"] = "integer"
        row["Text Validation Min"], row["Text Validation Max"] = str(item.min), str(item.max)
    if item.show_if is not None:
        row["Branching Logic (Show field only if...)"] = _branching(item.show_if)
    return row


def _item_fields(definition: InstrumentDefinition) -> list[dict[str, str]]:
    return [_item_row(definition, item, position) for position, item in enumerate(definition.items)]


def _equation(definition: InstrumentDefinition, score: ScoreRule) -> str:
    """The score rule in REDCap's calc syntax (reverse-keyed items mirrored; a prorated sum is
    the mean times the number of items)."""
    # Each reverse-keyed item is mirrored within its own answers (surveys.scoring.keyed_values).
    mirror = {
        item.code: sum(definition.answer_range(item)) for item in definition.items if item.reverse
    }
    items = definition.scored_items(score)
    terms = ", ".join(f"({mirror[c]} - [{c}])" if c in mirror else f"[{c}]" for c in items)
    if score.rule == "value":
        equation = terms
    elif score.rule == "mean":
        equation = f"mean({terms})"
    elif definition.min_answered(score) == len(items):
        equation = f"sum({terms})"
    else:
        equation = f"mean({terms}) * {len(items)}"
    multiplier = score.multiplier
    return equation if multiplier == 1 else f"({equation}) * {multiplier}"


def _score_fields(definition: InstrumentDefinition) -> list[dict[str, str]]:
    rows = []
    for score in definition.scores:
        scored = len(definition.scored_items(score))
        low, high = score.range
        rows.append(
            _redcap_row(
                name=score.code,
                form=definition.code,
                field_type="calc",
                label=f"{definition.name}: score {score.code}",
                choices=_equation(definition, score),
                annotation=(
                    f"dimension {score.dimension}; range {low}-{high}; computed when at least "
                    f"{definition.min_answered(score)} of {scored} items are answered"
                ),
            )
        )
    return rows


def codebook_frame(trial: Trial) -> pd.DataFrame:
    """A REDCap data dictionary of every instrument the trial's waves ask: one ``radio`` row per
    item and one ``calc`` row per score, forms named after the instruments."""
    instruments = list(Instrument.objects.filter(wave__trial=trial).distinct().order_by("code"))
    rows = [
        row
        for instrument in instruments
        for row in (*_item_fields(instrument.definition), *_score_fields(instrument.definition))
    ]
    if instruments:
        # REDCap takes the first field as the record id: the participant's pseudonym.
        record_id = _redcap_row(
            name="participant",
            form=instruments[0].code,
            field_type="text",
            label="Participant (pseudonymous id)",
            choices="",
        )
        rows.insert(0, record_id)
    return pd.DataFrame(rows, columns=list(REDCAP_COLUMNS), dtype=str)


def _write(frame: pd.DataFrame, schema: pa.Schema, path: Path) -> None:
    if path.suffix == ".csv":
        iso = frame["submitted_at"].map(pd.Timestamp.isoformat)
        rows = frame.assign(submitted_at=iso).itertuples(index=False, name=None)
        csv_file(path, list(frame.columns), rows)
    else:
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def trial_export(
    *, trial: Trial, directory: Path, formats: Collection[str] = FORMATS
) -> dict[Path, int]:
    """Write the responses and scores in each of ``formats`` and the codebook (CSV, the format
    REDCap imports) into ``directory``; returns every file written with its number of rows."""
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be some of {', '.join(FORMATS)}.")
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[Path, int] = {}
    for kind, frame, schema in [
        ("responses", responses_frame(trial), RESPONSES_SCHEMA),
        ("scores", scores_frame(trial), SCORES_SCHEMA),
    ]:
        for file_format in FORMATS:
            if file_format in formats:
                path = directory / f"{trial.slug}-{kind}.{file_format}"
                _write(frame, schema, path)
                written[path] = len(frame)
    codebook = codebook_frame(trial)
    path = directory / f"{trial.slug}-codebook.csv"
    written[path] = csv_file(path, REDCAP_COLUMNS, codebook.itertuples(index=False, name=None))
    return written


# Import: reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One reason a file was refused; ``line`` is None for a problem with the whole file."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


class ImportRejected(ValidationError):
    """The file was refused as a whole and nothing was imported; ``errors`` lists every reason
    and ``numbering`` says how line numbers count."""

    def __init__(self, errors: list[RowError], *, numbering: str = "") -> None:
        super().__init__([str(error) for error in errors])
        self.errors = errors
        self.numbering = numbering


@dataclass(frozen=True)
class _Table:
    """A file's rows by column: row ``i`` is on line ``lines[i]`` and holds ``cells[name][i]``.
    Columns rather than a mapping per row, so that checking costs per distinct cell, not per row.

    ``typed`` cells (Parquet's) are Python values of their column's type; the others are text.
    """

    lines: list[int]
    cells: dict[str, list]
    typed: bool = False

    def __len__(self) -> int:
        return len(self.lines)

    def row(self, index: int) -> dict[str, object]:
        return {name: column[index] for name, column in self.cells.items()}

    def codes(self, name: str) -> tuple[np.ndarray, list]:
        """Each row's number among the column's distinct cells, and those cells."""
        column = self.cells[name]
        # Typed cells are told apart by type and repr: 1 == True == 1.0 and 0.0 == -0.0 to
        # Python but not to the checks, and a list cell has no hash.
        keys = [(type(cell), repr(cell)) for cell in column] if self.typed else column
        codes, first = _factorised(keys)
        return codes, [column[row] for row in first.tolist()]


_EMPTY = _Table(lines=[], cells={})


def _factorised(keys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Each key's number among the distinct keys (numbered in order of first appearance), and
    the position of each distinct key's first appearance."""
    # pandas hashes the keys in C; use_na_sentinel=False numbers None like any other key.
    objects = np.fromiter(keys, dtype=object, count=len(keys))
    codes, _ = pd.factorize(objects, use_na_sentinel=False)
    return codes, np.unique(codes, return_index=True)[1]


def _combined(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows numbered in several columns by :func:`_factorised`: each row's number among the
    distinct combinations, and the first row of each combination."""
    combination = codes[0]
    for more in codes[1:]:
        # Renumbered after each column, so the mixed-radix key stays below rows².
        _, combination = np.unique(combination * (int(more.max()) + 1) + more, return_inverse=True)
    _, first, combination = np.unique(combination, return_index=True, return_inverse=True)
    return combination.reshape(-1), first


def _header_errors(columns: list[str]) -> list[RowError]:
    problems = []
    missing = [column for column in RESPONSE_COLUMNS if column not in columns]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    unexpected = sorted(set(columns) - set(RESPONSE_COLUMNS))
    if unexpected:
        problems.append(f"unexpected columns: {', '.join(unexpected)}")
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if not problems:
        return []
    expected = ", ".join(RESPONSE_COLUMNS)
    return [RowError(1, f"{'; '.join(problems)} (the columns are: {expected})")]


def _csv_rows(path: Path) -> tuple[_Table, list[RowError]]:
    """Rows with their physical line numbers; a row with the wrong number of fields (a cut-off
    last line, a stray delimiter) is an error of that line, not of the whole file.

    Cells are read as the export wrote them: the apostrophe that kept a spreadsheet from
    running a cell as a formula (``'-x`` for the text ``-x``) is removed again
    (:func:`trials.spreadsheet.unneutralised`).
    """
    errors = []
    # utf-8-sig: spreadsheets often start a UTF-8 CSV with a byte-order mark.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = list(reader)
    if not rows:
        raise ImportRejected([RowError(None, f"{path.name} is empty.")])
    header = rows[0]
    errors += _header_errors(header)
    if reader.line_num == len(rows) and set(map(len, rows[1:])) <= {len(header)}:
        # One line per row and every row whole (the usual file): row i is on line i + 2.
        records, lines = rows[1:], list(range(2, len(rows) + 1))
    else:
        records, lines = _checked_lines(path, len(header), errors)
    if errors and errors[0].line == 1:
        return _EMPTY, errors
    columns = zip(*records, strict=True) if records else ([] for _ in header)
    # Without an apostrophe anywhere no cell was neutralised.
    unquoted = _unneutralised if "'" in text else list
    cells = {name: unquoted(column) for name, column in zip(header, columns, strict=True)}
    return _Table(lines=lines, cells=cells), errors


def _checked_lines(path: Path, width: int, errors: list[RowError]) -> tuple[list, list[int]]:
    """The rows of ``width`` fields and their physical lines (a quoted cell may hold line
    breaks), skipping blank lines; each other row is an error of its line."""
    records, lines = [], []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            if not cells:
                continue  # a blank line carries no data
            if len(cells) != width:
                message = f"{len(cells)} fields where the header has {width}"
                errors.append(RowError(reader.line_num, f"{message} (a cut-off or malformed row)"))
            else:
                records.append(cells)
                lines.append(reader.line_num)
    return records, lines


def _unneutralised(column: Sequence[str]) -> list[str]:
    """:func:`trials.spreadsheet.unneutralised` of every cell, worked out once per distinct one."""
    changed = {cell: text for cell in set(column) if (text := unneutralised(cell)) != cell}
    return [changed.get(cell, cell) for cell in column] if changed else list(column)


def _parquet_rows(path: Path) -> tuple[_Table, list[RowError]]:
    table = pq.read_table(path)
    errors = _header_errors(table.column_names)
    try:
        cells = {
            name: column.to_pylist()
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    except (ValueError, OverflowError) as error:
        # A value Python cannot hold, e.g. a time stamp beyond the year 9999.
        message = f"{path.name} holds a value that cannot be read: {error}"
        raise ImportRejected([RowError(None, message)]) from error
    lines = list(range(2, table.num_rows + 2))
    return _Table(lines=lines, cells=cells, typed=True), errors


_READERS: dict[str, Callable[[Path], tuple[_Table, list[RowError]]]] = {
    ".csv": _csv_rows,
    ".parquet": _parquet_rows,
}


def _read(path: Path) -> tuple[_Table, list[RowError]]:
    """The file's rows, or :class:`ImportRejected` when it cannot be read at all."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        message = f"{path.name}: the file type is told by its extension, .csv or .parquet."
        raise ImportRejected([RowError(None, message)])
    try:
        rows, errors = reader(path)
    except UnicodeDecodeError as error:
        message = f"{path.name} is not UTF-8 text (byte {error.start}): corrupt or not a CSV file."
        raise ImportRejected([RowError(None, message)]) from error
    except csv.Error as error:
        raise ImportRejected([RowError(None, f"{path.name} is not valid CSV: {error}.")]) from error
    except pa.ArrowException as error:
        message = f"{path.name} cannot be read as Parquet (corrupt or truncated): {error}"
        raise ImportRejected([RowError(None, message)]) from error
    except OSError as error:
        raise ImportRejected([RowError(None, f"Cannot read {path}: {error}.")]) from error
    if any(error.line == 1 for error in errors):
        # Without the right columns no row can be read: the header problem says it all.
        return _EMPTY, [error for error in errors if error.line == 1]
    return rows, errors


# Import: checking -----------------------------------------------------------------------------


def _text(cell: object) -> str:
    return "" if cell is None else str(cell).strip()


def _shown(cell: object) -> str:
    """A cell quoted in a message, cut short: a bad file may hold a megabyte in one cell."""
    text = _text(cell)
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


def _integer(cell: object) -> int | None:
    """A whole number written as one (``"3"``, 3), never a float such as ``"3.0"``: a value
    that went through a float has been handled by something that may have changed it."""
    if isinstance(cell, int) and not isinstance(cell, bool):
        return cell
    if isinstance(cell, str):
        return _text_integer(cell)
    return None


# Waves and answers repeat the same few values over the whole file, each read twice.
@lru_cache(maxsize=4096)
def _text_integer(cell: str) -> int | None:
    return int(cell) if _INTEGER.fullmatch(cell) else None


def _integer_problem(name: str, cell: object) -> str:
    """Why a cell that should hold an integer does not."""
    digits = _text(cell).lstrip("+-")
    if digits.isascii() and digits.isdigit():
        return f"{name} {_shown(cell)} has {len(digits)} digits, more than any answer can have"
    return f"{name} {_shown(cell)} is not an integer"


def _timestamp(cell: object) -> datetime | None:
    """An ISO 8601 date and time with its offset (CSV) or a zoned time stamp (Parquet)."""
    if isinstance(cell, str):
        return _text_timestamp(cell)
    return _zoned(cell)


# The rows of one response repeat its time, each read twice (checked, then parsed).
@lru_cache(maxsize=4096)
def _text_timestamp(cell: str) -> datetime | None:
    try:
        return _zoned(datetime.fromisoformat(cell.strip()))
    except ValueError:
        return None


def _zoned(cell: object) -> datetime | None:
    if isinstance(cell, datetime) and cell.utcoffset() is not None:
        try:
            # In UTC, as the database stores it: an offset such as +23:59 is valid ISO 8601
            # but not every database accepts it.
            return cell.astimezone(UTC)
        except OverflowError:  # 0001-01-01 with a positive offset is before the year 1 in UTC
            return None
    return None


@dataclass(frozen=True)
class _Context:
    """What every row is checked against, loaded once."""

    trial: Trial
    participants: dict[str, Participant]
    arms: dict[str, str]
    waves: dict[int, Wave]
    # Wave index → the instruments it asks, in the wave's order.
    instruments: dict[int, tuple[Instrument, ...]]
    # Wave index → instrument code → definition: what each wave asks.
    questions: dict[int, dict[str, InstrumentDefinition]]
    # (participant id, wave index) → the answers already stored.
    stored: dict[tuple[str, int], dict]
    # Participants whose consent to surveys is active (checked again when each is written).
    consenting: set[str]
    # When the check began: no answer can have been submitted later.
    now: datetime


def _context(trial: Trial) -> _Context:
    waves = {wave.index: wave for wave in trial.waves.prefetch_related("instruments")}
    instruments = {index: tuple(wave.instruments.all()) for index, wave in waves.items()}
    stored = Response.objects.filter(wave__trial=trial).values_list(
        "participant_id", "wave__index", "answers"
    )
    return _Context(
        trial=trial,
        participants={p.pk: p for p in Participant.objects.filter(trial=trial)},
        arms=_arms(trial),
        waves=waves,
        instruments=instruments,
        questions={
            index: {i.code: i.definition for i in asked} for index, asked in instruments.items()
        },
        stored={(participant, wave): answers for participant, wave, answers in stored},
        consenting=set(
            consent_standing()
            .filter(participant__trial=trial, scope=ConsentScope.SURVEYS)
            .values_list("participant_id", flat=True)
        ),
        now=timezone.now(),
    )


@dataclass(frozen=True)
class _Row:
    """A row whose every cell is valid on its own."""

    line: int
    participant: Participant
    wave: Wave
    instrument: str
    item: str
    value: int
    language: str
    submitted_at: datetime

    @property
    def response_key(self) -> tuple[str, int]:
        return self.participant.pk, self.wave.index


def _who_problems(cells: Mapping[str, object], context: _Context) -> list[str]:
    problems = []
    slug = context.trial.slug
    if _text(cells["trial"]) != slug:
        problems.append(f"trial is {_shown(cells['trial'])}, not {slug!r}")
    participant = _text(cells["participant"])
    if participant not in context.participants:
        problems.append(f"unknown participant {_shown(participant)} for trial {slug!r}")
    elif _text(cells["arm"]) != (allocated := context.arms.get(participant, "")):
        problems.append(
            f"arm is {_shown(cells['arm'])} but {participant} is allocated to {allocated!r}"
        )
    return problems


def _question_problems(cells: Mapping[str, object], context: _Context) -> list[str]:
    """Wave, instrument, item, language and value: each checked as far as the ones before it
    allow (an item can only be known once its instrument is)."""
    index = _integer(cells["wave"])
    value = _integer(cells["value"])
    problems = [] if value is not None else [_integer_problem("value", cells["value"])]
    if index not in context.waves:
        known = ", ".join(map(str, context.waves))
        return [f"unknown wave {_shown(cells['wave'])} (the waves are {known})", *problems]
    code = _text(cells["instrument"])
    definition = context.questions[index].get(code)
    if definition is None:
        return [f"instrument {_shown(code)} is not asked in wave {index}", *problems]
    item = _text(cells["item"])
    if item not in definition.item_codes:
        problems.append(f"unknown item {_shown(item)} of instrument {code}")
    language = _text(cells["language"])
    if language and language not in definition.languages:
        offered = ", ".join(definition.languages)
        problems.append(f"language {_shown(language)} is not a version of {code} ({offered})")
    if item not in definition.item_codes:
        return problems
    low, high = definition.answer_range(definition.item(item))
    if value is not None and not low <= value <= high:
        problems.append(f"value {value} is outside the scale of {code} ({low} to {high})")
    return problems


def _when_problems(cells: Mapping[str, object], context: _Context) -> list[str]:
    """A submission time that is well formed, not in the future and not before the participant
    enrolled (answers from before their consent may not be kept)."""
    submitted = _timestamp(cells["submitted_at"])
    if submitted is None:
        return [
            f"submitted_at {_shown(cells['submitted_at'])} is not an ISO 8601 date and time "
            "with a time zone (e.g. 2026-03-01T09:30:00+00:00)"
        ]
    if submitted > context.now:
        return [f"submitted_at {_shown(cells['submitted_at'])} is in the future"]
    participant = context.participants.get(_text(cells["participant"]))
    if participant is not None and submitted < participant.enrolled_at:
        enrolled = participant.enrolled_at.astimezone(UTC).isoformat()
        shown = _shown(cells["submitted_at"])
        return [f"submitted_at {shown} is before {participant.pk} enrolled ({enrolled})"]
    return []


def _lines(rows: list[_Row]) -> str:
    first, last = rows[0].line, rows[-1].line
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _consistency_errors(rows: list[_Row]) -> list[RowError]:
    """One response has one submission time and one language per instrument."""
    errors = []
    first = rows[0]
    languages: dict[str, _Row] = {}
    for row in rows:
        if row.submitted_at != first.submitted_at:
            message = f"submitted_at differs from line {first.line} of the same response"
            errors.append(RowError(row.line, message))
        earlier = languages.setdefault(row.instrument, row)
        if row.language != earlier.language:
            message = f"language differs from line {earlier.line} ({row.instrument} is one version)"
            errors.append(RowError(row.line, message))
    return errors


def _completeness_errors(rows: list[_Row], context: _Context) -> list[RowError]:
    """Every item of every instrument of the wave, as on the participant pages."""
    first = rows[0]
    answered = {(row.instrument, row.item) for row in rows}
    where = f"{first.participant.pk}'s response to wave {first.wave.index} ({_lines(rows)})"
    errors = []
    for code, definition in context.questions[first.wave.index].items():
        missing = [item for item in definition.item_codes if (code, item) not in answered]
        if len(missing) == len(definition.items):
            errors.append(RowError(first.line, f"incomplete: {where} lacks instrument {code}"))
        elif missing:
            message = f"incomplete: {where} lacks {code} items {', '.join(missing)}"
            errors.append(RowError(first.line, message))
    return errors


def _answers(rows: list[_Row]) -> dict[str, dict[str, int]]:
    answers: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        answers[row.instrument][row.item] = row.value
    return dict(answers)


def _stored_errors(rows: list[_Row], stored: Mapping, *, whole: bool) -> list[RowError]:
    """A stored response is never changed: each row that disagrees with it is an error, and so
    is a ``whole`` (complete, all rows valid) response that differs in what it holds."""
    errors = []
    for row in rows:
        before = stored.get(row.instrument, {}).get(row.item)
        if before != row.value:
            message = (
                f"{row.participant.pk} already answered {row.item} in wave {row.wave.index} "
                f"with {before}, not {row.value}; a stored response is never changed"
            )
            errors.append(RowError(row.line, message))
    if errors or not whole:
        return errors
    message = f"a different response of {rows[0].participant.pk} to wave {rows[0].wave.index}"
    return [RowError(rows[0].line, f"{message} is already stored ({_lines(rows)})")]


def _consent_errors(rows: list[_Row], context: _Context) -> list[RowError]:
    participant = rows[0].participant
    if participant.withdrawn_at is not None:
        when = f"{participant.withdrawn_at:%Y-%m-%d}"
        message = f"{participant.pk} withdrew on {when}: no new answers are accepted"
    elif participant.pk not in context.consenting:
        message = f"{participant.pk} has no active consent to surveys"
    else:
        return []
    return [RowError(rows[0].line, f"{message} ({_lines(rows)})")]


@dataclass(frozen=True)
class PlannedResponse:
    """One response the import would create."""

    participant: Participant
    wave: Wave
    instruments: tuple[Instrument, ...]
    answers: dict[str, dict[str, int]]
    languages: dict[str, str]
    submitted_at: datetime
    line: int


@dataclass
class ImportPlan:
    """What importing a file would do; nothing may be written while ``errors`` is not empty."""

    rows: int = 0
    new: list[PlannedResponse] = field(default_factory=list)
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    numbering: str = ""


def _plan_response(rows: list[_Row], context: _Context, plan: ImportPlan, *, whole: bool) -> None:
    """Check one response's rows together and add it to the plan as new or unchanged.

    A response that is not ``whole`` (one of its rows was bad on its own, so it is already
    reported) is not checked for completeness: its missing item is that bad row.
    """
    answers = _answers(rows)
    stored = context.stored.get(rows[0].response_key)
    incomplete = _completeness_errors(rows, context) if whole else []
    errors = [*_consistency_errors(rows), *incomplete]
    if stored is None:
        errors += _consent_errors(rows, context)
    elif stored != answers:
        errors += _stored_errors(rows, stored, whole=whole and not incomplete)
    plan.errors += errors
    if errors or not whole:
        return
    if stored is not None:
        plan.unchanged += 1
        return
    plan.new.append(
        PlannedResponse(
            participant=rows[0].participant,
            wave=rows[0].wave,
            instruments=context.instruments[rows[0].wave.index],
            answers=answers,
            languages={row.instrument: row.language for row in rows if row.language},
            submitted_at=rows[0].submitted_at,
            line=rows[0].line,
        )
    )


def _response_key(cells: Mapping[str, object]) -> tuple[str, int | None]:
    return _text(cells["participant"]), _integer(cells["wave"])


# Each check of a row alone and the cells it reads: a row's problems are those of its cells, so
# each check runs once per distinct combination of them (a file repeats its participants, waves,
# items, answers and times), and the checks stay these functions.
_ROW_CHECKS: tuple[tuple[Callable[[Mapping[str, object], _Context], list[str]], tuple], ...] = (
    (_who_problems, ("trial", "participant", "arm")),
    (_question_problems, ("wave", "value", "instrument", "item", "language")),
    (_when_problems, ("submitted_at", "participant")),
)


@dataclass(frozen=True)
class _Parsed:
    """The value of each row's cell of one column (when it is valid): its number among the
    distinct values, and those values."""

    codes: np.ndarray
    values: list

    def __getitem__(self, row: int) -> object:
        return self.values[self.codes[row]]


_Codes = dict[str, tuple[np.ndarray, list]]


def _rows_alone(
    table: _Table, codes: _Codes, context: _Context, plan: ImportPlan
) -> tuple[np.ndarray, set]:
    """Check each row alone: each bad row's problems in ``plan.errors``; the rows that passed
    and the responses (participant, wave) a bad row belongs to."""
    bad = np.zeros(len(table), dtype=bool)
    found = []
    for check, names in _ROW_CHECKS:
        combination, first = _combined(*(codes[name][0] for name in names))
        problems = [check(table.row(row), context) for row in first.tolist()]
        bad |= np.array([bool(listed) for listed in problems])[combination]
        found.append((combination, problems))
    spoilt: set[tuple[str, int | None]] = set()
    for row in np.flatnonzero(bad).tolist():
        line = table.lines[row]
        for combination, problems in found:
            plan.errors += [RowError(line, problem) for problem in problems[combination[row]]]
        spoilt.add(_response_key(table.row(row)))
    return np.flatnonzero(~bad), spoilt


def _parsed_column(column: tuple[np.ndarray, list], parse: Callable[[object], object]) -> _Parsed:
    codes, cells = column
    parsed = [parse(cell) for cell in cells]
    # Cells that mean the same (" 3" and "3", two spellings of one instant) become one value.
    same, first = _factorised(parsed)
    return _Parsed(codes=same[codes], values=[parsed[index] for index in first.tolist()])


def _check_rows(table: _Table, context: _Context, plan: ImportPlan) -> None:
    """Check each row alone, then each response's rows together.

    Done by column for the whole file, so that its cost follows the distinct cells rather than
    the rows: a response whose rows are plainly in order (all of them valid and present, one
    submission time and language, not stored before or stored the same) is planned from them
    directly; every other goes through :func:`_plan_response`, which words each problem.
    """
    if not len(table):
        return
    codes = {name: table.codes(name) for name in RESPONSE_COLUMNS}
    valid, spoilt = _rows_alone(table, codes, context, plan)
    participant = _parsed_column(codes["participant"], _text)
    wave = _parsed_column(codes["wave"], _integer)
    instrument = _parsed_column(codes["instrument"], _text)
    item = _parsed_column(codes["item"], _text)
    value = _parsed_column(codes["value"], _integer)
    language = _parsed_column(codes["language"], _text)
    submitted = _parsed_column(codes["submitted_at"], _timestamp)
    lines = table.lines

    # A second row of one participant, wave and item is a duplicate of the first.
    question = [column.codes[valid] for column in (participant, wave, instrument, item)]
    combination, first = _combined(*question) if len(valid) else (valid, valid)
    original = first[combination]
    repeated = original != np.arange(len(valid))
    for position in np.flatnonzero(repeated).tolist():
        row = int(valid[position])
        earlier = lines[valid[original[position]]]
        message = f"duplicate of line {earlier} (same participant, wave and item)"
        plan.errors.append(RowError(lines[row], message))
        spoilt.add((participant[row], wave[row]))
    kept = valid[~repeated]
    if not len(kept):
        return

    # The responses, numbered in the order of their first rows; each one's rows in file order.
    response, first = _combined(participant.codes[kept], wave.codes[kept])
    order = np.argsort(first, kind="stable")
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    response, first = number[response], first[order]
    count = len(first)
    sizes = np.bincount(response, minlength=count)
    # One submission time per response and one language per instrument of it.
    times = submitted.codes[kept]
    times_differ = np.bincount(response, weights=times != times[first][response], minlength=count)
    version, version_first = _combined(response, instrument.codes[kept])
    versions = language.codes[kept]
    versions_differ = np.bincount(
        response, weights=versions != versions[version_first][version], minlength=count
    )
    asked = {
        index: sum(len(definition.items) for definition in questions.values())
        for index, questions in context.questions.items()
    }
    in_order = ((times_differ == 0) & (versions_differ == 0)).tolist()
    rows_given = sizes.tolist()
    heads = kept[first]
    keys = list(
        zip(
            [participant.values[c] for c in participant.codes[heads].tolist()],
            [wave.values[c] for c in wave.codes[heads].tolist()],
            strict=True,
        )
    )

    # Each response's answers, one instrument (its rows in file order) at a time.
    answers: list[dict[str, dict[str, int]]] = [{} for _ in range(count)]
    versions_of: list[dict[str, str]] = [{} for _ in range(count)]
    by_version = kept[np.argsort(version, kind="stable")]
    version_bounds = np.concatenate([[0], np.cumsum(np.bincount(version))]).tolist()
    items = [item.values[c] for c in item.codes[by_version].tolist()]
    given = [value.values[c] for c in value.codes[by_version].tolist()]
    for owner, code, written, (start, stop) in zip(
        response[version_first].tolist(),
        [instrument.values[c] for c in instrument.codes[kept[version_first]].tolist()],
        [language.values[c] for c in language.codes[kept[version_first]].tolist()],
        itertools.pairwise(version_bounds),
        strict=True,
    ):
        answers[owner][code] = dict(zip(items[start:stop], given[start:stop], strict=True))
        if written:
            versions_of[owner][code] = written

    rows = kept[np.argsort(response, kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    for number, key in enumerate(keys):
        whole = key not in spoilt
        if whole and in_order[number] and rows_given[number] == asked[key[1]]:
            stored = context.stored.get(key)
            someone = context.participants[key[0]]
            if stored is None and someone.withdrawn_at is None and key[0] in context.consenting:
                head = int(heads[number])
                plan.new.append(
                    PlannedResponse(
                        participant=someone,
                        wave=context.waves[key[1]],
                        instruments=context.instruments[key[1]],
                        answers=answers[number],
                        languages=versions_of[number],
                        submitted_at=submitted[head],
                        line=lines[head],
                    )
                )
                continue
            if stored is not None and stored == answers[number]:
                plan.unchanged += 1
                continue
        checked = [
            _Row(
                line=lines[row],
                participant=context.participants[participant[row]],
                wave=context.waves[wave[row]],
                instrument=instrument[row],
                item=item[row],
                value=value[row],
                language=language[row],
                submitted_at=submitted[row],
            )
            for row in rows[bounds[number] : bounds[number + 1]].tolist()
        ]
        _plan_response(checked, context, plan, whole=whole)


def import_plan(*, trial: Trial, path: Path) -> ImportPlan:
    """Read and check a long responses file (CSV or Parquet, told by the extension) without
    writing anything; every problem is in ``errors`` with its line, sorted by line."""
    table, errors = _read(path)
    plan = ImportPlan(rows=len(table), errors=errors, numbering=_NUMBERING[path.suffix.lower()])
    _check_rows(table, _context(trial), plan)
    plan.errors.sort(key=lambda error: error.line or 0)
    return plan


@dataclass(frozen=True)
class ImportReport:
    rows: int
    created: int
    unchanged: int


class _JsonText(str):
    """A value already serialised as JSON (by :func:`json.dumps`), for a ``jsonb`` column."""


def _copy_escaped(text: str) -> str:
    """Text as a field of PostgreSQL's ``COPY`` text format, where backslash, tab and line
    breaks are special (PostgreSQL manual, COPY, "Text Format")."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        text = text.replace("\r", "\\r")
    return text


# Each value type the import writes, as a COPY text field: exact float text (repr round-trips),
# ISO 8601 time stamps with their offsets, JSON as the server's jsonb input reads it.
_COPY_FIELDS: dict[type, Callable[[object], str]] = {
    str: _copy_escaped,
    _JsonText: _copy_escaped,
    int: int.__repr__,
    float: float.__repr__,
    bool: lambda value: "t" if value else "f",
    datetime: datetime.isoformat,
    type(None): lambda _: "\\N",
}


def _copy_insert(model: type[Model], names: Sequence[str], rows: list[Sequence]) -> list[int]:
    """Insert ``rows`` (values of the fields ``names``, in that order) into ``model``'s table
    with PostgreSQL ``COPY``: one statement for any number of rows, so the import's cost follows
    the file's size, not its number of responses. ``COPY`` returns no ids, so they are drawn
    from the table's own sequence first; returns them, row by row.

    The rows are written as ``COPY``'s text format directly (:data:`_COPY_FIELDS`; JSON as
    :class:`_JsonText`), one string for all of them. Like ``bulk_create`` this sends no signals
    and calls no ``save()``, and the table's constraints and triggers apply as to any insert.
    """
    meta = model._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in [meta.pk.name, *names])
    statement = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        fields = _COPY_FIELDS
        text = "".join(
            f"{pk}\t{'\t'.join([fields[type(value)](value) for value in row])}\n"
            for pk, row in zip(ids, rows, strict=True)
        )
        # The cursor's copy() is psycopg's own: Django's wrapper turns its errors into Django's
        # (an IntegrityError for a violated constraint).
        with connection.wrap_database_errors, cursor.copy(statement) as copy:
            copy.write(text.encode())
    return ids


def _still_may_answer_errors(plan: ImportPlan, trial: Trial) -> list[RowError]:
    """``response_submit``'s consent check for every planned response at once, inside the
    writing transaction: a participant who withdrew or revoked their consent since the file
    was checked refuses the file."""
    may_answer = set(
        consent_standing()
        .filter(
            participant__trial=trial,
            participant__withdrawn_at__isnull=True,
            scope=ConsentScope.SURVEYS,
        )
        .values_list("participant_id", flat=True)
    )
    return [
        RowError(planned.line, f"{planned.participant.pk} has no active consent to surveys")
        for planned in plan.new
        if planned.participant.pk not in may_answer
    ]


RESPONSE_FIELDS = ("participant", "wave", "answers", "languages", "submitted_at", "timings",
                   "quality", "flagged")  # fmt: skip
SCORE_FIELDS = ("response", "instrument", "code", "dimension", "value")


# A score as stored: its code, its dimension and its value.
_Scored = tuple[str, str, float]


def _computed(plan: ImportPlan) -> tuple[list[dict[str, dict]], list[dict[str, list[_Scored]]]]:
    """Each new response's careless-responding indices and scores per instrument, as
    ``response_submit`` stores them for answers given without page timings
    (``quality_indices``: ``careless_flags`` of the answers in the instrument's item order;
    ``score_fields``), computed for all the responses to one instrument at once by
    :func:`stats.quality.careless_flags_rows` and :func:`surveys.scoring.scores_rows`."""
    quality: list[dict[str, dict]] = [{} for _ in plan.new]
    scored: list[dict[str, list[_Scored]]] = [{} for _ in plan.new]
    asked: dict[str, list[int]] = defaultdict(list)
    definitions: dict[str, InstrumentDefinition] = {}
    for position, planned in enumerate(plan.new):
        for instrument in planned.instruments:
            asked[instrument.code].append(position)
            definitions[instrument.code] = instrument.definition
    for code, positions in asked.items():
        definition = definitions[code]
        answers = operator.itemgetter(*definition.item_codes)
        given = [answers(plan.new[position].answers[code]) for position in positions]
        matrix = np.array(given, dtype=float).reshape(len(positions), len(definition.items))
        for position, indices in zip(positions, careless_flags_rows(matrix), strict=True):
            quality[position][code] = indices.to_dict()
        values = scores_rows(definition, matrix)
        columns = [(s.code, s.dimension, values[s.code].tolist()) for s in definition.scores]
        for number, position in enumerate(positions):
            scored[position][code] = [
                (score, dimension, column[number])
                for score, dimension, column in columns
                if not math.isnan(column[number])
            ]
    return quality, scored


def _response_row(planned: PlannedResponse, quality: dict[str, dict]) -> tuple:
    """What ``response_submit`` stores for these answers given without page timings: the
    answers of each of the wave's instruments and their careless-responding indices."""
    answers = {i.code: planned.answers[i.code] for i in planned.instruments}
    flagged = any(indices["flags"] for indices in quality.values())
    return (planned.participant.pk, planned.wave.pk, _JsonText(json.dumps(answers)),
            _JsonText(json.dumps(planned.languages)), planned.submitted_at, _JsonText("{}"),
            _JsonText(json.dumps(quality)), flagged)  # fmt: skip


def _score_rows(
    planned: PlannedResponse, scored: dict[str, list[_Scored]], response_id: int
) -> list[tuple]:
    """The Score rows of one response, in ``score_fields``'s order."""
    return [
        (response_id, instrument.pk, code, dimension, value)
        for instrument in planned.instruments
        for code, dimension, value in scored[instrument.code]
    ]


def _responses_store(plan: ImportPlan, trial: Trial) -> None:
    """Write the plan's new responses with their scores and quality indices, as
    ``response_submit`` computes them (:func:`_computed`); remove the participants' drafts of
    those waves and flag their safety answers (with their audit events), as ``response_submit``
    does for each."""
    try:
        with transaction.atomic():
            quality, scored = _computed(plan)
            rows = map(_response_row, plan.new, quality)
            ids = _copy_insert(Response, RESPONSE_FIELDS, list(rows))
    except IntegrityError as error:
        # Someone answered on their pages since the file was checked; their answers stay.
        raced = set(
            Response.objects.filter(wave__trial=trial).values_list("participant_id", "wave_id")
        )
        message = "a different response to this wave was stored during the import"
        errors = [
            RowError(planned.line, message)
            for planned in plan.new
            if (planned.participant.pk, planned.wave.pk) in raced
        ]
        raise ImportRejected(errors, numbering=plan.numbering) from error
    scores = [
        row
        for planned, computed, pk in zip(plan.new, scored, ids, strict=True)
        for row in _score_rows(planned, computed, pk)
    ]
    _copy_insert(Score, SCORE_FIELDS, scores)
    answered = {(planned.participant.pk, planned.wave.pk) for planned in plan.new}
    drafts = ResponseDraft.objects.filter(wave__trial=trial).values_list(
        "pk", "participant_id", "wave_id"
    )
    ResponseDraft.objects.filter(
        pk__in=[pk for pk, *key in drafts if tuple(key) in answered]
    ).delete()
    for planned, response_id in zip(plan.new, ids, strict=True):
        triggered = {
            instrument.code: hits
            for instrument in planned.instruments
            if (hits := instrument.definition.safety_answers(planned.answers[instrument.code]))
        }
        if triggered:
            safety_answers_flag(
                participant=planned.participant,
                response_id=response_id,
                wave_index=planned.wave.index,
                triggered=triggered,
            )


@contextmanager
def _objects_so_far_frozen() -> Iterator[None]:
    """The objects that exist now left out of cyclic garbage collection (:func:`gc.freeze`)
    until the block ends. A long file's rows are many small objects, and each collection they
    trigger would otherwise walk the whole process (Django, its models, the numerical stack)
    again; the import's own objects are still collected."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@transaction.atomic
def responses_import(*, trial: Trial, path: Path) -> ImportReport:
    """Import a long responses file all or nothing: when any row is bad, :class:`ImportRejected`
    lists every problem and nothing is written.

    New responses are stored in bulk with the scores and quality indices ``response_submit``
    computes for answers given on the pages (without page timings), the file's ``submitted_at``
    and languages, and the same safety flags and audit events. Responses already stored with the
    same answers are left alone and counted as unchanged.
    """
    with _objects_so_far_frozen():
        plan = import_plan(trial=trial, path=path)
        if plan.errors:
            raise ImportRejected(plan.errors, numbering=plan.numbering)
        if plan.new:
            errors = _still_may_answer_errors(plan, trial)
            if errors:
                raise ImportRejected(errors, numbering=plan.numbering)
            _responses_store(plan, trial)
    return ImportReport(rows=plan.rows, created=len(plan.new), unchanged=plan.unchanged)
