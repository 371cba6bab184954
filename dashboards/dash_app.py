"""The analysts' Dash app, mounted beside Django behind Django's own session.

Stock Dash (pinned ``dash==4.4.1`` in requirements.lock) runs on its own Flask server, mounted
at ``/dashboards/`` through a thin Django view (``dashboards.views``) that hands each request to
the Flask WSGI app after Django's middleware has authenticated the user. django-plotly-dash is
not used: its last release has no record of working with Dash 4, it brings Channels, iframes and
its own migrations, and its asset serving has broken on Dash upgrades before. Compared with
mounting Dash with Werkzeug's ``DispatcherMiddleware`` in ``config/wsgi.py``, the bridge view
gives the same stock Dash while the login, the permission check and the session stay Django's
own (no second reading of the session cookie) and it runs wherever Django runs: ``runserver``
in the demo, gunicorn, and pytest-django's live server in the browser tests.

Everything the page draws comes from stored rows (``dashboards.selectors``) turned into panels
by pure functions (``dashboards.panels``); the one callback renders the trial named in the URL
and fits nothing. Plotly and Dash's scripts are served from the installed packages
(``serve_locally``), so the page needs no network beyond this server; Plotly is the basic bundle
of ``dashboards.plotly_bundle``, a Dash asset, which Dash's graphs use instead of the full one.
"""

import logging
import urllib.parse
from functools import cache
from html import escape

import flask
from dash import Dash, Input, Output, dcc, html
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.templatetags.static import static
from django.urls import reverse

from dashboards import panels as p
from dashboards.answer import (
    CORRECTION_NAMES,
    OutcomeAnswer,
    outcome_answers,
    p_text,
    probability_text,
)
from dashboards.plotly_bundle import BUNDLE
from dashboards.selectors import RunSummary, dashboard_data
from trials.models import Trial
from trials.spreadsheet import csv_text

logger = logging.getLogger(__name__)

