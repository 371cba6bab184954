"""Reads for safety/: per-arm shares of participants with a harm (any adverse event, a serious
one, a reliable deterioration) with their intervals and their differences from the control.

The bodies' safety report, the analyst dashboard's exploratory panel and the harm boundaries
(``safety.harms``) read these. Who may see per-arm figures unblinded is the caller's business:
rows are ordered by arm slug and name the arm by slug; a blinded page names them with
``trials.selectors.arm_labels(trial, blinded=True)`` and leaves ``is_control`` unshown."""

from dataclasses import dataclass

from django.db.models import Count

from safety.models import AdverseEvent, SafetyFlag
from stats.proportions import (
    DifferenceInterval,
    ShareInterval,
    newcombe_difference,
    wilson_interval,
)
from trials.models import Allocation, Trial
from trials.plan import HarmMetric
from trials.selectors import preregistration_current, preregistration_in_force


@dataclass(frozen=True)
class Harm:
    """Participants of one arm with at least one harm of one kind (``count``), their share with
    its Wilson interval, and the difference from the control's share (Newcombe's hybrid score
    interval). ``share`` is None while the arm has nobody; ``versus_control`` is None for the
    control itself, while either arm has nobody, or when no control is known."""

    count: int
    share: ShareInterval | None
    versus_control: DifferenceInterval | None


@dataclass(frozen=True)
class ArmRate:
    """One arm's participants (every allocated participant, withdrawn ones too: a harm that
    made someone leave must still count) and its harms by metric, the names of
    ``trials.plan.HarmMetric``: "adverse_events", "serious_adverse_events" or
    "reliable_deterioration"."""

    arm: str
    is_control: bool
    participants: int
    harms: dict[str, Harm]


def control_arm(trial: Trial) -> str | None:
    """The control's slug: the plan in force names it first in ``arms_compared`` (the latest
    frozen plan while none is in force yet); without a frozen plan, the arm marked as control."""
    prereg = preregistration_in_force(trial) or preregistration_current(trial)
    if prereg is not None and prereg.plan.arms_compared:
        return prereg.plan.control
    arm = trial.arms.filter(is_control=True).order_by("slug").first()
    return arm.slug if arm else None


def _participants_with(trial: Trial, metric: HarmMetric) -> dict[str, int]:
    """Arm slug → allocated participants with at least one harm of ``metric``."""
    if metric == "reliable_deterioration":
        harmed = SafetyFlag.objects.filter(trial=trial, kind=SafetyFlag.Kind.DETERIORATION)
    else:
        harmed = AdverseEvent.objects.filter(trial=trial)
        if metric == "serious_adverse_events":
            # Unassessed reports (serious is empty) are not serious yet: a coordinator decides.
            harmed = harmed.filter(serious=True)
    allocations = Allocation.objects.filter(
        participant__trial=trial, participant__in=harmed.values("participant")
    )
    counts = allocations.values("arm__slug").annotate(n=Count("participant", distinct=True))
    return {row["arm__slug"]: row["n"] for row in counts}


def harm_rates(
    trial: Trial, metrics: list[HarmMetric], *, confidence: float = 0.95
) -> list[ArmRate]:
    """Every arm of ``trial`` (by slug) with its shares of participants harmed per metric, at
    two-sided ``confidence``; differences are the arm's share minus the control's."""
    sizes = dict(
        Allocation.objects.filter(participant__trial=trial)
        .values_list("arm__slug")
        .annotate(n=Count("participant"))
    )
    counts = {metric: _participants_with(trial, metric) for metric in metrics}
    control = control_arm(trial)
    control_size = sizes.get(control, 0)
    rates = []
    for slug in trial.arms.order_by("slug").values_list("slug", flat=True):
        size = sizes.get(slug, 0)
        harms = {}
        for metric in metrics:
            count = counts[metric].get(slug, 0)
            share = wilson_interval(count, size, confidence=confidence) if size else None
            versus = None
            if size and control_size and control is not None and slug != control:
                versus = newcombe_difference(
                    count,
                    size,
                    counts[metric].get(control, 0),
                    control_size,
                    confidence=confidence,
                )
            harms[metric] = Harm(count=count, share=share, versus_control=versus)
        rates.append(ArmRate(arm=slug, is_control=slug == control, participants=size, harms=harms))
    return rates


def adverse_event_rates(trial: Trial) -> list[ArmRate]:
    """Per arm: participants with any adverse event ("adverse_events") and with a serious one
    ("serious_adverse_events"), 95% intervals."""
    return harm_rates(trial, ["adverse_events", "serious_adverse_events"])


def reliable_deterioration_rates(trial: Trial) -> list[ArmRate]:
    """Per arm: participants flagged for a reliable deterioration on a primary outcome
    ("reliable_deterioration"), 95% intervals."""
    return harm_rates(trial, ["reliable_deterioration"])
