"""The panels, drawn from the golden analysis run (no sampler runs here): what each shows and
says, the figures' conventions, and the dashboard reading a stored run back into its type."""

import numpy as np

from analytics.results import BayesianEstimate, FrequentistEstimate, Interim
from dashboards import panels as p
from dashboards.answer import p_text
from dashboards.figures import OKABE_ITO
from dashboards.selectors import Names, RunSummary, TrialRecord, dashboard_data
from federated.release import PrivacyBudgetSummary, ReleasedValue

TELEMETRY_ROWS = [
    ReleasedValue(
        window_index=m,
        window_start=f"2026-0{m}-01",
        window_end=f"2026-0{m}-28",
        arm=arm,
        metric="minutes",
        label="Minutes with the assistant",
        unit="minutes per participant per week",
        statistic="mean",
        estimate=40.0 + m,
        std_error=2.0,
        ci_low=36.0 + m,
        ci_high=44.0 + m,
    )
    for m in (1, 2)
    for arm in ("a", "b")
]
# Sums grow with the number of reporting devices: listed, not drawn.
TELEMETRY_SUMS = [
    row.model_copy(update={"statistic": "sum", "estimate": 4000.0}) for row in TELEMETRY_ROWS[:2]
]
BUDGET = PrivacyBudgetSummary(
    total_rho=1.0, spent_rho=0.25, remaining_rho=0.75, epsilon=3.2, delta=1e-6
)
RECORD = TrialRecord(
    slug="small",
    title="Synthetic trial small",
    state="Enrolling",
    preregistration_version=1,
    preregistration_sha256="ab" * 32,
    frozen_at="2026-01-01 09:00 UTC",
    approvals=[],
    missing_approvals=[],
    deviations=[],
    pending_versions=[],
    audit_chain_head="event 1, SHA-256 " + "cd" * 32,
)
ENROLMENT = [
    {"day": "2026-01-01", "arm": "a", "n": 12},
    {"day": "2026-01-01", "arm": "b", "n": 11},
    {"day": "2026-01-02", "arm": "a", "n": 8},
    {"day": "2026-01-02", "arm": "b", "n": 9},
]


def _run(golden, **results) -> RunSummary:
    return RunSummary(
        id=1,
        kind="confirmatory",
        finished_at="2026-03-01 09:00 UTC",
        preregistration_sha256="ab" * 32,
        code_version="0123456789ab",
        data_snapshot_sha256="ef" * 32,
        results=golden.results.model_copy(update=results),
        diagnostics=golden.diagnostics,
    )


def _all_panels(golden, budget=None, releases=()) -> list[p.Panel]:
    return p.dashboard_panels(RECORD, _run(golden), ENROLMENT, budget, list(releases))


def test_every_panel_is_labelled_read_and_drawn_with_titles_and_units(golden):
    panels = _all_panels(golden, BUDGET, TELEMETRY_ROWS)
    keys = [panel.key for panel in panels]
    assert keys == ["status", "consort", "enrolment", "forest-mental_wellbeing",
                    "forest-life_satisfaction", "posteriors", "trajectories", "communities",
                    "divergence", "telemetry", "psychometrics", "diagnostics"]  # fmt: skip
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


