"""Reads for the psychometrics of a score's items, computed in PostgreSQL so that no row per
respondent leaves the database (docs/architecture.md, "Survey quality").

α, ω, the one-factor CFA and the multi-group invariance tests depend on the complete rows of a
score's items only through each group's count, :math:`\\sum x_j` and :math:`\\sum x_jx_k`
(``stats.psychometrics.ItemMoments``). One GROUP BY per score computes them per wave, per wave
and language version, and per wave and community, from the keyed answers in
``Response.answers``: reverse-keyed items mirrored within their answers' range as
``surveys.scoring.keyed_values`` does. The sums are of doubles, which add whole numbers exactly
while every partial sum stays below 2⁵³ (answers up to 100 over 10⁹ rows stay far below), and
``ItemMoments.from_sums`` takes them as exact fractions, so the moments of whole-number answers
are exact before they are rounded to floats once (numeric sums would be as exact, and slower).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

from django.db import connection

from stats.psychometrics import ItemMoments
from surveys.instrument import InstrumentDefinition
from surveys.models import Instrument, Response, Wave
from surveys.scoring import keyed_values
from trials.models import Community, Participant, Trial


@dataclass(frozen=True)
class GroupMoments:
    """One group's responses: how many there are (complete or not), the moments of the complete
    ones, and the lowest id among the complete ones (their order of first appearance)."""

    rows: int
    moments: ItemMoments
    first: int | None


@dataclass(frozen=True)
class ScoreItemMoments:
    """The moments of one score's items, keyed by wave index, (wave, language) and
    (wave, community slug); a participant with no community is in ``"none"``."""

    items: list[str]
    waves: dict[int, GroupMoments] = field(default_factory=dict)
    languages: dict[tuple[int, str], GroupMoments] = field(default_factory=dict)
    communities: dict[tuple[int, str], GroupMoments] = field(default_factory=dict)


def _keyed_columns(
    definition: InstrumentDefinition, items: list[str]
) -> tuple[list[str], list[object]]:
    """SQL expressions (and their parameters) for each item's keyed value: NULL when it was not
    answered with a number, ``low + high - value`` for a reverse-keyed item."""
    expressions, params = [], []
    for code in items:
        item = definition.item(code)
        value = (
            "CASE WHEN jsonb_typeof(r.answers -> %s -> %s) = 'number' "
            "THEN (r.answers -> %s ->> %s)::float8 END"
        )
        params += [definition.code, code, definition.code, code]
        if item.reverse:
            low, high = definition.answer_range(item)
            value = f"(%s - {value})"
            params = [*params[:-4], low + high, *params[-4:]]
        expressions.append(value)
    return expressions, params


def _responses_sql(
    instrument: Instrument, items: list[str], wave: int | None = None
) -> tuple[str, list[object]]:
    """Each response of the trial to a wave that asks ``instrument`` (only wave index ``wave``
    if given): id, participant, wave index, language version, community, and ``x0…`` the keyed
    items, with ``complete``."""
    expressions, params = _keyed_columns(instrument.definition, items)
    keyed = ", ".join(f"{e} AS x{j}" for j, e in enumerate(expressions))
    only_wave = "" if wave is None else "AND w.index = %s"
    complete = " AND ".join(f"x{j} IS NOT NULL" for j in range(len(items))) or "TRUE"
    sql = f"""
        SELECT k.*, ({complete}) AS complete FROM (
            SELECT r.id, r.participant_id AS participant, w.index AS wave,
                   CASE WHEN jsonb_exists(r.languages, %s) THEN r.languages ->> %s
                        ELSE 'en' END AS language,
                   COALESCE(NULLIF(c.slug, ''), 'none') AS community,
                   {keyed}
            FROM {Response._meta.db_table} r
            JOIN {Wave._meta.db_table} w ON w.id = r.wave_id
            JOIN {Wave.instruments.through._meta.db_table} wi ON wi.wave_id = w.id
            JOIN {Participant._meta.db_table} p ON p.id = r.participant_id
            LEFT JOIN {Community._meta.db_table} c ON c.id = p.community_id
            WHERE w.trial_id = %s AND wi.instrument_id = %s {only_wave}
            -- A fence: without it the planner inlines each keyed value into every aggregate
            -- that uses it and extracts it from the JSON again for each one.
            OFFSET 0
        ) k
        OFFSET 0
    """
    return sql, [instrument.code, instrument.code, *params]


def score_item_moments(
    trial: Trial, instrument: Instrument, items: list[str], *, wave: int | None = None
) -> ScoreItemMoments:
    """Per wave, per wave and language, per wave and community: the number of responses to
    ``instrument`` and the moments of the complete rows of ``items`` (keyed), in one query;
    only at wave index ``wave`` if given."""
    responses, params = _responses_sql(instrument, items, wave)
    p = len(items)
    pairs = [(j, k) for j in range(p) for k in range(j, p)]
    sums = ", ".join(f"SUM(x{j}) FILTER (WHERE complete)" for j in range(p))
    products = ", ".join(f"SUM(x{j} * x{k}) FILTER (WHERE complete)" for j, k in pairs)
    # One cell per wave, language and community (a handful of them), then the
    # three groupings summed here: counts, sums and cross products all add over cells.
    sql = f"""
        SELECT wave, language, community, COUNT(*), COUNT(*) FILTER (WHERE complete),
               MIN(id) FILTER (WHERE complete)
               {", " + sums if p else ""} {", " + products if p else ""}
        FROM ({responses}) keyed
        GROUP BY wave, language, community
    """
    totals: dict[tuple, list] = {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                sql, [*params, trial.pk, instrument.pk, *([] if wave is None else [wave])]
            )
            cells = cursor.fetchall()
    else:
        cells = _cells_in_python(trial, instrument, items, wave)
    for row in cells:
        at, language, community, rows, n, first = row[:6]
        values = [Fraction(v or 0) for v in row[6:]]
        keys = [("wave", at), ("community", at, community)]
        if language is not None:  # a language recorded as null names no group
            keys.append(("language", at, language))
        for key in keys:
            total = totals.setdefault(key, [0, 0, None, [Fraction(0)] * len(values)])
            total[0] += rows
            total[1] += n
            if first is not None and (total[2] is None or first < total[2]):
                total[2] = first
            total[3] = [a + b for a, b in zip(total[3], values, strict=True)]
    found = ScoreItemMoments(items=list(items))
    for key, (rows, n, first, values) in totals.items():
        cross = [[Fraction(0)] * p for _ in range(p)]
        for (j, k), value in zip(pairs, values[p:], strict=True):
            cross[j][k] = cross[k][j] = value
        group = GroupMoments(
            rows=rows, moments=ItemMoments.from_sums(n, values[:p], cross), first=first
        )
        if key[0] == "wave":
            found.waves[key[1]] = group
        elif key[0] == "language":
            found.languages[key[1:]] = group
        else:
            found.communities[key[1:]] = group
    return found


def score_values(
    trial: Trial, instrument: Instrument, items: list[str], *, chunk: int = 100_000
) -> Iterator[list[tuple[str, int, float]]]:
    """Lists of at most ``chunk`` rows (participant, wave index, mean of the keyed ``items``),
    one row per response whose items are all answered, in the order the responses were stored,
    read from a server-side cursor."""
    responses, params = _responses_sql(instrument, items)
    total = " + ".join(f"x{j}" for j in range(len(items))) or "0"
    sql = f"""
        SELECT participant, wave, ({total})::float8 / %s FROM ({responses}) keyed
        WHERE complete ORDER BY id
    """
    if connection.vendor != "postgresql":
        rows = [
            (who, at, sum(x) / len(items))
            for _, who, at, _, _, x, complete in _rows_in_python(trial, instrument, items)
            if complete
        ]
        for start in range(0, len(rows), chunk):
            yield rows[start : start + chunk]
        return
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, [max(len(items), 1), *params, trial.pk, instrument.pk])
        while rows := cursor.fetchmany(chunk):
            yield rows


# SQLite (the demo's database) has no jsonb: the same figures from each response in Python.


def _rows_in_python(trial: Trial, instrument: Instrument, items: list[str], wave=None):
    """(id, participant, wave, language, community, keyed items, complete) per response, as
    ``_responses_sql`` selects them."""
    definition = instrument.definition
    responses = Response.objects.filter(wave__trial=trial, wave__instruments=instrument)
    if wave is not None:
        responses = responses.filter(wave__index=wave)
    for row in responses.order_by("id").values_list(
        "id",
        "participant_id",
        "wave__index",
        "languages",
        "participant__community__slug",
        "answers",
    ):
        pk, who, at, languages, community, answers = row
        keyed = keyed_values(definition, answers.get(instrument.code, {}))
        x = [keyed.get(item) for item in items]
        language = languages.get(instrument.code, "en")
        yield pk, who, at, language, community or "none", x, None not in x


def _cells_in_python(trial: Trial, instrument: Instrument, items: list[str], wave) -> list:
    """The rows of ``score_item_moments``' GROUP BY, computed from each response."""
    p = len(items)
    pairs = [(j, k) for j in range(p) for k in range(j, p)]
    cells: dict[tuple, list] = {}
    for pk, _, at, language, community, x, complete in _rows_in_python(
        trial, instrument, items, wave
    ):
        cell = cells.setdefault((at, language, community), [0, 0, None, [0] * (p + len(pairs))])
        cell[0] += 1
        if complete:
            cell[1] += 1
            cell[2] = pk if cell[2] is None else min(cell[2], pk)
            products = [x[j] * x[k] for j, k in pairs]
            cell[3] = [a + b for a, b in zip(cell[3], [*x, *products], strict=True)]
    return [(*key, rows, n, first, *sums) for key, (rows, n, first, sums) in cells.items()]
