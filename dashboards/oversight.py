"""Each oversight body's own pages (docs/architecture.md, "Oversight bodies"): for every trial
assigned to one of the member's bodies, a report (suspensions, incidents from the audit chain,
enrolment, attrition and the CONSORT flow, harms, the guardrail) and the plan (the document, what
changed since the version their body approved last, approvals and deviations).

Blinded by default: the report names the arms "Arm 1", "Arm 2", … (``trials.selectors.arm_labels``)
and shows no configuration and no difference from the control, which would say which arm the
control is. A member of a data monitoring committee overseeing the trial reads the same per arm,
unblinded: the arms' names and configurations, and each arm's difference from the control.

The plan page shows the registered plan, arms included: a body approves what is tested, and the
plan alone cannot tell which labelled arm of the report is which.

Nothing here writes but the bodies' four decisions (approve, ask for changes, suspend, lift),
posted with the CSRF token and carried out by ``trials.oversight.oversight_decide``. Members of
bodies are refused the analysts' dashboards (``trials.view_results``); these pages are theirs,
by the rule ``trials.view_oversight_page``.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from analytics.results import Results
from analytics.selectors import consort_counts
from dashboards.selectors import enrolment_by_day, latest_finished_run
from dashboards.views import VIEW_RESULTS, trial_list
from safety.selectors import ArmRate, adverse_event_rates, reliable_deterioration_rates
from trials.forms import OversightDecisionForm
from trials.models import OversightBody, Trial, TrialEvent
from trials.oversight import oversight_decide, plan_comparisons, plan_document
from trials.rules import permitted
from trials.selectors import (
    arm_labels,
    bodies_of,
    changes_requested,
    preregistration_current,
    suspensions_standing,
    trial_status,
)

VIEW_PAGE = "trials.view_oversight_page"
Decision = OversightDecisionForm
# Which rule each decision needs on the trial (the services check the body).
DECISION_RULES = {
    Decision.APPROVE: "trials.approve_preregistration",
    Decision.REQUEST_CHANGES: "trials.approve_preregistration",
    Decision.SUSPEND: "trials.suspend_trial",
    Decision.LIFT: "trials.suspend_trial",
}
HARM_METRICS = [
    ("adverse_events", "any adverse event"),
    ("serious_adverse_events", "a serious adverse event"),
    ("reliable_deterioration", "a reliable deterioration"),
]


@dataclass(frozen=True)
class Reader:
    """Who reads a trial's pages: the bodies they act for on it, and whether they read
    unblinded (a data monitoring committee among them)."""

    bodies: list[OversightBody]
    unblinded: bool
    labels: dict[str, str]
    """Arm slug → how the pages name it, in the order they list the arms."""


def _reader(request: HttpRequest, slug: str) -> tuple[Trial, Reader]:
    trial = get_object_or_404(Trial, slug=slug)
    bodies = list(bodies_of(request.user, trial).order_by("name"))
    if not request.user.has_perm(VIEW_PAGE, trial) or not bodies:
        raise PermissionDenied("Only members of a body overseeing this trial read its pages.")
    unblinded = any(b.kind == OversightBody.Kind.DATA_MONITORING_COMMITTEE for b in bodies)
    # Blinded, the labels come in their numbered order; unblinded, in the order of the slugs.
    return trial, Reader(bodies, unblinded, arm_labels(trial, blinded=not unblinded))


# --- what the report reads ----------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def harm_rows(trial: Trial, reader: Reader) -> list[dict]:
    """Per arm (in the reader's order): participants, and for each harm those with it, their
    share and its 95% Wilson interval; unblinded, the difference from the control as well."""
    rates: dict[str, ArmRate] = {rate.arm: rate for rate in adverse_event_rates(trial)}
    for rate in reliable_deterioration_rates(trial):
        base = rates[rate.arm]
        rates[rate.arm] = ArmRate(
            base.arm, base.is_control, base.participants, base.harms | rate.harms
        )
    rows = []
    for slug, label in reader.labels.items():
        rate = rates.get(slug)
        if rate is None:
            continue
        cells = []
        for metric, _ in HARM_METRICS:
            harm = rate.harms[metric]
            text = f"{harm.count}"
            if harm.share is not None:
                text += (
                    f" ({_percent(harm.share.estimate)}; "
                    f"{_percent(harm.share.lower)} to {_percent(harm.share.upper)})"
                )
            versus = harm.versus_control
            if reader.unblinded and versus is not None:
                text += (
                    f"; {versus.estimate * 100:+.1f} points from the control "
                    f"({versus.lower * 100:+.1f} to {versus.upper * 100:+.1f})"
                )
            cells.append(text)
        rows.append({"arm": label, "participants": rate.participants, "cells": cells})
    return rows


def consort_flow(trial: Trial, reader: Reader) -> dict:
    """The CONSORT flow from the records (analytics.selectors.consort_counts), the arms named
    as the reader names them."""
    counts = consort_counts(trial)
    by_slug = {arm["slug"]: arm for arm in counts["arms"]}
    arms = []
    for slug, label in reader.labels.items():
        arm = by_slug.get(slug)
        if arm is not None:
            reasons = arm["withdrawal_reasons"]
            arms.append(
                {
                    "label": label,
                    "allocated": arm["allocated"],
                    "withdrawn": arm["withdrawn"],
                    "reasons": sorted(reasons.items()),
                    "followed_up": arm["followed_up"],
                    "analysed": arm["analysed"],
                }
            )
    excluded = sorted(counts["excluded_reasons"].items())
    # Enrolment over time, all arms together: when it began, when it was last, how fast lately.
    days: dict[str, int] = {}
    for row in enrolment_by_day(trial):
        days[row["day"]] = days.get(row["day"], 0) + row["n"]
    enrolment = None
    if days:
        week_ago = (timezone.localdate() - timedelta(days=7)).isoformat()
        enrolment = {
            "first": min(days),
            "latest": max(days),
            "last_week": sum(n for day, n in days.items() if day > week_ago),
        }
    return counts | {"arms": arms, "excluded_reasons": excluded, "enrolment": enrolment}


def latest_run_findings(trial: Trial, reader: Reader) -> dict | None:
    """The latest finished analysis run's attrition per wave and its engagement-vs-flourishing
    guardrail (analytics.results.Divergence), per arm as the reader names them."""
    run = latest_finished_run(trial)
    if run is None:
        return None
    results = Results.model_validate(run.results)

    def named(per_arm: dict) -> list[tuple[str, object]]:
        return [(label, per_arm[slug]) for slug, label in reader.labels.items() if slug in per_arm]

    attrition = [
        {
            "wave": wave.wave,
            "rates": [(label, _percent(rate)) for label, rate in named(wave.response_rate)],
            "differential": wave.differential,
            "p_value": wave.p_value,
        }
        for wave in results.attrition
    ]
    # Only the arms compared with the control have a row: blinded, no row names its arm, or
    # the arm without one would be the control.
    order = list(reader.labels)
    guardrail = [
        {
            "arm": reader.labels.get(d.arm, "An arm") if reader.unblinded else "An arm",
            "source": d.engagement_source,
            "probability": d.probability,
            "threshold": d.threshold,
            "flagged": d.flagged,
        }
        for d in sorted(
            results.divergence,
            key=lambda d: order.index(d.arm) if d.arm in order else len(order),
        )
    ]
    return {"run": run, "attrition": attrition, "guardrail": guardrail}


# The audit events a body reads as incidents, and what each says: only named keys of the
# detail, never the whole, so that a key added later cannot leak an arm's configuration.
INCIDENT_KINDS = [
    TrialEvent.Kind.STATE_CHANGED,
    TrialEvent.Kind.SUSPENSION_LIFTED,
    TrialEvent.Kind.CHANGES_REQUESTED,
    TrialEvent.Kind.ARM_INTEGRITY_FAILURE,
    TrialEvent.Kind.HARM_BOUNDARY_CROSSED,
    TrialEvent.Kind.GUARDRAIL_FLAGGED,
    TrialEvent.Kind.ADVERSE_EVENT_REPORTED,
    TrialEvent.Kind.ADVERSE_EVENT_RECORDED,
    TrialEvent.Kind.ADVERSE_EVENT_ASSESSED,
    TrialEvent.Kind.DETERIORATION_FLAGGED,
    TrialEvent.Kind.SAFETY_ANSWER_FLAGGED,
]


def _incident_text(event: TrialEvent, trial: Trial, reader: Reader) -> str | None:
    detail, Kind = event.detail, TrialEvent.Kind
    match event.kind:
        case Kind.STATE_CHANGED:
            if Trial.State.SUSPENDED not in (detail.get("to"), detail.get("previous")):
                return None
            if detail.get("to") == Trial.State.SUSPENDED:
                who = detail.get("body") or "its coordinators"
                return f"Suspended by {who}: {detail.get('reason')}"
            return f"Returned to {Trial.State(detail['to']).label}: {detail.get('reason')}"
        case Kind.SUSPENSION_LIFTED:
            waiting = ", ".join(detail.get("waiting_for") or [])
            still = f"; still waiting for {waiting}" if waiting else ""
            return (
                f"{detail.get('body')} lifted {detail.get('suspended_by')}'s suspension: "
                f"{detail.get('rationale')}{still}"
            )
        case Kind.CHANGES_REQUESTED:
            return f"{detail.get('body')} asked for changes to version {detail.get('version')}"
        case Kind.ARM_INTEGRITY_FAILURE:
            arm = reader.labels.get(detail.get("arm"), "An arm")
            return f"{arm} no longer matched its registration ({detail.get('source') or 'API'})"
        case Kind.HARM_BOUNDARY_CROSSED:
            boundary = detail.get("boundary") or {}
            # The event names the arm by its blinded label (safety.harms). Only arms compared
            # with the control cross a boundary: blinded, the page does not say which did, or
            # the arm that never does would be the control.
            blinded = {label: slug for slug, label in arm_labels(trial, blinded=True).items()}
            slug = blinded.get(detail.get("arm"))
            arm = reader.labels.get(slug, "An arm") if reader.unblinded else "An arm"
            return (
                f"{arm} crossed the harm boundary on {boundary.get('metric')}: "
                f"{detail.get('arm_with_harm')} of {detail.get('arm_participants')} against "
                f"{detail.get('control_with_harm')} of {detail.get('control_participants')}"
            )
        case Kind.GUARDRAIL_FLAGGED:
            return f"The engagement-vs-flourishing guardrail was flagged (run {detail.get('run')})"
        case Kind.DETERIORATION_FLAGGED:
            return f"{detail.get('participants')} participants reliably deteriorated"
        case Kind.SAFETY_ANSWER_FLAGGED:
            return "A participant's answer called for support (they were shown it at once)"
        case _:
            serious = detail.get("serious") is True or detail.get("severity") == "severe"
            if not serious:
                return None
            return f"A serious adverse event ({detail.get('category') or 'unassessed'})"


def incidents(trial: Trial, reader: Reader) -> list[dict]:
    """Suspensions and lifts, requests for changes, integrity failures, harm boundaries
    crossed, guardrail flags, serious adverse events and flags, newest first."""
    events = trial.events.filter(kind__in=INCIDENT_KINDS).order_by("-sequence")
    rows = []
    for event in events:
        text = _incident_text(event, trial, reader)
        if text is not None:
            rows.append({"at": event.at, "sequence": event.sequence, "text": text})
    return rows


def arm_configurations(trial: Trial, reader: Reader) -> list[dict]:
    """Unblinded only: each arm as the reader names it, with its pinned configuration."""
    if not reader.unblinded:
        return []
    arms = {arm.slug: arm for arm in trial.arms.all()}
    return [{"label": label, "arm": arms[slug]} for slug, label in reader.labels.items()]


# --- the pages ------------------------------------------------------------------------------


def _decision_form(request: HttpRequest, trial: Trial, decisions: list[str], prefix: str):
    allowed = [d for d in decisions if request.user.has_perm(DECISION_RULES[d], trial)]
    if not allowed:
        return None
    bodies = bodies_of(request.user, trial).order_by("name")
    return OversightDecisionForm(
        request.POST if request.method == "POST" else None,
        bodies=bodies,
        decisions=allowed,
        auto_id=f"{prefix}_%s",
    )


def _decided(request: HttpRequest, trial: Trial, form) -> HttpResponse | None:
    """Carry out a posted decision; a redirect to the same page once done."""
    if request.method != "POST" or form is None or not form.is_valid():
        return None
    try:
        done = oversight_decide(
            trial=trial,
            body=form.cleaned_data["body"],
            decision=form.cleaned_data["decision"],
            note=form.cleaned_data["note"],
            actor=request.user,
        )
    except ValidationError as error:
        for message in error.messages:
            form.add_error(None, message)
        return None
    messages.success(request, done)
    return HttpResponseRedirect(request.path)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboards' front page: the analysts' trial list, or, for someone who reads no
    results but sits on an oversight body, the trials their bodies oversee."""
    if not request.user.has_perm(VIEW_RESULTS) and permitted(request.user, VIEW_PAGE).exists():
        return HttpResponseRedirect(reverse("dashboards:oversight_list"))
    return trial_list(request)


@login_required
def oversight_list(request: HttpRequest) -> HttpResponse:
    """The trials assigned to the member's bodies."""
    trials = permitted(request.user, VIEW_PAGE).order_by("slug")
    rows = []
    for trial in trials:
        bodies = list(bodies_of(request.user, trial).order_by("name"))
        if bodies:
            rows.append({"trial": trial, "status": trial_status(trial), "bodies": bodies})
    if not rows:
        raise PermissionDenied("These pages are for members of the bodies overseeing a trial.")
    return render(request, "dashboards/oversight/trial_list.html", {"rows": rows})


@login_required
def oversight_report(request: HttpRequest, slug: str) -> HttpResponse:
    """A trial's report to its bodies, and their suspensions (suspend, lift)."""
    trial, reader = _reader(request, slug)
    standing = suspensions_standing(trial)
    decisions = [Decision.SUSPEND]
    if any(set(entry.waiting_for) & set(reader.bodies) for entry in standing):
        decisions.append(Decision.LIFT)
    form = _decision_form(request, trial, decisions, "suspension")
    if request.method == "POST" and form is None:
        raise PermissionDenied("Only members of a body overseeing this trial can decide.")
    done = _decided(request, trial, form)
    if done is not None:
        return done
    context = {
        "trial": trial,
        "status": trial_status(trial),
        "reader": reader,
        "standing": standing,
        "form": form,
        "incidents": incidents(trial, reader),
        "consort": consort_flow(trial, reader),
        "harms": harm_rows(trial, reader),
        "harm_metrics": [label for _, label in HARM_METRICS],
        "findings": latest_run_findings(trial, reader),
        "configurations": arm_configurations(trial, reader),
    }
    return render(request, "dashboards/oversight/report.html", context)


@login_required
def oversight_plan(request: HttpRequest, slug: str) -> HttpResponse:
    """The plan to approve as a document, what changed since the version each of the member's
    bodies approved last, the approvals and the deviations; approve or ask for changes."""
    trial, reader = _reader(request, slug)
    current = preregistration_current(trial)
    decisions = [Decision.APPROVE, Decision.REQUEST_CHANGES] if current else []
    form = _decision_form(request, trial, decisions, "plan")
    if request.method == "POST" and form is None:
        raise PermissionDenied("There is nothing to approve.")
    done = _decided(request, trial, form)
    if done is not None:
        return done
    versions = trial.preregistrations.filter(frozen_at__isnull=False).order_by("-version")
    bodies = bodies_of(request.user, trial)
    context = {
        "trial": trial,
        "reader": reader,
        "form": form,
        "current": current,
        "document": plan_document(current) if current else "",
        "comparisons": plan_comparisons(current, bodies) if current else [],
        "change_requests": changes_requested(current),
        "versions": versions.prefetch_related("approvals__body"),
        "deviations": trial.deviations.order_by("-recorded_at"),
        "report_url": reverse("dashboards:oversight_report", args=[trial.slug]),
    }
    return render(request, "dashboards/oversight/plan.html", context)
