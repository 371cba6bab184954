"""The statistics PostgreSQL aggregates (analytics.selectors) against the same statistics computed
in Python from every score row (``trial_scores_frame``) on a seeded trial, with a wave skipped and
then answered again, as real panels do."""

import numpy as np
import pandas as pd
import pytest

from analytics.selectors import (
    consort_counts,
    growth_statistics,
    responded_per_wave,
    score_trajectories,
    trial_scores_frame,
)
from stats.growth import mixedlm_growth, mixedlm_growth_from_statistics
from stats.reml_growth import participant_statistics
from surveys.models import Response
from trials.services import participant_withdraw

pytestmark = pytest.mark.django_db


def _skip_a_middle_wave(trial) -> str:
    """Remove one participant's wave-1 answers while their later waves stay; their id."""
    response = (
        Response.objects.filter(participant__trial=trial, wave__index=1)
        .filter(participant__responses__wave__index=2)
        .order_by("participant_id")
        .first()
    )
    response.delete()
    return response.participant_id


def _from_the_frame(frame: pd.DataFrame, code: str, last_wave: int | None):
    """What ``participant_statistics`` gives from the score rows, coded as ``numpy.unique``
    codes the participants."""
    rows = frame[(frame.outcome == code) & frame.arm.notna()]
    if last_wave is not None:
        rows = rows[rows.wave <= last_wave]
    participants, codes = np.unique(rows.participant.to_numpy(), return_inverse=True)
    arms = rows.groupby("participant").arm.first().loc[participants].to_numpy()
    statistics = participant_statistics(
        codes, rows.wave.to_numpy(), rows.score.to_numpy(), len(participants)
    )
    return participants, arms, statistics


@pytest.mark.parametrize("last_wave", [None, 1])
def test_growth_statistics_equal_those_computed_from_every_score_row(small_trial, last_wave):
    skipper = _skip_a_middle_wave(small_trial)
    frame = trial_scores_frame(small_trial)
    for code in sorted(set(frame.outcome)):
        participants, arms, expected = _from_the_frame(frame, code, last_wave)

        computed = growth_statistics(small_trial, code, last_wave=last_wave)

        assert computed.participants.tolist() == participants.tolist()
        assert computed.arms.tolist() == arms.tolist()
        assert computed.statistics.shape == (len(participants), 6)
        np.testing.assert_allclose(computed.statistics, expected, rtol=1e-12, atol=0)
        row = computed.statistics[computed.participants.tolist().index(skipper)]
        if last_wave is None:  # waves 0 and 2: n = 2, Σt = 2, Σt² = 4
            assert row[:3].tolist() == [2, 2, 4]
    assert growth_statistics(small_trial, "no-such-score").statistics.shape == (0, 6)


def test_trajectories_and_wave_counts_equal_the_frames(small_trial):
    _skip_a_middle_wave(small_trial)
    frame = trial_scores_frame(small_trial)
    frame = frame[frame.arm.notna()]
    grouped = frame.groupby(["outcome", "arm", "wave"]).score.agg(["count", "mean", "std"])

    cells = score_trajectories(small_trial)

    assert [(c.outcome, c.arm, c.wave) for c in cells] == list(grouped.index)
    for cell in cells:
        expected = grouped.loc[(cell.outcome, cell.arm, cell.wave)]
        assert cell.n == expected["count"]
        assert cell.mean == pytest.approx(expected["mean"], rel=1e-12)
        if cell.n > 1:
            assert cell.std == pytest.approx(expected["std"], rel=1e-9)
        else:
            assert cell.std is None
    assert responded_per_wave(small_trial) == {
        int(wave): {arm: int(n) for arm, n in group.groupby("arm").participant.nunique().items()}
        for wave, group in frame.groupby("wave")
        if wave > 0
    }


def test_consort_counts_withdrawal_reasons_per_arm(small_trial):
    participants = list(small_trial.participants.select_related("allocation__arm").order_by("pk"))
    reasons = ["moved away", "", "moved away", "too many surveys", ""]
    for participant, reason in zip(participants, reasons, strict=False):
        participant_withdraw(participant=participant, reason=reason)
    expected: dict[str, dict[str, int]] = {}
    for participant, reason in zip(participants, reasons, strict=False):
        per_arm = expected.setdefault(participant.allocation.arm.slug, {})
        key = reason or "no reason given"
        per_arm[key] = per_arm.get(key, 0) + 1

    arms = {arm["slug"]: arm for arm in consort_counts(small_trial)["arms"]}

    for slug, arm in arms.items():
        assert arm["withdrawal_reasons"] == expected.get(slug, {})
        assert arm["withdrawn"] == sum(expected.get(slug, {}).values())


def test_the_growth_model_from_the_database_statistics_is_the_fit_of_the_score_rows(small_trial):
    """What the analysis needs of the statistics: the exact REML fit from them is the fit
    ``mixedlm_growth`` makes of the long rows, to rounding."""
    _skip_a_middle_wave(small_trial)
    frame = trial_scores_frame(small_trial)
    rows = frame[(frame.outcome == "who5") & frame.arm.notna() & (frame.wave <= 2)]
    growth = growth_statistics(small_trial, "who5", last_wave=2)
    arm_names = ("a", "b")
    arm = np.array([arm_names.index(name) for name in growth.arms])

    from_database = mixedlm_growth_from_statistics(arm, growth.statistics, arm_names)
    from_rows = mixedlm_growth(rows, control="a")

    assert len(from_database) == len(from_rows) == 1
    for ours, theirs in zip(from_database, from_rows, strict=True):
        assert (ours.arm, ours.n_participants, ours.n_observations, ours.converged) == (
            theirs.arm,
            theirs.n_participants,
            theirs.n_observations,
            theirs.converged,
        )
        for name in ("estimate", "std_error", "df", "p_value", "ci_low", "ci_high"):
            assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-9), name
