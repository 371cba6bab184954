"""Generated hostile input (Hypothesis) against the participant pages, the import of response
files and the assignment API: every input gets an answer below 500 and no traceback, nothing
invalid is stored, and a participant has at most one response per wave."""

import csv
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core import signing
from django.db.models import Count
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from surveys.exchange import RESPONSE_COLUMNS, ImportRejected, responses_frame, responses_import
from surveys.links import survey_path
from surveys.models import Response, ResponseDraft, Score
from surveys.scoring import validate_answers
from trials.models import ConsentDocument, Participant, Trial
from trials.services import ASSIGNMENT_TOKEN_SALT, assignment_token, participant_enrol
from trials.spreadsheet import csv_file

pytestmark = pytest.mark.django_db

# Examples share one trial (built once per test), so each test stays within seconds.
HOSTILE_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Any character a form, a file or a URL can carry (lone surrogates cannot be encoded at all).
TEXT = st.characters(exclude_categories=("Cs",))
NO_NUL = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
HOSTILE = [
    '=HYPERLINK("http://evil.example","x")',
    "+1",
    "-2+3",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "'=1",
    'a "b", c',
    "two\nlines",
    "Grüße ✓",
    "\x00",
    "<script>",
    "9" * 5000,  # beyond Python's 4,300-digit int-parsing limit
    "NaN",
    "Infinity",
    "٣",
    "1_0",
    "3.0",
    "",
    " ",
]
SWLS = [f"swls:swls_{n}" for n in range(1, 6)]
WHO5 = [f"who5:who5_{n}" for n in range(1, 6)]
_emails = itertools.count()