PREFIX = "/dashboards/"
# The bridge view puts Django's authenticated user here for the callback to check access.
USER_KEY = "flourish.user"

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
{%metas%}
<title>{%title%}</title>
{%favicon%}
{%css%}
</head>
<body>
<!--flourish-header-->
<main>{%app_entry%}</main>
<footer>{%config%}{%scripts%}{%renderer%}</footer>
</body>
</html>"""

# Where the trial page's header goes (dashboards.views.trial_detail renders it with Django, so
# that its sign-out form carries Django's CSRF token and it shows without JavaScript).
HEADER_MARKER = "<!--flourish-header-->"

# A token longer than this is a hash or an identifier, not a word.
HASH_LENGTH = 24
# Longer tables (a release per window, a mean per wave) show their first rows; their CSV has all.
TABLE_ROWS_SHOWN = 24
# A table with more columns than this is laid out as one card per row on a narrow screen
# (dashboard.css, table.wide), so nothing hides behind a sideways scroll.
NARROW_COLUMNS = 5

GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,  # figures follow the width of a laptop's or a tablet's window
    # The modebar's camera button renders the PNG in the browser: no network needed.
    "toImageButtonOptions": {"format": "png", "scale": 2},
    # Sharing uploads the chart to Plotly's cloud: results stay on this server.
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "sendChartToCloud", "sendDataToCloud"],
}


def _csv(table: p.Table) -> str:
    # The platform's one CSV writer: quoting that round-trips, formulas neutralised.
    return csv_text(table.columns, table.rows)


def _hash_class(text: str) -> str:
    """A cell holding a long unbroken token (a SHA-256, a code version) may break it anywhere;
    other cells wrap at spaces only, so that a short word never splits."""
    return ' class="hash"' if any(len(word) > HASH_LENGTH for word in text.split()) else ""


def _table_html(table: p.Table) -> str:
    cells = [[escape(str(v)) for v in row] for row in table.rows[:TABLE_ROWS_SHOWN]]
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in table.columns)
    # Each cell carries its column's name, which a card shows beside the value.
    labels = [escape(c, quote=True) for c in table.columns]
    rows = [zip(labels, row, strict=True) for row in cells]
    body = "".join(
        "<tr>"
        + "".join(f'<td data-label="{label}"{_hash_class(v)}>{v}</td>' for label, v in row)
        + "</tr>"
        for row in rows
    )
    if not cells:
        body = f'<tr><td colspan="{len(table.columns)}" class="muted">None.</td></tr>'
    more = ""
    if len(table.rows) > TABLE_ROWS_SHOWN:
        more = f" (the first {TABLE_ROWS_SHOWN} of {len(table.rows)} rows; the CSV has them all)"
    wide = ' class="wide"' if len(table.columns) > NARROW_COLUMNS else ""
    return (
        f"<table{wide}><caption>{escape(table.caption)}{more}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _table(slug: str, table: p.Table) -> html.Div:
    # One Markdown component holding the escaped HTML table: Dash's renderer spends
    # milliseconds per component it mounts, and a cell per component made a large trial's
    # page take seconds.
    return html.Div(
        className="table-wrap",
        children=[
            dcc.Markdown(_table_html(table), dangerously_allow_html=True),
            html.A(
                f"Download CSV: {table.caption}",
                href="data:text/csv;charset=utf-8," + urllib.parse.quote(_csv(table)),
                download=f"{slug}-{table.name}.csv",
                className="csv",
            ),
        ],
    )


def _graph(slug: str, key: str, index: int, fig) -> dcc.Graph:
    config = dict(GRAPH_CONFIG)
    config["toImageButtonOptions"] = {
        **GRAPH_CONFIG["toImageButtonOptions"],
        "filename": f"{slug}-{key}-{index + 1}",
    }
    return dcc.Graph(figure=fig.to_dict(), config=config)


def panel_component(slug: str, panel: p.Panel) -> html.Section:
    heading = f"panel-{panel.key}"
    return html.Section(
        className=f"panel {panel.label}",
        id=heading + "-section",
        **{"aria-labelledby": heading, "data-label": panel.label},
        children=[
            html.Div(
                className="panel-head",
                children=[
                    html.H2(panel.title, id=heading),
                    html.Span(panel.label, className=f"badge {panel.label}"),
                ],
            ),
            html.P(panel.reading, className="reading"),
            html.Div(
                className="figures",
                children=[_graph(slug, panel.key, i, fig) for i, fig in enumerate(panel.figures)],
            ),
            *[html.P(note, className="note") for note in panel.notes],
            *[_table(slug, table) for table in panel.tables],
        ],
    )


def _key_numbers(answer: OutcomeAnswer) -> html.Dl:
    """The answer's numbers, each with its name, in a grid that wraps on a narrow screen."""
    mid = (
        f"{answer.share_of_mid:.0%} of {answer.mid_per_wave:.2f} {answer.unit}"
        if answer.share_of_mid is not None and answer.mid_per_wave is not None
        else "no MID in the plan"
    )
    items = [
        ("Difference", f"{answer.estimate:+.2f} {answer.unit}".replace("-", "−")),
        ("95% interval", f"{answer.ci_low:.2f} to {answer.ci_high:.2f}".replace("-", "−")),
        (
            f"Adjusted p ({CORRECTION_NAMES[answer.multiplicity]})",
            f"{p_text(answer.p_adjusted)} (α = {answer.alpha:g})",
        ),
        ("Against the MID", mid),
        ("P(benefit)", probability_text(answer.prob_benefit)),
        ("P(benefit ≥ MID)", probability_text(answer.prob_reaches_mid)),
    ]
    return html.Dl(
        className="key-numbers",
        children=[html.Div([html.Dt(name), html.Dd(value)]) for name, value in items],
    )


def _answer_component(slug: str, index: int, answer: OutcomeAnswer) -> html.Div:
    label = p.CONFIRMATORY if answer.confirmatory else p.EXPLORATORY
    verdict = answer.verdict[:1].upper() + answer.verdict[1:] + ":"
    sentence: list = [answer.sentence]
    if answer.sentence.startswith(verdict):  # the verdict leads, in bold
        sentence = [html.Strong(verdict), answer.sentence.removeprefix(verdict)]
    return html.Div(
        className=f"answer {answer.direction}",
        **{"data-verdict": answer.verdict_key},
        children=[
            html.P(
                [html.Span(label, className=f"badge {label}"), " ", *sentence],
                className="sentence",
            ),
            _key_numbers(answer),
            html.Div(
                className="answer-figure",
                children=_graph(slug, f"answer-{answer.outcome}", index, p.answer_figure(answer)),
            ),
        ],
    )


