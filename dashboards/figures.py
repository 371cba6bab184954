"""Plotly figures as plain JSON-ready dicts.

Plotly's ``graph_objects`` validate and deep-copy their template on every update, work a
dashboard would repeat for each of its figures on every request; the dashboards build the same
figure specification directly (https://plotly.com/javascript/reference/) and hand it to
``dcc.Graph`` as is.
"""

from dataclasses import dataclass, field

# Okabe & Ito (2008), distinguishable with every common colour-vision deficiency; yellow is
# left out because it vanishes on white.
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
GREY = "#595959"
GRID = "#e5e5e5"


def rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _axis(title: str) -> dict:
    return {
        "title": {"text": title},
        "gridcolor": GRID,
        "zeroline": False,
        "linecolor": GREY,
        "automargin": True,
    }


@dataclass
class Figure:
    """A Plotly figure of one plot. Plots meant to be read side by side are separate figures,
    which the page's grid puts side by side where there is room and one above the other where
    there is not (``dashboard.css``, ``.figures``): Plotly lays out subplots in fixed fractions
    of the width, so on a narrow screen their titles and row labels run into each other."""

    title: str
    x_title: str = ""
    y_title: str = ""
    height: int = 380
    data: list[dict] = field(default_factory=list)
    layout: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layout = {
            "title": {"text": self.title, "x": 0, "xanchor": "left"},
            "colorway": OKABE_ITO,
            "font": {"family": "system-ui, sans-serif", "size": 14, "color": "#1a1a1a"},
            "paper_bgcolor": "#ffffff",
            "plot_bgcolor": "#ffffff",
            "height": self.height,
            "margin": {"l": 70, "r": 20, "t": 70 if self.title else 20, "b": 90},
            # Below the x axis's title, not over it.
            "legend": {"orientation": "h", "y": -0.32},
            "xaxis": _axis(self.x_title),
            "yaxis": _axis(self.y_title),
            "shapes": [],
            "annotations": [],
        }

    def add_trace(self, trace: dict) -> None:
        self.data.append(trace)

    def axis(self, axis: str, **properties) -> None:
        """Update the x or y axis."""
        self.layout[f"{axis}axis"].update(properties)

    def add_shape(self, **shape) -> None:
        self.layout["shapes"].append(shape)

    def add_annotation(self, **annotation) -> None:
        self.layout["annotations"].append(annotation)

    def add_vline(self, x: float, *, line: dict, text: str = "") -> None:
        self.add_shape(
            type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="y domain", line=line,
        )  # fmt: skip
        if text:
            # Inside the plot, beside the line, clear of the titles above it.
            self.add_annotation(
                text=text, x=x, y=1, xref="x", yref="y domain",
                xanchor="left", yanchor="top", showarrow=False,
                font={"color": line.get("color", GREY)}, bgcolor="rgba(255,255,255,0.8)",
            )  # fmt: skip

    def add_hline(self, y: float, *, line: dict, text: str = "") -> None:
        self.add_shape(
            type="line", x0=0, x1=1, y0=y, y1=y, xref="x domain", yref="y", line=line,
        )  # fmt: skip
        if text:
            self.add_annotation(
                text=text, x=1, y=y, xref="x domain", yref="y",
                xanchor="right", yanchor="bottom", showarrow=False,
                font={"color": line.get("color", GREY)},
            )  # fmt: skip

    def to_dict(self) -> dict:
        return {"data": self.data, "layout": self.layout}
