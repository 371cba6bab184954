import json
import math
from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats

from stats.srm import sample_ratio_mismatch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("observed", "ratio"),
    [
        ({"a": 5021, "b": 4979}, {"a": 1, "b": 1}),
        ({"a": 3150, "b": 6850}, {"a": 0.3, "b": 0.7}),
        ({"a": 120, "b": 260, "c": 410}, {"a": 1, "b": 2, "c": 3}),
        ({"c": 17, "t1": 4, "t2": 9, "t3": 30}, {"c": 2.5, "t1": 1, "t2": 1, "t3": 1}),
        ({"a": 0, "b": 12, "c": 9}, {"a": 1, "b": 1, "c": 1}),
    ],
)
def test_matches_scipy_chisquare(observed, ratio):
    # scipy.stats.chisquare is an independent implementation of Pearson's test.
    total = sum(observed.values())
    weights = np.array([ratio[arm] for arm in observed], dtype=float)
    expected = total * weights / weights.sum()
    reference = stats.chisquare(list(observed.values()), f_exp=expected)
    result = sample_ratio_mismatch(observed, ratio)
    assert result.chi2 == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.df == len(observed) - 1
    assert list(result.expected.values()) == pytest.approx(expected.tolist(), rel=1e-12)
    assert result.mismatch == (reference.pvalue < 0.001)


def test_hand_computed_examples():
    # 1100/1000/900 with equal allocation: E = 1000 per arm,
    # X² = 100²/1000 + 0 + 100²/1000 = 20 on 2 df, and the χ²₂ survival function is
    # exp(-x/2), so p = exp(-10) = 4.54e-5 < 0.001: a mismatch.
    result = sample_ratio_mismatch({"a": 1100, "b": 1000, "c": 900}, {"a": 1, "b": 1, "c": 1})
    assert result.chi2 == pytest.approx(20.0, abs=1e-12)
    assert result.df == 2
    assert result.p_value == pytest.approx(math.exp(-10), rel=1e-10)
    assert result.mismatch
    # 1050/950 at 1:1: X² = 2 * 50²/1000 = 5 on 1 df, p = P(|N(0,1)| > √5) = erfc(√2.5) = 0.0253,
    # which is not below 0.001.
    result = sample_ratio_mismatch(
        {"control": 1050, "treatment": 950}, {"control": 1, "treatment": 1}
    )
    assert result.chi2 == pytest.approx(5.0, abs=1e-12)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(2.5)), rel=1e-10)
    assert not result.mismatch
    # Planned 1:2 with 400/600: E = 333.33/666.67, X² = 66.67²/333.33 + 66.67²/666.67 = 20.
    result = sample_ratio_mismatch({"a": 400, "b": 600}, {"a": 1, "b": 2})
    assert result.chi2 == pytest.approx(20.0, rel=1e-12)
    assert result.expected == pytest.approx({"a": 1000 / 3, "b": 2000 / 3})


def test_zero_count_arm_triggers_mismatch():
    # An arm that received nobody contributes E_j to X²: 0/40 at 1:1 gives X² = 20 + 20 = 40.
    result = sample_ratio_mismatch({"control": 0, "treatment": 40}, {"control": 1, "treatment": 1})
    assert result.chi2 == pytest.approx(40.0)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(20.0)), rel=1e-9)
    assert result.mismatch
    assert result.observed == {"control": 0, "treatment": 40}


def test_threshold_is_configurable_and_result_is_json_ready():
    observed, ratio = {"a": 1050, "b": 950}, {"a": 1, "b": 1}
    assert sample_ratio_mismatch(observed, ratio, threshold=0.05).mismatch
    result = sample_ratio_mismatch(observed, ratio)
    assert not result.mismatch and result.threshold == 0.001
    assert json.loads(json.dumps(asdict(result)))["expected"] == {"a": 1000.0, "b": 1000.0}


def test_null_flag_rate_is_about_threshold():
    # Simulate correct 30/70 allocation of 20 000 users 400 000 times; with two arms the test only
    # depends on the first arm's count, so evaluate the function once per distinct count.
    rng = np.random.default_rng(7)
    reps, total = 400_000, 20_000
    first = rng.binomial(total, 0.3, size=reps)
    values, counts = np.unique(first, return_counts=True)
    flagged = sum(
        int(count)
        for value, count in zip(values, counts, strict=True)
        if sample_ratio_mismatch(
            {"a": int(value), "b": total - int(value)}, {"a": 0.3, "b": 0.7}
        ).mismatch
    )
    low, high = stats.binom.ppf([0.0005, 0.9995], reps, 0.001)
    assert low <= flagged <= high


GOOD_OBSERVED = {"a": 10, "b": 12}
GOOD_RATIO = {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize(
    ("observed", "ratio", "kwargs", "message"),
    [
        ({"a": 0, "b": 0}, GOOD_RATIO, {}, "not evaluable"),
        ({"a": 10, "c": 12}, GOOD_RATIO, {}, "same arms"),
        (GOOD_OBSERVED, {"a": 1.0, "b": 1.0, "c": 1.0}, {}, "same arms"),
        ({"a": 10}, {"a": 1.0}, {}, "two arms"),
        ({"a": -1, "b": 12}, GOOD_RATIO, {}, "non-negative integer"),
        ({"a": 1.5, "b": 12}, GOOD_RATIO, {}, "non-negative integer"),
        ({"a": True, "b": 12}, GOOD_RATIO, {}, "non-negative integer"),
        (GOOD_OBSERVED, {"a": 0.0, "b": 1.0}, {}, "positive finite"),
        (GOOD_OBSERVED, {"a": float("inf"), "b": 1.0}, {}, "positive finite"),
        (GOOD_OBSERVED, {"a": float("nan"), "b": 1.0}, {}, "positive finite"),
        (GOOD_OBSERVED, GOOD_RATIO, {"threshold": 0.0}, "threshold"),
        (GOOD_OBSERVED, GOOD_RATIO, {"threshold": 1.0}, "threshold"),
        ({1: 10, 2: 12}, {1: 1.0, 2: 1.0}, {}, "strings"),
    ],
)
def test_bad_input_raises_value_error(observed, ratio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_ratio_mismatch(observed, ratio, **kwargs)
