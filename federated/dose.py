"""The dose release: how each participant's assistant usage goes with their own outcome change,
under differential privacy, without their usage leaving the device as more than one clipped
vector (docs/architecture.md, "Federated telemetry").

One release per plan version, as the ServerApp runs it (run config ``action = "dose"``):

1. Reserve the release's privacy cost in the ledger (keyed per plan version; over budget →
   refused, no device is asked and nothing is released).
2. Ask every connected device who it is (``query.identify``): a device replies with its
   participant's signed token only while its telemetry consent stands on the device.
3. Keep the participants of this trial, allocated and not withdrawn, whose telemetry *and*
   survey consents both stand now and whose usage period (``dose.usage_days`` from enrolment)
   has ended; read their outcome change (``trials.telemetry.outcome_changes``, the surveys
   app's scores: the follow-up score minus baseline).
4. Send each such device, in a message to that node alone (``query.dose``), its own change, in
   whole steps, clipped, and its usage period; no other device ever receives it, and a
   participant without both consents or without both scores is sent nothing.
5. The device returns its clipped, centred usage, the change and their products; the server
   recomputes the products from the usage and the change it sent and discards any reply that
   disagrees (devices are not trusted).
6. Unless every arm has the telemetry section's minimum of usable replies, draw no noise and
   raise :class:`DoseNotReady` (the reservation stands for the next try); otherwise release
   per-arm noisy counts and sums with OpenDP and store only those, atomically.

The slope computed from them (``federated.slope``) is exploratory and not causal: participants
choose their usage after randomisation. Changes and replies exist only in this function's
memory: they are never logged, stored or returned.
"""

import logging
from datetime import timedelta

from django.utils import timezone
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from federated.mechanism import dose_release_plan, release
from federated.models import DoseRelease, PrivacyCharge
from federated.schema import change_in_steps, clamp_dose_reply, usage_centre
from federated.selectors import dose_charge_key, telemetry_schema_in_force
from federated.services import dose_release_store, privacy_charge_reserve
from federated.window import WindowNotReady, ask_nodes
from trials.models import ConsentScope, Participant, Trial, TrialEvent
from trials.selectors import consent_standing
from trials.services import assignment_token_participant_id, event_record
from trials.telemetry import DoseSection, outcome_changes

logger = logging.getLogger(__name__)

IDENTIFY, DOSE = "query.identify", "query.dose"


class DoseNotReady(WindowNotReady):
    """Too few usable replies in some arm: nothing was released, the reservation stands."""


def dose_release_run(*, grid: Grid, trial: Trial, timeout: float | None = None) -> DoseRelease:
    """Run the dose release of ``trial``'s plan in force over ``grid``; idempotent."""
    in_force = telemetry_schema_in_force(trial)
    if in_force is None or in_force[1].dose is None:
        raise ValueError(f"The plan in force for {trial.slug} declares no dose release.")
    preregistration, schema = in_force
    dose = schema.dose
    plan = dose_release_plan(dose)
    charge = privacy_charge_reserve(
        trial=trial,
        schema=schema,
        key=dose_charge_key(trial, preregistration.version),
        nano_rho=plan.nano_rho,
        measurements=plan.serialized(),
    )
    if charge.status == PrivacyCharge.Status.RELEASED:
        return charge.dose_release
    node_ids = list(grid.get_node_ids())
    identities = _identities(ask_nodes(grid, node_ids, _identify, timeout))
    participants = _eligible(trial, dose, set(identities.values()))
    changes = outcome_changes(trial, dose.outcome, participants)
    sent = {
        node: change_in_steps(changes[participant], dose)
        for node, participant in identities.items()
        if participant in changes
    }
    periods = {}
    for node in sent:
        start = participants[identities[node]][1]
        periods[node] = (start, start + timedelta(days=dose.usage_days))
    replies = ask_nodes(
        grid, list(sent), lambda node: _dose_query(node, dose, sent[node], periods[node]), timeout
    )
    by_arm: dict[str, list[dict[str, int]]] = {arm.slug: [] for arm in trial.arms.all()}
    used = set()
    for reply in replies:
        node = reply.metadata.src_node_id
        participant = identities.get(node)
        if participant is None or participant in used or node not in sent:
            continue
        vector = _dose_vector(reply, participant, dose, sent[node])
        if vector is not None:
            used.add(participant)
            by_arm[participants[participant][0]].append(vector)
    logger.info("Dose release of %s: %d usable replies of %d asked.", trial, len(used), len(sent))
    short = sorted(
        arm for arm, vectors in by_arm.items() if len(vectors) < schema.min_replies_per_arm
    )
    if short:
        # Counts stay out of the record: exact per-arm counts are what the release protects.
        event_record(
            trial=trial,
            kind=TrialEvent.Kind.TELEMETRY_WINDOW_WAITING,
            key=charge.key,
            arms=short,
            min_replies_per_arm=schema.min_replies_per_arm,
        )
        raise DoseNotReady(
            f"The dose release of {trial.slug} waits: arm(s) {', '.join(short)} have fewer than "
            f"{schema.min_replies_per_arm} usable replies. Nothing was released; it is asked "
            "again later under the same privacy reservation."
        )
    noisy = release(plan, by_arm, reserved_nano_rho=charge.nano_rho)
    return dose_release_store(
        charge=charge, trial=trial, preregistration=preregistration, dose=dose, noisy=noisy
    )


