"""The one CSV writer: OWASP's formula rule on text cells only, numbers as numbers, and files
that ``csv.reader`` reads back to what was written."""

import csv
import io
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trials.spreadsheet import csv_file, csv_text, neutralised, unneutralised

FORMULA_STARTS = "=+-@\t\r"
TEXT = st.text(st.characters(exclude_categories=("Cs",)))


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=1", "''=1"),  # so that reading back removes exactly the added apostrophe
        ("'plain", "'plain"),
        ("a=1", "a=1"),
        ("", ""),
        ("Grüße", "Grüße"),
    ],
)
def test_text_that_could_run_as_a_formula_gets_one_apostrophe(text, written):
    assert neutralised(text) == written
    assert unneutralised(written) == text


@given(TEXT)
def test_neutralising_is_safe_and_undone_exactly(text):
    written = neutralised(text)
    assert written[:1] not in FORMULA_STARTS or not written
    assert unneutralised(written) == text


CELLS = st.one_of(TEXT, st.integers(), st.floats(allow_nan=False))


def _as_read(cell: object) -> str:
    """What ``csv.reader`` gives back for a cell: text neutralised, numbers as Python prints
    them (floats by ``repr``, as the ``csv`` module writes them)."""
    if isinstance(cell, str):
        return neutralised(cell)
    return repr(cell) if isinstance(cell, float) else str(cell)


@given(st.lists(st.lists(CELLS, min_size=2, max_size=2), max_size=5))
def test_any_rows_read_back_with_csv_reader(rows):
    text = csv_text(["a", "b"], rows)
    read = list(csv.reader(io.StringIO(text, newline="")))
    assert read == [["a", "b"], *([_as_read(cell) for cell in row] for row in rows)]


def test_numbers_stay_numbers_and_the_rest_is_text():
    text = csv_text(
        ["n"],
        [
            [-0.5],
            [np.float64(-2.5)],
            [np.int64(-3)],
            [Decimal("-1.25")],
            [None],
            [float("nan")],
            [True],
            ["-0.5"],
        ],
    )
    assert text.split("\r\n") == [
        '"n"',
        "-0.5",
        "-2.5",
        "-3",
        "-1.25",
        '""',
        '""',
        '"True"',
        '"\'-0.5"',
        "",
    ]


def test_a_file_is_utf_8_and_a_row_of_the_wrong_width_is_refused(tmp_path):
    path = tmp_path / "out.csv"
    assert csv_file(path, ["a", "b"], [["日本", 1], ["x,y", -2]]) == 2
    assert path.read_bytes() == '"a","b"\r\n"日本",1\r\n"x,y",-2\r\n'.encode()
    with pytest.raises(ValueError, match="Row 2 has 1 cells; the header has 2"):
        csv_text(["a", "b"], [["x", 1], ["y"]])
