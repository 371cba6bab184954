import json
from dataclasses import asdict

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from stats.proportions import newcombe_difference, wilson_interval

pytestmark = pytest.mark.unit

SHARES = [(0, 1), (0, 12), (1, 12), (3, 40), (81, 263), (12, 12), (49, 50), (7, 9)]


@pytest.mark.parametrize(("events", "total"), SHARES)
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(events, total, confidence):
    # statsmodels' proportion_confint is an independent implementation of Wilson's interval.
    lower, upper = proportion_confint(events, total, alpha=1 - confidence, method="wilson")
    interval = wilson_interval(events, total, confidence=confidence)
    assert (interval.lower, interval.upper) == pytest.approx((lower, upper), abs=1e-12)
    assert interval.estimate == events / total
    assert interval.lower <= interval.estimate <= interval.upper


def test_wilson_published_example():
    # Newcombe (1998a), Statistics in Medicine 17:857-872, example 81/263: Wilson 0.2553-0.3662.
    interval = wilson_interval(81, 263)
    assert (round(interval.lower, 4), round(interval.upper, 4)) == (0.2553, 0.3662)


PAIRS = [
    (56, 70, 48, 80),
    (9, 10, 3, 10),
    (0, 15, 4, 15),
    (2, 30, 2, 30),
    (11, 25, 1, 24),
    (0, 10, 0, 10),
    (33, 120, 12, 118),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), PAIRS)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_newcombe_matches_statsmodels(x1, n1, x2, n2, confidence):
    lower, upper = confint_proportions_2indep(
        x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1 - confidence
    )
    interval = newcombe_difference(x1, n1, x2, n2, confidence=confidence)
    assert (interval.lower, interval.upper) == pytest.approx((lower, upper), abs=1e-12)
    assert interval.estimate == pytest.approx(x1 / n1 - x2 / n2)


# Newcombe (1998b), Statistics in Medicine 17:873-890, table II, method 10 (score, no continuity
# correction), 95% intervals for the eight examples (a)-(h) of the paper.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "published"), NEWCOMBE_TABLE_II)
def test_newcombe_published_table(counts, published):
    interval = newcombe_difference(*counts)
    assert (round(interval.lower, 4), round(interval.upper, 4)) == published


def test_interval_widens_with_confidence_and_narrows_with_participants():
    narrow = newcombe_difference(10, 50, 5, 50, confidence=0.8)
    wide = newcombe_difference(10, 50, 5, 50, confidence=0.99)
    assert wide.lower < narrow.lower < narrow.estimate < narrow.upper < wide.upper
    larger = newcombe_difference(100, 500, 50, 500, confidence=0.8)
    assert larger.upper - larger.lower < narrow.upper - narrow.lower


def test_results_are_json_ready():
    text = json.dumps(asdict(newcombe_difference(3, 20, 1, 21)))
    assert json.loads(text)["first"]["events"] == 3


@pytest.mark.parametrize(
    ("events", "total", "confidence", "message"),
    [
        (0, 0, 0.95, "at least one participant"),
        (5, 4, 0.95, "between 0 and total"),
        (-1, 4, 0.95, "between 0 and total"),
        (1, 4, 1.0, "confidence"),
        (1, 4, 0.0, "confidence"),
        (1.0, 4, 0.95, "integers"),
        (True, 4, 0.95, "booleans"),
    ],
)
def test_bad_input_is_refused(events, total, confidence, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(events, total, confidence=confidence)
    with pytest.raises(ValueError, match=message):
        newcombe_difference(1, 5, events, total, confidence=confidence)
