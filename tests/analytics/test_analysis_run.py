import numpy as np
import pytest
from django.core.management import call_command
from statsmodels.stats.multitest import multipletests

from analytics.models import AnalysisRun
from analytics.results import BayesianEstimate, Diagnostics, Results
from analytics.selectors import trial_scores_frame
from analytics.services import analysis_run_create, analysis_run_execute, analysis_run_fail
from stats.sequential import spending_boundaries
from surveys.reports import trial_survey_report
from trials.models import TrialEvent
from trials.plan import InterimLook, SampleSize
from trials.selectors import preregistration_current
from trials.services import approval_record, preregistration_amend

pytestmark = pytest.mark.django_db

PLANNED = {"who5", "swls"}
METHODS = {"mixedlm", "gee", "ancova", "bayes_growth"}


def _run(trial, **options) -> AnalysisRun:
    return analysis_run_execute(
        run_id=analysis_run_create(trial=trial, enqueue=False, **options).pk
    )


def test_run_records_plan_version_snapshot_and_every_estimate(small_trial):
    run = _run(small_trial)
    assert run.status == AnalysisRun.Status.FINISHED and run.progress == 1.0, run.error
    prereg = preregistration_current(small_trial)
    assert run.preregistration == prereg and run.preregistration_sha256 == prereg.sha256
    assert len(run.data_snapshot_sha256) == 64
    results = Results.model_validate(run.results)
    diagnostics = Diagnostics.model_validate(run.diagnostics)
    # What is stored is exactly the JSON of the typed documents (analytics.results).
    assert results.model_dump(mode="json") == run.results
    assert diagnostics.model_dump(mode="json") == run.diagnostics
    # Every planned outcome × the planned contrast × every method, once.
    keys = [(e.outcome, e.arm, e.method) for e in results.estimates]
    assert sorted(keys) == sorted((o, "b", m) for o in PLANNED for m in METHODS)
    for e in results.estimates:
        assert e.ci_low < e.estimate < e.ci_high
        assert e.estimand == (
            "final_wave_difference" if e.method == "ancova" else "growth_difference_per_wave"
        )
        # Sensitivity analyses are never confirmatory; the planned models are.
        assert e.confirmatory == (e.method != "gee")
        if isinstance(e, BayesianEstimate):
            assert 0 <= e.prob_benefit <= 1 and e.reportable == diagnostics.reportable
        else:
            assert e.p_value <= e.p_adjusted <= 1
    assert results.consort.arms[0].allocated > 0
    assert results.srm.mismatch is False
    assert [w.wave for w in results.attrition] == [1, 2]
    assert results.interim is None  # the plan has no interim look
    events = TrialEvent.objects.filter(trial=small_trial, detail__run=run.pk)
    assert list(events.order_by("sequence").values_list("kind", flat=True)) == [
        TrialEvent.Kind.ANALYSIS_RUN_STARTED,
        TrialEvent.Kind.ANALYSIS_RUN_FINISHED,
    ]


def test_a_failed_run_is_audited_with_its_reason(small_trial):
    run = analysis_run_create(trial=small_trial, enqueue=False)
    failed = analysis_run_fail(run_id=run.pk, error="past the time limit")
    assert failed.status == AnalysisRun.Status.FAILED
    event = TrialEvent.objects.get(trial=small_trial, kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED)
    assert event.detail == {"run": run.pk, "error": "past the time limit"}
    # Failing a failed run again changes nothing and writes nothing.
    analysis_run_fail(run_id=run.pk, error="again")
    assert TrialEvent.objects.filter(kind=TrialEvent.Kind.ANALYSIS_RUN_FAILED).count() == 1


def test_stored_trajectories_densities_and_psychometrics_match_their_sources(small_trial):
    results = Results.model_validate(_run(small_trial).results)
    frame = trial_scores_frame(small_trial)
    for point in results.trajectories:
        scores = frame[
            (frame.outcome == point.outcome) & (frame.arm == point.arm) & (frame.wave == point.wave)
        ].score
        assert point.n == len(scores) and point.mean == pytest.approx(scores.mean())
        half = 1.959964 * scores.std(ddof=1) / np.sqrt(len(scores))
        assert point.ci_high - point.mean == pytest.approx(half)
    bayes = {(e.outcome, e.arm): e for e in results.estimates if e.method == "bayes_growth"}
    for density in results.bayes_growth.posterior_densities:
        width = density.x[1] - density.x[0]
        assert sum(density.density) * width == pytest.approx(1.0)
        # The histogram's mean is the posterior mean up to the binning.
        mean = sum(x * d for x, d in zip(density.x, density.density, strict=True)) * width
        assert mean == pytest.approx(bayes[density.outcome, density.arm].estimate, abs=width)
    reports = {r.score: r for r in trial_survey_report(small_trial)}
    for score in results.psychometrics:
        expected = reports[score.score].by_wave[0]["alpha"].value.alpha
        assert score.reliability[0].alpha.value.alpha == pytest.approx(expected)


