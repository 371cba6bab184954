"""The Bayesian growth model's data from per-participant raw sums
(``stats.bayes_growth.growth_data_from_statistics``): the same :class:`GrowthData` as from long
data, checked against standardising every score first and summing afterwards (the textbook
order), with waves skipped and returned to, several dimensions, communities, covariates and a
categorical moderator."""

import numpy as np
import pandas as pd
import pytest

from analytics.simulate import DIMENSIONS, simulate_scores
from stats.bayes_growth import (
    STATISTICS,
    growth_data_from_frame,
    growth_data_from_statistics,
)

pytestmark = pytest.mark.unit

WAVES = 7


def _trial(seed: int, participants: int = 300):
    """Three arms and dimensions, drop-out, 15% of waves after baseline skipped and returned
    to, single scores missing on one dimension, a dimension some never answer, two communities
    and a baseline table."""
    simulated = simulate_scores(
        n_participants=participants,
        n_waves=WAVES,
        effect=0.3,
        seed=seed,
        dropout=0.2,
        dimensions=DIMENSIONS,
        clip=False,
        n_arms=3,
    )
    frame = simulated.scores.assign(arm=simulated.scores.arm.map({0: "c", 1: "b", 2: "a"}))
    rng = np.random.default_rng(seed)
    skipped = rng.random((participants, WAVES)) < 0.15
    skipped[:, 0] = False
    frame = frame[~skipped[frame.participant.to_numpy(), frame.wave.to_numpy()]]
    frame = frame[(frame.wave == 0) | (rng.random(len(frame)) > 0.05)]
    # Some participants never answer one dimension.
    never = (frame.participant % 11 == 0) & (frame.dimension == frame.dimension.iloc[0])
    frame = frame[~never].copy()
    frame["community"] = np.where(frame.participant % 3 == 0, "north", "south")
    people = np.arange(participants)
    baseline = pd.DataFrame(
        {
            "participant": people,
            "age": rng.normal(40, 12, participants),
            "loneliness": rng.normal(3, 1, participants),
            "tertile": rng.choice(["high", "low", "middle"], participants),
        }
    )
    return frame, baseline


def _raw_statistics(frame: pd.DataFrame, dimensions: tuple[str, ...]):
    """Raw sums per participant and dimension by a pandas group-by (as a database would),
    in order of each participant's first row, and the baseline moments."""
    people = frame.drop_duplicates("participant")
    ids = people["participant"].to_numpy()
    rows = frame.assign(
        t=frame.wave.astype(float),
        tt=frame.wave.astype(float) ** 2,
        ty=frame.wave * frame.score,
        yy=frame.score**2,
        one=1.0,
    )
    sums = rows.groupby(["participant", "dimension"])[["one", "t", "tt", "score", "ty", "yy"]].sum()
    statistics = np.zeros((len(ids), len(dimensions), len(STATISTICS)))
    for d, dimension in enumerate(dimensions):
        part = sums.xs(dimension, level="dimension").reindex(ids).fillna(0.0)
        statistics[:, d] = part.to_numpy()
    moments = np.array(
        [
            (
                len(scores := frame.score[(frame.dimension == dimension) & (frame.wave == 0)]),
                scores.mean() if len(scores) else np.nan,
                scores.std(ddof=1),
            )
            for dimension in dimensions
        ]
    )
    community = people["community"].to_numpy() if "community" in people else np.full(len(ids), "")
    return ids, people["arm"].to_numpy(), community, statistics, moments


def _standardised_first(frame: pd.DataFrame, dimensions: tuple[str, ...], ids) -> tuple:
    """The sufficient statistics computed the direct way: centre, scale and centre time on
    every score, then sum per participant."""
    time_centre = frame.wave.mean()
    stats = np.zeros((len(ids), len(dimensions), len(STATISTICS)))
    centre, scale = np.zeros(len(dimensions)), np.ones(len(dimensions))
    for d, dimension in enumerate(dimensions):
        rows = frame[frame.dimension == dimension]
        reference = rows.score[rows.wave == 0]
        reference = reference if len(reference) > 1 else rows.score
        centre[d], scale[d] = reference.mean(), reference.std(ddof=1)
        t = rows.wave - time_centre
        y = (rows.score - centre[d]) / scale[d]
        per = (
            pd.DataFrame({"p": rows.participant, "n": 1.0, "t": t, "tt": t * t, "y": y})
            .assign(ty=t * y, yy=y * y)
            .groupby("p")[["n", "t", "tt", "y", "ty", "yy"]]
            .sum()
        )
        stats[:, d] = per.reindex(ids).fillna(0.0).to_numpy()
    return stats, centre, scale, time_centre


OPTIONS = dict(
    covariates=["age", "loneliness"],
    subgroup="tertile",
    interactions=["loneliness"],
)


