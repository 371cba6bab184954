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
# Two side-by-side plots leave room between them for the second plot's row labels.
SUBPLOT_DOMAINS = ([0.0, 0.36], [0.64, 1.0])


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
    """A Plotly figure of one plot, or of ``columns`` plots side by side with ``subtitles``."""

    title: str
    x_title: str = ""
    y_title: str = ""
    height: int = 380
    columns: int = 1
    subtitles: tuple[str, ...] = ()
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
            "margin": {"l": 70, "r": 20, "t": 70, "b": 90},
            # Below the x axis's title, not over it.
            "legend": {"orientation": "h", "y": -0.32},
            "shapes": [],
            "annotations": [],
        }
        for col in range(1, self.columns + 1):
            x, y = self._axes(col)
            self.layout[x] = _axis(self.x_title)
            self.layout[y] = _axis(self.y_title if col == 1 else "")
            if self.columns > 1:
                self.layout[x]["domain"] = SUBPLOT_DOMAINS[col - 1]
                self.layout[x]["anchor"] = f"y{col if col > 1 else ''}"
                self.layout[y]["anchor"] = f"x{col if col > 1 else ''}"
        for col, text in enumerate(self.subtitles, start=1):
            domain = SUBPLOT_DOMAINS[col - 1]
            self.add_annotation(
                text=f"<b>{text}</b>",
                x=sum(domain) / 2,
                y=1.0,
                xref="paper",
                yref="paper",
                yanchor="bottom",
                showarrow=False,
            )

    @staticmethod
    def _axes(col: int) -> tuple[str, str]:
        suffix = "" if col == 1 else str(col)
        return f"xaxis{suffix}", f"yaxis{suffix}"

    def add_trace(self, trace: dict, col: int = 1) -> None:
        if col > 1:
            trace = {**trace, "xaxis": f"x{col}", "yaxis": f"y{col}"}
        self.data.append(trace)

    def axis(self, axis: str, col: int = 1, **properties) -> None:
        """Update the x or y axis of plot ``col``."""
        self.layout[self._axes(col)[0 if axis == "x" else 1]].update(properties)

    def add_shape(self, **shape) -> None:
        self.layout["shapes"].append(shape)

    def add_annotation(self, **annotation) -> None:
        self.layout["annotations"].append(annotation)

    def add_vline(self, x: float, *, line: dict, text: str = "", col: int = 1) -> None:
        suffix = "" if col == 1 else str(col)
        self.add_shape(
            type="line", x0=x, x1=x, y0=0, y1=1, xref=f"x{suffix}", yref=f"y{suffix} domain",
            line=line,
        )  # fmt: skip
        if text:
            # Inside the plot, beside the line, clear of the titles above it.
            self.add_annotation(
                text=text, x=x, y=1, xref=f"x{suffix}", yref=f"y{suffix} domain",
                xanchor="left", yanchor="top", showarrow=False,
                font={"color": line.get("color", GREY)}, bgcolor="rgba(255,255,255,0.8)",
            )  # fmt: skip

    def add_hline(self, y: float, *, line: dict, text: str = "", col: int = 1) -> None:
        suffix = "" if col == 1 else str(col)
        self.add_shape(
            type="line", x0=0, x1=1, y0=y, y1=y, xref=f"x{suffix} domain", yref=f"y{suffix}",
            line=line,
        )  # fmt: skip
        if text:
            self.add_annotation(
                text=text, x=1, y=y, xref=f"x{suffix} domain", yref=f"y{suffix}",
                xanchor="right", yanchor="bottom", showarrow=False,
                font={"color": line.get("color", GREY)},
            )  # fmt: skip

    def to_dict(self) -> dict:
        return {"data": self.data, "layout": self.layout}
