"""The assignment API: what an assistant app asks to learn which configuration to run.

``GET /api/v1/assignment/<token>/`` with the participant's signed token returns that participant's
arm configuration and its hash, and nothing about other arms or other participants. Every other
case (unknown, tampered or revoked token, withdrawn participant, trial not running) is the same
404, so the API cannot be used to probe who takes part.
"""

import logging

import rules
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from trials.canonical import sha256_of
from trials.models import Participant, TrialEvent
from trials.selectors import preregistration_in_force, preregistrations_pending
from trials.services import arm_config, assignment_token_participant_id, event_record

security_log = logging.getLogger("flourish.security")


@require_GET
@never_cache
def assignment(request: HttpRequest, token: str) -> JsonResponse:
    participant_id = assignment_token_participant_id(token)
    if participant_id is None:
        security_log.warning("Assignment API: refused a token with a bad signature.")
        raise Http404("No assignment.")
    participant = (
        Participant.objects.select_related("trial", "allocation__arm__flourishing_profile")
        .filter(pk=participant_id)
        .first()
    )
    # The token names the participant; the rule (trials.rules) says whether they are served.
    if participant is None or not rules.test_rule("trials.receive_assignment", participant):
        raise Http404("No assignment.")
    trial, arm = participant.trial, participant.allocation.arm
    in_force = preregistration_in_force(trial)
    if in_force is None:
        raise Http404("No assignment.")
    # Serve the configuration the bodies approved, even while an amendment waits for them.
    record = in_force.frozen_record
    config = record.arm_configs[arm.slug]
    config_hash = sha256_of(config)
    registered_hash = record.arms[arm.slug]
    live_hash = sha256_of(arm_config(arm))
    # The arm as it stands must be one a frozen version registered: this one, or an amendment
    # awaiting approval (looked up only when the arm has moved on).
    registered = live_hash == registered_hash or live_hash in {
        pending.frozen_record.arms.get(arm.slug)
        for pending in preregistrations_pending(trial, in_force)
    }
    if config_hash != registered_hash or live_hash != arm.config_hash or not registered:
        # The arm no longer matches any registered version (changed outside the services): serve
        # nothing rather than an unregistered assistant, and leave a trace for the coordinators.
        event_record(
            trial=trial,
            kind=TrialEvent.Kind.ARM_INTEGRITY_FAILURE,
            arm=arm.slug,
            registered_hash=registered_hash,
            found_hash=live_hash,
        )
        security_log.error("Arm %s of trial %s does not match its registration.", arm.slug, trial)
        return JsonResponse({"detail": "This assignment is temporarily unavailable."}, status=503)
    return JsonResponse(
        {
            "trial": trial.slug,
            "configuration": config,
            "config_hash": config_hash,
            "preregistration": {"version": in_force.version, "sha256": in_force.sha256},
        }
    )