def answer_block(slug: str, run: RunSummary | None, status: str) -> html.Section:
    """The first thing on the page: the pre-registered question's answer per primary outcome
    (``dashboards.answer``), each a sentence, its numbers and one compact figure; the
    integrity record (``panels.status_panel``) follows it."""
    answers = outcome_answers(run.results, run.plan, run.names) if run else []
    hypotheses = run.plan.hypotheses if run and run.plan else []
    children: list = [html.H2("The pre-registered question", id="answer-heading")]
    if hypotheses:
        children.append(html.P(["Hypothesis: ", html.Q(hypotheses[0])], className="hypothesis"))
    if not answers:
        children.append(html.P(status if run is None else "This run answers no primary outcome."))
    children += [_answer_component(slug, i, answer) for i, answer in enumerate(answers)]
    return html.Section(
        id="answer",
        **{"aria-labelledby": "answer-heading", "data-figures": str(len(answers))},
        children=children,
    )


def dashboard_children(trial: Trial) -> list:
    """The whole page for one trial, from stored rows only."""
    data = dashboard_data(trial)
    run = data.run
    panels = p.dashboard_panels(
        data.record, run, data.enrolment, data.privacy_budget, data.telemetry, data.harms, data.dose
    )
    figures = sum(len(panel.figures) for panel in panels)
    if run:
        summary = f"Showing {run.kind} analysis run {run.id}, finished {run.finished_at}."
    elif data.latest_run:
        summary = f"Analysis run {data.latest_run.pk} is {data.latest_run.status}."
    else:
        summary = "No analysis has been run yet."
    report_link = []
    if run:  # the shown run's report (dashboards.report), a file to download
        url = reverse("dashboards:run_report", args=[trial.slug, run.id])
        report_link = [html.P(html.A("Download this run's report (HTML)", href=url))]
    return [
        html.H1(data.record.title),
        html.P(summary, className="muted"),
        answer_block(trial.slug, run, summary),
        *report_link,
        html.Div(
            id="panels",
            **{"data-figures": str(figures)},
            children=[panel_component(trial.slug, panel) for panel in panels],
        ),
    ]


def _slug(pathname: str | None) -> str:
    return (pathname or "").removeprefix(PREFIX).strip("/")


def render(pathname: str | None) -> list:
    """The callback: the trial named in the URL, for a user allowed to read it."""
    try:
        trial = Trial.objects.get(slug=_slug(pathname))
    except Trial.DoesNotExist as error:
        raise Http404("No such trial.") from error
    if not flask.request.environ[USER_KEY].has_perm("trials.view_results", trial):
        raise PermissionDenied("You are not an analyst or coordinator of this trial.")
    return dashboard_children(trial)


@cache
def dash_app() -> Dash:
    """One Dash app per process, built on first use."""
    if BUNDLE.installed_script() is None:
        logger.warning(
            "Plotly's basic bundle is not installed (python -m dashboards.plotly_bundle): the "
            "dashboards load the full plotly.js, which is slower to start on a first visit."
        )
    server = flask.Flask(__name__)
    # Let Django's PermissionDenied and Http404 reach Django's handlers (403/404 pages).
    server.config["PROPAGATE_EXCEPTIONS"] = True
    app = Dash(
        __name__,
        server=server,
        routes_pathname_prefix=PREFIX,
        requests_pathname_prefix=PREFIX,
        serve_locally=True,
        title="Flourish dashboard",
        update_title=None,
        index_string=INDEX,
        # A file, not a <style> in the index: the Content-Security-Policy allows no inline style.
        external_stylesheets=[static("dashboards/dashboard.css")],
        # The only asset: Plotly's basic bundle, a script ahead of the renderer.
        assets_folder=str(BUNDLE.directory),
        # Callbacks run in Django's request thread, where the ORM must stay synchronous.
        use_async=False,
    )
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            html.Div(id="dashboard", children=html.P("Loading the stored results…")),
        ]
    )
    app.callback(Output("dashboard", "children"), Input("url", "pathname"))(render)
    return app
