import numpy as np
import pytest

from analytics.simulate import answers_for_score, simulate_scores
from stats.ancova import ancova
from stats.psychometrics import cronbach_alpha
from surveys.registry import shipped_definitions
from surveys.scoring import scores

pytestmark = pytest.mark.unit


def _final_wave_effect(simulated, dimension):
    frame = simulated.scores[simulated.scores.dimension == dimension]
    wide = frame.pivot_table(index=["participant", "arm"], columns="wave", values="score")
    wide = wide.reset_index().dropna()
    final = simulated.n_waves - 1
    return ancova(wide[final], wide[0], wide["arm"])


def test_ancova_recovers_the_known_effect():
    simulated = simulate_scores(n_participants=4000, n_waves=4, effect=1.5, seed=11, clip=False)
    for dimension, per_wave in simulated.true_effects.items():
        truth = per_wave * (simulated.n_waves - 1)  # the gap the growth difference opens
        result = _final_wave_effect(simulated, dimension)
        # Four standard errors: a failure here is a bug, not bad luck (p ≈ 6e-5).
        assert abs(result.estimate - truth) < 4 * result.std_error


def test_null_effect_intervals_cover_zero_at_nominal_rate():
    covered = 0
    for seed in range(200):
        simulated = simulate_scores(n_participants=60, n_waves=2, effect=0.0, seed=seed, clip=False)
        result = _final_wave_effect(simulated, "mental_wellbeing")
        covered += result.ci_low <= 0 <= result.ci_high
    # 95% nominal; with 200 trials the binomial 99.9% range is about [0.905, 0.985].
    assert 0.90 <= covered / 200 <= 0.99


def test_dropout_is_monotone_and_baseline_complete():
    simulated = simulate_scores(n_participants=500, n_waves=5, effect=0.2, seed=2, dropout=0.2)
    frame = simulated.scores[simulated.scores.dimension == "mental_wellbeing"]
    waves = frame.groupby("participant").wave.agg(["min", "max", "count"])
    assert (waves["min"] == 0).all()
    assert (waves["count"] == waves["max"] + 1).all()  # no gaps: drop-out is monotone
    assert frame.groupby("wave").participant.nunique().is_monotonic_decreasing


@pytest.mark.parametrize("missing", ["mcar", "mar"])
def test_the_share_that_drops_out_is_about_the_one_asked_for(missing):
    simulated = simulate_scores(
        n_participants=20_000, n_waves=6, effect=0.0, seed=3, dropout=0.2, missing=missing
    )
    final = simulated.scores.query("wave == 5 and dimension == 'mental_wellbeing'")
    # 20,000 participants: the binomial SD of the share is 0.003.
    assert 1 - len(final) / 20_000 == pytest.approx(0.2, abs=0.02)


def test_mar_dropout_leaves_the_unhappier_behind():
    simulated = simulate_scores(
        n_participants=20_000, n_waves=4, effect=0.0, seed=3, dropout=0.3, missing="mar"
    )
    who5 = simulated.scores.query("dimension == 'mental_wellbeing'")
    stayed = set(who5.query("wave == 3").participant)
    baseline = who5.query("wave == 0").set_index("participant").score
    leavers = baseline[~baseline.index.isin(stayed)]
    assert leavers.mean() < baseline[baseline.index.isin(stayed)].mean() - 2


def test_answers_reproduce_the_target_score():
    rng = np.random.default_rng(0)
    who5 = shipped_definitions()["who5"]
    for target in [0, 3, 37.9, 52, 99, 140, -5]:
        answers = answers_for_score(who5, target, rng)
        expected = min(max(round(target / 4), 0), 25) * 4
        assert scores(who5, answers) == {"who5": expected}


def test_simulated_who5_answers_are_as_reliable_as_real_ones():
    # Published WHO-5 samples show Cronbach's α of about 0.8 to 0.9 (Topp et al. 2015); answers
    # spread over the items at random, with no common trait, gave far less.
    simulated = simulate_scores(n_participants=500, n_waves=2, effect=0.0, seed=11)
    targets = simulated.scores.query("dimension == 'mental_wellbeing' and wave == 0").score
    who5 = shipped_definitions()["who5"]
    rng = np.random.default_rng(12)
    answers = [answers_for_score(who5, target, rng) for target in targets]
    items = np.array([[answer[item.code] for item in who5.items] for answer in answers])
    assert not any(item.reverse for item in who5.items)
    assert 0.8 <= cronbach_alpha(items).alpha <= 0.9
