"""The answer to the pre-registered question (``dashboards.answer``): the plan's decision rule on
hand-made contrasts, the sentence for the golden run and for the contrast analysts read on a real
trial, and the names a stored run's answer uses."""

import pytest

from analytics.models import AnalysisRun
from analytics.results import Results
from dashboards.answer import (
    VERDICTS,
    outcome_answers,
    probability_text,
    run_answers,
    verdict_for,
)
from dashboards.selectors import Names
from trials.plan import Plan

NAMES = Names(
    arms={"a": "Helpful assistant", "b": "Flourishing assistant"},
    outcomes={"who5": "WHO-5 Well-Being Index"},
    ranges={"who5": (0, 100)},
)
PLAN = Plan(minimal_important_differences={"mental_wellbeing": 6.0})  # 3 points a wave to wave 2


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p", "higher_is_better", "expected"),
    [
        (1.41, 0.50, 2.31, 0.002, True, "benefit_below_mid"),
        (4.00, 3.10, 4.90, 0.001, True, "benefit_at_least_mid"),
        (3.00, 1.00, 5.00, 0.010, True, "benefit_mid_uncertain"),
        (-1.41, -2.31, -0.50, 0.002, True, "harm_below_mid"),
        (-4.00, -4.90, -3.10, 0.001, True, "harm_at_least_mid"),
        # A symptom score: falling faster is the benefit.
        (-1.41, -2.31, -0.50, 0.002, False, "benefit_below_mid"),
        (4.00, 3.10, 4.90, 0.001, False, "harm_at_least_mid"),
        (0.20, -1.00, 1.40, 0.700, True, "no_important_difference"),
        (0.20, -3.50, 3.90, 0.900, True, "inconclusive"),
        # Significance is the plan's adjusted p against its alpha, not the interval's position.
        (1.41, 0.50, 2.31, 0.060, True, "no_important_difference"),
    ],
)
def test_the_plans_decision_rule(estimate, low, high, p, higher_is_better, expected):
    verdict = verdict_for(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        p_adjusted=p,
        alpha=0.05,
        mid_per_wave=3.0,
        higher_is_better=higher_is_better,
    )
    assert verdict == expected


def test_without_a_mid_the_verdict_is_the_direction_or_none():
    common = dict(ci_low=0.5, ci_high=2.3, alpha=0.05, mid_per_wave=None, higher_is_better=True)
    assert verdict_for(estimate=1.4, p_adjusted=0.01, **common) == "benefit"
    assert verdict_for(estimate=1.4, p_adjusted=0.2, **common) == "no_difference_shown"
    assert verdict_for(estimate=1.4, p_adjusted=0.01, reportable=False, **common) == (
        "not_reportable"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.999, "> 0.99"), (0.995, "> 0.99"), (0.99, "0.99"), (0.5, "0.50"), (0.0055, "< 0.01")],
)
def test_probabilities_are_never_rounded_to_certainty(value, text):
    assert probability_text(value) == text


def test_a_probability_with_three_decimals_is_bounded_at_the_third():
    assert [probability_text(v, 3) for v in (0.9995, 0.999, 0.0004)] == [
        "> 0.999",
        "0.999",
        "< 0.001",
    ]


def _with_primary(results: Results, **changes) -> Results:
    """The golden results with its primary mixed-model and Bayesian contrasts replaced."""
    estimates = []
    for e in results.estimates:
        if e.outcome == "who5" and e.method in ("mixedlm", "bayes_growth"):
            fields = changes.get(e.method, {})
            e = e.model_copy(update=fields)
        estimates.append(e)
    return results.model_copy(update={"estimates": estimates})


def test_the_answer_analysts_read_on_a_real_trial(golden):
    """The contrast users met in the browser: 1.41 points a wave (0.50 to 2.31, adjusted
    p = 0.002), P(benefit) 0.999 and P(> MID) 0.004, against a MID of 6 points by wave 2."""
    results = _with_primary(
        golden.results,
        mixedlm={"estimate": 1.41, "ci_low": 0.50, "ci_high": 2.31, "p_adjusted": 0.002},
        bayes_growth={"prob_benefit": 0.999, "prob_above_mid": 0.004},
    )
    [answer] = outcome_answers(results, PLAN, NAMES)
    assert answer.verdict == "benefit, smaller than the minimal important difference"
    assert answer.mid_per_wave == 3.0 and answer.share_of_mid == pytest.approx(1.41 / 3)
    assert answer.sentence == (
        "Benefit, smaller than the minimal important difference: WHO-5 Well-Being Index (mental "
        "wellbeing; 0–100, higher is better) scores gained 1.41 points per wave more under "
        "Flourishing assistant than under Helpful assistant (95% CI 0.50 to 2.31, adjusted "
        "p = 0.002), 47% of the minimal important difference (3.00 points per wave, 6 points by "
        "wave 2); P(benefit) > 0.99, P(benefit ≥ MID) < 0.01."
    )


def test_a_symptom_scores_benefit_is_a_fall(golden):
    results = _with_primary(
        golden.results,
        mixedlm={"estimate": -1.41, "ci_low": -2.31, "ci_high": -0.50, "p_adjusted": 0.002},
        bayes_growth={"prob_benefit": 0.2, "prob_above_mid": 0.0},
    )
    names = Names(arms=NAMES.arms, higher_is_better={"who5": False})
    [answer] = outcome_answers(results, PLAN, names)
    assert answer.verdict_key == "benefit_below_mid" and answer.direction == "benefit"
    assert "gained 1.41 points per wave less" in answer.sentence
    assert "difference −1.41, 95% CI −2.31 to −0.50" in answer.sentence
    # The stored P(difference > 0) is the harm's: the benefit's is its complement, and the
    # stored P(> MID) is not the benefit's, so it is left out.
    assert answer.prob_benefit == pytest.approx(0.8) and answer.prob_reaches_mid is None
    assert "P(benefit) = 0.80" in answer.sentence and "MID)" not in answer.sentence


def test_the_golden_run_answers_its_primary_outcome_only(golden):
    answers = outcome_answers(golden.results, None, Names())
    [answer] = answers
    # Without a plan, the Bayesian estimate's stored MID (10 points by wave 2) is used.
    assert (answer.outcome, answer.arm, answer.mid_per_wave) == ("who5", "b", 5.0)
    assert answer.verdict_key == "no_important_difference" and answer.direction == "none"
    assert answer.verdict == VERDICTS["no_important_difference"]
    assert "under arm b than under arm a" in answer.sentence and answer.confirmatory


def test_an_unreportable_estimate_gives_no_answer(golden):
    results = _with_primary(
        golden.results,
        mixedlm={"reportable": False, "not_reportable_because": ["the model did not converge"]},
        bayes_growth={"reportable": False},
    )
    [answer] = outcome_answers(results, PLAN, NAMES)
    assert answer.verdict_key == "not_reportable" and answer.prob_benefit is None
    assert "not reportable (the model did not converge)" in answer.sentence


def test_a_stored_run_is_answered_with_its_trials_names(analysed_trial):
    run = AnalysisRun.objects.get(trial=analysed_trial)
    [answer] = run_answers(run)
    arms = {arm.slug: arm.name for arm in analysed_trial.arms.all()}
    assert (answer.arm_name, answer.control_name) == (arms["b"], arms["a"])
    assert answer.outcome_name == "WHO-5 Well-Being Index" and answer.score_range == (0, 100)
    assert answer.dimension_name == "mental wellbeing"
    # The run's own plan gives the MID.
    mid = run.preregistration.plan.minimal_important_differences["mental_wellbeing"]
    assert answer.mid == mid
