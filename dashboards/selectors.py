"""Reads behind the dashboards: stored analysis runs (as the typed documents of
``analytics.results``), the trial's registration record and cheap aggregates of the trial's rows.
Nothing here fits a model."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db.models import Count
from django.db.models.functions import TruncDate

from analytics.models import AnalysisRun
from analytics.results import Diagnostics, Results
from federated.release import DoseSlope, PrivacyBudgetSummary, ReleasedValue
from federated.selectors import dose_slopes, privacy_budget_summary, telemetry_release_rows
from safety.selectors import ArmRate, harm_rates
from surveys.models import Instrument
from trials.audit import audit_chain_head
from trials.dimensions import FLOURISHING_DIMENSIONS
from trials.models import Participant, Trial
from trials.plan import Plan
from trials.selectors import missing_approvals, preregistration_in_force, preregistrations_pending


@dataclass(frozen=True)
class TrialRecord:
    """What a reviewer checks before reading a result: state, protocol version, approvals and
    deviations."""

    slug: str
    title: str
    state: str
    preregistration_version: int | None
    preregistration_sha256: str
    frozen_at: str
    approvals: list[dict]
    missing_approvals: list[str]
    deviations: list[dict]
    pending_versions: list[int]
    audit_chain_head: str
    arm_names: Mapping[str, str] = field(default_factory=dict)
    """Arm slug → the arm's name, for the panels shown before any run names them."""


@dataclass(frozen=True)
class Names:
    """How a page names what a results document names by code (:func:`names_for` reads
    them from the trial's arms and the instruments' definitions)."""

    arms: Mapping[str, str] = field(default_factory=dict)
    """Arm slug → the arm's name."""
    outcomes: Mapping[str, str] = field(default_factory=dict)
    """Score code → its name (the instrument's name, and the score's where it has several)."""
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    """Score code → whether a higher score is better (true where unknown)."""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Score code → its lowest and highest possible value."""

    def arm(self, slug: str) -> str:
        return self.arms.get(slug) or f"arm {slug}"

    def outcome(self, code: str) -> str:
        return self.outcomes.get(code) or code

    @staticmethod
    def dimension(code: str) -> str:
        return FLOURISHING_DIMENSIONS.get(code, code.replace("_", " "))


def names_for(trial: Trial, results: Results) -> Names:
    """The names of ``trial``'s arms and of the scores ``results`` analysed (two queries)."""
    arms = {arm.slug: arm.name for arm in trial.arms.all()}
    by_instrument: dict[str, list[str]] = {}
    for outcome in results.outcomes:
        by_instrument.setdefault(outcome.instrument, []).append(outcome.code)
    outcomes, higher_is_better, ranges = {}, {}, {}
    for instrument in Instrument.objects.filter(code__in=by_instrument):
        definition = instrument.definition
        rules = {rule.code: rule for rule in definition.scores}
        for code in by_instrument[instrument.code]:
            rule = rules.get(code)
            if rule is None:
                continue
            # An instrument with several scores names each (the AI-assistant items' two).
            several = len(definition.scores) > 1
            outcomes[code] = (
                f"{definition.name}: {code.replace('_', ' ')}" if several else definition.name
            )
            higher_is_better[code] = rule.higher_is_better
            ranges[code] = (rule.range[0], rule.range[1])
    return Names(arms=arms, outcomes=outcomes, higher_is_better=higher_is_better, ranges=ranges)


@dataclass(frozen=True)
class RunSummary:
    """A finished analysis run as the panels show it: where it came from and what it found."""

    id: int
    kind: str
    finished_at: str
    preregistration_sha256: str
    code_version: str
    data_snapshot_sha256: str
    results: Results
    diagnostics: Diagnostics
    names: Names = field(default_factory=Names)
    """How the trial names the arms and scores ``results`` names by code."""
    plan: Plan | None = None
    """The plan the run analysed under (its decision rule and minimal important differences)."""


