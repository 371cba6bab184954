"""Reliable deterioration after each finished analysis run (analytics.safety_checks): a
simulated trial whose treatment arm deteriorates gets a flag on exactly the participants whose
Jacobson–Truax index falls below −1.96 (worked out here from the stored answers), one audit event
for the run, and crosses the plan's harm boundary on reliable deterioration; a re-delivered run
writes nothing twice; a symptom score (PHQ-9) deteriorates when it rises; a flagged guardrail is
reported with blinded arm labels."""

import numpy as np
import pytest

from analytics.models import AnalysisRun
from analytics.results import Divergence, Outcome, Results
from analytics.safety_checks import guardrail_report, reliable_deteriorations
from analytics.seeding import synthetic_trial_create
from analytics.services import analysis_run_create, analysis_run_execute
from safety.models import SafetyFlag
from surveys.models import Instrument, Response, Score
from surveys.services import response_submit, wave_change
from tests.trials.factories import bodies, draft_trial, valid_plan
from trials.models import ConsentDocument, ConsentScope, Trial, TrialEvent
from trials.plan import HarmBoundary
from trials.selectors import arm_labels, preregistration_current
from trials.services import (
    approval_record,
    oversight_assign,
    participant_enrol,
    preregistration_amend,
    preregistration_freeze,
    trial_transition,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

BOUNDARY = HarmBoundary(
    metric="reliable_deterioration", max_excess=0.0, confidence=0.9, min_participants_per_arm=10
)


def _alpha(items: np.ndarray) -> float:
    """Cronbach's α from its definition: k/(k−1) · (1 − Σ item variances / total variance)."""
    k = items.shape[1]
    return k / (k - 1) * (1 - items.var(axis=0, ddof=1).sum() / items.sum(axis=1).var(ddof=1))


def _expected_deteriorated(trial: Trial, code: str, wave: int, higher_is_better: bool) -> set:
    """The participants whose RCI from baseline to ``wave`` is a reliable deterioration, from
    the stored answers and scores."""
    definition = Instrument.objects.get(code=code).definition
    baseline = Response.objects.filter(participant__trial=trial, wave__index=0)
    items = np.array([[r.answers[code][i] for i in definition.item_codes] for r in baseline])
    reliability = _alpha(items)
    scores = {
        (s.response.participant_id, s.response.wave.index): s.value
        for s in Score.objects.filter(
            response__participant__trial=trial, instrument__code=code
        ).select_related("response__wave")
    }
    before = {p: v for (p, w), v in scores.items() if w == 0}
    s_diff = np.sqrt(2) * np.std(list(before.values()), ddof=1) * np.sqrt(1 - reliability)
    sign = 1 if higher_is_better else -1
    return {
        p
        for (p, w), after in scores.items()
        if w == wave and p in before and sign * (after - before[p]) / s_diff < -1.96
    }


@pytest.fixture
def deteriorating_trial():
    """Arm b loses 30 WHO-5 points per wave against arm a, and the plan in force stops for
    harm when the data rule out no excess of reliable deterioration in an arm."""
    trial = synthetic_trial_create(slug="harm", participants=60, waves=3, effect=-30.0, seed=11)
    plan = preregistration_current(trial).plan
    safety = plan.safety.model_copy(update={"harm_boundaries": [BOUNDARY]})
    amended = preregistration_amend(
        trial=trial,
        plan=plan.model_copy(update={"safety": safety}),
        rationale="A harm boundary on reliable deterioration.",
    )
    for link in trial.oversight.filter(required=True):
        approval_record(body=link.body, preregistration=amended)
    return trial


def test_a_deteriorating_arm_is_flagged_per_participant_and_crosses_its_harm_boundary(
    deteriorating_trial,
):
    trial = deteriorating_trial
    run = analysis_run_execute(run_id=analysis_run_create(trial=trial, enqueue=False).pk)
    assert run.status == AnalysisRun.Status.FINISHED, run.error

    flags = SafetyFlag.objects.filter(trial=trial, kind=SafetyFlag.Kind.DETERIORATION)
    flagged = set(flags.values_list("participant_id", flat=True))
    assert flagged == _expected_deteriorated(trial, "who5", 2, higher_is_better=True)
    assert {f.source_key for f in flags} == {f"run:{run.pk}:who5"}
    for flag in flags:
        assert flag.detail["rci"] < -1.96 and flag.detail["after"] < flag.detail["before"]
        assert "arm" not in flag.detail
    per_arm = {
        slug: flags.filter(participant__allocation__arm__slug=slug).count() for slug in ("a", "b")
    }
    assert per_arm["b"] > per_arm["a"]

    (event,) = TrialEvent.objects.filter(trial=trial, kind=TrialEvent.Kind.DETERIORATION_FLAGGED)
    assert event.detail == {
        "run": run.pk,
        "participants": len(flagged),
        "flags": len(flagged),
        "outcomes": ["who5"],
    }
    (crossed,) = TrialEvent.objects.filter(trial=trial, kind=TrialEvent.Kind.HARM_BOUNDARY_CROSSED)
    assert crossed.detail["trigger"] == f"analysis_run:{run.pk}"
    assert crossed.detail["arm"] == arm_labels(trial, blinded=True)["b"]
    assert crossed.detail["arm_with_harm"] == per_arm["b"]
    assert crossed.detail["boundary"]["metric"] == "reliable_deterioration"

    # The run delivered again (a retried task) changes nothing and writes nothing.
    events = TrialEvent.objects.filter(trial=trial).count()
    raised = set(flags.values_list("pk", flat=True))
    analysis_run_execute(run_id=run.pk)
    assert TrialEvent.objects.filter(trial=trial).count() == events
    assert set(flags.values_list("pk", flat=True)) == raised

    # A flagged guardrail in a run is reported once, naming the arm by its blinded label.
    results = Results.model_validate(run.results)
    divergence = Divergence(
        arm="b",
        engagement_source="survey: reliance on the assistant",
        flourishing_source="survey: who5",
        prob_engagement_rose=0.9,
        prob_flourishing_rose=0.2,
        probability=0.81234,
        threshold=0.8,
        flagged=True,
        draws=4000,
    )
    guardrail_report(run, results.model_copy(update={"divergence": [divergence]}))
    (guardrail,) = TrialEvent.objects.filter(trial=trial, kind=TrialEvent.Kind.GUARDRAIL_FLAGGED)
    assert guardrail.detail["run"] == run.pk
    assert guardrail.detail["flagged"] == [
        {
            "arm": arm_labels(trial, blinded=True)["b"],
            "engagement_source": "survey: reliance on the assistant",
            "flourishing_source": "survey: who5",
            "probability": 0.8123,
            "threshold": 0.8,
        }
    ]
    names = set(trial.arms.values_list("name", flat=True))
    assert not names & {str(v) for v in guardrail.detail["flagged"][0].values()}


def _phq9_trial() -> Trial:
    """Two arms, the PHQ-9 beside the WHO-5 at every wave, enrolling."""
    trial = draft_trial("phq")
    for wave in trial.waves.all():
        wave_change(
            wave=wave,
            index=wave.index,
            day_offset=wave.day_offset,
            instrument_codes=["who5", "phq9"],
            window_days=wave.window_days,
            reminder_days=[],
            one_page=False,
        )
    preregistration_freeze(trial=trial, plan=valid_plan())
    trial = trial_transition(trial=trial, to=Trial.State.REGISTERED)
    for body in bodies("Ethics", "Council"):
        oversight_assign(trial=trial, body=body)
        approval_record(body=body, preregistration=preregistration_current(trial))
    ConsentDocument.objects.create(
        trial=trial, version=1, text="Consent.", scopes=[ConsentScope.SURVEYS]
    )
    return trial_transition(trial=trial, to=Trial.State.ENROLLING)


def test_a_symptom_score_deteriorates_when_it_rises():
    trial = _phq9_trial()
    document = trial.consent_documents.get()
    rng = np.random.default_rng(3)
    waves = {w.index: w for w in trial.waves.all()}
    rises, falls = set(), set()
    for number in range(16):
        participant = participant_enrol(
            trial=trial,
            email=f"p{number}@example.org",
            consent_document=document,
            scopes=[ConsentScope.SURVEYS],
        )
        level = number % 4  # every level of the scale at baseline, for a spread and a reliability
        baseline = np.clip(level + rng.integers(-1, 2, 9), 0, 3)
        later = baseline
        if number in (1, 5):  # from low to "nearly every day": a rise of many points
            later = np.full(9, 3)
            rises.add(participant.pk)
        elif number in (3, 7):  # from high to "not at all"
            later = np.zeros(9, dtype=int)
            falls.add(participant.pk)
        for index, answers in ((0, baseline), (2, later)):
            response_submit(
                participant=participant,
                wave=waves[index],
                answers={
                    "phq9": {f"phq9_{i}": int(a) for i, a in enumerate(answers, start=1)},
                    "who5": {f"who5_{i}": 3 for i in range(1, 6)},
                },
            )
    outcome = Outcome(
        code="phq9",
        instrument="phq9",
        dimension="mental_wellbeing",
        wave=2,
        role="primary",
        planned=True,
    )
    found = reliable_deteriorations(trial, [outcome])
    expected = _expected_deteriorated(trial, "phq9", 2, higher_is_better=False)
    assert set(found["phq9"]) == expected == rises
    assert not falls & set(found["phq9"])
    for detail in found["phq9"].values():
        assert detail["after"] > detail["before"] and detail["rci"] > 1.96
