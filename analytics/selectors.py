"""Reads for analyses: pseudonymous scores only, never contact details."""

import pandas as pd
from django.db.models import Count

from surveys.models import Score
from trials.models import Participant, Trial

SCORE_COLUMNS = ["participant", "arm", "wave", "dimension", "score"]


def trial_scores_frame(trial: Trial) -> pd.DataFrame:
    """One row per participant × wave × dimension, in a stable order."""
    rows = (
        Score.objects.filter(response__participant__trial=trial)
        .values_list(
            "response__participant_id",
            "response__participant__allocation__arm__slug",
            "response__wave__index",
            "dimension",
            "value",
        )
        .order_by("response__participant_id", "response__wave__index", "dimension")
    )
    return pd.DataFrame.from_records(list(rows), columns=SCORE_COLUMNS)


def consort_counts(trial: Trial) -> dict:
    """The CONSORT flow from the records: assessed, eligible, consented, then per arm allocated,
    followed up (answered the final wave), analysed (baseline and final wave: the primary
    ANCOVA's complete cases) and withdrawn with reasons."""
    screenings = trial.screenings.all()
    participants = Participant.objects.filter(trial=trial)
    waves = list(trial.waves.order_by("index").values_list("index", flat=True))
    final = waves[-1] if waves else None
    arms = []
    for arm in trial.arms.order_by("-is_control", "slug"):
        allocated = participants.filter(allocation__arm=arm)
        followed = allocated.filter(responses__wave__index=final).distinct()
        analysed = followed.filter(pk__in=allocated.filter(responses__wave__index=0).values("pk"))
        reasons: dict[str, int] = {}
        for reason in allocated.filter(withdrawn_at__isnull=False).values_list(
            "withdrawal_reason", flat=True
        ):
            key = reason or "no reason given"
            reasons[key] = reasons.get(key, 0) + 1
        arms.append(
            {
                "slug": arm.slug,
                "name": arm.name,
                "allocated": allocated.count(),
                "followed_up": followed.count() if final is not None else 0,
                "analysed": analysed.count() if final is not None else 0,
                "withdrawn": sum(reasons.values()),
                "withdrawal_reasons": reasons,
            }
        )
    return {
        "assessed": screenings.count(),
        "eligible": screenings.filter(eligible=True).count(),
        "excluded": screenings.filter(eligible=False).count(),
        "excluded_reasons": {
            row["exclusion_reason"]: row["n"]
            for row in screenings.filter(eligible=False)
            .values("exclusion_reason")
            .annotate(n=Count("pk"))
        },
        "consented": participants.count(),
        "final_wave": final,
        "arms": arms,
    }