@pytest.mark.parametrize("seed", [1, 2])
def test_statistics_give_the_frames_growth_data(seed):
    frame, baseline = _trial(seed)
    dimensions = tuple(sorted(frame.dimension.unique()))
    ids, arms, communities, statistics, moments = _raw_statistics(frame, dimensions)
    from_frame = growth_data_from_frame(frame, control="c", baseline=baseline, **OPTIONS)
    from_sums = growth_data_from_statistics(
        participants=ids,
        arms=arms,
        communities=communities,
        statistics=statistics,
        baseline_moments=moments,
        control="c",
        dimensions=dimensions,
        last_wave=WAVES - 1,
        baseline=baseline,
        **OPTIONS,
    )
    direct, centre, scale, time_centre = _standardised_first(frame, dimensions, ids)
    # Skipped waves leave participants without a score on some dimension and many patterns.
    assert (statistics[..., 0] == 0).any()
    assert len(np.unique(statistics[..., :3].reshape(len(ids), -1), axis=0)) > 50
    for data in (from_frame, from_sums):
        assert data.dimensions == dimensions
        assert data.arm_names == ("c", "a", "b")
        assert data.community_names == ("north", "south")
        assert data.last_wave == WAVES - 1
        np.testing.assert_allclose(data.time_centre, time_centre, rtol=1e-14)
        np.testing.assert_allclose(data.centre, centre, rtol=1e-13)
        np.testing.assert_allclose(data.scale, scale, rtol=1e-13)
        # Counts and the design (which groups participants) come out exactly.
        np.testing.assert_array_equal(data.stats[..., 0], direct[..., 0])
        np.testing.assert_allclose(data.stats, direct, rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(from_sums.stats[..., :3], from_frame.stats[..., :3])
    np.testing.assert_allclose(from_sums.stats, from_frame.stats, rtol=1e-12, atol=1e-10)
    for field in ("arm", "community", "subgroup", "covariates", "covariate_centre"):
        np.testing.assert_array_equal(getattr(from_sums, field), getattr(from_frame, field))
    assert from_sums.subgroup_names == from_frame.subgroup_names == ("high", "low", "middle")
    assert from_sums.covariate_names == ("loneliness", "age")
    assert from_sums.interactions == ("loneliness",)


def test_a_dimension_without_two_baseline_scores_is_scaled_by_all_its_scores():
    frame, _ = _trial(3, participants=120)
    # One dimension keeps a single baseline score: its centre and SD come from all its scores.
    only = frame.dimension == frame.dimension.iloc[0]
    first_baseline = frame.index[only & (frame.wave == 0)][0]
    frame = frame[~(only & (frame.wave == 0)) | (frame.index == first_baseline)]
    dimensions = tuple(sorted(frame.dimension.unique()))
    ids, arms, communities, statistics, moments = _raw_statistics(frame, dimensions)
    data = growth_data_from_statistics(
        participants=ids,
        arms=arms,
        communities=communities,
        statistics=statistics,
        baseline_moments=moments,
        control="c",
        dimensions=dimensions,
        last_wave=WAVES - 1,
    )
    direct, centre, scale, _ = _standardised_first(frame, dimensions, ids)
    d = dimensions.index(frame.dimension.iloc[0])
    scores = frame.score[only]
    np.testing.assert_allclose(data.centre[d], scores.mean(), rtol=1e-13)
    np.testing.assert_allclose(data.scale[d], scores.std(ddof=1), rtol=1e-10)
    np.testing.assert_allclose(data.stats, direct, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(
        data.stats, growth_data_from_frame(frame, control="c").stats, rtol=1e-12, atol=1e-10
    )


def test_participants_without_scores_are_left_out_and_inputs_are_checked():
    frame, _ = _trial(4, participants=60)
    dimensions = tuple(sorted(frame.dimension.unique()))
    ids, arms, communities, statistics, moments = _raw_statistics(frame, dimensions)
    arguments = dict(
        participants=np.append(ids, 999),
        arms=np.append(arms, "b"),
        communities=np.append(communities, ""),
        statistics=np.concatenate([statistics, np.zeros((1, *statistics.shape[1:]))]),
        baseline_moments=moments,
        control="c",
        dimensions=dimensions,
        last_wave=WAVES - 1,
    )
    data = growth_data_from_statistics(**arguments)
    assert data.participants == len(ids)
    assert data.community_names == ("north", "south")
    with pytest.raises(ValueError, match="more than once"):
        growth_data_from_statistics(**arguments | {"participants": np.append(ids, ids[0])})
    with pytest.raises(ValueError, match="shaped"):
        growth_data_from_statistics(**arguments | {"statistics": statistics})
    with pytest.raises(ValueError, match="control arm"):
        growth_data_from_statistics(**arguments | {"control": "z"})
