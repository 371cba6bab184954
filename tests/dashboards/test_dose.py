"""The dose panel (dashboards.dose): the DP usage-outcome slopes, labelled exploratory and
non-causal wherever they are shown."""

import pytest

from dashboards.dose import dose_panel
from federated.release import DOSE_CAVEAT, DoseSlope
from federated.selectors import POOLED

pytestmark = pytest.mark.unit


def slope(arm: str, value: float, release_id: int = 2) -> DoseSlope:
    return DoseSlope(
        release_id=release_id,
        preregistration_version=1,
        arm=arm,
        outcome="who5 at wave 2 minus baseline",
        usage_metric="minutes",
        usage_unit="minutes",
        usage_days=28,
        slope=value,
        std_error=0.004,
        sampling_std_error=0.003,
        noise_std_error=0.00265,
        ci_low=value - 0.00784,
        ci_high=value + 0.00784,
        participants=161.4,
    )


def test_the_panel_shows_the_latest_release_s_slopes_as_exploratory_and_not_causal():
    rows = [slope("a", 0.01), slope("b", 0.03), slope(POOLED, 0.02), slope(POOLED, 0.5, 1)]
    panel = dose_panel(rows)
    assert panel.label == "exploratory"
    assert panel.reading.startswith("Exploratory, not causal: across about 161 participants")
    assert "each extra minute of assistant use in their first 28 days went with +0.0200" in (
        panel.reading
    )
    assert panel.notes == [DOSE_CAVEAT]
    # The figure draws the latest release only; the table lists every release's slopes.
    assert [trace["x"] for trace in panel.figures[0].data] == [[0.01], [0.03], [0.02]]
    assert len(panel.tables[0].rows) == 4


def test_without_a_dose_release_there_is_no_panel():
    assert dose_panel([]) is None
