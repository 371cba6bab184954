"""The one CSV writer for every file and download the platform produces (exports, dashboard
downloads), safe to open in a spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and some
strip a leading tab or carriage return first, so text from a participant, a licensed pack or a
coordinator could become ``=HYPERLINK(…)`` in an analyst's spreadsheet (CSV injection). Following
OWASP's rule, a *text* cell that starts with one of those characters is written with a leading
apostrophe, which spreadsheets show as text and do not display. Numbers are written as numbers,
so an estimate of -0.5 stays a number; text cells are quoted (``QUOTE_NONNUMERIC``, as R's
``write.csv`` does), which keeps the difference visible in the file.

Reading back: :func:`unneutralised` removes exactly the apostrophe :func:`neutralised` added.
Text that itself starts with apostrophes before one of those characters gets one more, so the
two are inverse for every string.

Pure Python: no Django, so every app (and any tool) can use it.
"""

import csv
import io
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TextIO

# What a spreadsheet may read as the start of a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = "[" + re.escape("".join(FORMULA_STARTS)) + "]"
_NEUTRALISE = re.compile("'*" + _FORMULA_START)
_NEUTRALISED = re.compile("'+" + _FORMULA_START)

Cell = str | int | float | Decimal | None


def neutralised(text: str) -> str:
    """``text`` with a leading apostrophe when a spreadsheet could run it as a formula (or when
    it already starts with apostrophes before such a character, so the rule stays reversible)."""
    return f"'{text}" if _NEUTRALISE.match(text) else text


def unneutralised(text: str) -> str:
    """The text :func:`neutralised` was given: one leading apostrophe fewer when apostrophes
    precede a formula character, anything else unchanged."""
    return text[1:] if _NEUTRALISED.match(text) else text


def cell(value: object) -> Cell:
    """What the writer puts in one cell.

    Numbers (Python's or NumPy's integers and reals, ``Decimal``) stay numbers; NaN is an empty
    cell (missing), as pandas and R write it. ``None`` is empty. Anything else (booleans, dates,
    text) is written as its text, neutralised.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return None if value.is_nan() else value
    if isinstance(value, numbers.Integral):
        return int(value)  # NumPy's integers are not ``int``: the writer would quote them
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else number
    return neutralised(str(value))


def write_rows(handle: TextIO, header: Sequence[str], rows: Iterable[Iterable[object]]) -> int:
    """Write ``header`` and ``rows`` as spreadsheet-safe CSV to an open text ``handle`` (opened
    with ``newline=""``); returns the number of data rows."""
    writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([cell(name) for name in header])
    count = 0
    for row in rows:
        cells = [cell(value) for value in row]
        if len(cells) != len(header):
            raise ValueError(
                f"Row {count + 1} has {len(cells)} cells; the header has {len(header)}."
            )
        writer.writerow(cells)
        count += 1
    return count


def csv_text(header: Sequence[str], rows: Iterable[Iterable[object]]) -> str:
    """The CSV as a string, for a download."""
    buffer = io.StringIO(newline="")
    write_rows(buffer, header, rows)
    return buffer.getvalue()


def csv_file(path: Path, header: Sequence[str], rows: Iterable[Iterable[object]]) -> int:
    """Write the CSV to ``path`` (UTF-8); returns the number of data rows."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        return write_rows(handle, header, rows)
