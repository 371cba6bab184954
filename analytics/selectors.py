"""Reads for analyses: pseudonymous scores only, never contact details."""

import pandas as pd

from surveys.models import Score
from trials.models import Trial

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
