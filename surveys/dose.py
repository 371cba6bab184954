"""The surveys' side of the DP dose release (``federated.dose``): each participant's outcome
change, which the federated app sends to that participant's device alone, and the freeze check
that the score a plan's dose section names exists. Both are registered in this app's
``ready()`` (the federated app may not import this one: docs/architecture.md, "The layers")."""

from collections.abc import Iterable

from django.db.models import F

from surveys.models import Instrument, Score
from trials.models import Trial
from trials.plan import Plan
from trials.telemetry import DoseOutcome


def dose_outcome_changes(
    trial: Trial, outcome: DoseOutcome, participant_ids: Iterable[str]
) -> dict[str, float]:
    """Score at ``outcome.wave`` minus the baseline score (wave 0) of each named participant of
    ``trial`` who has both; one query, two rows per participant at most."""
    rows = Score.objects.filter(
        response__participant__trial=trial,
        response__participant_id__in=list(participant_ids),
        response__wave__index__in=[0, outcome.wave],
        instrument__code=outcome.instrument,
        code=outcome.score,
    ).values_list("response__participant_id", F("response__wave__index"), "value")
    baseline: dict[str, float] = {}
    follow_up: dict[str, float] = {}
    for participant_id, wave, value in rows:
        (baseline if wave == 0 else follow_up)[participant_id] = value
    return {pid: follow_up[pid] - baseline[pid] for pid in follow_up.keys() & baseline.keys()}


def dose_outcome_errors(trial: Trial, plan: Plan) -> list[str]:
    """What a plan's dose section names that the surveys do not have: its instrument's score."""
    dose = plan.telemetry.dose if plan.telemetry else None
    if dose is None:
        return []
    instrument = Instrument.objects.filter(code=dose.outcome.instrument).first()
    if instrument is None:
        return []  # the dose must be one of the plan's outcomes; plan_survey_errors names it
    scores = sorted(score.code for score in instrument.definition.scores)
    if dose.outcome.score not in scores:
        return [
            f"telemetry → dose → outcome: {dose.outcome.instrument} has no score "
            f"{dose.outcome.score!r} (scores: {', '.join(scores)})."
        ]
    return []