def test_forest_plot_puts_frequentist_and_bayesian_side_by_side_with_the_mid(golden):
    names = Names(arms={"a": "Helpful", "b": "Flourishing"}, outcomes={"who5": "WHO-5"})
    panel = next(
        x for x in p.forest_panels(golden.results, names) if x.key == "forest-mental_wellbeing"
    )
    # Two figures, which the page's grid sets side by side where there is room, on one x range.
    frequentist, bayesian = panel.figures
    assert [t["name"] for t in frequentist.data] == [
        "Flourishing · mixed model",
        "Flourishing · GEE (exploratory)",
    ]
    assert [t["name"] for t in bayesian.data] == ["Flourishing · Bayesian growth"]
    # Each row is named above its marker, so long names take no width from the plot.
    labels = [a["text"] for a in frequentist.layout["annotations"] if a.get("yshift")]
    assert labels == ["Flourishing<br>mixed model", "Flourishing<br>GEE (exploratory)"]
    assert frequentist.layout["xaxis"]["range"] == bayesian.layout["xaxis"]["range"]
    on_wellbeing = [e for e in golden.results.estimates if e.dimension == "mental_wellbeing"]
    bayes = next(e for e in on_wellbeing if isinstance(e, BayesianEstimate))
    for fig in panel.figures:
        [mid_line] = [s for s in fig.layout["shapes"] if s["line"].get("dash") == "dash"]
        assert mid_line["x0"] == bayes.mid / bayes.wave
    mixed = next(e for e in on_wellbeing if e.method == "mixedlm")
    assert f"{abs(mixed.estimate):.2f} score points per wave more" in panel.reading
    assert "under Flourishing" in panel.reading and "than under Helpful" in panel.reading
    assert f"P(difference > 0) = {bayes.prob_benefit:.2f}" in panel.reading
    assert "P(> MID) < 0.01" in panel.reading  # 0.0055, never printed as 0.01 or 0.00
    # Each model's own statistics in the table: p-values for the frequentist rows, posterior
    # probabilities for the Bayesian and ordinal ones.
    table = panel.tables[0]
    p_column, benefit_column = table.columns.index("p adjusted"), table.columns.index("P(benefit)")
    for estimate, row in zip(on_wellbeing, table.rows, strict=True):
        frequentist = isinstance(estimate, FrequentistEstimate)
        assert (row[p_column] != "") == frequentist and (row[benefit_column] != "") != frequentist
        if frequentist:
            assert row[p_column] == p_text(estimate.p_adjusted)


def test_posterior_trajectory_community_and_divergence_panels_show_the_stored_numbers(golden):
    results = golden.results
    colours = p.arm_colours(["a", "b"])
    names = Names(outcomes={"who5": "WHO-5 Well-Being Index"})
    posteriors = p.posterior_panel(results, colours, names)
    density = results.bayes_growth.posterior_densities[0]
    trace = posteriors.figures[0].data[0]
    assert trace["x"] == density.x and trace["y"] == density.density
    trajectories = p.trajectory_panel(results, colours, names)
    assert len(trajectories.tables[0].rows) == len(results.trajectories)
    # The plan's order: the primary outcome's figure first, by its name.
    assert trajectories.figures[0].title.endswith(": WHO-5 Well-Being Index")
    communities = p.community_panel(results, Names(arms={"b": "Flourishing"}))
    effect = results.bayes_growth.community_effects[0]
    assert f"{effect.composite.prob_benefit:.2f}" in communities.reading
    composite_rows = [r for r in communities.tables[0].rows if r[2].startswith("weighted")]
    assert composite_rows == [
        [effect.community, "Flourishing", "weighted composite (SD units)", 1.0,
         round(effect.composite.mean, 4), round(effect.composite.ci_low, 4),
         round(effect.composite.ci_high, 4), round(effect.composite.prob_benefit, 3)]
    ]  # fmt: skip
    divergence = p.divergence_panel(results, colours)
    assert divergence.figures[0].data[0]["y"] == [d.probability for d in results.divergence]
    assert [r[1] for r in divergence.tables[0].rows] == [
        d.engagement_source for d in results.divergence
    ]


def test_the_status_panel_shows_where_the_trial_stands_against_its_interim_looks(golden):
    interim = Interim(
        looks=[{"information_fraction": 0.5}],
        information_fraction=0.6,
        look=1,
        boundary_z=2.96,
        boundary_p=0.003,
        primary_z=1.2,
        crossed=False,
        status="The efficacy boundary is not crossed: continue as planned.",
    )
    panel = p.status_panel(RECORD, _run(golden, interim=interim), p.CONFIRMATORY)
    assert ["Interim looks", interim.status] in panel.tables[0].rows
    without = p.status_panel(RECORD, _run(golden), p.CONFIRMATORY)
    assert not any(row[0] == "Interim looks" for row in without.tables[0].rows)


def test_the_dashboard_reads_the_stored_run_back_into_its_type(analysed_trial, golden):
    run = dashboard_data(analysed_trial).run
    assert run.results == golden.results and run.diagnostics == golden.diagnostics
    assert run.kind == "confirmatory" and run.finished_at.endswith("UTC")


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


def test_a_dose_release_s_slopes_follow_the_telemetry_panel(golden):
    from tests.dashboards.test_dose import slope

    panels = p.dashboard_panels(
        RECORD, _run(golden), ENROLMENT, BUDGET, TELEMETRY_ROWS, dose=[slope("a", 0.01)]
    )
    keys = [panel.key for panel in panels]
    assert keys.index("dose") == keys.index("telemetry") + 1
    assert panels[keys.index("dose")].label == p.EXPLORATORY


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
