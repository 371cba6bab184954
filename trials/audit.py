"""The tamper-evident audit trail: each trial's events form a hash chain.

Event *n* stores the SHA-256 of the canonical JSON of its own content (trial, position, kind,
time, actor's name, detail) together with the hash of event *n − 1*. Approvals, protocol
deviations and privacy-ledger charges are recorded by an event whose detail carries the record's
canonical content, and each such row keeps that event's hash. So deleting, reordering or editing
any event, or deleting, editing or inserting any of those rows — even by a database owner with
the triggers switched off — breaks a link that ``audit_chain_verify`` finds. What the chain alone
cannot show is the removal of its newest events; that is why its head (position and hash) is
printed in the registration record and the OSF export, to be published outside the platform.

This is the construction of Crosby & Wallach, "Efficient data structures for tamper-evident
logging" (USENIX Security 2009), §2, in its simplest, linear form.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from trials.canonical import sha256_of
from trials.locks import trial_lock
from trials.models import Trial, TrialEvent

GENESIS = "0" * 64

# Called with each new event inside the transaction that appends it (``register_event_listener``).
_event_listeners: list[Callable[[TrialEvent], None]] = []


def register_event_listener(listener: Callable[[TrialEvent], None]) -> None:
    """Have ``listener(event)`` called right after each event is appended, in the same
    transaction: what it writes stands or falls with the event (notifications are written so,
    once per event, from notifications.apps). An app above trials registers it in its
    ``AppConfig.ready()``."""
    if listener not in _event_listeners:
        _event_listeners.append(listener)


def event_content(
    *, trial_id: int, sequence: int, kind: str, at: str, actor_name: str, detail: dict
) -> dict:
    return {
        "trial": trial_id,
        "sequence": sequence,
        "kind": kind,
        "at": at,
        "actor": actor_name,
        "detail": detail,
    }


def event_hash(content: dict, previous_hash: str) -> str:
    return sha256_of({"previous": previous_hash, "content": content})


def _as_json(value):
    """``value`` as a verifier reads it back from a JSON column."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record_content(row, fields: tuple[str, ...]) -> dict:
    """The content of a chained row: the named fields (a model's ``audit_fields``; a migration
    passes its own snapshot of them), as JSON."""
    return _as_json({name: getattr(row, name) for name in fields})


def chain_link(
    *,
    trial_id: int,
    sequence: int,
    previous_hash: str,
    kind: str,
    detail: dict,
    actor_name: str = "",
    at: datetime | None = None,
) -> dict:
    """The columns of the event at ``sequence`` that follows ``previous_hash``, hash included:
    the one way a link is made, by ``audit_append`` and by the migrations that chained the rows
    written before the chain existed (with their historical models)."""
    at = at or timezone.now()
    content = event_content(
        trial_id=trial_id,
        sequence=sequence,
        kind=kind,
        at=at.isoformat(),
        actor_name=actor_name,
        detail=detail,
    )
    return {
        "trial_id": trial_id,
        "sequence": sequence,
        "kind": kind,
        "at": at,
        "actor_name": actor_name,
        "detail": detail,
        "previous_hash": previous_hash,
        "hash": event_hash(content, previous_hash),
    }


def record_chained_link(
    *, trial_id: int, sequence: int, previous_hash: str, label: str, pk: int, content: dict
) -> dict:
    """The link by which a migration vouches for a row written before the chain existed."""
    return chain_link(
        trial_id=trial_id,
        sequence=sequence,
        previous_hash=previous_hash,
        kind=TrialEvent.Kind.RECORD_CHAINED.value,
        detail={"record": {"model": label, "pk": pk, "content": content}},
    )


def record_reference(record: models.Model) -> dict:
    """How an event names the row it records, with the content it vouches for."""
    return {
        "model": record._meta.label_lower,
        "pk": record.pk,
        "content": record_content(record, type(record).audit_fields),
    }


