"""The dashboard's panel of the DP dose release: how participants' assistant usage went with
their own outcome change (``federated.dose``), per arm and pooled within arms, each slope with
its noise-aware 95% interval. Always exploratory and non-causal, in its label, its reading and
its note: participants chose their usage after randomisation.

:func:`dose_panel` is pure, built from ``federated.release.DoseSlope`` rows like the panels of
``dashboards.panels``, whose :func:`~dashboards.panels.dashboard_panels` places it.
"""

from dashboards.figures import GREY, OKABE_ITO, Figure
from dashboards.panels import EXPLORATORY, Panel, Table, arm_colours
from federated.release import DOSE_CAVEAT, DoseSlope
from federated.selectors import POOLED


def _one(unit: str) -> str:
    """The metric's unit for one of it (the units are plural nouns: minutes, sessions)."""
    return unit.removesuffix("s")


def dose_figure(slopes: list[DoseSlope], colours: dict) -> Figure:
    """Each arm's slope and the pooled one, with their 95% intervals, against no slope."""
    first = slopes[0]
    fig = Figure(
        f"Outcome change per {_one(first.usage_unit)} of use (exploratory, not causal)",
        x_title=f"Change in {first.outcome} (points) per {_one(first.usage_unit)}",
        height=160 + 50 * len(slopes),
    )
    for slope in slopes:
        fig.add_trace(
            {
                "type": "scatter",
                "mode": "markers",
                "name": slope.arm if slope.arm == POOLED else f"arm {slope.arm}",
                "x": [slope.slope],
                "y": [slope.arm if slope.arm == POOLED else f"arm {slope.arm}"],
                "marker": {"color": colours.get(slope.arm, OKABE_ITO[-1]), "size": 11},
                "error_x": {
                    "type": "data",
                    "symmetric": False,
                    "array": [slope.ci_high - slope.slope],
                    "arrayminus": [slope.slope - slope.ci_low],
                },
                "hovertemplate": (
                    f"{slope.slope:+.4f} (95% interval {slope.ci_low:+.4f} to "
                    f"{slope.ci_high:+.4f})<extra></extra>"
                ),
            }
        )
    fig.add_shape(
        type="line", x0=0, x1=0, y0=0, y1=1, yref="paper", line={"color": GREY, "dash": "dot"}
    )
    return fig


def dose_panel(slopes: list[DoseSlope]) -> Panel | None:
    """The latest dose release's slopes, or None when the trial has none."""
    if not slopes:
        return None
    latest = [s for s in slopes if s.release_id == slopes[0].release_id]
    colours = arm_colours(s.arm for s in latest if s.arm != POOLED)
    pooled = next((s for s in latest if s.arm == POOLED), latest[0])
    unit = _one(pooled.usage_unit)
    reading = (
        f"Exploratory, not causal: across about {pooled.participants:.0f} participants, each "
        f"extra {unit} of assistant use in their first {pooled.usage_days} days went with "
        f"{pooled.slope:+.4f} points of change in {pooled.outcome} "
        f"({'pooled within arms' if pooled.arm == POOLED else f'arm {pooled.arm}'}; 95% "
        f"interval {pooled.ci_low:+.4f} to {pooled.ci_high:+.4f}, privacy noise included)."
    )
    return Panel(
        key="dose",
        title="Usage and outcome change (differentially private, exploratory)",
        label=EXPLORATORY,
        reading=reading,
        figures=[dose_figure(latest, colours)],
        tables=[
            Table(
                "dose",
                "Usage-outcome slopes from the DP dose releases (noisy sums; no participant's "
                "usage or change is kept)",
                [
                    "Plan version",
                    "Arm",
                    "Outcome",
                    "Usage",
                    "Slope (points per unit)",
                    "SE",
                    "SE sampling",
                    "SE privacy noise",
                    "95% low",
                    "95% high",
                    "Participants (noisy)",
                ],
                [
                    [
                        s.preregistration_version,
                        s.arm,
                        s.outcome,
                        f"{s.usage_metric} ({s.usage_unit}, first {s.usage_days} days)",
                        round(s.slope, 6),
                        round(s.std_error, 6),
                        round(s.sampling_std_error, 6),
                        round(s.noise_std_error, 6),
                        round(s.ci_low, 6),
                        round(s.ci_high, 6),
                        round(s.participants),
                    ]
                    for s in slopes
                ],
            )
        ],
        notes=[DOSE_CAVEAT],
    )
