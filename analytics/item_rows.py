"""The item answers behind the ordinal sensitivity model, streamed from PostgreSQL.

``trial_item_chunks`` yields the rows of ``analytics.selectors.trial_item_frame`` (one per
participant × wave × answered item, reverse-keyed items mirrored as
``surveys.scoring.keyed_values`` does, in the same order), restricted to some items and waves, a
chunk at a time from a server-side cursor; ``stats.ordinal.ordinal_data_from_chunks`` turns them
into the model's arrays, so the trial's answers never exist as one pandas frame.
"""

from collections.abc import Iterator

import pandas as pd
from django.db import connection

from surveys.models import Instrument, Response, Score, Wave
from trials.models import Allocation, Arm, Participant, Trial

COLUMNS = ["participant", "arm", "wave", "item", "value"]


def trial_item_chunks(
    trial: Trial,
    instrument: Instrument,
    *,
    items: list[str] | None = None,
    last_wave: int | None = None,
    chunk: int = 200_000,
) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk`` rows with the columns ``participant, arm, wave, item,
    value``: every answered item of ``items`` (default: all the instrument's items) at waves up
    to index ``last_wave``, of the responses that have a score of ``instrument``, ordered by
    participant, wave and the instrument's item order."""
    definition = instrument.definition
    wanted = set(definition.item_codes if items is None else items)
    keyed = [item for item in definition.items if item.code in wanted]
    mirror = [sum(definition.answer_range(item)) for item in keyed]
    only_waves = "" if last_wave is None else "AND w.index <= %s"
    sql = f"""
        SELECT r.participant_id, arm.slug, w.index, it.code,
               CASE WHEN it.reverse THEN it.mirror - x.value ELSE x.value END
        FROM {Response._meta.db_table} r
        JOIN {Wave._meta.db_table} w ON w.id = r.wave_id
        JOIN {Participant._meta.db_table} p ON p.id = r.participant_id
        LEFT JOIN {Allocation._meta.db_table} a ON a.participant_id = p.id
        LEFT JOIN {Arm._meta.db_table} arm ON arm.id = a.arm_id
        CROSS JOIN LATERAL unnest(%s::text[], %s::boolean[], %s::integer[])
            WITH ORDINALITY AS it(code, reverse, mirror, position)
        CROSS JOIN LATERAL (SELECT (r.answers -> %s ->> it.code)::numeric AS value) x
        WHERE p.trial_id = %s AND x.value IS NOT NULL {only_waves}
          AND EXISTS (
              SELECT 1 FROM {Score._meta.db_table} s
              WHERE s.response_id = r.id AND s.instrument_id = %s
          )
        ORDER BY r.participant_id, w.index, it.position
    """
    params = [
        [item.code for item in keyed],
        [item.reverse for item in keyed],
        mirror,
        instrument.code,
        trial.pk,
        *([] if last_wave is None else [last_wave]),
        instrument.pk,
    ]
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk):
            frame = pd.DataFrame.from_records(rows, columns=COLUMNS)
            frame["value"] = frame["value"].astype(float)
            yield frame
