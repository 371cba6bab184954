"""The arms' drift watch: canary prompts sent to each arm's endpoint, and what came back.

An arm is pinned to a model version, but a provider can change what sits behind a name. For
every trial that is enrolling or following up and whose plan in force registers canary prompts
(``Plan.safety.canary_prompts``), a sweep (``safety.tasks.canary_sweep``, hourly on beat) sends
each prompt to the arm's OpenAI-compatible endpoint with the configuration participants are
served (the version in force, as the assignment API serves it: ``FrozenRecord.arm_configs``) and
records a :class:`safety.models.CanaryCheck` with the ``model`` and ``system_fingerprint`` of
the chat completion and simple statistics of the reply (docs/architecture.md, "The arms' drift
watch").

What counts as drift:

- **The model.** The request names the pinned snapshot and the reply's ``model`` must be exactly
  that name. OpenAI names a snapshot ``<model>-<date>`` and reports it back unchanged (a request
  for ``gpt-4o-2024-08-06`` answers ``"model": "gpt-4o-2024-08-06"``; one for the alias
  ``gpt-4o`` answers with whichever snapshot the alias points to that day), so the pinned name is
  ``model_version`` when it already is a full snapshot name (it starts with ``model_id``) and
  ``<model_id>-<model_version>`` otherwise (:func:`pinned_model`).
- **The fingerprint.** ``system_fingerprint`` names the backend configuration a model runs with.
  The first one recorded for the arm while it served its pinned model is the reference; a later
  different one is drift. An endpoint that reports none is compared on the model alone, and a
  re-pin to another model starts a new reference (the old one belonged to the old model).

A drifted check opens an integrity incident (an ``ARM_INTEGRITY_FAILURE`` audit event with what
was expected and what came back, which the notifications turn into alerts) once per drift: when
the arm's previous answered check was not drifted in the same way (same served model and
fingerprint). A drift that persists across sweeps raises nothing more; a drift that changes
again (another model, another fingerprint), or one that returns after the endpoint was back to
its pin, opens a new incident. Unreachable checks neither open nor close an incident.

An endpoint that does not answer within ``CANARY_TIMEOUT_SECONDS`` (or answers with an error, or
with something that is not a chat completion) is recorded as unreachable, and the sweep goes on
with the next prompt and arm. A sweep is idempotent on its id: a check already recorded for
(arm, sweep, prompt) is neither sent nor written again, so a re-delivered task adds nothing.

The ``openai`` client is imported inside :func:`canary_send`: it is large, and the web process,
which imports this module through the admin, never sends a prompt
(tests/config/test_startup_imports.py).
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from safety.models import CanaryCheck
from trials.locks import trial_lock
from trials.models import Arm, Trial, TrialEvent
from trials.selectors import preregistration_in_force
from trials.services import event_record

logger = logging.getLogger(__name__)

# The trials whose arms serve participants: enrolment is open or follow-up waves are running.
WATCHED_STATES = (Trial.State.ENROLLING, Trial.State.FOLLOW_UP)
# The client refuses to start without a key; an endpoint that needs none ignores this one.
NO_KEY = "no-key-configured"
ANSWERED = (CanaryCheck.Status.OK, CanaryCheck.Status.DRIFTED)


@dataclass(frozen=True)
class CanaryTarget:
    """One arm to probe: the arm, its configuration in force (``trials.services.arm_config``'s
    shape, from the frozen record) and its registered prompts."""

    arm: Arm
    config: dict[str, Any]
    prompts: list[str]

    @property
    def pinned_model(self) -> str:
        return pinned_model(self.config["model_id"], self.config["model_version"])


@dataclass(frozen=True)
class Reply:
    """What a chat completion says about who answered, and simple statistics of its text."""

    served_model: str
    system_fingerprint: str
    stats: dict[str, Any]


def pinned_model(model_id: str, model_version: str) -> str:
    """The model name an endpoint must report for an arm pinned to ``model_version`` of
    ``model_id`` (see the module's docstring): ``gpt-4o`` and ``2024-08-06`` →
    ``gpt-4o-2024-08-06``; ``gpt-4o`` and ``gpt-4o-2024-08-06`` → ``gpt-4o-2024-08-06``."""
    if model_version.startswith(model_id):
        return model_version
    return f"{model_id}-{model_version}"


def canary_targets() -> list[CanaryTarget]:
    """Every arm with canary prompts in the plan in force of a trial that is enrolling or
    following up. A trial with no version in force serves no one and is not probed."""
    targets = []
    for trial in Trial.objects.filter(state__in=WATCHED_STATES).order_by("pk"):
        in_force = preregistration_in_force(trial)
        if in_force is None:
            continue
        record = in_force.frozen_record
        prompts = record.plan.safety.canary_prompts
        arms = {arm.slug: arm for arm in trial.arms.filter(slug__in=prompts)}
        for slug in sorted(prompts):
            targets.append(
                CanaryTarget(arm=arms[slug], config=record.arm_configs[slug], prompts=prompts[slug])
            )
    return targets


def api_key_for(endpoint_url: str) -> str:
    """The key for the endpoint's host (``ASSISTANT_API_KEYS``, config/settings/base.py). Keys
    are per host so that one provider's key is never sent to another arm's endpoint, which a
    coordinator chooses."""
    host = urlsplit(endpoint_url).netloc.rpartition("@")[2].lower()
    return settings.ASSISTANT_API_KEYS.get(host) or NO_KEY


def reply_stats(text: str, finish_reason: str | None) -> dict[str, Any]:
    """Characters, words, why the reply ended and a SHA-256 of its text: enough to see a reply
    change its shape or wording between sweeps, and nothing of what it says."""
    return {
        "characters": len(text),
        "words": len(text.split()),
        "finish_reason": finish_reason or "",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def canary_send(target: CanaryTarget, prompt: str) -> Reply:
    """Send one prompt to the arm's endpoint with its system prompt, pinned model and
    parameters (passed as they were registered, whatever the endpoint accepts). Raises
    ``openai.OpenAIError`` when the endpoint cannot be reached or answers with an error, and
    ``ValueError`` when what it answers is not a chat completion."""
    from openai import OpenAI

    config = target.config
    # No retries: an endpoint that is down is recorded as such, and the next sweep asks again.
    with OpenAI(
        base_url=config["endpoint_url"],
        api_key=api_key_for(config["endpoint_url"]),
        timeout=settings.CANARY_TIMEOUT_SECONDS,
        max_retries=0,
    ) as client:
        completion = client.chat.completions.create(
            model=target.pinned_model,
            messages=[
                {"role": "system", "content": config["system_prompt"]},
                {"role": "user", "content": prompt},
            ],
            extra_body=config["parameters"] or None,
        )
    return _reply_from(completion)


def _reply_from(completion: Any) -> Reply:
    """Who answered and the reply's statistics. The client builds its objects without
    validating them, so an answer that is not a chat completion (a proxy's HTML page, a field of
    the wrong type) is caught here: ``ValueError``, and the check is recorded as unreachable."""
    model = getattr(completion, "model", None)
    fingerprint = getattr(completion, "system_fingerprint", None) or ""
    choices = getattr(completion, "choices", None)
    if not (isinstance(model, str) and isinstance(fingerprint, str) and isinstance(choices, list)):
        raise ValueError("The endpoint's answer is not a chat completion.")
    choice = choices[0] if choices else None
    text = getattr(getattr(choice, "message", None), "content", None) or ""
    return Reply(
        served_model=model,
        system_fingerprint=fingerprint,
        stats=reply_stats(str(text), str(getattr(choice, "finish_reason", None) or "")),
    )


def _reference_fingerprint(arm: Arm, model: str) -> str:
    """The first fingerprint recorded for ``arm`` while it served ``model`` ('' if none yet)."""
    first = (
        CanaryCheck.objects.filter(arm=arm, served_model=model)
        .exclude(system_fingerprint="")
        .order_by("checked_at", "pk")
        .first()
    )
    return first.system_fingerprint if first else ""


@dataclass(frozen=True)
class Recorded:
    check: CanaryCheck
    incident: TrialEvent | None  # the integrity incident the check opened, if it did


@transaction.atomic
def canary_check_record(
    *, target: CanaryTarget, sweep: str, prompt_index: int, reply: Reply | None, error: str = ""
) -> Recorded | None:
    """Store what one prompt of ``sweep`` found (``reply``, or ``None`` with the ``error`` of
    an unreachable endpoint), and open an integrity incident if it is a new drift. ``None`` if
    this sweep already recorded the prompt (a re-delivered task)."""
    arm = target.arm
    # Deliveries of one sweep, and the audit chain, queue on the trial row (trials.locks).
    trial_lock(arm.trial)
    if CanaryCheck.objects.filter(arm=arm, sweep=sweep, prompt_index=prompt_index).exists():
        return None
    answered = CanaryCheck.objects.filter(arm=arm, status__in=ANSWERED)
    previous = answered.order_by("-checked_at", "-pk").first()
    check = CanaryCheck(
        arm=arm,
        sweep=sweep,
        prompt_index=prompt_index,
        checked_at=timezone.now(),
        error=error[:500],
    )
    if reply is None:
        check.status = CanaryCheck.Status.UNREACHABLE
        check.save()
        return Recorded(check, None)
    expected_model = target.pinned_model
    reference = _reference_fingerprint(arm, expected_model)
    fingerprint_changed = bool(
        reference and reply.system_fingerprint and reply.system_fingerprint != reference
    )
    drifted = reply.served_model != expected_model or fingerprint_changed
    check.status = CanaryCheck.Status.DRIFTED if drifted else CanaryCheck.Status.OK
    # Compared in full above, stored within the columns' length (an endpoint says what it likes).
    check.served_model = reply.served_model[:200]
    check.system_fingerprint = reply.system_fingerprint[:200]
    check.reply_stats = reply.stats
    check.save()
    same_drift = (
        previous is not None
        and previous.status == CanaryCheck.Status.DRIFTED
        and (previous.served_model, previous.system_fingerprint)
        == (check.served_model, check.system_fingerprint)
    )
    if not drifted or same_drift:
        return Recorded(check, None)
    incident = event_record(
        trial=arm.trial,
        kind=TrialEvent.Kind.ARM_INTEGRITY_FAILURE,
        arm=arm.slug,
        source="canary",
        canary_check=check.pk,
        sweep=sweep,
        expected_model=expected_model,
        served_model=check.served_model,
        expected_fingerprint=reference,
        served_fingerprint=check.system_fingerprint,
    )
    logger.error(
        "Arm %s answered as %s (fingerprint %s); pinned to %s (fingerprint %s).",
        arm,
        check.served_model,
        check.system_fingerprint or "none",
        expected_model,
        reference or "none",
    )
    return Recorded(check, incident)


def canary_incident_events():
    """The integrity incidents the drift watch opened, newest first (the ``canary_check`` of
    their detail is the check that opened each)."""
    return TrialEvent.objects.filter(
        kind=TrialEvent.Kind.ARM_INTEGRITY_FAILURE, detail__source="canary"
    ).order_by("-pk")


def canary_sweep(*, sweep: str) -> dict[str, int]:
    """Probe every target once under ``sweep`` (the beat task's id); returns how many checks
    came out ok, drifted and unreachable, how many incidents were opened, and how many prompts
    an earlier delivery of the same sweep had already recorded."""
    from openai import OpenAIError

    counts = dict.fromkeys(["ok", "drifted", "unreachable", "incidents", "already_recorded"], 0)
    for target in canary_targets():
        for index, prompt in enumerate(target.prompts):
            done = CanaryCheck.objects.filter(arm=target.arm, sweep=sweep, prompt_index=index)
            if done.exists():
                counts["already_recorded"] += 1
                continue
            reply, error = None, ""
            try:
                reply = canary_send(target, prompt)
            except (OpenAIError, ValueError) as failure:  # ValueError: not a chat completion
                error = f"{type(failure).__name__}: {failure}"
                logger.warning("Canary prompt %d of arm %s: %s", index, target.arm, error)
            recorded = canary_check_record(
                target=target, sweep=sweep, prompt_index=index, reply=reply, error=error
            )
            if recorded is None:
                counts["already_recorded"] += 1
                continue
            counts[recorded.check.status] += 1
            counts["incidents"] += recorded.incident is not None
    return counts