@dataclass(frozen=True)
class DashboardData:
    record: TrialRecord
    run: RunSummary | None
    """The latest finished run."""
    latest_run: AnalysisRun | None
    enrolment: list[dict]
    privacy_budget: PrivacyBudgetSummary | None = None
    telemetry: list[ReleasedValue] = field(default_factory=list)
    harms: list[ArmRate] = field(default_factory=list)
    dose: list[DoseSlope] = field(default_factory=list)
    """The latest dose release's usage-outcome slopes (exploratory, not causal)."""


def latest_finished_run(trial: Trial) -> AnalysisRun | None:
    return (
        trial.analysis_runs.filter(status=AnalysisRun.Status.FINISHED)
        .select_related("trial", "preregistration")
        .first()
    )


def run_summary(run: AnalysisRun) -> RunSummary:
    """A stored run with its results and diagnostics read back into their types."""
    results = Results.model_validate(run.results)
    return RunSummary(
        id=run.pk,
        kind=run.kind,
        finished_at=run.finished_at.strftime("%Y-%m-%d %H:%M UTC") if run.finished_at else "",
        preregistration_sha256=run.preregistration_sha256,
        code_version=run.code_version,
        data_snapshot_sha256=run.data_snapshot_sha256,
        results=results,
        diagnostics=Diagnostics.model_validate(run.diagnostics),
        names=names_for(run.trial, results),
        plan=run.preregistration.plan,
    )


def trial_record(trial: Trial) -> TrialRecord:
    prereg = preregistration_in_force(trial)
    approvals = (
        [
            {
                "body": a.body.name,
                "kind": a.body.get_kind_display(),
                "version": prereg.version,
                "decided_by": a.decided_by.get_username() if a.decided_by else "",
                "decided_at": a.decided_at.strftime("%Y-%m-%d %H:%M"),
            }
            for a in prereg.approvals.select_related("body", "decided_by").order_by("body__name")
        ]
        if prereg
        else []
    )
    deviations = [
        {
            "recorded_at": d.recorded_at.strftime("%Y-%m-%d"),
            "kind": d.get_kind_display(),
            "version": d.preregistration.version,
            "description": d.description,
        }
        for d in trial.deviations.select_related("preregistration")
    ]
    return TrialRecord(
        slug=trial.slug,
        title=trial.title,
        state=trial.get_state_display(),
        preregistration_version=prereg.version if prereg else None,
        preregistration_sha256=prereg.sha256 if prereg else "",
        frozen_at=prereg.frozen_at.strftime("%Y-%m-%d %H:%M UTC") if prereg else "",
        approvals=approvals,
        missing_approvals=missing_approvals(trial),
        deviations=deviations,
        pending_versions=[p.version for p in preregistrations_pending(trial, prereg)],
        audit_chain_head="event {}, SHA-256 {}".format(*audit_chain_head(trial)),
        arm_names={arm.slug: arm.name for arm in trial.arms.all()},
    )


def enrolment_by_day(trial: Trial) -> list[dict]:
    """Participants enrolled per day and arm (one grouped query, whatever the trial's size)."""
    rows = (
        Participant.objects.filter(trial=trial, allocation__isnull=False)
        .annotate(day=TruncDate("enrolled_at"))
        .values("day", "allocation__arm__slug")
        .annotate(n=Count("pk"))
        .order_by("day", "allocation__arm__slug")
    )
    return [
        {"day": row["day"].isoformat(), "arm": row["allocation__arm__slug"], "n": row["n"]}
        for row in rows
    ]


def dashboard_data(trial: Trial) -> DashboardData:
    run = latest_finished_run(trial)
    return DashboardData(
        record=trial_record(trial),
        run=run_summary(run) if run else None,
        latest_run=trial.analysis_runs.first(),
        enrolment=enrolment_by_day(trial),
        privacy_budget=privacy_budget_summary(trial),
        telemetry=telemetry_release_rows(trial),
        harms=harm_rates(
            trial, ["adverse_events", "serious_adverse_events", "reliable_deterioration"]
        ),
        dose=dose_slopes(trial),
    )