def _numbers(value: object) -> Iterator[object]:
    """Every leaf of a stored JSON document."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    else:
        yield value


def _assert_nothing_wrong_stored(trial: Trial, participants=None) -> None:
    """Stored responses are complete and on the scale, drafts hold only valid answers, every
    timing is a finite number of seconds, and no participant has two responses to a wave."""
    responses = Response.objects.filter(wave__trial=trial).prefetch_related("wave__instruments")
    drafts = ResponseDraft.objects.filter(wave__trial=trial).prefetch_related("wave__instruments")
    if participants is not None:
        responses, drafts = (
            responses.filter(participant__in=participants),
            drafts.filter(participant__in=participants),
        )
    for record, complete in [*((r, True) for r in responses), *((d, False) for d in drafts)]:
        instruments = {i.code: i.definition for i in record.wave.instruments.all()}
        assert set(record.answers) <= set(instruments)
        for code, definition in instruments.items():
            given = record.answers.get(code, {})
            assert validate_answers(definition, given, complete=complete) == {}, record.answers
        for seconds in _numbers(record.timings):
            assert isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0
    twice = (
        Response.objects.filter(wave__trial=trial)
        .values("participant", "wave")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not twice.exists()


# (a) The participant pages ------------------------------------------------------------------

ANSWERS = st.one_of(
    st.integers(-3, 12).map(str), st.sampled_from(HOSTILE), st.text(TEXT, max_size=8)
)
TIMING_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.booleans(),
    st.none(),
    st.text(TEXT, max_size=5),
    st.lists(st.integers(), max_size=2),
)
ITEM_SECONDS = st.one_of(
    st.dictionaries(
        st.one_of(
            st.sampled_from([f.split(":")[1] for f in SWLS + WHO5]), st.text(TEXT, max_size=8)
        ),
        TIMING_VALUES,
        max_size=6,
    ).map(json.dumps),  # json.dumps writes NaN and Infinity, as a tampered script could
    st.sampled_from(
        [
            "[" * 100_000 + "]" * 100_000,
            "[" * 4_900 + "]" * 4_900,
            '{"swls_1": 1' + "0" * 5000 + "}",
            '{"swls_1": NaN}',
            '{"who5_1": -Infinity}',
        ]
    ),
    st.text(TEXT, max_size=40),
)


@st.composite
def survey_posts(draw) -> dict[str, str]:
    """One form as a browser or an attacker might post it to a survey page."""
    form: dict[str, str] = {}
    for field in SWLS + WHO5:
        if draw(st.booleans()):
            form[field] = draw(ANSWERS)
    form["page"] = draw(st.one_of(st.sampled_from(["0", "1"]), st.text(TEXT, max_size=6)))
    form["action"] = draw(
        st.one_of(st.sampled_from(["next", "finish", "save", "back"]), st.text(TEXT, max_size=6))
    )
    form["item_seconds"] = draw(ITEM_SECONDS)
    form["shown"] = draw(st.one_of(st.just("<served>"), st.text(TEXT, max_size=20)))
    if draw(st.integers(0, 9)) == 0:
        form["language"] = draw(st.one_of(st.sampled_from(["de", "en"]), st.text(TEXT, max_size=6)))
    extra = draw(
        st.dictionaries(
            st.text(TEXT, min_size=1, max_size=12), st.text(TEXT, max_size=12), max_size=3
        )
    )
    return {**extra, **form}


def _served(client, link: str, page: int) -> str:
    html = client.get(f"{link}?page={page}").content.decode()
    marker = 'name="shown" value="'
    start = html.find(marker)
    return html[start + len(marker) : html.find('"', start + len(marker))] if start >= 0 else ""


def _post(client, link: str, form: dict[str, str]):
    if form.get("shown") == "<served>":
        form = {**form, "shown": _served(client, link, 0)}
    response = client.post(link, form)
    assert response.status_code < 500, form
    return response


@HOSTILE_SETTINGS
@given(posts=st.lists(survey_posts(), min_size=1, max_size=4), hostile_extra=survey_posts())
def test_survey_posts_never_fail_and_store_nothing_wrong(client, small_trial, posts, hostile_extra):
    participant = participant_enrol(
        trial=small_trial,
        email=f"fuzz{next(_emails)}@example.org",
        consent_document=ConsentDocument.objects.get(trial=small_trial),
        scopes=["surveys"],
    )
    wave = small_trial.waves.get(index=0)
    link = survey_path(participant.pk, wave.pk)
    for form in posts:
        _post(client, link, form)
        assert client.get(link).status_code < 500
    _assert_nothing_wrong_stored(small_trial, [participant])

    # Whatever came before, valid answers (with hostile extras) complete the wave exactly once.
    extras = {k: v for k, v in hostile_extra.items() if k not in {"page", "action", "language"}}
    extras.pop("shown", None)
    for _ in range(2):  # the second finish is a double submission
        for page, fields, action in [(0, SWLS, "next"), (1, WHO5, "finish")]:
            shown = _served(client, link, page)
            form = {**extras, **dict.fromkeys(fields, "3"), "page": str(page), "action": action}
            _post(client, link, {**form, "shown": shown})
    assert Response.objects.filter(participant=participant, wave=wave).count() == 1
    _assert_nothing_wrong_stored(small_trial, [participant])


@HOSTILE_SETTINGS
@given(token=st.text(TEXT, min_size=1, max_size=200), method=st.sampled_from(["get", "post"]))
def test_any_survey_link_gets_a_page_not_an_error(client, small_trial, token, method):
    for path in (f"/s/{quote(token, safe='')}/", f"/s/my-data/{quote(token, safe='')}/"):
        assert getattr(client, method)(path).status_code < 500


# (b) Import files ---------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(
        [
            "-1",
            "99",
            "2999-01-01T00:00:00+00:00",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-14:00",
            "2026-01-01",
            "7",
            "de",
        ]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.text(TEXT, max_size=30),
    st.text(TEXT, max_size=10).map(lambda text: "'" + text),
)


@pytest.fixture
def open_responses(small_trial) -> dict[tuple[str, int], list[dict[str, str]]]:
    """The rows of four deleted wave-2 responses, as the export writes them: valid files to
    import and to spoil."""
    frame = responses_frame(small_trial)
    chosen = list(frame[frame.wave == 2].participant.drop_duplicates()[:4])
    rows = frame[frame.participant.isin(chosen) & (frame.wave == 2)]
    rows = rows.assign(
        submitted_at=rows.submitted_at.map(lambda t: t.isoformat()),
        wave=rows.wave.astype(str),
        value=rows.value.astype(str),
    )
    Response.objects.filter(participant__in=chosen, wave__index=2).delete()
    bases: dict[tuple[str, int], list[dict[str, str]]] = {}
    for row in rows.to_dict("records"):
        bases.setdefault((row["participant"], 2), []).append(row)
    return bases


@st.composite
def import_files(draw, bases) -> tuple[list[dict[str, str]], list[tuple[str, int]], int, bool]:
    """Rows of one to two responses with up to three cells spoilt, maybe a row lost or added;
    returns the rows, their responses, how many changes were made and whether the platform's
    writer (which neutralises formulas) writes the file."""
    keys = draw(st.lists(st.sampled_from(sorted(bases)), min_size=1, max_size=2, unique=True))
    rows = [dict(row) for key in keys for row in bases[key]]
    spoilt = draw(st.integers(0, 3))
    for _ in range(spoilt):
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][draw(st.sampled_from(RESPONSE_COLUMNS))] = draw(CELLS)
    if draw(st.integers(0, 4)) == 0:
        rows.pop(draw(st.integers(0, len(rows) - 1)))
        spoilt += 1
    if draw(st.integers(0, 4)) == 0:
        rows.append(draw(st.fixed_dictionaries({c: CELLS for c in RESPONSE_COLUMNS})))
        spoilt += 1
    return draw(st.permutations(rows)), keys, spoilt, draw(st.booleans())


def _answers(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    answers: dict[str, dict[str, int]] = {}
    for row in rows:
        answers.setdefault(row["instrument"], {})[row["item"]] = int(row["value"])
    return answers


def _fingerprint(trial: Trial) -> tuple:
    responses = Response.objects.filter(wave__trial=trial)
    stored = responses.order_by("participant", "wave").values_list("participant", "wave", "answers")
    return list(stored), Score.objects.filter(response__wave__trial=trial).count()


def _write(path: Path, rows: list[dict[str, str]], *, through_writer: bool) -> None:
    if through_writer:
        csv_file(path, RESPONSE_COLUMNS, ([row[c] for c in RESPONSE_COLUMNS] for row in rows))
        return
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESPONSE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@HOSTILE_SETTINGS
@given(data=st.data())
def test_import_rows_are_imported_whole_or_refused_with_line_errors(
    small_trial, open_responses, tmp_path, data
):
    rows, keys, spoilt, through_writer = data.draw(import_files(open_responses))
    path = tmp_path / "fuzz.csv"
    _write(path, rows, through_writer=through_writer)
    before = _fingerprint(small_trial)
    # An earlier example may have imported a spoilt but valid version of a response, which
    # this file's untouched rows may then not change.
    stored = dict(
        Response.objects.filter(wave__trial=small_trial, wave__index=2).values_list(
            "participant", "answers"
        )
    )
    untouched = not spoilt and all(
        stored.get(participant) in (None, _answers(open_responses[(participant, wave)]))
        for participant, wave in keys
    )
    try:
        report = responses_import(trial=small_trial, path=path)
    except ImportRejected as rejected:
        event("refused")
        assert not untouched, rejected.messages  # an untouched export is always accepted
        assert _fingerprint(small_trial) == before  # all or nothing
        for error in rejected.errors:
            # Physical lines: a quoted cell may hold line breaks.
            assert error.line is None or error.line >= 1
            assert len(error.message) < 1000
    else:
        event(f"imported ({report.created} new)")
        assert report.rows == len(rows)
    _assert_nothing_wrong_stored(small_trial)


@HOSTILE_SETTINGS
@given(content=st.one_of(st.binary(max_size=300), st.text(TEXT, max_size=300).map(str.encode)))
def test_any_bytes_as_an_import_file_are_refused_with_a_reason(small_trial, tmp_path, content):
    path = tmp_path / "junk.csv"
    path.write_bytes(content)
    before = _fingerprint(small_trial)
    with pytest.raises(ImportRejected) as rejected:
        responses_import(trial=small_trial, path=path)
    assert rejected.value.errors and _fingerprint(small_trial) == before


# (c) The assignment API ---------------------------------------------------------------------


def _assignment(client, token: str):
    return client.get(f"/api/v1/assignment/{quote(token, safe='')}/")


@pytest.mark.parametrize("token", ["\x00", "x" * 5000, "..", ":", "a:b:c", " ", "%00", "é:ü"])
def test_assignment_api_answers_odd_tokens_with_404(client, db, token):
    assert _assignment(client, token).status_code == 404


@st.composite
def spoilt_tokens(draw, tokens: list[str]) -> str:
    """A real token cut, extended, with a character changed, or with another's signature."""
    token = draw(st.sampled_from(tokens))
    how = draw(st.sampled_from(["cut", "extend", "change", "splice"]))
    if how == "cut":
        return token[: draw(st.integers(0, len(token) - 1))] or "x"
    if how == "extend":
        return token + draw(st.text(TEXT, min_size=1, max_size=10))
    if how == "change":
        at = draw(st.integers(0, len(token) - 1))
        replacement = draw(TEXT.filter(lambda c: c != token[at]))
        return token[:at] + replacement + token[at + 1 :]
    other = draw(st.sampled_from(tokens))
    return token.split(":")[0] + ":" + other.split(":", 1)[-1]


