"""The panels built from a really fitted run, the figures' conventions, and the additions to
the stored results they read."""

import numpy as np
import pytest

from analytics.models import AnalysisRun
from analytics.selectors import trial_scores_frame
from dashboards import panels as p
from dashboards.figures import OKABE_ITO
from dashboards.selectors import dashboard_data
from surveys.reports import trial_survey_report

pytestmark = pytest.mark.django_db

TELEMETRY_ROWS = [
    {
        "window_start": f"2026-0{m}-01",
        "window_end": f"2026-0{m}-28",
        "arm": arm,
        "metric": "minutes",
        "label": "Minutes with the assistant",
        "unit": "minutes per participant per week",
        "statistic": "mean",
        "estimate": 40.0 + m,
        "std_error": 2.0,
        "ci_low": 36.0 + m,
        "ci_high": 44.0 + m,
    }
    for m in (1, 2)
    for arm in ("a", "b")
]
# Sums grow with the number of reporting devices: listed, not drawn.
TELEMETRY_SUMS = [row | {"statistic": "sum", "estimate": 4000.0} for row in TELEMETRY_ROWS[:2]]
BUDGET = {"total_rho": 1.0, "spent_rho": 0.25, "remaining_rho": 0.75, "epsilon": 3.2, "delta": 1e-6}


def _all_panels(trial, budget=None, releases=()) -> list[p.Panel]:
    data = dashboard_data(trial)
    return p.dashboard_panels(
        data.record, p.run_summary(data.run), data.enrolment, budget, list(releases)
    )


def test_every_panel_is_labelled_read_and_drawn_with_titles_and_units(analysed_trial):
    panels = _all_panels(analysed_trial, BUDGET, TELEMETRY_ROWS)
    keys = [panel.key for panel in panels]
    for wanted in ["status", "consort", "enrolment", "forest-mental_wellbeing", "posteriors",
                   "trajectories", "communities", "divergence", "telemetry", "psychometrics",
                   "diagnostics"]:  # fmt: skip
        assert wanted in keys, wanted
    for panel in panels:
        assert panel.label in (p.CONFIRMATORY, p.EXPLORATORY)
        assert panel.title and panel.reading.endswith("."), panel.key
        for fig in panel.figures:
            layout = fig.to_dict()["layout"]
            assert layout["title"]["text"], panel.key
            cartesian = [t for t in fig.data if t["type"] in ("scatter", "bar")]
            if cartesian and layout["xaxis"].get("visible", True):
                assert layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"]
            for trace in fig.data:
                colour = trace.get("line", trace.get("marker", {})).get("color")
                assert (
                    colour is None or not isinstance(colour, str) or colour in OKABE_ITO + ["white"]
                ), (panel.key, colour)
        for table in panel.tables:
            assert all(len(row) == len(table.columns) for row in table.rows), table.name
    by_key = {panel.key: panel for panel in panels}
    # The primary dimension carries the pre-registered contrast; descriptive panels do not.
    assert by_key["forest-mental_wellbeing"].label == p.CONFIRMATORY
    assert by_key["trajectories"].label == p.EXPLORATORY
    assert by_key["status"].label == p.CONFIRMATORY  # the integrity record of a confirmatory run


def test_forest_plot_puts_frequentist_and_bayesian_side_by_side_with_the_mid(analysed_trial):
    run = AnalysisRun.objects.get(trial=analysed_trial)
    panel = next(x for x in p.forest_panels(run.results) if x.key == "forest-mental_wellbeing")
    fig = panel.figures[0]
    methods_by_plot: dict[str, set[str]] = {}
    for trace in fig.data:
        methods_by_plot.setdefault(trace.get("xaxis", "x"), set()).add(
            trace["y"][0].split(" · ")[1]
        )
    assert methods_by_plot["x"] == {"mixed model", "GEE (exploratory)"}
    assert methods_by_plot["x2"] == {"Bayesian growth"}
    bayes = next(e for e in run.results["estimates"] if e["method"] == "bayes_growth"
                 and e["dimension"] == "mental_wellbeing")  # fmt: skip
    mid_lines = [s for s in fig.layout["shapes"] if s["line"].get("dash") == "dash"]
    assert [s["x0"] for s in mid_lines] == [bayes["mid"] / bayes["wave"]] * 2
    mixed = next(e for e in run.results["estimates"] if e["method"] == "mixedlm"
                 and e["dimension"] == "mental_wellbeing")  # fmt: skip
    assert f"{abs(mixed['estimate']):.2f} score points per wave" in panel.reading


