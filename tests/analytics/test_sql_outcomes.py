"""The per-participant rows an analysis reads instead of every score row (analytics.selectors):
several scores' growth statistics with their baseline moments, the ANCOVA's baseline and
outcome-wave pairs, the scores present, the data snapshot's digest, and the occasions that are
the growth models' time when a daily series sits between weekly waves. Each is checked against
the same quantity computed in Python from every score row (``trial_scores_frame``)."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from analytics.selectors import (
    analysed_score_rows,
    ancova_rows,
    growth_statistics,
    occasion_of,
    outcomes_statistics,
    score_kinds,
    scores_digest,
    trial_scores_frame,
    wave_occasions,
)
from stats.growth import gee_growth_from_statistics, mixedlm_growth, mixedlm_growth_from_statistics
from stats.reml_growth import participant_statistics
from surveys.models import Instrument, Response, Score
from surveys.services import wave_create
from tests.analytics.test_sql_statistics import _skip_a_middle_wave
from tests.surveys.test_daily_waves import EVENINGS
from tests.trials.factories import ARM
from trials.models import Allocation, Participant
from trials.services import arm_create, trial_create

pytestmark = pytest.mark.django_db


def _allocated_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.arm.notna()]


@pytest.mark.parametrize("last_wave", [1, 2])
def test_several_scores_statistics_equal_those_from_every_score_row(small_trial, last_wave):
    _skip_a_middle_wave(small_trial)
    frame = _allocated_rows(trial_scores_frame(small_trial))
    codes = tuple(sorted(set(frame.outcome)))[::-1]  # any order of the scores is kept
    computed = outcomes_statistics(small_trial, codes, last_wave=last_wave)

    rows = frame[frame.wave <= last_wave]
    participants = np.unique(rows.participant.to_numpy())
    assert computed.codes == codes
    assert computed.participants.tolist() == participants.tolist()
    people = rows.groupby("participant")[["arm", "community"]].first().loc[participants]
    assert computed.arms.tolist() == people.arm.tolist()
    assert computed.communities.tolist() == people.community.tolist()
    assert computed.last_occasion == rows.wave.max()
    for d, code in enumerate(codes):
        own = rows[rows.outcome == code]
        position = pd.Index(participants).get_indexer(own.participant)
        expected = participant_statistics(
            position, own.wave.to_numpy(), own.score.to_numpy(), len(participants)
        )
        np.testing.assert_allclose(computed.statistics[:, d], expected, rtol=1e-12)
        baseline = own[own.wave == 0].score
        np.testing.assert_allclose(
            computed.baseline_moments[d],
            [len(baseline), baseline.mean(), baseline.std(ddof=1)],
            rtol=1e-12,
        )
        # The same participants' statistics as the one-score query gives.
        single = growth_statistics(small_trial, code, last_wave=last_wave)
        present = computed.statistics[:, d, 0] > 0
        assert computed.participants[present].tolist() == single.participants.tolist()
        np.testing.assert_allclose(computed.statistics[present, d], single.statistics, rtol=1e-12)


def test_ancova_pairs_are_the_pivot_of_every_score_row(small_trial):
    skipper = _skip_a_middle_wave(small_trial)
    Response.objects.filter(participant_id=skipper, wave__index=0).delete()  # no baseline
    frame = _allocated_rows(trial_scores_frame(small_trial))
    for code in sorted(set(frame.outcome)):
        rows = frame[(frame.outcome == code) & (frame.wave <= 2)]
        wide = rows.pivot_table(index=["participant", "arm"], columns="wave", values="score")
        complete = wide.reset_index().dropna(subset=[0, 2])

        pairs = ancova_rows(small_trial, code, 2)

        assert skipper not in pairs.participants
        assert pairs.participants.tolist() == complete.participant.tolist()
        assert pairs.arms.tolist() == complete.arm.tolist()
        assert pairs.baseline.tolist() == complete[0].tolist()
        assert pairs.outcome.tolist() == complete[2].tolist()


def test_scores_present_and_rows_counted_are_those_of_every_score_row(small_trial):
    frame = _allocated_rows(trial_scores_frame(small_trial))
    kinds, last_wave = score_kinds(small_trial)
    expected = frame[["instrument", "outcome", "dimension"]].drop_duplicates()
    assert [(k.instrument, k.code, k.dimension) for k in kinds] == sorted(
        expected.itertuples(index=False, name=None), key=lambda row: row[1]
    )
    assert last_wave == frame.wave.max()
    assert analysed_score_rows(small_trial) == len(frame)


def test_the_snapshot_digest_is_stable_and_changes_with_any_score(small_trial):
    digest = scores_digest(small_trial)
    assert len(digest) == 64 and scores_digest(small_trial) == digest
    score = Score.objects.filter(response__participant__trial=small_trial).order_by("pk")[17]
    original = score.value
    score.value = np.nextafter(original, np.inf)  # the smallest change a float can make
    score.save()
    changed = scores_digest(small_trial)
    assert changed != digest
    score.value = original
    score.save()
    assert scores_digest(small_trial) == digest
    Score.objects.filter(pk=score.pk).delete()
    assert scores_digest(small_trial) not in (digest, changed)


def _weekly_around_a_daily_series(participants: int = 24, seed: int = 3):
    """WHO-5 weekly at waves 0, 4, 5 and 6 (days 0, 14, 28, 42) with a daily series (waves
    1–3) between its first two occasions. Each participant's WHO-5 grows by 1 point per weekly
    occasion in arm a and 3 in arm b, plus a random intercept and noise (SD 0.5)."""
    rng = np.random.default_rng(seed)
    trial = trial_create(slug="weekly-daily", title="Weekly and daily")
    arms = {
        "a": arm_create(trial=trial, slug="a", name="A", is_control=True, **ARM),
        "b": arm_create(trial=trial, slug="b", name="B", **ARM | {"system_prompt": "Be kind."}),
    }
    wave_create(trial=trial, index=0, day_offset=0, window_days=1, instrument_codes=["who5"])
    wave_create(
        trial=trial,
        index=1,
        day_offset=1,
        window_days=1,
        instrument_codes=["daily_recall"],
        daily=EVENINGS,
    )
    for index, day in ((4, 14), (5, 28), (6, 42)):
        wave_create(trial=trial, index=index, day_offset=day, instrument_codes=["who5"])
    who5 = Instrument.objects.get(code="who5")
    waves = {w.index: w for w in trial.waves.all()}
    when = datetime(2026, 3, 27, tzinfo=UTC)
    for i in range(participants):
        arm = "ab"[i % 2]
        participant = Participant.objects.create(trial=trial, enrolled_at=when)
        Allocation.objects.create(participant=participant, arm=arms[arm], allocated_at=when)
        level = rng.normal(50, 5)
        for occasion, index in enumerate((0, 4, 5, 6)):
            response = Response.objects.create(
                participant=participant, wave=waves[index], answers={}, submitted_at=when
            )
            value = level + (1 if arm == "a" else 3) * occasion + rng.normal(0, 0.5)
            Score.objects.create(
                response=response,
                instrument=who5,
                code="who5",
                dimension="mental_wellbeing",
                value=value,
            )
    return trial


def test_growth_is_per_occasion_of_the_instrument_when_a_daily_series_is_interleaved():
    trial = _weekly_around_a_daily_series()
    occasions = wave_occasions(trial)
    assert occasions["who5"] == {0: 0, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 3}
    assert occasions["daily_recall"] == {0: 0, 1: 0, 2: 1, 3: 2, 4: 3, 5: 3, 6: 3}
    assert occasion_of(trial, "who5", 6) == 3
    growth = growth_statistics(trial, "who5")
    # Every participant at occasions 0–3: n = 4, Σt = 6, Σt² = 14 (the wave indices would
    # give 15 and 77).
    assert growth.statistics[:, :3].tolist() == [[4, 6, 14]] * 24
    arm = (growth.arms == "b").astype(int)
    (mixed,) = mixedlm_growth_from_statistics(arm, growth.statistics, ("a", "b"))
    (gee,) = gee_growth_from_statistics(arm, growth.statistics, ("a", "b"))
    # The simulated difference is 2 points per weekly occasion.
    for contrast in (mixed, gee):
        assert abs(contrast.estimate - 2) < 3 * contrast.std_error < 0.5
    # On the wave indices (0, 4, 5, 6) the same scores give a growth per index near
    # 2 · Sxy / Sxx = 2 · 9.5 / 20.75 = 0.92 (least squares of occasions on indices), far from 2:
    # the check above tells the two time axes apart.
    frame = _allocated_rows(trial_scores_frame(trial))
    (by_index,) = mixedlm_growth(frame, control="a")
    assert by_index.estimate == pytest.approx(2 * 9.5 / 20.75, abs=0.2)
