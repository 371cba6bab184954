"""The database side of the survey benchmark: the participants prepared before timing and the rows
counted afterwards. Imported once Django is set up with ``survey_settings``."""

from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from analytics.seeding import synthetic_trial_create
from surveys.links import survey_path
from surveys.models import Response, ResponseDraft, Score, Wave
from trials.models import ConsentDocument, ConsentGrant, ConsentScope, Participant

# Rows per bulk insert while preparing: set-up, not what is measured.
BATCH = 5000


@dataclass(frozen=True)
class Cohort:
    wave_id: int
    # (participant id, survey path) of those who answer through the participant endpoint: in one
    # POST (submit) or through the whole visit (flow). Their wave is open now.
    submit: list[tuple[str, str]]
    flow: list[tuple[str, str]]
    # Participant ids whose rows the baseline view inserts.
    baseline: list[str]
    # One more of each, answered outside the timed runs to count SQL statements per request.
    submit_probe: tuple[str, str]
    flow_probe: tuple[str, str]
    baseline_probe: str


def cohort_prepare(*, flow: int, submit: int, baseline: int) -> Cohort:
    """A trial whose first wave shows both questionnaires on one page, with ``flow`` +
    ``submit`` participants who consented to surveys (the pages check consent and withdrawal;
    they never read the allocation, so the participants are inserted in bulk rather than
    randomised one by one) and ``baseline`` bare participant rows (the baseline view checks
    nothing, so they need only exist)."""
    trial = synthetic_trial_create(slug="bench", participants=4, waves=2, effect=0.0, seed=1)
    wave = Wave.objects.get(trial=trial, index=0)
    Wave.objects.filter(pk=wave.pk).update(one_page=True)
    document = ConsentDocument.objects.get(trial=trial)
    now = timezone.now()
    with transaction.atomic():
        answering = Participant.objects.bulk_create(
            (Participant(trial=trial, enrolled_at=now) for _ in range(flow + submit + 2)),
            batch_size=BATCH,
        )
        ConsentGrant.objects.bulk_create(
            (
                ConsentGrant(
                    participant=p, document=document, scope=ConsentScope.SURVEYS, granted_at=now
                )
                for p in answering
            ),
            batch_size=BATCH,
        )
        bare = Participant.objects.bulk_create(
            (Participant(trial=trial, enrolled_at=now) for _ in range(baseline + 1)),
            batch_size=BATCH,
        )
    paths = [(p.pk, survey_path(p.pk, wave.pk)) for p in answering]
    return Cohort(
        wave_id=wave.pk,
        submit=paths[:submit],
        flow=paths[submit : submit + flow],
        baseline=[p.pk for p in bare[:-1]],
        submit_probe=paths[-2],
        flow_probe=paths[-1],
        baseline_probe=bare[-1].pk,
    )


def rows_check(
    cohort: Cohort, *, submit: set[str], flow: set[str], baseline: set[str]
) -> dict[str, dict]:
    """For each side, the rows stored for its participants against the submissions it saw
    accepted: exactly one Response per accepted submission, none for anyone else, and every
    Response's Score rows."""
    wave = Wave.objects.get(pk=cohort.wave_id)
    per_response = sum(len(i.definition.scores) for i in wave.instruments.all())
    responses = Counter(Response.objects.filter(wave=wave).values_list("participant_id", flat=True))
    score_rows = Counter(
        Score.objects.filter(response__wave=wave).values_list("response__participant_id", flat=True)
    )
    sides = {
        "submit": ({p for p, _ in cohort.submit}, submit),
        "flow": ({p for p, _ in cohort.flow}, flow),
        "baseline": (set(cohort.baseline), baseline),
    }
    report = {}
    for side, (pool, accepted) in sides.items():
        stored = {p: n for p, n in responses.items() if p in pool}
        counts = {
            "accepted": len(accepted),
            "responses": sum(stored.values()),
            "missing": len(accepted - stored.keys()),
            "duplicated": sum(1 for n in stored.values() if n > 1),
            "unexpected": len(stored.keys() - accepted),
            "scores": sum(score_rows[p] for p in stored),
            "scores_expected": len(accepted) * per_response,
        }
        if side != "baseline":
            # Submitting removes the participant's draft in the same transaction.
            counts["drafts_left"] = ResponseDraft.objects.filter(
                wave=wave, participant_id__in=accepted
            ).count()
        counts["ok"] = (
            counts["missing"] == counts["duplicated"] == counts["unexpected"] == 0
            and counts["responses"] == counts["accepted"]
            and counts["scores"] == counts["scores_expected"]
            and not counts.get("drafts_left")
        )
        report[side] = counts
    return report
