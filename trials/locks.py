"""Row locks, kept in one place so they are always taken the same way."""

from trials.models import AllocationStratum, Trial


def trial_lock(trial: Trial) -> Trial:
    """The trial row, locked until the transaction ends: serialises lifecycle changes."""
    return Trial.objects.select_for_update().get(pk=trial.pk)


def stratum_lock(trial: Trial, key: str) -> AllocationStratum:
    """A stratum's next position and current block, created on first use, locked until the
    transaction ends.

    Concurrent enrolments into one stratum queue here, so each takes the next position exactly
    once and walks on from the block its predecessor stored; creation tolerates a race (the
    loser's insert is ignored, then both lock the one row).
    """
    AllocationStratum.objects.bulk_create(
        [AllocationStratum(trial=trial, key=key)], ignore_conflicts=True
    )
    return AllocationStratum.objects.select_for_update().get(trial=trial, key=key)
