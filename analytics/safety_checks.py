"""What a finished analysis run tells the safety app (docs/architecture.md, "Crisis answers and
deterioration"): which participants deteriorated reliably on a primary
outcome, whether the engagement-vs-flourishing guardrail is flagged, and whether a harm boundary
is now crossed.

``analysis_run_safety_check`` runs in the worker, in the transaction that marks the run finished
(``analytics.services._finish``): it happens exactly once per run, since a re-delivered or a
superseded attempt does not finish the run again, and the flags are keyed by run and outcome
besides. Nothing here names an arm's configuration: the flags name no arm, and the guardrail's
figures name the arms by their blinded labels (``trials.selectors.arm_labels``), because
coordinators and blinded bodies are told.

Reliable deterioration is the Jacobson–Truax reliable change index from baseline (wave 0) to the
outcome's wave below −1.96, in the direction the score calls worse (``ScoreRule.higher_is_better``:
a rise of a PHQ-9 score). As in the survey quality report (``surveys.reports``), the reliability is
Cronbach's α of the score's items at baseline and the standard deviation is the baseline scores'
in the trial's own sample (both arms), so the same threshold applies to every arm.
"""

import logging

import pandas as pd
from django.db import transaction

from analytics.models import AnalysisRun
from analytics.results import Outcome, Results
from analytics.selectors import trial_scores_frame
from safety.flags import deterioration_flags_raise
from safety.harms import harm_boundaries_check
from stats import psychometrics
from surveys.models import Instrument
from surveys.reports import instrument_item_frame
from trials.models import Trial, TrialEvent
from trials.selectors import arm_labels
from trials.services import event_record

logger = logging.getLogger(__name__)

BASELINE_WAVE = 0
# Two-sided 5 %: a change this large arises from measurement error alone less than 1 in 20 times.
RCI_CRITICAL = 1.96


def analysis_run_safety_check(run: AnalysisRun) -> None:
    """Flag reliable deteriorations, report a flagged guardrail, check the harm boundaries."""
    results = Results.model_validate(run.results)
    trial = run.trial
    primary = [outcome for outcome in results.outcomes if outcome.role == "primary"]
    deterioration_flags_raise(
        trial=trial, run_id=run.pk, deteriorated=reliable_deteriorations(trial, primary)
    )
    guardrail_report(run, results)
    # As after an adverse event (safety.services), a failing boundary check is logged, not
    # raised: the run and its flags stand, and the next event or run checks every boundary again.
    try:
        with transaction.atomic():
            harm_boundaries_check(trial=trial, trigger=f"analysis_run:{run.pk}")
    except Exception:  # noqa: BLE001 — any failure of the check; its savepoint is rolled back
        logger.exception("analysis run %s: the harm boundary check failed", run.pk)


def reliable_deteriorations(trial: Trial, outcomes: list[Outcome]) -> dict[str, dict[str, dict]]:
    """Outcome code → participant pseudonym → what was found (waves, scores, RCI), for every
    participant whose change from baseline to the outcome's wave is a reliable deterioration.
    An outcome whose data cannot give a reliability (too few respondents, no spread) is left
    out and logged."""
    scores = trial_scores_frame(trial)
    found = {}
    for outcome in outcomes:
        try:
            found[outcome.code] = _deteriorated(trial, outcome, scores)
        except ValueError as error:
            logger.warning(
                "trial %s: no reliable change on %s: %s", trial.slug, outcome.code, error
            )
    return found


def _deteriorated(trial: Trial, outcome: Outcome, scores: pd.DataFrame) -> dict[str, dict]:
    instrument = Instrument.objects.get(code=outcome.instrument)
    definition = instrument.definition
    rule = definition.score(outcome.code)
    items = instrument_item_frame(trial, instrument)
    baseline_items = items.loc[items["wave"] == BASELINE_WAVE, definition.scored_items(rule)]
    reliability = psychometrics.cronbach_alpha(baseline_items.to_numpy(dtype=float)).alpha
    if not 0 <= reliability < 1:
        raise ValueError(f"baseline α is {reliability:.3f}, outside [0, 1)")
    own = scores[(scores["instrument"] == outcome.instrument) & (scores["outcome"] == outcome.code)]
    wide = own.pivot_table(index="participant", columns="wave", values="score")
    if BASELINE_WAVE not in wide or outcome.wave not in wide:
        raise ValueError(f"no scores at waves {BASELINE_WAVE} and {outcome.wave}")
    baseline_sd = float(wide[BASELINE_WAVE].std(ddof=1))
    pairs = wide[[BASELINE_WAVE, outcome.wave]].dropna()
    change = psychometrics.reliable_change(
        pairs[BASELINE_WAVE].to_numpy(),
        pairs[outcome.wave].to_numpy(),
        baseline_sd,
        reliability,
        higher_is_better=rule.higher_is_better,
        critical=RCI_CRITICAL,
    )
    return {
        participant: {
            "outcome": outcome.code,
            "from_wave": BASELINE_WAVE,
            "to_wave": outcome.wave,
            "before": round(float(before), 3),
            "after": round(float(after), 3),
            "rci": round(float(rci), 3),
        }
        for participant, before, after, rci, worse in zip(
            pairs.index,
            pairs[BASELINE_WAVE],
            pairs[outcome.wave],
            change.rci,
            change.reliable_deterioration,
            strict=True,
        )
        if worse
    }


def guardrail_report(run: AnalysisRun, results: Results) -> None:
    """One GUARDRAIL_FLAGGED event when the run flags the engagement-vs-flourishing divergence
    for any arm, with each flagged comparison's figures under the arm's blinded label."""
    flagged = [d for d in results.divergence if d.flagged]
    if not flagged:
        return
    labels = arm_labels(run.trial, blinded=True)
    event_record(
        trial=run.trial,
        kind=TrialEvent.Kind.GUARDRAIL_FLAGGED,
        run=run.pk,
        flagged=[
            {
                "arm": labels[d.arm],
                "engagement_source": d.engagement_source,
                "flourishing_source": d.flourishing_source,
                "probability": round(d.probability, 4),
                "threshold": d.threshold,
            }
            for d in flagged
        ],
    )
