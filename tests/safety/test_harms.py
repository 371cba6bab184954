"""The plan's harm boundaries on a simulated trial: crossed when the other arm clearly has more
serious events than the control, not with equal rates, reported once, never suspending."""

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from safety.harms import harm_boundaries_check
from safety.models import AdverseEvent, SafetyFlag
from safety.selectors import adverse_event_rates, reliable_deterioration_rates
from safety.services import adverse_event_record
from tests.safety.conftest import coordinator_of, enrol
from tests.trials.factories import enrolling_trial, valid_plan
from trials.models import Trial, TrialEvent
from trials.selectors import arm_labels

pytestmark = pytest.mark.django_db


def record_serious(coordinator, trial, participants) -> None:
    for participant in participants:
        adverse_event_record(
            actor=coordinator,
            trial=trial,
            participant=participant,
            category=AdverseEvent.Category.DISTRESS,
            severity=AdverseEvent.Severity.SEVERE,
            serious=True,
            relatedness=AdverseEvent.Relatedness.POSSIBLY,
        )


def crossed_events(trial):
    return list(trial.events.filter(kind=TrialEvent.Kind.HARM_BOUNDARY_CROSSED))


def test_more_serious_events_in_one_arm_cross_the_boundary_once(guarded_trial):
    trial = guarded_trial
    by_arm = enrol(trial, 24)
    coordinator = coordinator_of(trial, "coord")
    # Half of arm b has a serious event, one participant of the control.
    record_serious(coordinator, trial, by_arm["b"][:6] + by_arm["a"][:1])

    crossings = harm_boundaries_check(trial=trial, trigger="test")

    (crossing,) = crossings
    size_a, size_b = len(by_arm["a"]), len(by_arm["b"])
    lower, upper = confint_proportions_2indep(
        6, size_b, 1, size_a, method="newcomb", compare="diff", alpha=0.1
    )
    assert crossing["lower"] == pytest.approx(lower, abs=1e-4) and lower > 0
    assert crossing["upper"] == pytest.approx(upper, abs=1e-4)
    assert crossing["arm"] == arm_labels(trial, blinded=True)["b"]
    assert (crossing["arm_with_harm"], crossing["control_with_harm"]) == (6, 1)
    assert crossing["reported_now"] is True
    (event,) = crossed_events(trial)
    assert event.detail["boundary"]["metric"] == "serious_adverse_events"
    assert event.detail["arm"].startswith("Arm ") and event.detail["trigger"] == "test"
    # Neither slug nor name of an arm is in what blinded readers receive.
    assert not {"a", "b", "A", "B"} & {str(value) for value in event.detail.values()}

    # Checked again (e.g. after the next event): still crossed, not reported again.
    record_serious(coordinator, trial, by_arm["b"][6:7])
    again = harm_boundaries_check(trial=trial, trigger="test again")
    assert [c["reported_now"] for c in again] == [False]
    assert len(crossed_events(trial)) == 1
    # Crossing never suspends: the bodies decide.
    trial.refresh_from_db()
    assert trial.state == Trial.State.ENROLLING


def test_equal_rates_do_not_cross(guarded_trial):
    trial = guarded_trial
    by_arm = enrol(trial, 24)
    coordinator = coordinator_of(trial, "coord")
    record_serious(coordinator, trial, by_arm["a"][:3] + by_arm["b"][:3])
    assert harm_boundaries_check(trial=trial, trigger="test") == []
    assert crossed_events(trial) == []


def test_nothing_is_checked_before_the_minimum_per_arm(guarded_trial):
    trial = guarded_trial
    by_arm = enrol(trial, 12)
    assert min(len(people) for people in by_arm.values()) < 10
    record_serious(coordinator_of(trial, "coord"), trial, by_arm["b"])
    assert harm_boundaries_check(trial=trial, trigger="test") == []


