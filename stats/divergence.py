"""The engagement-vs-flourishing guardrail: did an arm raise engagement without raising
flourishing? (The Goodhart check: an assistant optimised for use, not for its users.)"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Divergence:
    """Posterior probabilities for one arm against control.

    ``probability`` is :math:`P(\\Delta_E > 0 \\wedge \\Delta_F \\le 0)`: engagement rose while
    flourishing did not; ``flagged`` when it exceeds ``threshold``.
    """

    arm: str
    engagement_source: str
    flourishing_source: str
    prob_engagement_rose: float
    prob_flourishing_rose: float
    probability: float
    threshold: float
    flagged: bool
    draws: int


def engagement_flourishing_divergence(
    engagement: np.ndarray,
    flourishing: np.ndarray,
    *,
    arm: str,
    engagement_source: str,
    flourishing_source: str,
    threshold: float = 0.5,
) -> Divergence:
    r"""Joint posterior probability that engagement rose while flourishing did not.

    With joint posterior draws :math:`(\Delta_E^{(s)}, \Delta_F^{(s)})` of an arm's effect on
    engagement and on flourishing (both against control, oriented so that positive means "more"),

    .. math:: \hat p = \frac{1}{S}\sum_s \mathbb 1\{\Delta_E^{(s)} > 0\}\,
              \mathbb 1\{\Delta_F^{(s)} \le 0\}.

    Draws must be paired (from one joint posterior) when both effects come from the same model,
    which keeps their correlation; an engagement estimate released with differential privacy
    comes from independent data and is passed as draws of its noise-aware posterior
    (:func:`gaussian_draws`). The default threshold flags an arm when divergence is more likely
    than not.
    """
    e = np.asarray(engagement, dtype=float).ravel()
    f = np.asarray(flourishing, dtype=float).ravel()
    if e.shape != f.shape or e.size < 2:
        raise ValueError("Pass paired draws of engagement and flourishing (at least two).")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(f))):
        raise ValueError("Draws must be finite.")
    if not 0 < threshold < 1:
        raise ValueError("threshold must lie in (0, 1).")
    probability = float(np.mean((e > 0) & (f <= 0)))
    return Divergence(
        arm=arm,
        engagement_source=engagement_source,
        flourishing_source=flourishing_source,
        prob_engagement_rose=float(np.mean(e > 0)),
        prob_flourishing_rose=float(np.mean(f > 0)),
        probability=probability,
        threshold=threshold,
        flagged=probability > threshold,
        draws=int(e.size),
    )


def gaussian_draws(estimate: float, std_error: float, size: int, *, seed: int) -> np.ndarray:
    """Draws of an effect known through a normal approximation (e.g. a DP release whose noise
    variance has been added to its sampling variance)."""
    if not (np.isfinite(estimate) and np.isfinite(std_error) and std_error > 0):
        raise ValueError("Need a finite estimate and a positive standard error.")
    return np.random.default_rng(seed).normal(estimate, std_error, size)


@dataclass(frozen=True)
class ReleasedMean:
    """One arm's differentially private release of a bounded metric: a noisy sum and a noisy
    count, each with the scale of its (integer) Gaussian noise, and the metric's bounds."""

    noisy_sum: float
    sum_noise_scale: float
    noisy_count: float
    count_noise_scale: float
    lower: float
    upper: float


def released_mean(release: ReleasedMean) -> tuple[float, float]:
    r"""Mean per participant and its standard error, with the DP noise propagated.

    The mean is post-processing of the two releases, :math:`\hat m = \tilde S / \tilde n`. Its
    variance has two parts. The noise, by the delta method:
    :math:`(\sigma_S^2 + \hat m^2 \sigma_n^2) / \tilde n^2`. The sampling variance of a mean of
    :math:`n` values in :math:`[L, U]`, which no release reveals, is bounded by Popoviciu's
    inequality, :math:`\operatorname{Var} \le (U - L)^2 / 4`, so :math:`(U - L)^2 / (4\tilde n)`;
    the resulting interval is conservative.
    """
    if not release.noisy_count >= 2:
        raise ValueError("Too few reporting participants (noisy count < 2) for a mean.")
    n = release.noisy_count
    mean = release.noisy_sum / n
    noise = (release.sum_noise_scale**2 + mean**2 * release.count_noise_scale**2) / n**2
    sampling = (release.upper - release.lower) ** 2 / (4 * n)
    return mean, float(np.sqrt(noise + sampling))


def released_mean_difference(arm: ReleasedMean, control: ReleasedMean) -> tuple[float, float]:
    """An arm's mean minus control's, and its standard error: arms are disjoint people with
    independent noise, so the variances add."""
    (m_arm, se_arm), (m_control, se_control) = released_mean(arm), released_mean(control)
    return m_arm - m_control, float(np.hypot(se_arm, se_control))