def test_an_exploratory_run_labels_every_estimate_exploratory(small_trial):
    results = Results.model_validate(_run(small_trial, kind=AnalysisRun.Kind.EXPLORATORY).results)
    assert results.kind == "exploratory"
    assert results.estimates and not any(e.confirmatory for e in results.estimates)


def test_executing_twice_changes_nothing(small_trial):
    run = analysis_run_create(trial=small_trial, enqueue=False)
    first = analysis_run_execute(run_id=run.pk)
    second = analysis_run_execute(run_id=run.pk)
    assert second.results == first.results and second.finished_at == first.finished_at


def test_same_data_and_seed_give_the_same_snapshot_and_result(small_trial):
    a, b = _run(small_trial), _run(small_trial)
    assert a.data_snapshot_sha256 == b.data_snapshot_sha256
    assert a.results == b.results


def test_run_is_enqueued_only_after_commit(small_trial, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        analysis_run_create(trial=small_trial, enqueue=True)
    assert len(callbacks) == 1


def test_the_registered_multiplicity_correction_is_the_one_applied(small_trial):
    holm = _run(small_trial)
    plan = preregistration_current(small_trial).plan.model_copy(update={"multiplicity": "bh"})
    amended = preregistration_amend(trial=small_trial, plan=plan, rationale="FDR control.")
    # A confirmatory run analyses the amendment once every required body has approved it.
    for link in small_trial.oversight.filter(required=True):
        approval_record(body=link.body, preregistration=amended)
    bh = Results.model_validate(_run(small_trial).results)
    assert bh.multiplicity == "bh" and Results.model_validate(holm.results).multiplicity == "holm"
    for method in ("mixedlm", "ancova"):
        family = [e for e in bh.estimates if e.method == method]
        # The amended plan's Benjamini–Hochberg, not the original Holm, adjusted the p-values.
        expected = multipletests([e.p_value for e in family], method="fdr_bh")[1]
        assert [e.p_adjusted for e in family] == pytest.approx(list(expected))


def test_the_mixed_model_s_estimates_keep_the_satterthwaite_df_behind_their_p_values(small_trial):
    from scipy import stats

    results = Results.model_validate(_run(small_trial).results)
    mixed = [e for e in results.estimates if e.method == "mixedlm"]
    assert mixed and all(e.df is not None and e.df > 0 for e in mixed)
    for e in mixed:
        t = abs(e.estimate / e.std_error)
        assert e.p_value == pytest.approx(2 * stats.t(e.df).sf(t), rel=1e-9)
    assert all(e.df is None for e in results.estimates if e.method == "gee")


def test_a_confirmatory_run_places_the_trial_against_its_planned_interim_looks(small_trial):
    plan = preregistration_current(small_trial).plan
    (primary,) = plan.primary_outcomes
    frame = trial_scores_frame(small_trial)
    reached = frame[frame.arm.notna() & (frame.wave == primary.wave)].participant.nunique()
    # Half the planned sample has reached the primary outcome wave: both looks are due.
    amended_plan = plan.model_copy(
        update={
            "sample_size": SampleSize(per_arm=reached),
            "interim_looks": [
                InterimLook(information_fraction=0.25),
                InterimLook(information_fraction=0.5, spending="obrien_fleming"),
            ],
        }
    )
    amended = preregistration_amend(trial=small_trial, plan=amended_plan, rationale="Looks.")
    for link in small_trial.oversight.filter(required=True):
        approval_record(body=link.body, preregistration=amended)
    results = Results.model_validate(_run(small_trial).results)
    interim = results.interim
    assert interim is not None and interim.looks == amended_plan.interim_looks
    assert interim.information_fraction == 0.5 and interim.look == 2
    boundaries = spending_boundaries([0.25, 0.5], alpha=plan.alpha, spending="obrien_fleming")
    assert interim.boundary_z == pytest.approx(boundaries.z[-1])
    assert interim.boundary_p == pytest.approx(boundaries.nominal_p[-1])
    (tested,) = [e for e in results.estimates if e.role == "primary" and e.method == "mixedlm"]
    assert interim.primary_z == pytest.approx(abs(tested.estimate / tested.std_error))
    assert interim.crossed == (interim.primary_z >= boundaries.z[-1])


def test_analyze_trial_prints_the_estimates_as_json(small_trial, capsys):
    import json

    call_command("analyze_trial", small_trial.slug, "--json", "--exploratory")
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "exploratory" and document["status"] == "finished"
    fields = {
        "outcome",
        "dimension",
        "arm",
        "method",
        "estimand",
        "estimate",
        "ci_low",
        "ci_high",
        "reportable",
        "confirmatory",
    }
    for estimate in document["estimates"]:
        assert fields <= set(estimate)
        assert ("p_value" in estimate) != ("prob_benefit" in estimate)