def _identify(node_id: int) -> Message:
    return Message(RecordDict(), message_type=IDENTIFY, dst_node_id=node_id)


def _token_participant(reply: Message) -> str | None:
    """The participant whose signed token a reply carries; None for anything else."""
    try:
        if not reply.has_content() or "identity" not in reply.content.config_records:
            return None
        token = reply.content.config_records["identity"].get("participant-token")
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return assignment_token_participant_id(token) if isinstance(token, str) else None


def _identities(replies: list[Message]) -> dict[int, str]:
    """Node → participant, for nodes that named a participant no other node named (two devices
    claiming one participant are both left out: neither is sent the change)."""
    named: dict[int, str] = {}
    for reply in replies:
        participant = _token_participant(reply)
        if participant is not None:
            named.setdefault(reply.metadata.src_node_id, participant)
    claims = list(named.values())
    return {node: p for node, p in named.items() if claims.count(p) == 1}


def _eligible(trial: Trial, dose: DoseSection, candidates: set[str]) -> dict:
    """Participant → (arm slug, first day of their usage period) for the candidates of
    ``trial``, allocated, not withdrawn, with telemetry and survey consent both standing now and
    their usage period ended."""
    ended_by = timezone.now() - timedelta(days=dose.usage_days)
    rows = Participant.objects.filter(
        pk__in=list(candidates),
        trial=trial,
        withdrawn_at__isnull=True,
        allocation__isnull=False,
        enrolled_at__lte=ended_by,
    )
    # Consent that stands now (trials.selectors): a grant paused by a new consent version does
    # not count until the participant consents again.
    for scope in (ConsentScope.TELEMETRY, ConsentScope.SURVEYS):
        rows = rows.filter(pk__in=consent_standing().filter(scope=scope).values("participant_id"))
    return {
        pk: (arm, enrolled_at.date())
        for pk, arm, enrolled_at in rows.values_list("pk", "allocation__arm__slug", "enrolled_at")
    }


def _dose_query(node_id: int, dose: DoseSection, change: int, period: tuple) -> Message:
    """The message to one node only: its participant's change and usage period."""
    config = ConfigRecord(
        {
            "change": change,
            "usage-metric": dose.usage_metric,
            "usage-start": period[0].isoformat(),
            "usage-end": period[1].isoformat(),
            "usage-upper": dose.usage_upper,
            "usage-centre": usage_centre(dose),
        }
    )
    return Message(RecordDict({"dose": config}), message_type=DOSE, dst_node_id=node_id)


def _dose_vector(
    reply: Message, participant: str, dose: DoseSection, sent_change: int
) -> dict[str, int] | None:
    """A reply's checked dose vector: the same participant as the node named, the change it was
    sent, products that are its usage's; None otherwise."""
    if _token_participant(reply) != participant:
        return None
    try:
        values = reply.content.metric_records["dose"]
    except (AttributeError, KeyError, TypeError):
        return None
    return clamp_dose_reply(values, dose, sent_change)
