"""One release window, end to end, as the ServerApp runs it.

1. Reserve the window's privacy cost in the ledger (keyed; over budget → refused, no device is
   asked and nothing is released).
2. Query every connected device for the window's bounded vector; a device whose reply is an
   error (its ClientApp crashed, or lost its task token) is asked again while the time lasts.
3. Keep one reply per participant, and only from participants of this trial, not withdrawn, with
   telemetry consent in force now; re-clamp every value (devices are not trusted).
4. Unless every arm has the plan's minimum number of usable replies, draw no noise, release
   nothing and raise :class:`WindowNotReady`: the window is run again later under the same
   reservation, which is never taken twice and never refunded.
5. Release per-arm noisy counts and sums with OpenDP and store only those, atomically.

Replies exist only in this function's memory: they are never logged, stored or returned.
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from django.utils import timezone
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from federated.mechanism import release, release_plan
from federated.models import PrivacyCharge, TelemetryRelease
from federated.schema import clamp_reply
from federated.selectors import charge_key, telemetry_schema_in_force, window_bounds
from federated.services import privacy_charge_reserve, telemetry_release_store
from trials.models import ConsentScope, Participant, Trial, TrialEvent
from trials.selectors import consent_standing
from trials.services import assignment_token_participant_id, event_record
from trials.telemetry import TelemetrySection

logger = logging.getLogger(__name__)
# Rounds of asking within one run: the first, then again for devices whose reply was an error.
QUERY_ROUNDS = 3


class WindowNotReady(RuntimeError):
    """Too few usable replies in some arm: nothing was released, the reservation stands."""


def telemetry_window_run(
    *, grid: Grid, trial: Trial, window_index: int, timeout: float | None = None
) -> TelemetryRelease:
    """Run window ``window_index`` of ``trial`` over ``grid``; idempotent per window."""
    in_force = telemetry_schema_in_force(trial)
    if in_force is None:
        raise ValueError(f"The plan in force for {trial.slug} declares no telemetry.")
    preregistration, schema = in_force
    window = window_bounds(trial, schema, window_index)
    if window[1] > timezone.now().date():
        raise ValueError(
            f"Window {window_index} of {trial.slug} runs until {window[1].isoformat()}: it can "
            "be released once it has ended."
        )
    plan = release_plan(schema)
    charge = privacy_charge_reserve(
        trial=trial,
        schema=schema,
        key=charge_key(trial, preregistration.version, window_index),
        nano_rho=plan.nano_rho,
        measurements=plan.serialized(),
    )
    if charge.status == PrivacyCharge.Status.RELEASED:
        return charge.release
    node_ids = list(grid.get_node_ids())
    replies = ask_nodes(grid, node_ids, lambda node: _query(node, schema, window), timeout)
    logger.info(
        "Telemetry window %s of %s: %d of %d nodes replied.",
        window_index,
        trial,
        len(replies),
        len(node_ids),
    )
    by_arm = vectors_by_arm(replies, trial, schema)
    short = sorted(
        arm for arm, vectors in by_arm.items() if len(vectors) < schema.min_replies_per_arm
    )
    if short:
        # Counts stay out of the record: exact per-arm counts are what the release protects.
        event_record(
            trial=trial,
            kind=TrialEvent.Kind.TELEMETRY_WINDOW_WAITING,
            key=charge.key,
            window_index=window_index,
            arms=short,
            min_replies_per_arm=schema.min_replies_per_arm,
        )
        raise WindowNotReady(
            f"Window {window_index} of {trial.slug} waits: arm(s) {', '.join(short)} have fewer "
            f"than {schema.min_replies_per_arm} usable replies. Nothing was released; it is "
            "asked again later under the same privacy reservation."
        )
    noisy = release(plan, by_arm, reserved_nano_rho=charge.nano_rho)
    return telemetry_release_store(
        charge=charge,
        trial=trial,
        preregistration=preregistration,
        window_index=window_index,
        window=window,
        noisy=noisy,
    )


def ask_nodes(
    grid: Grid,
    node_ids: Sequence[int],
    message_for: Callable[[int], Message],
    timeout: float | None,
) -> list[Message]:
    """The replies that are not errors, one per node at most, to ``message_for(node)`` sent to
    each node. Flower answers for a device whose ClientApp failed with an error reply; such a
    device is asked again (a fresh ClientApp) as long as ``timeout`` lasts. A device that has
    not answered by then is not waited for."""
    deadline = None if timeout is None else time.monotonic() + timeout
    answered: list[Message] = []
    pending = list(node_ids)
    for _ in range(QUERY_ROUNDS):
        remaining = None if deadline is None else deadline - time.monotonic()
        if not pending or (remaining is not None and remaining <= 0):
            break
        failed = set()
        for reply in grid.send_and_receive(
            [message_for(node_id) for node_id in pending], timeout=remaining
        ):
            if reply.has_error():
                failed.add(reply.metadata.src_node_id)
            else:
                answered.append(reply)
        pending = [node_id for node_id in pending if node_id in failed]
    return answered


def _query(node_id: int, schema: TelemetrySection, window: tuple) -> Message:
    quantities = schema.window_quantities()
    config = ConfigRecord(
        {
            "window-start": window[0].isoformat(),
            "window-end": window[1].isoformat(),
            "metrics": [code for code, _, _ in quantities],
            "lower": [lower for _, lower, _ in quantities],
            "upper": [upper for _, _, upper in quantities],
        }
    )
    return Message(
        RecordDict({"query": config}), message_type=MessageType.QUERY, dst_node_id=node_id
    )


def vectors_by_arm(
    replies: Iterable[Message], trial: Trial, schema: TelemetrySection
) -> dict[str, list[dict[str, int]]]:
    """The usable, re-clamped vectors per arm (every arm of the trial, possibly empty)."""
    candidates: dict[str, dict[str, int]] = {}
    for reply in replies:
        participant_id, vector = _parse(reply, schema)
        if participant_id is not None and vector is not None:
            candidates.setdefault(participant_id, vector)  # one vector per participant
    eligible = (
        Participant.objects.filter(pk__in=list(candidates), trial=trial, withdrawn_at__isnull=True)
        # Consent that stands now (trials.selectors): a grant paused by a new consent version
        # does not count until the participant consents again.
        .filter(
            pk__in=consent_standing().filter(scope=ConsentScope.TELEMETRY).values("participant_id")
        )
        .values_list("pk", "allocation__arm__slug")
        .distinct()
    )
    by_arm: dict[str, list[dict[str, int]]] = {arm.slug: [] for arm in trial.arms.all()}
    for participant_id, arm in eligible:
        if arm is not None:
            by_arm[arm].append(candidates[participant_id])
    logger.info(
        "Telemetry of %s: %d usable replies of %d.",
        trial,
        sum(map(len, by_arm.values())),
        len(candidates),
    )
    return by_arm


def _parse(reply: Message, schema: TelemetrySection) -> tuple[str | None, dict[str, int] | None]:
    """A reply's participant and clamped vector; (None, None) for anything malformed."""
    try:
        if reply.has_error() or not reply.has_content():
            return None, None
        content = reply.content
        if "telemetry" not in content.metric_records or "identity" not in content.config_records:
            return None, None
        token = content.config_records["identity"].get("participant-token")
        if not isinstance(token, str):
            return None, None
        return assignment_token_participant_id(token), clamp_reply(
            content.metric_records["telemetry"], schema
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None, None