def test_stored_trajectories_densities_and_psychometrics_match_their_sources(analysed_trial):
    results = AnalysisRun.objects.get(trial=analysed_trial).results
    frame = trial_scores_frame(analysed_trial)
    for point in results["trajectories"]:
        scores = frame[
            (frame.outcome == point["outcome"])
            & (frame.arm == point["arm"])
            & (frame.wave == point["wave"])
        ].score
        assert point["n"] == len(scores) and point["mean"] == pytest.approx(scores.mean())
        half = 1.959964 * scores.std(ddof=1) / np.sqrt(len(scores))
        assert point["ci_high"] - point["mean"] == pytest.approx(half)
    for density in results["bayes_growth"]["posterior_densities"]:
        width = density["x"][1] - density["x"][0]
        assert sum(density["density"]) * width == pytest.approx(1.0)
        bayes = next(
            e
            for e in results["estimates"]
            if (e["method"], e["outcome"], e["arm"])
            == ("bayes_growth", density["outcome"], density["arm"])
        )
        # The histogram's mean is the posterior mean up to the binning.
        mean = sum(x * d for x, d in zip(density["x"], density["density"], strict=True)) * width
        assert mean == pytest.approx(bayes["estimate"], abs=width)
    reports = {r.score: r for r in trial_survey_report(analysed_trial)}
    for score in results["psychometrics"]:
        expected = reports[score["score"]].by_wave[0]["alpha"].value.alpha
        assert score["reliability"][0]["alpha"]["value"]["alpha"] == pytest.approx(expected)


def test_telemetry_panel_draws_each_metric_with_intervals_and_the_budget_gauge():
    panel = p.telemetry_panel(BUDGET, TELEMETRY_ROWS + TELEMETRY_SUMS, p.arm_colours(["a", "b"]))
    gauge, releases = panel.figures
    assert [(t["name"], t["x"]) for t in gauge.data] == [("spent", [0.25]), ("remaining", [0.75])]
    assert gauge.layout["barmode"] == "stack" and gauge.layout["xaxis"]["range"] == [0, 1.0]
    assert [t["name"] for t in releases.data] == ["arm a", "arm b"]
    assert releases.data[0]["error_y"]["array"] == [4.0, 4.0]
    # One figure for every metric, switched by its menu; sums are not among the choices.
    menu = releases.layout["updatemenus"][0]["buttons"]
    assert [b["label"] for b in menu] == ["minutes (mean)"]
    assert "minutes per participant per week" in releases.layout["yaxis"]["title"]["text"]
    assert "0.250 of 1.000 ρ" in panel.reading and "ε = 3.20" in panel.reading
    assert "2 release window(s)" in panel.reading
    assert len(panel.tables[0].rows) == 6
    empty = p.telemetry_panel(None, [], {})
    assert not empty.figures and "no privacy budget" in empty.reading


def test_a_trial_without_a_finished_run_shows_its_status_only(small_trial):
    data = dashboard_data(small_trial)
    panels = p.dashboard_panels(data.record, None, data.enrolment, None, [])
    assert [x.key for x in panels] == ["status"]
    assert small_trial.preregistrations.get().sha256 in str(panels[0].tables[0].rows)


def test_a_table_s_csv_download_reads_back_neutralised_with_numbers_as_numbers():
    import csv
    import io
    import urllib.parse
    from decimal import Decimal

    from dashboards.dash_app import panel_component

    hostile = [
        '=HYPERLINK("http://evil.example","x")',
        "+1",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\rx",
        'she said "yes", twice',
        "two\nlines",
        "Grüße ✓ 日本",
        "-0.5",  # text that looks like a number is still text
    ]
    table = p.Table(
        "hostile",
        "Hostile cells",
        ["Label", "Estimate", "n", "=Note"],
        [[text, -0.5 * n, np.int64(n), None] for n, text in enumerate(hostile)]
        + [["exact", Decimal("-1.25"), True, float("nan")]],
    )
    panel = p.Panel("hostile", "Hostile", "exploratory", "Read me.", tables=[table])
    [link] = [
        child
        for wrap in panel_component("t", panel).children
        if getattr(wrap, "className", "") == "table-wrap"
        for child in wrap.children
        if getattr(child, "className", "") == "csv"
    ]
    prefix = "data:text/csv;charset=utf-8,"
    assert link.href.startswith(prefix) and link.download == "t-hostile.csv"
    text = urllib.parse.unquote(link.href.removeprefix(prefix))

    # Quoted text, unquoted numbers: QUOTE_NONNUMERIC reads numbers back as floats.
    rows = list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))
    assert rows[0] == ["Label", "Estimate", "n", "'=Note"]
    assert [row[0] for row in rows[1:-1]] == [
        "'" + hostile[0],
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        'she said "yes", twice',
        "two\nlines",
        "Grüße ✓ 日本",
        "'-0.5",
    ]
    assert [row[1:] for row in rows[1:-1]] == [[-0.5 * n, float(n), ""] for n in range(10)]
    # Booleans are words; NaN is an empty (missing) cell.
    assert rows[-1] == ["exact", -1.25, "True", ""]
    # Read as plain text, negative numbers carry no apostrophe.
    plain = list(csv.reader(io.StringIO(text, newline="")))
    assert plain[2][1] == "-0.5" and plain[-1][1] == "-1.25"