@HOSTILE_SETTINGS
@given(data=st.data())
def test_assignment_api_answers_any_token_without_an_error(client, small_trial, data):
    tokens = [assignment_token(p) for p in Participant.objects.filter(trial=small_trial)[:5]]
    token = data.draw(st.one_of(st.text(TEXT, min_size=1, max_size=300), spoilt_tokens(tokens)))
    response = _assignment(client, token)
    assert response.status_code < 500, token
    assert response.status_code == (200 if token in tokens else 404)
    if response.status_code == 200:
        assert response.json()["trial"] == small_trial.slug


@HOSTILE_SETTINGS
@given(
    payload=st.recursive(
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.floats(), st.text(NO_NUL, max_size=40)
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(TEXT, max_size=5), children, max_size=3),
        ),
        max_leaves=5,
    )
)
@example(payload=["\x00"])
@example(payload=10**30)
@example(payload="x" * 5000)
def test_assignment_api_answers_a_validly_signed_foreign_payload_without_an_error(
    client, small_trial, payload
):
    """Only the server can sign, so these need its key; still, a token is read as data."""
    token = signing.dumps(payload, salt=ASSIGNMENT_TOKEN_SALT, compress=False)
    assert _assignment(client, token).status_code == 404


def test_assignment_api_answers_a_signed_payload_with_nul_with_404(client, db):
    token = signing.dumps("\x00", salt=ASSIGNMENT_TOKEN_SALT, compress=False)
    assert _assignment(client, token).status_code == 404
