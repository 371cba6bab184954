"""Reliable deteriorations found by PostgreSQL's aggregates (analytics.safety_checks) are those
the row-by-row computation finds: every score of the two waves in pandas, α from the baseline
item answers, and the Jacobson–Truax index of each participant; SQLite's path (the demo's) finds
the same."""

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from analytics.results import Outcome
from analytics.safety_checks import reliable_deteriorations
from stats import psychometrics
from surveys.models import Instrument, Response, Score

pytestmark = pytest.mark.django_db


def _expected(trial, outcome: Outcome) -> dict:
    definition = Instrument.objects.get(code=outcome.instrument).definition
    rule = definition.score(outcome.code)
    items = definition.scored_items(rule)
    baseline = Response.objects.filter(participant__trial=trial, wave__index=0)
    answers = np.array([[r.answers[outcome.instrument][i] for i in items] for r in baseline])
    reliability = psychometrics.cronbach_alpha(answers.astype(float)).alpha
    scores = pd.DataFrame.from_records(
        Score.objects.filter(response__participant__trial=trial, code=outcome.code).values_list(
            "response__participant_id", "response__wave__index", "value"
        ),
        columns=["participant", "wave", "score"],
    )
    wide = scores.pivot_table(index="participant", columns="wave", values="score")
    pairs = wide[[0, outcome.wave]].dropna()
    change = psychometrics.reliable_change(
        pairs[0], pairs[outcome.wave], float(wide[0].std(ddof=1)), reliability
    )
    return {
        p: {
            "outcome": outcome.code,
            "from_wave": 0,
            "to_wave": outcome.wave,
            "before": round(float(b), 3),
            "after": round(float(a), 3),
            "rci": round(float(r), 3),
        }
        for p, b, a, r, worse in zip(
            pairs.index,
            pairs[0],
            pairs[outcome.wave],
            change.rci,
            change.reliable_deterioration,
            strict=True,
        )
        if worse
    }


def test_deteriorations_from_aggregates_equal_the_row_by_row_ones(small_trial, monkeypatch):
    # A few participants' WHO-5 falls to the floor at wave 2: reliable deteriorations.
    fallen = list(small_trial.participants.order_by("id").values_list("id", flat=True)[:6])
    Score.objects.filter(
        response__participant__in=fallen, response__wave__index=2, code="who5"
    ).update(value=0.0)
    outcome = Outcome(
        code="who5", instrument="who5", dimension="x", wave=2, role="primary", planned=True
    )
    expected = _expected(small_trial, outcome)
    assert len(expected) >= 3
    assert reliable_deteriorations(small_trial, [outcome]) == {"who5": expected}
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert reliable_deteriorations(small_trial, [outcome]) == {"who5": expected}