def test_unassessed_and_non_serious_events_count_only_as_adverse_events(guarded_trial):
    trial = guarded_trial
    by_arm = enrol(trial, 24)
    coordinator = coordinator_of(trial, "coord")
    for participant in by_arm["b"][:8]:
        adverse_event_record(
            actor=coordinator,
            trial=trial,
            participant=participant,
            category=AdverseEvent.Category.HARMFUL_REPLY,
            severity=AdverseEvent.Severity.MODERATE,
            serious=False,
        )
    assert harm_boundaries_check(trial=trial, trigger="test") == []
    rates = {rate.arm: rate for rate in adverse_event_rates(trial)}
    assert rates["b"].harms["adverse_events"].count == 8
    assert rates["b"].harms["serious_adverse_events"].count == 0
    assert rates["a"].is_control and rates["a"].harms["adverse_events"].versus_control is None
    assert rates["b"].harms["adverse_events"].versus_control.lower > 0


def test_a_new_serious_event_checks_the_boundaries_once_committed(
    guarded_trial, django_capture_on_commit_callbacks
):
    trial = guarded_trial
    by_arm = enrol(trial, 24)
    coordinator = coordinator_of(trial, "coord")
    with django_capture_on_commit_callbacks(execute=True):
        record_serious(coordinator, trial, by_arm["b"][:7])
    # Every one of the seven events asked; the crossing was reported by the first that crossed.
    assert len(crossed_events(trial)) == 1


def test_reliable_deterioration_boundary_reads_the_flags(db):
    boundary = {"metric": "reliable_deterioration", "max_excess": 0.05, "confidence": 0.9}
    trial = enrolling_trial(
        "deteriorating", plan=valid_plan(safety={"harm_boundaries": [boundary]})
    )
    by_arm = enrol(trial, 30)
    for participant in by_arm["b"][:9]:
        SafetyFlag.objects.create(
            trial=trial,
            participant=participant,
            kind=SafetyFlag.Kind.DETERIORATION,
            source_key="run:1:who5",
            raised_at=participant.enrolled_at,
        )
    rates = {rate.arm: rate for rate in reliable_deterioration_rates(trial)}
    assert rates["b"].harms["reliable_deterioration"].count == 9
    (crossing,) = harm_boundaries_check(trial=trial, trigger="analysis_run:1")
    assert crossing["boundary"]["metric"] == "reliable_deterioration"
    assert crossing["lower"] > 0.05


def test_the_dashboard_shows_the_harms_per_arm_as_exploratory(guarded_trial):
    from dashboards import panels as p
    from dashboards.dash_app import dashboard_children
    from dashboards.selectors import dashboard_data

    trial = guarded_trial
    by_arm = enrol(trial, 24)
    record_serious(coordinator_of(trial, "coord"), trial, by_arm["b"][:6] + by_arm["a"][:1])
    data = dashboard_data(trial)
    panels = p.dashboard_panels(data.record, None, data.enrolment, None, [], data.harms)
    assert [panel.key for panel in panels] == ["status", "harms"]
    harms = panels[1]
    assert harms.label == p.EXPLORATORY
    shares = f"{100 * 6 / len(by_arm['b']):.0f}% against {100 / len(by_arm['a']):.0f}%"
    # Without a finished run the arms are still called by their names.
    names = {arm.slug: arm.name for arm in trial.arms.all()}
    assert f"adverse event in {names['b']}: {shares}" in harms.reading
    rows = {(row[0], row[2]): row for row in harms.tables[0].rows}
    serious_b = rows[(names["b"], "a serious adverse event")]
    assert serious_b[3] == 6 and serious_b[4] == round(6 / len(by_arm["b"]), 3)
    lower, upper = confint_proportions_2indep(
        6, len(by_arm["b"]), 1, len(by_arm["a"]), method="newcomb", compare="diff"
    )
    assert serious_b[8:10] == [round(lower, 3), round(upper, 3)]
    assert rows[(f"{names['a']} (control)", "a serious adverse event")][7] == ""
    # The rendered page carries the panel (the Dash layout, as the analyst's browser gets it).
    assert "harms" in str(dashboard_children(trial))
