"""Which audit events tell whom, and what (docs/architecture.md, "The flow": notifications).

Each kind that notifies has a function here that reads the event's ``detail`` and returns a
:class:`Notice` (or None when this event of the kind does not notify). The text uses only what
the detail gives, key by key — never the whole detail, so a key added later cannot leak — and
the events that blinded readers receive carry blinded arm labels already
(``trials.selectors.arm_labels``). Where a detail names an arm by its slug (an arm's integrity
failure), blinded recipients read its blinded label instead, and no notice to a blinded reader
names a model, a prompt or any other part of an arm's configuration.

Who is told: the trial's coordinators, and (``everyone``) the members of every body overseeing
the trial. Flags on participants (deterioration, a crisis answer) and a failed analysis go to the
coordinators alone: they follow participants up and run the analyses; the bodies read the
flags' counts on their own pages. The person whose action wrote the event is not told of it.

Urgent notices — a serious adverse event, a harm boundary crossed, a crisis answer — are e-mailed
at once whatever a person's preference: a daily digest could hold them for a day while a
participant may be at risk and a body may need to suspend the trial (ICH E6(R2) §4.11.1 has
serious adverse events reported to the sponsor "immediately"; digests are for what can wait).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.urls import reverse

from trials.models import Trial, TrialEvent
from trials.selectors import arm_labels

Kind = TrialEvent.Kind
# A privacy budget is "nearly spent" from this share on; a refusal says it is fully spent.
BUDGET_NEARLY_SPENT = 0.8


@dataclass(frozen=True)
class Notice:
    """What to tell, to whom; ``blinded_body`` replaces ``body`` for blinded recipients (body
    members other than a data monitoring committee's) when the two differ."""

    subject: str
    body: str
    link: str
    everyone: bool = True  # False: the coordinators alone
    urgent: bool = False
    blinded_body: str | None = None

    def body_for(self, *, blinded: bool) -> str:
        return self.blinded_body if blinded and self.blinded_body is not None else self.body


def _trial_page(trial: Trial) -> str:
    return reverse("admin:trials_trial_change", args=[trial.pk])


def _lines(*pairs: tuple[str, object]) -> str:
    """``label: value`` lines for the values the detail gives."""
    return "\n".join(f"{label}: {value}" for label, value in pairs if value not in (None, ""))


def _suspended(event: TrialEvent) -> Notice | None:
    detail = event.detail
    if detail.get("to") != Trial.State.SUSPENDED:
        return None
    body = detail.get("body")
    who = body or "Its coordinators"
    return Notice(
        subject=f"{event.trial.title}: suspended by {who}",
        body=_lines(("Suspended by", who), ("Reason", detail.get("reason"))),
        link=_trial_page(event.trial),
    )


def _lifted(event: TrialEvent) -> Notice:
    detail = event.detail
    waiting = ", ".join(detail.get("waiting_for") or [])
    return Notice(
        subject=f"{event.trial.title}: {detail.get('body')} lifted a suspension",
        body=_lines(
            ("Lifted by", detail.get("body")),
            ("Rationale", detail.get("rationale")),
            ("Suspended by", detail.get("suspended_by")),
            ("Suspended because", detail.get("reason")),
            ("Still waiting for", waiting or "nobody: the suspension no longer stands"),
        ),
        link=_trial_page(event.trial),
    )


def _changes_requested(event: TrialEvent) -> Notice:
    detail = event.detail
    return Notice(
        subject=f"{event.trial.title}: {detail.get('body')} requests changes",
        body=_lines(
            ("Body", detail.get("body")),
            ("Plan version", detail.get("version")),
            ("What should change", detail.get("note")),
        ),
        link=_trial_page(event.trial),
    )


# The registry fields of an adverse event that a notice repeats (never the free text a
# participant wrote, which those allowed to read it read on the event's page).
ADVERSE_EVENT_FIELDS = (
    ("category", "What happened"),
    ("severity", "Severity"),
    ("serious", "Serious"),
    ("relatedness", "Related to the assistant"),
    ("expected", "Expected"),
    ("outcome", "Outcome"),
)


def _adverse_event(event: TrialEvent) -> Notice | None:
    """A participant's report of a severe event, and a coordinator's record or assessment that
    makes an event serious (``newly_serious``: a reassessment of a serious event does not
    announce it again; safety.services)."""
    detail = event.detail
    if event.kind == Kind.ADVERSE_EVENT_REPORTED:
        serious = detail.get("severity") == "severe"
    else:
        serious = detail.get("newly_serious", detail.get("serious")) is True
    if not serious:
        return None
    how = {
        Kind.ADVERSE_EVENT_REPORTED: "reported by a participant",
        Kind.ADVERSE_EVENT_RECORDED: "recorded",
        Kind.ADVERSE_EVENT_ASSESSED: "assessed as serious",
    }[event.kind]
    fields = [(label, detail.get(key)) for key, label in ADVERSE_EVENT_FIELDS]
    return Notice(
        subject=f"{event.trial.title}: a serious adverse event was {how}",
        body=_lines(("Adverse event", detail.get("adverse_event")), *fields),
        link=_trial_page(event.trial),
        urgent=True,
    )


def _of(detail: dict, arm: str) -> str | None:
    with_harm, participants = detail.get(f"{arm}_with_harm"), detail.get(f"{arm}_participants")
    return f"{with_harm} of {participants}" if participants is not None else None


def _harm_boundary(event: TrialEvent) -> Notice:
    """Only arms compared with the control cross a boundary, so naming the arm, even by its
    blinded label, would tell blinded readers which label is the control: they read the figures
    without it (the bodies' pages hide it the same way, dashboards/oversight.py)."""
    detail = event.detail
    boundary = detail.get("boundary") or {}
    difference = detail.get("difference")
    interval = (
        f"{difference} ({detail.get('lower')} to {detail.get('upper')})"
        if difference is not None
        else None
    )
    figures = (
        ("Harm", boundary.get("metric")),
        ("Boundary: largest excess allowed", boundary.get("max_excess")),
        ("Confidence", boundary.get("confidence")),
        ("Participants with the harm, this arm", _of(detail, "arm")),
        ("Participants with the harm, comparison arm", _of(detail, "control")),
        ("Difference in share (interval)", interval),
        ("Plan version", detail.get("plan_version")),
    )
    decide = "\n\nThe trial goes on until a body decides: crossing a boundary suspends nothing."
    return Notice(
        subject=f"{event.trial.title}: a harm boundary was crossed",
        body=_lines(("Arm", detail.get("arm")), *figures) + decide,
        blinded_body=_lines(*figures) + decide,
        link=_trial_page(event.trial),
        urgent=True,
    )


def _guardrail(event: TrialEvent) -> Notice:
    """As for harm boundaries, blinded readers are not told which arm is flagged."""
    detail = event.detail
    items = [item for item in detail.get("flagged") or [] if isinstance(item, dict)]

    def flagged(item: dict, *, named: bool) -> str:
        arm = f"{item.get('arm')}: " if named else ""
        return (
            f"{arm}{item.get('engagement_source')} engagement rises while "
            f"{item.get('flourishing_source')} does not (probability {item.get('probability')}, "
            f"threshold {item.get('threshold')})"
        )

    intro = (
        _lines(("Analysis run", detail.get("run")))
        + "\n\nThe finished analysis flags engagement rising where flourishing does not:\n"
    )
    return Notice(
        subject=f"{event.trial.title}: the engagement-vs-flourishing guardrail was flagged",
        body=intro + "\n".join(flagged(item, named=True) for item in items),
        blinded_body=intro + "\n".join(flagged(item, named=False) for item in items),
        link=_trial_page(event.trial),
    )


def _arm_integrity(event: TrialEvent) -> Notice:
    """Blinded readers learn that an arm drifted, by its blinded label; the coordinators and a
    data monitoring committee also what was expected and what was served (the model is part of
    the arm's configuration)."""
    detail = event.detail
    slug = detail.get("arm")
    what = (
        "no longer matches its registration. If participants were served it, a coordinator "
        "records a protocol deviation."
    )
    finder = "the drift watch" if detail.get("source") == "canary" else "the assignment API"
    found = _lines(
        ("Found by", finder),
        ("Registered model", detail.get("expected_model")),
        ("Served model", detail.get("served_model")),
        ("Registered fingerprint", detail.get("expected_fingerprint")),
        ("Served fingerprint", detail.get("served_fingerprint")),
    )
    return Notice(
        subject=f"{event.trial.title}: an arm no longer matches its registration",
        body=f"{_arm_label(event.trial, slug, blinded=False)} {what}\n\n{found}",
        blinded_body=f"{_arm_label(event.trial, slug, blinded=True)} {what}",
        link=_trial_page(event.trial),
    )


def _arm_label(trial: Trial, slug: str | None, *, blinded: bool) -> str:
    return arm_labels(trial, blinded=blinded).get(slug, "An arm") if slug else "An arm"


def _budget_reserved(event: TrialEvent) -> Notice | None:
    detail = event.detail
    spent, total, cost = (detail.get(k) for k in ("spent_nano_rho", "total_nano_rho", "nano_rho"))
    if not isinstance(spent, int) or not isinstance(total, int) or not isinstance(cost, int):
        return None
    threshold = BUDGET_NEARLY_SPENT * total
    # Only the reservation that crosses the threshold tells: the next ones would repeat it.
    if not spent - cost < threshold <= spent:
        return None
    return Notice(
        subject=f"{event.trial.title}: {spent / total:.0%} of the privacy budget is spent",
        body=_lines(("Spent", f"{spent / total:.1%} of the trial's privacy budget"))
        + "\n\nWhen it is spent, no further telemetry is released.",
        link=_trial_page(event.trial),
    )


def _budget_refused(event: TrialEvent) -> Notice | None:
    key = event.detail.get("key")
    # A window's refusal is retried by every sweep: tell once per window.
    earlier = TrialEvent.objects.filter(
        trial=event.trial, kind=Kind.PRIVACY_BUDGET_REFUSED, detail__key=key
    ).exclude(pk=event.pk)
    if earlier.exists():
        return None
    return Notice(
        subject=f"{event.trial.title}: the privacy budget is spent",
        body=_lines(("Telemetry window", key))
        + "\n\nThe window's release did not fit in what is left of the budget: nothing was "
        "released for it, and nothing more will be.",
        link=_trial_page(event.trial),
    )


def _analysis_failed(event: TrialEvent) -> Notice:
    detail = event.detail
    run = detail.get("run")
    return Notice(
        subject=f"{event.trial.title}: analysis run {run} failed",
        body=_lines(("Analysis run", run), ("Error", detail.get("error"))),
        link=(
            reverse("admin:analytics_analysisrun_change", args=[run])
            if isinstance(run, int)
            else _trial_page(event.trial)
        ),
        everyone=False,
    )


def _safety_answer(event: TrialEvent) -> Notice:
    detail = event.detail
    return Notice(
        subject=f"{event.trial.title}: a participant's answer needs a follow-up",
        body=_lines(
            ("Participant", detail.get("participant")),
            ("Instrument", detail.get("instrument")),
            ("Item", detail.get("item")),
            ("Wave", detail.get("wave")),
        )
        + "\n\nThey were shown the trial's support resources at once.",
        link=_trial_page(event.trial),
        everyone=False,
        urgent=True,
    )


def _deterioration(event: TrialEvent) -> Notice:
    detail = event.detail
    return Notice(
        subject=f"{event.trial.title}: participants reliably deteriorated",
        body=_lines(
            ("Participants flagged", detail.get("participants")),
            ("Outcomes", ", ".join(detail.get("outcomes") or [])),
            ("Analysis run", detail.get("run")),
        ),
        link=_trial_page(event.trial),
        everyone=False,
    )


NOTICES: dict[str, Callable[[TrialEvent], Notice | None]] = {
    Kind.STATE_CHANGED: _suspended,
    Kind.SUSPENSION_LIFTED: _lifted,
    Kind.CHANGES_REQUESTED: _changes_requested,
    Kind.ADVERSE_EVENT_REPORTED: _adverse_event,
    Kind.ADVERSE_EVENT_RECORDED: _adverse_event,
    Kind.ADVERSE_EVENT_ASSESSED: _adverse_event,
    Kind.HARM_BOUNDARY_CROSSED: _harm_boundary,
    Kind.GUARDRAIL_FLAGGED: _guardrail,
    Kind.ARM_INTEGRITY_FAILURE: _arm_integrity,
    Kind.PRIVACY_BUDGET_RESERVED: _budget_reserved,
    Kind.PRIVACY_BUDGET_REFUSED: _budget_refused,
    Kind.ANALYSIS_RUN_FAILED: _analysis_failed,
    Kind.SAFETY_ANSWER_FLAGGED: _safety_answer,
    Kind.DETERIORATION_FLAGGED: _deterioration,
}


def notice_for(event: TrialEvent) -> Notice | None:
    """What ``event`` tells, or None when it tells nobody."""
    build = NOTICES.get(event.kind)
    return build(event) if build is not None else None
