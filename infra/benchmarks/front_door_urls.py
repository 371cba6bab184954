"""The product's URLs plus the front-door benchmark's baseline view; never part of the product.

The baseline inserts, in one transaction, the rows one enrolment through the front door stores:
the participant, their contact details and signature, a consent grant per data stream, the
allocation (arm, stratum and position given by the load generator), the invitation and reminder
rows of every wave, and the screening row's link to the participant. Nothing else: no signed
link, no checks, no concealed sequence, no audit row, no e-mail. It is the least any
implementation of "enrol this person" must store, so the enrol step's throughput is reported as
a share of it.
"""

from datetime import timedelta
from functools import cache

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.urls import urlpatterns as product_urlpatterns
from surveys.models import Invitation, Wave
from trials.models import (
    Allocation,
    ConsentGrant,
    EligibilityScreening,
    Participant,
    ParticipantContact,
)


@cache
def _waves(trial_id: int) -> list[tuple[int, int, list[int]]]:
    # Read once per process, so that a baseline request does nothing but its inserts.
    return [
        (wave.pk, wave.day_offset, list(wave.reminder_days))
        for wave in Wave.objects.filter(trial_id=trial_id)
    ]


@csrf_exempt  # posted by the load generator alone, with no form to carry a token
@require_POST
def baseline_enrol(request: HttpRequest) -> HttpResponse:
    form = request.POST
    trial_id, now = int(form["trial"]), timezone.now()
    with transaction.atomic():
        participant = Participant.objects.create(
            trial_id=trial_id, community_id=form["community"], locale="en", enrolled_at=now
        )
        ParticipantContact.objects.create(
            participant=participant,
            trial_id=trial_id,
            email=form["email"],
            signature_name=form["name"],
            signed_at=now,
        )
        ConsentGrant.objects.bulk_create(
            ConsentGrant(
                participant=participant, document_id=form["document"], scope=scope, granted_at=now
            )
            for scope in form.getlist("scopes")
        )
        Allocation.objects.create(
            participant=participant,
            arm_id=form["arm"],
            allocated_at=now,
            stratum_id=form["stratum"],
            position=int(form["position"]),
        )
        Invitation.objects.bulk_create(
            Invitation(
                participant=participant,
                wave_id=wave_id,
                sequence=sequence,
                due_at=now + timedelta(days=day_offset + days),
            )
            for wave_id, day_offset, reminders in _waves(trial_id)
            for sequence, days in enumerate([0, *reminders])
        )
        EligibilityScreening.objects.filter(pk=form["screening"]).update(participant=participant)
    return HttpResponse(status=204)


urlpatterns = [
    *product_urlpatterns,
    path("bench/baseline-enrol", baseline_enrol, name="bench_baseline_enrol"),
]
