import numpy as np
import pytest

from stats.divergence import engagement_flourishing_divergence, gaussian_draws

pytestmark = pytest.mark.unit


def test_probability_counts_the_draws_where_engagement_rose_and_flourishing_did_not():
    engagement = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    flourishing = np.array([-1.0, 0.0, -2.0, 1.0, -0.1])
    result = engagement_flourishing_divergence(
        engagement, flourishing, arm="b", engagement_source="e", flourishing_source="f"
    )
    # Draws 1, 2 and 5 rose in engagement without flourishing rising (0 counts as "did not").
    assert result.probability == pytest.approx(3 / 5)
    assert result.prob_engagement_rose == pytest.approx(4 / 5)
    assert result.prob_flourishing_rose == pytest.approx(1 / 5)
    assert result.flagged


def test_independent_normal_effects_give_the_product_of_their_probabilities():
    # Engagement N(1, 1) and flourishing N(0, 1) drawn independently: P = Φ(1) · Φ(0) = 0.4207.
    engagement = gaussian_draws(1.0, 1.0, 400_000, seed=1)
    flourishing = gaussian_draws(0.0, 1.0, 400_000, seed=2)
    result = engagement_flourishing_divergence(
        engagement, flourishing, arm="b", engagement_source="e", flourishing_source="f"
    )
    assert result.probability == pytest.approx(0.8413447 * 0.5, abs=0.003)
    assert not result.flagged  # below the default threshold of one half


@pytest.mark.parametrize(
    ("engagement", "flourishing", "message"),
    [
        (np.ones(3), np.ones(4), "paired"),
        (np.array([1.0, np.nan]), np.ones(2), "finite"),
    ],
)
def test_bad_draws_are_refused(engagement, flourishing, message):
    with pytest.raises(ValueError, match=message):
        engagement_flourishing_divergence(
            engagement, flourishing, arm="b", engagement_source="e", flourishing_source="f"
        )
