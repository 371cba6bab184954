"""The answer to a trial's pre-registered question, per primary outcome: what the dashboard's first
screen, the trial list's headline and the shareable report say, worded in one place.

Interface (stable; ``dashboards.report`` and ``dashboards.views`` rely on it)::

    answers = run_answers(run)                              # an AnalysisRun: reads names, plan
    answers = outcome_answers(results, plan, names)         # pure: Results, Plan | None, and
                                                            # dashboards.selectors.Names
    answer.sentence      # one sentence: verdict, direction, size in units and against the MID,
                         # interval, adjusted p, P(benefit), P(reaches the MID)
    answer.verdict       # e.g. "benefit, smaller than the minimal important difference"
    answer.verdict_key   # one of VERDICTS, for styling and tests
    answer.summary       # outcome, arms, difference in units and interval, for a list
    answer.estimate, .ci_low, .ci_high, .p_adjusted, .prob_benefit, .prob_reaches_mid, …

The decision rule is the plan's (``trials.plan.Plan``): the confirmatory test of the primary
outcome is the mixed model's growth contrast (the test the interim looks use too,
``analytics.results.Interim``), judged at the plan's ``alpha`` after its multiplicity correction
(``FrequentistEstimate.p_adjusted``). A significant contrast is a benefit or a harm by the
direction in which the score is better (``surveys.instrument.ScoreRule.higher_is_better``); its
size is then placed against the plan's minimal important difference spread over the waves to
the outcome wave (``minimal_important_differences[dimension] / wave``, as the Bayesian model's
``prob_above_mid`` does, ``analytics.analysis``): at least the MID when the whole interval is
beyond it, smaller when the whole interval is short of it, uncertain otherwise. A contrast that
is not significant shows no difference; with a MID, the interval either rules out a difference
as large as the MID either way (no important difference) or does not (inconclusive).

The Bayesian growth model's P(benefit) and P(reaches the MID) are stated beside the verdict, never
rounded to certainty: a probability above 0.99 is written "> 0.99", below 0.01 "< 0.01"
(:func:`probability_text`). They are stored as P(difference > 0) and P(difference > MID per wave)
(``stats.bayes_growth``), which are the benefit's probabilities only where a higher score is
better; for a score where lower is better P(benefit) is the complement and P(reaches the MID) is
not stored, so it is left out.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from analytics.models import AnalysisRun
from analytics.results import BayesianEstimate, FrequentistEstimate, Results
from dashboards.selectors import Names, names_for
from trials.plan import Plan

PRIMARY_TEST = "mixedlm"
GROWTH = "growth_difference_per_wave"
VerdictKey = Literal[
    "benefit_at_least_mid",
    "benefit_below_mid",
    "benefit_mid_uncertain",
    "benefit",
    "harm_at_least_mid",
    "harm_below_mid",
    "harm_mid_uncertain",
    "harm",
    "no_important_difference",
    "inconclusive",
    "no_difference_shown",
    "not_reportable",
]
MID = "the minimal important difference"
# The plan's multiplicity rules as a reader names them.
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "uncorrected"}
VERDICTS: dict[str, str] = {
    "benefit_at_least_mid": f"benefit of at least {MID}",
    "benefit_below_mid": f"benefit, smaller than {MID}",
    "benefit_mid_uncertain": f"benefit; whether it reaches {MID} is uncertain",
    "benefit": "benefit",
    "harm_at_least_mid": f"harm of at least {MID}",
    "harm_below_mid": f"harm, smaller than {MID}",
    "harm_mid_uncertain": f"harm; whether it reaches {MID} is uncertain",
    "harm": "harm",
    "no_important_difference": f"no difference shown, and the interval rules out {MID}",
    "inconclusive": f"inconclusive: no difference shown, but the interval includes {MID}",
    "no_difference_shown": "no difference shown",
    "not_reportable": "no answer: the estimate is not reportable",
}


@dataclass(frozen=True)
class OutcomeAnswer:
    """The answer for one primary outcome and one arm compared with the control.

    Differences are the arm's growth minus the control's, in the score's points per wave, signed
    as stored (positive: the arm's scores rose faster); ``mid_per_wave`` is positive."""

    outcome: str
    outcome_name: str
    dimension: str
    dimension_name: str
    wave: int
    arm: str
    arm_name: str
    control: str
    control_name: str
    higher_is_better: bool
    score_range: tuple[float, float] | None
    estimate: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    alpha: float
    multiplicity: str
    mid: float | None
    """The plan's MID at the outcome wave (score points)."""
    mid_per_wave: float | None
    share_of_mid: float | None
    """|estimate| / mid_per_wave."""
    prob_benefit: float | None
    prob_reaches_mid: float | None
    bayes_ci_low: float | None
    bayes_ci_high: float | None
    bayes_estimate: float | None
    confirmatory: bool
    reportable: bool
    not_reportable_because: tuple[str, ...]
    verdict_key: VerdictKey
    verdict: str
    sentence: str

    @property
    def unit(self) -> str:
        return "points per wave"

    @property
    def summary(self) -> str:
        """The numbers in a line, for a list beside the verdict: outcome, arms, difference in
        units, interval."""
        difference = f"{self.estimate:+.2f}".replace("-", "−")
        interval = f"{number(self.ci_low)} to {number(self.ci_high)}"
        return (
            f"{self.outcome_name} ({self.dimension_name}): {difference} {self.unit}, "
            f"{self.arm_name} against {self.control_name} (95% CI {interval})"
        )

    @property
    def direction(self) -> Literal["benefit", "harm", "none"]:
        """The significant direction, by the plan's test; "none" when it shows no difference."""
        key = self.verdict_key
        return (
            "benefit" if key.startswith("benefit") else "harm" if key.startswith("harm") else "none"
        )


def probability_text(value: float | None, digits: int = 2) -> str:
    """A posterior probability with ``digits`` decimals, never rounded to certainty: within
    10^-digits of 0 or 1 it is written as a bound ("> 0.99", "< 0.01")."""
    if value is None:
        return "–"
    step = 10.0**-digits
    if value > 1 - step:
        return f"> {1 - step:.{digits}f}"
    if value < step:
        return f"< {step:.{digits}f}"
    return f"{value:.{digits}f}"


def p_text(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def p_phrase(value: float | None, name: str = "p") -> str:
    text = p_text(value)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def number(value: float, digits: int = 2) -> str:
    """A signed number with a true minus sign."""
    return f"{value:.{digits}f}".replace("-", "−")


def verdict_for(
    *,
    estimate: float,
    ci_low: float,
    ci_high: float,
    p_adjusted: float,
    alpha: float,
    mid_per_wave: float | None,
    higher_is_better: bool,
    reportable: bool = True,
) -> VerdictKey:
    """The plan's decision rule (see the module's docstring) on one contrast."""
    if not reportable:
        return "not_reportable"
    sign = 1 if higher_is_better else -1
    # The contrast and its interval in the direction of benefit.
    gain = sign * estimate
    low, high = sorted((sign * ci_low, sign * ci_high))
    if p_adjusted < alpha:
        direction = "benefit" if gain > 0 else "harm"
        if mid_per_wave is None:
            return direction  # type: ignore[return-value]
        near, far = (low, high) if gain > 0 else (-high, -low)
        if near >= mid_per_wave:
            return f"{direction}_at_least_mid"  # type: ignore[return-value]
        if far < mid_per_wave:
            return f"{direction}_below_mid"  # type: ignore[return-value]
        return f"{direction}_mid_uncertain"  # type: ignore[return-value]
    if mid_per_wave is None:
        return "no_difference_shown"
    if -mid_per_wave < low and high < mid_per_wave:
        return "no_important_difference"
    return "inconclusive"


def _sentence(a: "OutcomeAnswer") -> str:
    scale = ""
    if a.score_range:
        low, high = a.score_range
        scale = f"; {low:g}–{high:g}"
    better = "higher is better" if a.higher_is_better else "lower is better"
    outcome = f"{a.outcome_name} ({a.dimension_name}{scale}, {better})"
    if a.verdict_key == "not_reportable":
        reasons = "; ".join(a.not_reportable_because) or "see the run's diagnostics"
        return (
            f"No answer yet on {outcome} for {a.arm_name} against {a.control_name}: the "
            f"estimate is not reportable ({reasons})."
        )
    more = "more" if a.estimate >= 0 else "less"
    interval = f"95% CI {number(a.ci_low)} to {number(a.ci_high)}"
    signed = "" if a.estimate >= 0 else f"difference {number(a.estimate)}, "
    text = (
        f"{a.verdict[:1].upper()}{a.verdict[1:]}: {outcome} scores gained "
        f"{abs(a.estimate):.2f} {a.unit} {more} under {a.arm_name} than under {a.control_name} "
        f"({signed}{interval}, {p_phrase(a.p_adjusted, 'adjusted p')})"
    )
    if a.mid_per_wave is not None and a.share_of_mid is not None:
        text += (
            f", {a.share_of_mid:.0%} of {MID} ({a.mid_per_wave:.2f} {a.unit}, "
            f"{a.mid:g} points by wave {a.wave})"
        )
    probabilities = []
    if a.prob_benefit is not None:
        probabilities.append(f"P(benefit) {probability_relation(a.prob_benefit)}")
    if a.prob_reaches_mid is not None:
        probabilities.append(f"P(benefit ≥ MID) {probability_relation(a.prob_reaches_mid)}")
    if probabilities:
        text += "; " + ", ".join(probabilities)
    return text + "."


def probability_relation(probability: float) -> str:
    """ "= 0.62", or "> 0.99" where :func:`probability_text` writes a bound: what follows
    "P(benefit)" in a sentence."""
    text = probability_text(probability)
    return text if text[0] in "<>" else f"= {text}"


def _answer(
    results: Results,
    names: Names,
    mids: Mapping[str, float],
    frequentist: FrequentistEstimate,
    bayes: BayesianEstimate | None,
) -> OutcomeAnswer:
    code = frequentist.outcome
    higher_is_better = names.higher_is_better.get(code, True)
    mid = mids.get(frequentist.dimension)
    if mid is None and bayes is not None:
        mid = bayes.mid
    mid_per_wave = None if mid is None else mid / frequentist.wave
    reportable = frequentist.reportable
    key = verdict_for(
        estimate=frequentist.estimate,
        ci_low=frequentist.ci_low,
        ci_high=frequentist.ci_high,
        p_adjusted=frequentist.p_adjusted,
        alpha=results.alpha,
        mid_per_wave=mid_per_wave,
        higher_is_better=higher_is_better,
        reportable=reportable,
    )
    bayes_shown = bayes if bayes is not None and bayes.reportable else None
    prob_benefit = prob_reaches_mid = None
    if bayes_shown is not None:
        prob_benefit = (
            bayes_shown.prob_benefit if higher_is_better else 1 - bayes_shown.prob_benefit
        )
        prob_reaches_mid = bayes_shown.prob_above_mid if higher_is_better else None
    answer = OutcomeAnswer(
        outcome=code,
        outcome_name=names.outcome(code),
        dimension=frequentist.dimension,
        dimension_name=names.dimension(frequentist.dimension),
        wave=frequentist.wave,
        arm=frequentist.arm,
        arm_name=names.arm(frequentist.arm),
        control=results.control,
        control_name=names.arm(results.control),
        higher_is_better=higher_is_better,
        score_range=names.ranges.get(code),
        estimate=frequentist.estimate,
        ci_low=frequentist.ci_low,
        ci_high=frequentist.ci_high,
        p_adjusted=frequentist.p_adjusted,
        alpha=results.alpha,
        multiplicity=results.multiplicity,
        mid=mid,
        mid_per_wave=mid_per_wave,
        share_of_mid=None if not mid_per_wave else abs(frequentist.estimate) / mid_per_wave,
        prob_benefit=prob_benefit,
        prob_reaches_mid=prob_reaches_mid,
        bayes_estimate=bayes_shown.estimate if bayes_shown else None,
        bayes_ci_low=bayes_shown.ci_low if bayes_shown else None,
        bayes_ci_high=bayes_shown.ci_high if bayes_shown else None,
        confirmatory=frequentist.confirmatory,
        reportable=reportable,
        not_reportable_because=tuple(frequentist.not_reportable_because),
        verdict_key=key,
        verdict=VERDICTS[key],
        sentence="",
    )
    return replace(answer, sentence=_sentence(answer))


def outcome_answers(results: Results, plan: Plan | None, names: Names) -> list[OutcomeAnswer]:
    """One answer per primary outcome and compared arm, in the plan's order: the mixed model's
    growth contrast of each primary outcome (the confirmatory ones where the run has any),
    with the Bayesian model's probabilities for the same outcome and arm."""
    mids = plan.minimal_important_differences if plan is not None else {}
    primary = [o.code for o in results.outcomes if o.role == "primary"]
    answers = []
    for code in primary:
        tests = [
            e
            for e in results.estimates
            if isinstance(e, FrequentistEstimate)
            and e.outcome == code
            and e.method == PRIMARY_TEST
            and e.estimand == GROWTH
        ]
        tests = [e for e in tests if e.confirmatory] or tests
        for test in tests:
            bayes = next(
                (
                    e
                    for e in results.estimates
                    if isinstance(e, BayesianEstimate) and e.outcome == code and e.arm == test.arm
                ),
                None,
            )
            answers.append(_answer(results, names, mids, test, bayes))
    return answers


def run_answers(run: AnalysisRun) -> list[OutcomeAnswer]:
    """The answers of a stored run, with the names of its trial and the plan it ran under."""
    results = Results.model_validate(run.results)
    return outcome_answers(results, run.preregistration.plan, names_for(run.trial, results))


def headline(answers: Sequence[OutcomeAnswer]) -> OutcomeAnswer | None:
    """The first answer: the first primary outcome's planned contrast."""
    return next(iter(answers), None)
