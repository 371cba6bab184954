"""The analysis scaling benchmark's COPY loader (infra.benchmarks.scale_data): its rows read back
as the platform's own (answers that score as the stored scores), and the trial it writes
carries the growth difference it was simulated with."""

import json

import numpy as np
import pytest

from infra.benchmarks import scale_data
from infra.benchmarks.scale_data import (
    _answers_json,
    _digits,
    _rows,
    _spaced,
    _timestamps,
    answers_for_totals,
)
from surveys.registry import shipped_definitions
from surveys.scoring import scores


@pytest.mark.parametrize("code", scale_data.INSTRUMENTS)
def test_answers_for_totals_score_as_the_totals(code):
    definition = shipped_definitions()[code]
    (score,) = definition.scores
    low, high = definition.scale.min, definition.scale.max
    k = len(definition.items)
    rng = np.random.default_rng(3)
    totals = rng.integers(low * k, high * k + 1, 500)
    values = answers_for_totals(totals, k, low, high, rng)
    assert values.min() >= low and values.max() <= high
    for total, row in zip(totals, values, strict=True):
        answers = dict(zip(definition.item_codes, row.tolist(), strict=True))
        assert scores(definition, answers) == {score.code: total * score.multiplier}
    # The answers spread about the mean item value, as analytics.simulate's do.
    assert 0.3 < np.std(values - totals[:, None] / k) < 1.5


def test_answers_for_totals_refuses_an_impossible_total():
    with pytest.raises(ValueError):
        answers_for_totals(np.array([36]), 5, 1, 7, np.random.default_rng(0))


def test_fixed_width_columns_are_copy_text():
    assert _digits(np.array([7, 120]), 4).tobytes() == b"00070120"
    assert _digits(np.array([5, 123456789])).tobytes() == b"000000005123456789"
    assert _spaced(np.array([3, 10, 0]), 2).tobytes() == b" 310 0"
    assert _timestamps(np.array([0, 86400 + 61])).tobytes() == (
        b"1970-01-01T00:00:00+001970-01-02T00:01:01+00"
    )
    text = _rows(2, [_digits(np.array([1, 2]), 2), b"x", _spaced(np.array([5, 10]), 2)]).tobytes()
    assert text == b"01\tx\t 5\n02\tx\t10\n"


def test_answers_json_is_the_answers_by_instrument_and_item():
    definitions = shipped_definitions()
    models = [
        scale_data.ScoreModel(
            instrument=code,
            instrument_id=1,
            code=code,
            dimension="d",
            items=tuple(definitions[code].item_codes),
            reverse=(False,) * len(definitions[code].items),
            low=definitions[code].scale.min,
            high=definitions[code].scale.max,
            multiplier=1.0,
        )
        for code in ("who5", "swls")
    ]
    values = [np.array([[0, 1, 2, 3, 5], [5, 5, 5, 5, 5]]), np.array([[1, 7, 2, 3, 4]] * 2)]
    rows = _rows(2, [_answers_json(models, values)]).tobytes().splitlines()
    assert len({len(row) for row in rows}) == 1
    first = json.loads(rows[0])
    assert first == {
        "who5": dict(zip(models[0].items, [0, 1, 2, 3, 5], strict=True)),
        "swls": dict(zip(models[1].items, [1, 7, 2, 3, 4], strict=True)),
    }


@pytest.mark.django_db
def test_loaded_trial_reads_back_as_the_platform_stores_it(monkeypatch):
    from analytics.selectors import growth_statistics, trial_scores_frame
    from stats.growth import mixedlm_growth_from_statistics
    from surveys.models import Response, Score
    from trials.models import Allocation, ConsentGrant

    monkeypatch.setattr(scale_data, "CHUNK", 300)  # several chunks
    participants = 1_000
    report = scale_data.trial_load(participants=participants, defer_indexes=False, log=print)
    assert Allocation.objects.count() == participants
    assert ConsentGrant.objects.count() == 2 * participants
    assert Response.objects.count() == report.responses
    assert Score.objects.count() == report.scores == 5 * report.responses
    # Baseline for everyone, then 15% skips and 20% drop-out by the final wave.
    frame = trial_scores_frame(report_trial())
    per_wave = frame[frame.outcome == "who5"].groupby("wave").participant.nunique()
    assert per_wave[0] == participants
    assert 0.55 < per_wave[19] / participants < 0.75
    definitions = shipped_definitions()
    for response in Response.objects.prefetch_related("scores__instrument").order_by("?")[:50]:
        for score in response.scores.all():
            code = score.instrument.code
            assert scores(definitions[code], response.answers[code]) == {score.code: score.value}
    # The platform's growth model recovers the simulated growth difference of every score.
    arm_names = ("a", "b")
    for code, truth in report.truth.items():
        growth = growth_statistics(report_trial(), code)
        arm = np.array([arm_names.index(a) for a in growth.arms])
        (contrast,) = mixedlm_growth_from_statistics(arm, growth.statistics, arm_names)
        assert abs(contrast.estimate - truth) < 4 * contrast.std_error, code


def report_trial():
    from trials.models import Trial

    return Trial.objects.get(slug=scale_data.SLUG)


@pytest.mark.django_db
def test_indexes_deferred_restores_every_index_and_constraint():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE deferred_parent (id int PRIMARY KEY, code text UNIQUE);"
            "CREATE TEMP TABLE deferred_child (id int PRIMARY KEY, "
            "parent_id int REFERENCES deferred_parent (id), value int);"
            "CREATE INDEX deferred_child_value ON deferred_child (value);"
        )

        def catalogue():
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid IN "
                "('deferred_parent'::regclass, 'deferred_child'::regclass) ORDER BY 1"
            )
            constraints = cursor.fetchall()
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                "('deferred_parent', 'deferred_child') ORDER BY 1"
            )
            return constraints, cursor.fetchall()

        before = catalogue()
        with scale_data.indexes_deferred(cursor.cursor, ("deferred_parent", "deferred_child")):
            assert catalogue() == ([], [])
            cursor.execute("INSERT INTO deferred_parent VALUES (1, 'a')")
            cursor.execute("INSERT INTO deferred_child VALUES (1, 1, 5)")
        assert catalogue() == before
