"""Careless-responding indices against hand-worked values and independent implementations."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from stats.quality import (
    DEFAULT_THRESHOLDS,
    FLAG_LONGSTRING,
    FLAG_MAHALANOBIS,
    FLAG_TOO_FAST,
    QualityIndices,
    QualityThresholds,
    careless_flags,
    careless_flags_rows,
    intra_individual_variability,
    long_string,
    mahalanobis_distance,
    seconds_per_item,
)

pytestmark = pytest.mark.unit

NAN = math.nan


# Long-string -------------------------------------------------------------------------------


def test_long_string_hand_worked():
    # Runs counted by eye; a NaN ends a run and starts none.
    responses = [
        [1, 1, 1, 2, 2, NAN],  # 1,1,1 -> 3
        [3, 3, NAN, 3, 3, 3],  # the gap splits six 3s into runs of 2 and 3 -> 3
        [1, 2, 1, 2, 1, 2],  # alternating -> 1
        [5, 5, 5, 5, 5, 5],  # straight line -> 6
        [NAN, NAN, NAN, NAN, NAN, NAN],  # nothing answered -> 0
        [NAN, 4, NAN, NAN, NAN, NAN],  # one answer -> 1
    ]
    assert long_string(responses).tolist() == [3, 3, 1, 6, 0, 1]


def _longest_run_by_groupby(row):
    # Independent reference: itertools.groupby puts each NaN in a group of its own (NaN != NaN),
    # and those groups are skipped.
    runs = [len(list(group)) for value, group in itertools.groupby(row) if not math.isnan(value)]
    return max(runs, default=0)


def test_long_string_matches_groupby_on_random_matrix():
    rng = np.random.default_rng(1)
    responses = rng.integers(1, 4, size=(200, 9)).astype(float)
    responses[rng.random(responses.shape) < 0.1] = np.nan
    expected = [_longest_run_by_groupby(row.tolist()) for row in responses]
    assert long_string(responses).tolist() == expected


def test_long_string_single_item():
    assert long_string([[2.0], [NAN]]).tolist() == [1, 0]


# IRV -----------------------------------------------------------------------------------------


def test_irv_hand_worked():
    responses = [
        [1, 2, 3, 4, 5],  # mean 3, squares 4+1+0+1+4 = 10, 10/4 -> sqrt(2.5)
        [2, 2, 2, 2, 2],  # no variation -> 0
        [1, NAN, 3, NAN, NAN],  # mean 2, squares 1+1 = 2, 2/1 -> sqrt(2)
        [1, 1, 5, 5, NAN],  # mean 3, squares 4*4 = 16, 16/3 -> 4/sqrt(3)
        [4, NAN, NAN, NAN, NAN],  # one answer: ddof=1 undefined -> NaN
        [NAN, NAN, NAN, NAN, NAN],  # none -> NaN
    ]
    expected = [math.sqrt(2.5), 0.0, math.sqrt(2.0), 4 / math.sqrt(3), NAN, NAN]
    np.testing.assert_allclose(intra_individual_variability(responses), expected, rtol=1e-12)


def test_irv_matches_numpy_std_ddof_1():
    # Independent reference: numpy's nanstd with ddof=1, the definition of R's sd() that
    # careless::irv applies to each row.
    rng = np.random.default_rng(2)
    responses = rng.integers(1, 8, size=(100, 12)).astype(float)
    responses[rng.random(responses.shape) < 0.15] = np.nan
    expected = np.nanstd(responses, axis=1, ddof=1)
    np.testing.assert_allclose(intra_individual_variability(responses), expected, rtol=1e-12)


# Mahalanobis ---------------------------------------------------------------------------------


def _correlated_likert(rng, n, k, loading=0.7):
    latent = loading * rng.standard_normal((n, 1)) + math.sqrt(1 - loading**2) * (
        rng.standard_normal((n, k))
    )
    return np.clip(np.round(latent * 1.2 + 4), 1, 7)


def test_mahalanobis_matches_scipy_and_chi2():
    rng = np.random.default_rng(3)
    responses = _correlated_likert(rng, 60, 5)
    result = mahalanobis_distance(responses)

    # Independent reference: scipy's distance with the explicit inverse of numpy's sample
    # covariance (ddof=1); scipy returns D, so it is squared.
    inverse = np.linalg.inv(np.cov(responses, rowvar=False))
    centroid = responses.mean(axis=0)
    expected = np.array([scipy_mahalanobis(row, centroid, inverse) ** 2 for row in responses])
    np.testing.assert_allclose(result.d_squared, expected, rtol=1e-9)
    np.testing.assert_allclose(result.p_value, stats.chi2.sf(expected, df=5), rtol=1e-9)
    assert result.df == 5
    assert result.n_complete == 60


def test_mahalanobis_rows_with_nan_get_nan_and_do_not_enter_the_estimate():
    rng = np.random.default_rng(4)
    complete = _correlated_likert(rng, 40, 4)
    partial = np.array([[1, NAN, 3, 4], [NAN, NAN, NAN, NAN]], dtype=float)
    result = mahalanobis_distance(np.vstack([complete[:20], partial, complete[20:]]))

    alone = mahalanobis_distance(complete)
    assert np.isnan(result.d_squared[20:22]).all() and np.isnan(result.p_value[20:22]).all()
    np.testing.assert_allclose(np.delete(result.d_squared, [20, 21]), alone.d_squared)
    assert result.n_complete == 40


def test_mahalanobis_sample_identities():
    # Algebraic identities of sample D² (hand-derivable): the distances sum to (m - 1) × rank(S),
    # since sum_i d_i' S^-1 d_i = trace(S^-1 (m - 1) S); and each is at most (m - 1)² / m.
    rng = np.random.default_rng(5)
    responses = _correlated_likert(rng, 30, 6)
    result = mahalanobis_distance(responses)
    assert result.d_squared.sum() == pytest.approx(29 * 6)
    assert result.d_squared.max() <= 29**2 / 30


def test_mahalanobis_with_items_plus_one_rows_puts_everyone_at_the_bound():
    # With m = k + 1 rows in general position every D² equals (m - 1)² / m, the largest value
    # any D² can take (here 3.2, far below the χ²(4) p = .001 point of 18.5): tiny samples
    # cannot flag anyone.
    rng = np.random.default_rng(6)
    responses = rng.normal(size=(5, 4))
    result = mahalanobis_distance(responses)
    np.testing.assert_allclose(result.d_squared, 16 / 5)


def test_mahalanobis_singular_constant_item_uses_remaining_items():
    # Item 3 got the same answer from everyone: S is singular, the pseudo-inverse measures
    # distance over the other items, and df drops to their number. Reference: scipy on the
    # varying items only.
    rng = np.random.default_rng(7)
    varying = _correlated_likert(rng, 50, 3)
    responses = np.column_stack([varying[:, :2], np.full(50, 4.0), varying[:, 2]])
    result = mahalanobis_distance(responses)

    inverse = np.linalg.inv(np.cov(varying, rowvar=False))
    centroid = varying.mean(axis=0)
    expected = np.array([scipy_mahalanobis(row, centroid, inverse) ** 2 for row in varying])
    np.testing.assert_allclose(result.d_squared, expected, rtol=1e-9)
    assert result.df == 3
    np.testing.assert_allclose(result.p_value, stats.chi2.sf(expected, df=3), rtol=1e-9)


def test_mahalanobis_singular_linear_combination():
    # Item 3 = item 1 + item 2 (e.g. a stored subtotal): D² is invariant to adding a redundant
    # coordinate, so it equals the distance over items 1 and 2 alone.
    rng = np.random.default_rng(8)
    base = _correlated_likert(rng, 40, 2)
    responses = np.column_stack([base, base.sum(axis=1)])
    result = mahalanobis_distance(responses)
    np.testing.assert_allclose(result.d_squared, mahalanobis_distance(base).d_squared, rtol=1e-8)
    assert result.df == 2


def test_mahalanobis_rejects_too_few_complete_rows_and_no_variance():
    with pytest.raises(ValueError, match="at least 4 respondents"):
        mahalanobis_distance([[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, NAN, 2]])
    with pytest.raises(ValueError, match="identical answers"):
        mahalanobis_distance(np.full((10, 3), 2.0))


# Seconds per item ----------------------------------------------------------------------------


def test_seconds_per_item():
    assert seconds_per_item(30, 8) == 3.75
    assert seconds_per_item(0.0, 5) == 0.0
    assert seconds_per_item(12.5, np.int64(5)) == 2.5


@pytest.mark.parametrize(
    ("total", "count"),
    [(-1.0, 5), (NAN, 5), (math.inf, 5), (10.0, 0), (10.0, -2), (10.0, 2.5), (10.0, True)],
)
def test_seconds_per_item_rejects_bad_input(total, count):
    with pytest.raises(ValueError):
        seconds_per_item(total, count)


# careless_flags ------------------------------------------------------------------------------


def test_careless_flags_clean_respondent():
    result = careless_flags([4, 5, 3, 4, 6, 5, 4, 5], seconds=40.0, mahalanobis_p=0.4)
    assert result == QualityIndices(
        n_items=8,
        n_answered=8,
        longstring=1,
        longstring_share=1 / 8,
        # mean 4.5, squares .25+.25+2.25+.25+2.25+.25+.25+.25 = 6, 6/7
        irv=pytest.approx(math.sqrt(6 / 7)),
        seconds_per_item=5.0,
        mahalanobis_p=0.4,
        flags=(),
    )


def test_careless_flags_each_flag_at_its_default_threshold():
    straight = careless_flags([3] * 6)
    assert straight.flags == (FLAG_LONGSTRING,)
    assert straight.longstring_share == 1.0 and straight.irv == 0.0

    # Five identical answers is below the six-item minimum (e.g. WHO-5): not flagged.
    assert careless_flags([5] * 5).flags == ()
    # Seven of eight the same is not the whole scale: not flagged by default.
    assert careless_flags([4] * 7 + [3]).flags == ()

    # 2 s per item is the boundary (Huang et al. 2012): below it flags, at it does not.
    assert careless_flags([1, 2, 3, 4, 5], seconds=9.99).flags == (FLAG_TOO_FAST,)
    assert careless_flags([1, 2, 3, 4, 5], seconds=10.0).flags == ()

    assert careless_flags([1, 2, 3], mahalanobis_p=0.0009).flags == (FLAG_MAHALANOBIS,)
    assert careless_flags([1, 2, 3], mahalanobis_p=0.001).flags == ()

    everything = careless_flags([2] * 10, seconds=5.0, mahalanobis_p=1e-6)
    assert everything.flags == (FLAG_LONGSTRING, FLAG_TOO_FAST, FLAG_MAHALANOBIS)


def test_careless_flags_missing_answers():
    # Answered items are the denominator of both the share and the time per item.
    result = careless_flags([2, 2, 2, NAN, 2, 2, 2, 2], seconds=14.0, mahalanobis_p=NAN)
    assert result.n_items == 8 and result.n_answered == 7
    assert result.longstring == 4 and result.longstring_share == pytest.approx(4 / 7)
    assert result.seconds_per_item == 2.0
    assert result.mahalanobis_p is None  # NaN from mahalanobis_distance means "not computable"
    assert result.flags == ()

    single = careless_flags([NAN, 3, NAN])
    assert single.irv is None and single.longstring == 1 and single.seconds_per_item is None


def test_careless_flags_custom_thresholds():
    lenient = QualityThresholds(longstring_min_items=4, longstring_share=0.5)
    assert careless_flags([4, 4, 4, 1, 2, 3], thresholds=lenient).flags == (FLAG_LONGSTRING,)
    assert DEFAULT_THRESHOLDS == QualityThresholds()


def test_to_dict_is_json_serialisable():
    data = careless_flags([1, NAN, 1, 1, 1, 1, 1], seconds=3.0).to_dict()
    # allow_nan=False: PostgreSQL's jsonb rejects NaN, so missing values must be None.
    round_trip = json.loads(json.dumps(data, allow_nan=False))
    assert round_trip == {
        "n_items": 7,
        "n_answered": 6,
        "longstring": 5,
        "longstring_share": 5 / 6,
        "irv": 0.0,
        "seconds_per_item": 0.5,
        "mahalanobis_p": None,
        "flags": ["too_fast"],
    }


@pytest.mark.parametrize(
    ("answers", "kwargs"),
    [
        ([[1, 2], [3, 4]], {}),
        ([], {}),
        ([NAN, NAN], {}),
        ([1, math.inf], {}),
        (["a", "b"], {}),
        ([1, 2], {"seconds": -3.0}),
        ([1, 2], {"mahalanobis_p": 1.5}),
        ([1, 2], {"mahalanobis_p": -0.1}),
    ],
)
def test_careless_flags_rejects_bad_input(answers, kwargs):
    with pytest.raises(ValueError):
        careless_flags(answers, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"longstring_min_items": 1},
        {"longstring_min_items": 6.0},
        {"longstring_share": 0.0},
        {"longstring_share": 1.1},
        {"min_seconds_per_item": 0.0},
        {"min_seconds_per_item": math.nan},
        {"mahalanobis_alpha": 0.0},
        {"mahalanobis_alpha": 1.0},
    ],
)
def test_thresholds_reject_nonsense(kwargs):
    with pytest.raises(ValueError):
        QualityThresholds(**kwargs)


@pytest.mark.parametrize(
    "responses",
    [[1, 2, 3], [[[1, 2]]], np.empty((3, 0)), [[1, math.inf]], [["x", "y"]], [[{}, {}]]],
)
def test_matrix_functions_reject_bad_input(responses):
    for function in (long_string, intra_individual_variability, mahalanobis_distance):
        with pytest.raises(ValueError):
            function(responses)


# Simulation ----------------------------------------------------------------------------------


def test_simulation_flags_planted_careless_respondents_but_few_honest_ones():
    # 300 honest respondents answer a 12-item, 7-point scale from a one-factor model (loadings
    # 0.8, answers peaked in the middle as Likert data usually are) at about 5 s per item. Among
    # them are 15 random responders (uniform answers) and 15 straight-liners, planted with honest
    # timing so that only the answer patterns can give them away. Mahalanobis is estimated on the
    # contaminated sample, as it would be in a real wave.
    rng = np.random.default_rng(20240601)
    n_honest, n_random, n_straight, n_items = 300, 15, 15, 12
    latent = 0.8 * rng.standard_normal((n_honest, 1)) + 0.6 * rng.standard_normal(
        (n_honest, n_items)
    )
    cuts = np.array([-2.0, -1.2, -0.4, 0.4, 1.2, 2.0])
    honest = np.digitize(latent, cuts) + 1.0
    random_answers = rng.integers(1, 8, size=(n_random, n_items)).astype(float)
    straight = np.repeat(rng.integers(1, 8, size=(n_straight, 1)), n_items, axis=1).astype(float)
    responses = np.vstack([honest, random_answers, straight])
    seconds = n_items * rng.lognormal(mean=math.log(5.0), sigma=0.3, size=len(responses))

    p_values = mahalanobis_distance(responses).p_value
    flags = [
        careless_flags(row, seconds=s, mahalanobis_p=p).flags
        for row, s, p in zip(responses, seconds, p_values, strict=True)
    ]
    honest_flags = flags[:n_honest]
    random_flags = flags[n_honest : n_honest + n_random]
    straight_flags = flags[n_honest + n_random :]
    # Bounds leave room for other seeds: over eight seeds 87–100 % of random responders were
    # flagged by D² and 0–1 % of honest respondents got any flag.
    assert all(FLAG_LONGSTRING in f for f in straight_flags)
    assert np.mean([FLAG_MAHALANOBIS in f for f in random_flags]) >= 0.6
    assert np.mean([bool(f) for f in honest_flags]) <= 0.02


def test_careless_flags_rows_equal_careless_flags_row_by_row():
    rng = np.random.default_rng(3)
    matrix = rng.integers(0, 6, size=(400, 10)).astype(float)
    matrix[::7] = matrix[::7, :1]  # straight-liners
    matrix[rng.random(matrix.shape) < 0.1] = np.nan
    matrix[:, 0] = np.where(np.isnan(matrix).all(axis=1), 2.0, matrix[:, 0])
    rows = careless_flags_rows(matrix)
    assert [r.to_dict() for r in rows] == [careless_flags(row).to_dict() for row in matrix]
    assert any(r.flags for r in rows) and not all(r.flags for r in rows)
    with pytest.raises(ValueError, match="no answered item"):
        careless_flags_rows([[1.0, 2.0], [np.nan, np.nan]])
