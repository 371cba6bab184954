"""The plan's harm stopping boundaries (``trials.plan.HarmBoundary``), checked after every new or
assessed adverse event (``safety.services``) and every finished analysis run.

For each boundary and each arm other than the control that has participants, the share of
participants with at least one harm of the boundary's metric is compared with the control's:
the boundary is crossed when the lower end of the two-sided ``confidence`` Newcombe hybrid score
interval for (arm share - control share) is above ``max_excess`` (stats.proportions). Nothing is
checked before both arms have ``min_participants_per_arm`` allocated.

A crossing writes one HARM_BOUNDARY_CROSSED audit event, which the notifications listener turns
into a message to every body and coordinator. The bodies decide whether to suspend: crossing
never suspends by itself (docs/architecture.md, "Harms").

Once per boundary and arm: the event is written the first time a boundary (as written: metric,
max_excess, confidence, minimum) is crossed for an arm, and never again for that boundary and
arm, even if later data bring the interval back below ``max_excess`` and then above it again; the
bodies were told, and the audit chain keeps when. A plan version that changes the boundary
registers a new one, which is reported anew when crossed. The arms are named in the event by
their blinded labels (``trials.selectors.arm_labels``) because blinded body members receive it."""

from django.db import transaction

from safety.selectors import harm_rates
from trials.locks import trial_lock
from trials.models import Trial, TrialEvent
from trials.selectors import arm_labels, preregistration_current, preregistration_in_force
from trials.services import event_record


def _figures(rate, control, metric: str) -> dict:
    harm = rate.harms[metric]
    return {
        "arm_participants": rate.participants,
        "arm_with_harm": harm.count,
        "control_participants": control.participants,
        "control_with_harm": control.harms[metric].count,
        "difference": round(harm.versus_control.estimate, 4),
        "lower": round(harm.versus_control.lower, 4),
        "upper": round(harm.versus_control.upper, 4),
    }


@transaction.atomic
def harm_boundaries_check(*, trial: Trial, trigger: str) -> list[dict]:
    """Check every harm boundary of the plan in force (the latest frozen plan while none is in
    force) for every arm against the control; write HARM_BOUNDARY_CROSSED for crossings not
    reported before; return every boundary and arm crossed now, each a dict of the boundary,
    the arm's blinded label, the figures, and ``reported_now`` (whether this call wrote its
    event). ``trigger`` says what asked (e.g. "adverse_event:12", "analysis_run:7") and goes
    into the event."""
    prereg = preregistration_in_force(trial) or preregistration_current(trial)
    if prereg is None or not prereg.plan.safety.harm_boundaries or not prereg.plan.arms_compared:
        return []
    plan = prereg.plan
    # Serialises checks of one trial, so two events committed together report a crossing once.
    trial_lock(trial)
    labels = arm_labels(trial, blinded=True)
    crossings = []
    for boundary in plan.safety.harm_boundaries:
        rates = harm_rates(trial, [boundary.metric], confidence=boundary.confidence)
        control = next((rate for rate in rates if rate.arm == plan.control), None)
        if control is None or control.participants < boundary.min_participants_per_arm:
            continue
        described = boundary.model_dump(mode="json")
        for rate in rates:
            if rate.arm == plan.control or rate.participants < boundary.min_participants_per_arm:
                continue
            versus = rate.harms[boundary.metric].versus_control
            if versus.lower <= boundary.max_excess:
                continue
            crossing = {
                "boundary": described,
                "arm": labels[rate.arm],
                "plan_version": prereg.version,
                **_figures(rate, control, boundary.metric),
            }
            reported = trial.events.filter(
                kind=TrialEvent.Kind.HARM_BOUNDARY_CROSSED,
                detail__boundary=described,
                detail__arm=crossing["arm"],
            ).exists()
            if not reported:
                event_record(
                    trial=trial,
                    kind=TrialEvent.Kind.HARM_BOUNDARY_CROSSED,
                    trigger=trigger,
                    **crossing,
                )
            crossings.append({**crossing, "reported_now": not reported})
    return crossings
