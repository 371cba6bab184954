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
import statistics

import numpy as np
from django.db import connection, transaction

from analytics.models import AnalysisRun
from analytics.results import Outcome, Results
from safety.flags import deterioration_flags_raise
from safety.harms import harm_boundaries_check
from stats import psychometrics
from surveys.item_moments import score_item_moments
from surveys.models import Instrument, Response, Score, Wave
from trials.models import Participant, Trial, TrialEvent
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
    out and logged.

    Everything is aggregated in PostgreSQL: the baseline items' moments for α
    (``surveys.item_moments``), the baseline scores' standard deviation, and only the
    participants past the threshold leave the database."""
    found = {}
    for outcome in outcomes:
        try:
            found[outcome.code] = _deteriorated(trial, outcome)
        except ValueError as error:
            logger.warning(
                "trial %s: no reliable change on %s: %s", trial.slug, outcome.code, error
            )
    return found


# The scores of one outcome at two waves of a trial's participants.
_SCORES = f"""
    FROM {Score._meta.db_table} s
    JOIN {Instrument._meta.db_table} i ON i.id = s.instrument_id
    JOIN {Response._meta.db_table} r ON r.id = s.response_id
    JOIN {Wave._meta.db_table} w ON w.id = r.wave_id
    JOIN {Participant._meta.db_table} p ON p.id = r.participant_id
    WHERE p.trial_id = %(trial)s AND i.code = %(instrument)s AND s.code = %(code)s
      AND w.index IN (%(baseline)s, %(wave)s)
"""

# Wider than the threshold by far more than the rounding of a difference of two doubles, so
# every participant the exact test below flags is among the rows fetched.
_MARGIN = 1e-9


def _deteriorated(trial: Trial, outcome: Outcome) -> dict[str, dict]:
    instrument = Instrument.objects.get(code=outcome.instrument)
    definition = instrument.definition
    rule = definition.score(outcome.code)
    items = definition.scored_items(rule)
    baseline_items = score_item_moments(trial, instrument, items, wave=BASELINE_WAVE).waves
    empty = psychometrics.ItemMoments.from_sums(
        0, [0] * len(items), [[0] * len(items)] * len(items)
    )
    moments = baseline_items[BASELINE_WAVE].moments if baseline_items else empty
    reliability = psychometrics.cronbach_alpha_from_moments(moments).alpha
    if not 0 <= reliability < 1:
        raise ValueError(f"baseline α is {reliability:.3f}, outside [0, 1)")
    params = {
        "trial": trial.pk,
        "instrument": outcome.instrument,
        "code": outcome.code,
        "baseline": BASELINE_WAVE,
        "wave": outcome.wave,
    }
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT COUNT(*) FILTER (WHERE w.index = %(baseline)s),
                           COUNT(*) FILTER (WHERE w.index = %(wave)s),
                           STDDEV_SAMP(s.value) FILTER (WHERE w.index = %(baseline)s)
                    {_SCORES}""",
                params,
            )
            at_baseline, at_wave, baseline_sd = cursor.fetchone()
    else:
        # SQLite (the demo's database): the same from the two waves' scores in Python.
        before_of, after_of = _scores_in_python(trial, outcome)
        at_baseline, at_wave = len(before_of), len(after_of)
        baseline_sd = statistics.stdev(before_of.values()) if at_baseline > 1 else None
    if not at_baseline or not at_wave:
        raise ValueError(f"no scores at waves {BASELINE_WAVE} and {outcome.wave}")
    # One baseline score has no standard deviation; reliable_change refuses the NaN.
    baseline_sd = float("nan") if baseline_sd is None else float(baseline_sd)
    threshold = (
        psychometrics.reliable_change(
            0.0, 0.0, baseline_sd, reliability, critical=RCI_CRITICAL
        ).s_diff
        * RCI_CRITICAL
    )
    worse = 1.0 if rule.higher_is_better else -1.0  # the sign of a change for the better
    if not postgresql:
        rows = [(p, before_of[p], after_of[p]) for p in sorted(set(before_of) & set(after_of))]
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT participant, before, after FROM (
                        SELECT r.participant_id AS participant,
                               AVG(s.value) FILTER (WHERE w.index = %(baseline)s) AS before,
                               AVG(s.value) FILTER (WHERE w.index = %(wave)s) AS after
                        {_SCORES}
                        GROUP BY r.participant_id
                    ) pairs
                    WHERE %(sign)s * (after - before) < -%(threshold)s
                    ORDER BY participant COLLATE "C" """,
                {**params, "sign": worse, "threshold": threshold * (1 - _MARGIN)},
            )
            rows = cursor.fetchall()
    participants = [row[0] for row in rows]
    before = np.array([row[1] for row in rows], dtype=float)
    after = np.array([row[2] for row in rows], dtype=float)
    change = psychometrics.reliable_change(
        before,
        after,
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
            "before": round(float(b), 3),
            "after": round(float(a), 3),
            "rci": round(float(rci), 3),
        }
        for participant, b, a, rci, flagged in zip(
            participants, before, after, change.rci, change.reliable_deterioration, strict=True
        )
        if flagged
    }


def _scores_in_python(trial: Trial, outcome: Outcome) -> tuple[dict, dict]:
    """Participant → score at baseline, and at the outcome's wave."""
    found: tuple[dict, dict] = ({}, {})
    for participant, wave, value in Score.objects.filter(
        response__participant__trial=trial,
        instrument__code=outcome.instrument,
        code=outcome.code,
        response__wave__index__in=[BASELINE_WAVE, outcome.wave],
    ).values_list("response__participant_id", "response__wave__index", "value"):
        found[0 if wave == BASELINE_WAVE else 1][participant] = value
    return found


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
