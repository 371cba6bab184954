"""What other apps read of the DP releases and the privacy ledger: typed rows, the only form in
which telemetry leaves this app (``federated.selectors`` computes them from the stored noisy
aggregates; the dashboards draw them)."""

from typing import Literal

from trials.documents import Document


class ReleasedValue(Document):
    """One released count or sum of a window and arm, or a mean per reporting participant
    derived from the two (post-processing, no further privacy cost), with its noise-aware 95%
    interval."""

    window_index: int
    window_start: str
    """ISO date of the window's first day."""
    window_end: str
    """ISO date of the day after the window (exclusive)."""
    arm: str
    metric: str
    """``count`` (reporting participants) or the metric's code."""
    label: str
    unit: str
    statistic: Literal["count", "sum", "mean"]
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float


class PrivacyBudgetSummary(Document):
    """A trial's zCDP budget in ρ and the (ε, δ)-DP equivalent of what has been spent."""

    total_rho: float
    spent_rho: float
    remaining_rho: float
    epsilon: float
    delta: float


# What every display of a dose slope says with it.
DOSE_CAVEAT = (
    "Exploratory and not causal: participants chose how much to use the assistant after they "
    "were randomised, so usage may follow their outcome rather than cause it, or both may "
    "follow something else."
)


class DoseSlope(Document):
    """The usage-outcome slope of one arm, or pooled within the arms (``arm`` "all arms"),
    from a dose release's noisy sums, with its noise-aware 95% interval (``federated.slope``).
    Always exploratory and non-causal: ``label`` and ``caveat`` say so wherever it is shown."""

    release_id: int
    preregistration_version: int
    arm: str
    outcome: str
    """The score and wave, e.g. ``who5 at wave 2 minus baseline``."""
    usage_metric: str
    usage_unit: str
    usage_days: int
    slope: float
    """Change of the outcome (score points) per unit of usage."""
    std_error: float
    sampling_std_error: float
    noise_std_error: float
    ci_low: float
    ci_high: float
    participants: float
    """The noisy count of participants behind it."""
    label: Literal["exploratory"] = "exploratory"
    caveat: str = DOSE_CAVEAT
