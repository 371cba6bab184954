import pytest
from statsmodels.stats.multitest import multipletests

from analytics.models import AnalysisRun
from analytics.services import analysis_run_create, analysis_run_execute
from trials.services import preregistration_amend, preregistration_current

pytestmark = pytest.mark.django_db


def test_run_records_plan_version_snapshot_and_results(small_trial):
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    assert run.status == AnalysisRun.Status.FINISHED and run.progress == 1.0
    prereg = preregistration_current(small_trial)
    assert run.preregistration == prereg and run.preregistration_sha256 == prereg.sha256
    assert len(run.data_snapshot_sha256) == 64
    outcomes = run.results["outcomes"]
    assert [(o["role"], o["dimension"], o["wave"]) for o in outcomes] == [
        ("primary", "mental_wellbeing", 2),
        ("secondary", "life_satisfaction", 2),
    ]
    for outcome in outcomes:
        assert outcome["ci_low"] < outcome["estimate"] < outcome["ci_high"]
        assert outcome["p_value"] <= outcome["p_adjusted"] <= 1


def test_executing_twice_changes_nothing(small_trial):
    run = analysis_run_create(trial=small_trial, enqueue=False)
    first = analysis_run_execute(run_id=run.pk)
    second = analysis_run_execute(run_id=run.pk)
    assert second.results == first.results and second.finished_at == first.finished_at


def test_same_data_gives_same_snapshot_and_result(small_trial):
    a = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    b = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    assert a.data_snapshot_sha256 == b.data_snapshot_sha256
    assert a.results == b.results


def test_run_is_enqueued_only_after_commit(small_trial, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        analysis_run_create(trial=small_trial, enqueue=True)
    assert len(callbacks) == 1


def test_the_registered_multiplicity_correction_is_the_one_applied(small_trial):
    holm = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    plan = preregistration_current(small_trial).plan["plan"] | {"multiplicity": "bh"}
    preregistration_amend(trial=small_trial, plan=plan, rationale="FDR control, as agreed.")
    bh = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    raw = [o["p_value"] for o in bh.results["outcomes"]]
    assert bh.results["multiplicity"] == "bh" and holm.results["multiplicity"] == "holm"
    # The amended plan's Benjamini–Hochberg, not the original Holm, adjusted the p-values.
    expected = multipletests(raw, method="fdr_bh")[1]
    assert [o["p_adjusted"] for o in bh.results["outcomes"]] == pytest.approx(list(expected))
