"""The product's URLs plus the survey benchmark's baseline view; never part of the product.

The baseline stores what one finished wave stores (one Response and its Score rows, with the same
answers, languages, timings and quality indices, in one transaction) and nothing else: no pages,
templates, signed links or checks. It is the least any implementation of "submit a wave" must
do, so the real pages' throughput is reported as a share of it.
"""

from functools import cache

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.urls import urlpatterns as product_urlpatterns
from surveys.models import Instrument, Response, Score
from surveys.services import quality_indices, score_fields

# What every simulated participant answers, keyed as stored answers are.
ANSWERS = {
    "swls": {f"swls_{i}": 5 for i in range(1, 6)},
    "who5": {f"who5_{i}": 3 for i in range(1, 6)},
}
# Seconds per page recorded with the baseline's rows: a believable pace.
PAGE_SECONDS = 20.0


@cache
def stored_fields() -> tuple[dict, list[dict]]:
    """The Response fields and Score rows of ANSWERS, worked out once per process so that a
    baseline request does nothing but its inserts."""
    instruments = list(Instrument.objects.filter(code__in=ANSWERS))
    quality = {
        i.code: quality_indices(i.definition, ANSWERS[i.code], PAGE_SECONDS) for i in instruments
    }
    response = {
        "answers": ANSWERS,
        "languages": dict.fromkeys(ANSWERS, "en"),
        "timings": {"pages": dict.fromkeys(ANSWERS, PAGE_SECONDS)},
        "quality": quality,
        "flagged": any(q["flags"] for q in quality.values()),
    }
    score_rows = [row for i in instruments for row in score_fields(i, ANSWERS[i.code])]
    return response, score_rows


@csrf_exempt  # posted by the load generator alone, with no form to carry a token
@require_POST
def baseline_submit(request: HttpRequest) -> HttpResponse:
    response_fields, score_rows = stored_fields()
    now = timezone.now()
    with transaction.atomic():
        response = Response.objects.create(
            participant_id=request.POST["participant"],
            wave_id=request.POST["wave"],
            started_at=now,
            submitted_at=now,
            **response_fields,
        )
        Score.objects.bulk_create(Score(response=response, **row) for row in score_rows)
    return HttpResponse(status=204)


urlpatterns = [
    *product_urlpatterns,
    path("bench/baseline-submit", baseline_submit, name="bench_baseline_submit"),
]
