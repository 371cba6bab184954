import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from stats.attrition import differential_attrition

pytestmark = pytest.mark.unit


def test_hand_worked_two_by_two():
    # 100 allocated per arm; at wave 1, 80 control and 60 treatment participants responded.
    #                responded  not   total
    #   control          80      20    100
    #   treatment        60      40    100
    #   total           140      60    200
    # Expected counts: 100·140/200 = 70 responded and 100·60/200 = 30 not, in each arm, so
    # X² = (80−70)²/70 + (20−30)²/30 + (60−70)²/70 + (40−30)²/30 = 200/70 + 200/30 = 200/21
    # on (2−1)(2−1) = 1 df, and P(χ²₁ > x) = erfc(√(x/2)).
    (wave,) = differential_attrition(
        {"control": 100, "treatment": 100}, {1: {"control": 80, "treatment": 60}}
    )
    assert wave.wave == 1
    assert wave.chi2 == pytest.approx(200 / 21, rel=1e-12)
    assert wave.df == 1
    assert wave.p_value == pytest.approx(math.erfc(math.sqrt(100 / 21)), rel=1e-9)
    assert wave.p_value == pytest.approx(0.002028, abs=1e-6)
    assert wave.differential
    assert wave.allocated == {"control": 100, "treatment": 100}
    assert wave.responded == {"control": 80, "treatment": 60}
    assert wave.response_rate == {"control": 0.8, "treatment": 0.6}


def test_three_arms_match_the_textbook_formula_and_scipy_chisquare():
    allocated = {"control": 120, "low": 95, "high": 140}
    responded = {
        2: {"control": 101, "low": 70, "high": 98},
        1: {"control": 110, "low": 90, "high": 131},
    }
    results = differential_attrition(allocated, responded, alpha=0.01)
    assert [r.wave for r in results] == [1, 2]
    for result in results:
        observed = np.array(
            [
                [responded[result.wave][a], allocated[a] - responded[result.wave][a]]
                for a in allocated
            ],
            dtype=float,
        )
        # E = row total × column total / N, X² = Σ (O − E)² / E (Agresti 2013, §3.2).
        expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
        statistic = np.sum((observed - expected) ** 2 / expected)
        # scipy.stats.chisquare on the six cells, with ddof = 3 so that df = 6 − 1 − 3 = 2 =
        # (3 − 1)(2 − 1), is an independent implementation of the same test.
        reference = stats.chisquare(observed.ravel(), expected.ravel(), ddof=3)
        assert result.chi2 == pytest.approx(statistic, rel=1e-12)
        assert result.chi2 == pytest.approx(reference.statistic, rel=1e-12)
        assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        assert result.df == 2
        assert result.differential == (reference.pvalue < 0.01)
    json.dumps([asdict(r) for r in results])


def test_small_difference_is_not_flagged():
    (wave,) = differential_attrition({"a": 50, "b": 50}, {3: {"a": 45, "b": 44}})
    # 2×2 table [[45, 5], [44, 6]]: E = 44.5 and 5.5 in each row, so
    # X² = 2·0.5²/44.5 + 2·0.5²/5.5 = 0.1021; p = erfc(√(X²/2)) ≈ 0.75.
    assert wave.chi2 == pytest.approx(0.5 / 44.5 + 0.5 / 5.5, rel=1e-12)
    assert not wave.differential


@pytest.mark.parametrize("responded", [{"a": 30, "b": 20}, {"a": 0, "b": 0}])
def test_everyone_or_no_one_responding_is_reported_as_no_difference(responded):
    (wave,) = differential_attrition({"a": 30, "b": 20}, {4: responded})
    assert (wave.chi2, wave.p_value, wave.df, wave.differential) == (0.0, 1.0, 1, False)


def test_no_waves_give_no_results():
    assert differential_attrition({"a": 3, "b": 4}, {}) == ()


@pytest.mark.parametrize(
    ("allocated", "responded", "message"),
    [
        ({"a": 10}, {1: {"a": 5}}, "two arms"),
        ({"a": 10, "b": 0}, {1: {"a": 5, "b": 0}}, r"allocated\['b'\] must be a positive"),
        ({"a": 10, "b": 10.0}, {1: {"a": 5, "b": 5}}, r"allocated\['b'\] must be a positive"),
        ({"a": 10, "b": True}, {1: {"a": 5, "b": 1}}, r"allocated\['b'\] must be a positive"),
        ({"a": 10, 3: 10}, {1: {"a": 5, 3: 5}}, "strings"),
        ({"a": 10, "b": 10}, {1: {"a": 11, "b": 5}}, r"responded\[1\]\['a'\] must be an integer"),
        ({"a": 10, "b": 10}, {1: {"a": -1, "b": 5}}, r"from 0 to allocated"),
        ({"a": 10, "b": 10}, {1: {"a": 5.5, "b": 5}}, r"must be an integer from 0"),
        ({"a": 10, "b": 10}, {1: {"a": 5}}, r"exactly the allocated arms"),
        ({"a": 10, "b": 10}, {1: {"a": 5, "b": 5, "c": 1}}, r"exactly the allocated arms"),
        ({"a": 10, "b": 10}, {"1": {"a": 5, "b": 5}}, "must be an integer"),
        ({"a": 10, "b": 10}, {True: {"a": 5, "b": 5}}, "must be an integer"),
        ([("a", 10), ("b", 10)], {1: {"a": 5, "b": 5}}, "must map"),
    ],
)
def test_bad_input_raises_value_error(allocated, responded, message):
    with pytest.raises(ValueError, match=message):
        differential_attrition(allocated, responded)


@pytest.mark.parametrize("alpha", [0, 1, -0.5, 2])
def test_alpha_outside_the_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        differential_attrition({"a": 1, "b": 1}, {1: {"a": 1, "b": 0}}, alpha=alpha)