def audit_append(
    *,
    trial: Trial,
    kind: TrialEvent.Kind,
    actor: AbstractBaseUser | None = None,
    record: models.Model | None = None,
    detail: dict | None = None,
) -> TrialEvent:
    """Append the next event to ``trial``'s chain; the caller's transaction holds the trial row
    until it commits, so events are appended one after another. ``kind`` must be one of
    ``TrialEvent.Kind``: a new kind of event is added there first."""
    if kind not in TrialEvent.Kind.values:
        raise ValueError(f"{kind!r} is not a kind of audit event (TrialEvent.Kind).")
    locked = trial_lock(trial)
    detail = dict(detail or {})
    if record is not None:
        detail["record"] = record_reference(record)
    # Stored as JSON and read back as JSON: hash exactly what a verifier will read.
    detail = _as_json(detail)
    head = TrialEvent.objects.filter(trial=locked).order_by("-sequence").first()
    link = chain_link(
        trial_id=locked.pk,
        sequence=head.sequence + 1 if head else 1,
        previous_hash=head.hash if head else GENESIS,
        # The value, a plain string, is what the event's hash covers.
        kind=TrialEvent.Kind(kind).value,
        detail=detail,
        actor_name=actor.get_username() if actor is not None else "",
    )
    event = TrialEvent.objects.create(actor=actor, **link)
    if record is not None:
        type(record).objects.filter(pk=record.pk).update(chain_hash=event.hash)
        record.chain_hash = event.hash
    for listener in _event_listeners:
        listener(event)
    return event


def chained_models() -> list[type[models.Model]]:
    """Models whose rows the chain vouches for (they declare ``audit_trial_path``)."""
    return [model for model in apps.get_models() if hasattr(model, "audit_trial_path")]


@dataclass(frozen=True)
class AuditChainReport:
    trial: str
    events: int
    head_sequence: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def audit_chain_head(trial: Trial) -> tuple[int, str]:
    """The newest event's position and hash (0 and the genesis hash for an empty chain)."""
    head = TrialEvent.objects.filter(trial=trial).order_by("-sequence").first()
    return (head.sequence, head.hash) if head else (0, GENESIS)


def audit_chain_verify(trial: Trial) -> AuditChainReport:
    """Recompute ``trial``'s chain and compare every chained row with the event recording it."""
    problems: list[str] = []
    rows = TrialEvent.objects.filter(trial=trial).order_by("sequence", "id")
    fields = ["sequence", "kind", "at", "actor_name", "detail", "previous_hash", "hash"]
    previous, expected, recorded = GENESIS, 1, {}
    for event in rows.values(*fields).iterator():
        position = event["sequence"]
        if position != expected:
            problems.append(
                f"Event {expected} is missing or out of order (found {position} in its place)."
            )
            expected = position
        if event["previous_hash"] != previous:
            problems.append(f"Event {position} does not follow the event before it.")
        content = event_content(
            trial_id=trial.pk,
            sequence=position,
            kind=event["kind"],
            at=event["at"].isoformat(),
            actor_name=event["actor_name"],
            detail=event["detail"],
        )
        if event_hash(content, event["previous_hash"]) != event["hash"]:
            problems.append(f"Event {position} ({event['kind']}) was changed after it was written.")
        reference = event["detail"].get("record") if isinstance(event["detail"], dict) else None
        if isinstance(reference, dict):
            recorded[(reference.get("model"), reference.get("pk"))] = (position, event, reference)
        previous, expected = event["hash"], position + 1
    for model in chained_models():
        label = model._meta.label_lower
        for row in model._default_manager.filter(**{model.audit_trial_path: trial}):
            name = f"{model._meta.verbose_name} {row.pk}"
            found = recorded.pop((label, row.pk), None)
            if found is None:
                problems.append(f"The {name} has no audit event: it was written behind the trail.")
                continue
            position, event, reference = found
            if reference["content"] != record_content(row, model.audit_fields):
                problems.append(f"The {name} differs from what event {position} recorded.")
            if row.chain_hash != event["hash"]:
                problems.append(f"The {name} does not carry the hash of event {position}.")
    for (label, pk), (position, _, _) in sorted(recorded.items(), key=lambda item: item[1][0]):
        problems.append(f"The {label} {pk} recorded by event {position} no longer exists.")
    head_sequence, head_hash = audit_chain_head(trial)
    return AuditChainReport(
        trial=trial.slug,
        events=rows.count(),
        head_sequence=head_sequence,
        head_hash=head_hash,
        problems=problems,
    )
