"""Reads behind the dashboards: stored analysis runs, the trial's registration record and cheap
aggregates of the trial's rows. Nothing here fits a model."""

from dataclasses import dataclass, field

from django.db.models import Count
from django.db.models.functions import TruncDate

from analytics.models import AnalysisRun
from federated.selectors import privacy_budget_summary, telemetry_release_rows
from trials.audit import audit_chain_head
from trials.models import Participant, Trial
from trials.selectors import preregistration_in_force, preregistrations_pending
from trials.services import missing_approvals


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


@dataclass(frozen=True)
class DashboardData:
    record: TrialRecord
    run: AnalysisRun | None
    latest_run: AnalysisRun | None
    enrolment: list[dict]
    privacy_budget: dict | None = None
    telemetry: list[dict] = field(default_factory=list)


def latest_finished_run(trial: Trial) -> AnalysisRun | None:
    return trial.analysis_runs.filter(status=AnalysisRun.Status.FINISHED).first()


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
    return DashboardData(
        record=trial_record(trial),
        run=latest_finished_run(trial),
        latest_run=trial.analysis_runs.first(),
        enrolment=enrolment_by_day(trial),
        privacy_budget=privacy_budget_summary(trial),
        telemetry=telemetry_release_rows(trial),
    )
