"""A shareable report of one analysis run: a single HTML file for a paper's supplement or an
oversight body, with the answer to the pre-registered question first, the integrity record (the
plan's version and hash, its approvals, the arms as frozen, the data snapshot, the code, the
seed, the deviations), then every result the trial's dashboard shows for that run, drawn by the
same panels (``dashboards.panels``).

The file is self-contained and works offline: its style, figures and the library that draws them
are inside it, and its own Content-Security-Policy (a ``<meta>`` element) lets it load nothing
from anywhere, run only its own two scripts (by their hashes) and send nothing away.

Why the figures are Plotly's, inlined, rather than inline SVG drawn here: the panels already
describe every figure as a Plotly specification (forest plots with two subplots, the CONSORT
diagram as shapes and annotations, posterior densities, trajectories, gauges of the privacy
budget); drawing them as SVG on the server would need either Kaleido (a headless Chromium per
process, absent from the locked dependencies) or a second drawing of each kind of figure here,
which would drift from the dashboard's. Plotly's basic bundle (``dashboards.plotly_bundle``:
scatter and bar, the only traces the panels use) costs the file a fixed 1.2 MB whatever the
number of figures, which the figures' own data add little to, and keeps the dashboard's hover
values, zoom and the vector (SVG) download a paper's figures need. Where the bundle is not
installed the full plotly.js that plotly.py ships (four times the size) is inlined instead, as
the dashboards fall back to it. A reader without JavaScript loses the drawings only: every
number a figure shows is in a table beside it.

Two ways out: the dashboard's download link (:func:`report_download`, the route
``/dashboards/<trial>/runs/<run>/report.html``, asked ``trials.view_results`` like the dashboard)
and ``analyze_trial S --report FILE``, whose command (in ``analytics``, which may not import this
layer) calls :func:`render_report` through the writer ``DashboardsConfig.ready`` registers.
"""

import importlib.util
import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from pathlib import Path

from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_safe

from analytics.models import AnalysisRun
from analytics.services import code_version
from config.security import csp_hash
from dashboards.answer import CORRECTION_NAMES, OutcomeAnswer, run_answers
from dashboards.panels import Panel, Table, dashboard_panels
from dashboards.plotly_bundle import BUNDLE
from dashboards.selectors import DashboardData, RunSummary, dashboard_data, run_summary
from trials.canonical import sha256_of
from trials.models import PreRegistration, Trial

logger = logging.getLogger(__name__)

TEMPLATE = "dashboards/report/report.html"
VIEW_RESULTS = "trials.view_results"
TIME = "%Y-%m-%d %H:%M UTC"
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")

# The panels (by key) that read the trial's rows when the report is made rather than the run's
# stored results: their figures can be newer than the run.
READ_AT_REPORT_TIME = {
    "enrolment": "Enrolment over time is read from the trial's records when this report was "
    "made; the sample-ratio and attrition figures are the run's.",
    "telemetry": "Read from the trial's stored releases when this report was made, not from "
    "the analysis run.",
    "harms": "Read from the trial's records when this report was made, not from the analysis run.",
    "dose": "Read from the trial's stored dose releases when this report was made, not from the "
    "analysis run.",
}

# Plotly's options for a figure in the file. Its picture download is SVG, the vector form a
# journal asks for; the dashboards' PNG suits a screen.
GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "toImageButtonOptions": {"format": "svg"},
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
# Draws every figure whose specification the file carries (the JSON data block "figures").
DRAW_FIGURES = (
    "const figures = JSON.parse(document.getElementById('figures').textContent);\n"
    f"const config = {json.dumps(GRAPH_CONFIG)};\n"
    "for (const [id, figure] of Object.entries(figures)) {\n"
    "  Plotly.newPlot(id, figure.data, figure.layout, config);\n"
    "}\n"
)


@dataclass(frozen=True)
class PlotlyScript:
    source: str
    name: str
    """The bundle and its version, as the report credits it."""


@cache
def plotly_script() -> PlotlyScript:
    """plotly.js to inline: the basic bundle where it is installed, else plotly.py's full one."""
    basic = BUNDLE.installed_script()
    if basic is not None:
        return PlotlyScript(
            basic.read_text(encoding="utf-8"), f"plotly.js (basic) {BUNDLE.version}"
        )
    spec = importlib.util.find_spec("plotly")
    full = Path(spec.submodule_search_locations[0]) / "package_data" / "plotly.min.js"
    logger.warning(
        "Plotly's basic bundle is not installed (python -m dashboards.plotly_bundle): reports "
        "inline the full plotly.js, four times larger."
    )
    return PlotlyScript(
        full.read_text(encoding="utf-8"), f"plotly.js {BUNDLE.script_version(full)}"
    )


@cache
def report_css() -> str:
    """The dashboards' style sheet and the report's own rules, to inline."""
    dashboard = Path(finders.find("dashboards/dashboard.css")).read_text(encoding="utf-8")
    return dashboard + render_to_string("dashboards/report/report.css")


def _time(moment: datetime | None) -> str:
    return moment.strftime(TIME) if moment else "–"


def _approvals(prereg: PreRegistration) -> Table:
    """Who approved the version the run analysed, and which required body has not."""
    approvals = list(prereg.approvals.select_related("body", "decided_by").order_by("body__name"))
    approved = {a.body_id for a in approvals}
    missing = prereg.trial.oversight.filter(required=True).exclude(body_id__in=approved)
    rows = [
        [
            a.body.name,
            a.body.get_kind_display(),
            "approved",
            a.decided_by.get_username() if a.decided_by else "",
            _time(a.decided_at),
        ]
        for a in approvals
    ] + [
        [link.body.name, link.body.get_kind_display(), "not approved (required)", "", ""]
        for link in missing.select_related("body").order_by("body__name")
    ]
    return Table(
        "approvals",
        f"Oversight bodies' decisions on version {prereg.version} of the plan",
        ["Body", "Kind", "Decision", "Decided by", "Decided at"],
        rows,
    )


def _arms(prereg: PreRegistration, control: str) -> Table:
    """The assistant configurations as the plan froze them, each with its SHA-256."""
    record = prereg.frozen_record
    rows = [
        [
            slug + (" (control)" if slug == control else ""),
            config.get("model_id", ""),
            config.get("model_version", ""),
            config.get("endpoint_url", ""),
            config.get("memory_policy", ""),
            record.arms.get(slug, ""),
        ]
        for slug, config in sorted(record.arm_configs.items())
    ]
    return Table(
        "arms",
        "Arms as frozen with the plan (the hash covers the endpoint, model, version, system "
        "prompt, memory policy, parameters and community profile)",
        ["Arm", "Model", "Pinned version", "Endpoint", "Memory", "Configuration SHA-256"],
        rows,
    )


def integrity_tables(run: AnalysisRun, data: DashboardData, *, generator: str) -> list[Table]:
    """The integrity record of ``run`` (``data``: its trial's dashboard data): what a reader
    checks before trusting its numbers. The frozen record's hash is computed again here, so an
    altered record shows."""
    prereg = run.preregistration
    record = prereg.frozen_record
    record_sha256_now = sha256_of(prereg.record)
    matches = record_sha256_now == run.preregistration_sha256 == prereg.sha256
    rows = [
        ["Trial", f"{run.trial.title} ({run.trial.slug})"],
        ["Analysis run", f"{run.pk} ({run.kind})"],
        [
            "Created, started, finished",
            ", ".join(map(_time, (run.created_at, run.started_at, run.finished_at))),
        ],
        ["Pre-registration version analysed", prereg.version],
        ["Pre-registration SHA-256 (the run's)", run.preregistration_sha256],
        [
            "Frozen record's SHA-256, recomputed for this report",
            record_sha256_now
            + (" (matches)" if matches else " (DOES NOT MATCH the run's: the record was altered)"),
        ],
        ["Frozen at", _time(prereg.frozen_at)],
        [
            "Allocation sequence commitment (SHA-256)",
            record.allocation_sequence_sha256 if record else "–",
        ],
        ["Data snapshot SHA-256", run.data_snapshot_sha256 or "–"],
        [
            "Code version (the commit; it pins every dependency in requirements.lock)",
            run.code_version,
        ],
        ["Random seed", run.seed],
        [
            "Sensitivity analyses asked for",
            ", ".join(f"{k}: {v}" for k, v in run.options.items()) or "the defaults",
        ],
        ["Version of the plan in force now", data.record.preregistration_version or "none"],
        ["Audit chain head when this report was made", data.record.audit_chain_head],
        ["Report made by", generator],
    ]
    deviations = Table(
        "deviations",
        "Protocol deviations recorded for the trial (including any after this run)",
        ["Recorded", "Kind", "Version in force", "Description"],
        [
            [d["recorded_at"], d["kind"], d["version"], d["description"]]
            for d in data.record.deviations
        ],
    )
    tables = [Table("run", "Analysis run and pre-registration", ["Item", "Value"], rows)]
    tables.append(_approvals(prereg))
    if record:
        tables.append(_arms(prereg, record.plan.control if record.plan.arms_compared else ""))
    return tables + [deviations]


def report_panels(summary: RunSummary, data: DashboardData, generated_at: datetime) -> list[Panel]:
    """The dashboard's panels for the run (whose registration panel the integrity record
    replaces), those read from the trial's rows saying so."""
    panels = dashboard_panels(
        data.record,
        summary,
        data.enrolment,
        data.privacy_budget,
        data.telemetry,
        data.harms,
        data.dose,
    )
    when = _time(generated_at)
    return [
        replace(panel, notes=[*panel.notes, f"{READ_AT_REPORT_TIME[panel.key]} ({when})"])
        if panel.key in READ_AT_REPORT_TIME
        else panel
        for panel in panels
        if panel.key != "status"
    ]


def _table_context(table: Table) -> dict:
    return {
        "caption": table.caption,
        "columns": table.columns,
        "rows": [
            [{"text": str(value), "hash": bool(HEX_DIGEST.search(str(value)))} for value in row]
            for row in table.rows
        ],
    }


def render_report(run: AnalysisRun, *, generated_at: datetime | None = None) -> str:
    """The report of a finished run as one HTML document."""
    if run.status != AnalysisRun.Status.FINISHED:
        raise ValueError(
            f"Analysis run {run.pk} is {run.status}: only a finished run has results to report."
        )
    generated_at = generated_at or timezone.now()
    plotly = plotly_script()
    generator = f"Flourish {code_version()}, {_time(generated_at)}; figures by {plotly.name}"
    prereg = run.preregistration
    data = dashboard_data(run.trial)
    summary = run_summary(run)
    figures = {}
    panel_contexts = []
    for panel in report_panels(summary, data, generated_at):
        ids = [f"figure-{panel.key}-{i + 1}" for i in range(len(panel.figures))]
        figures.update({id_: fig.to_dict() for id_, fig in zip(ids, panel.figures, strict=True)})
        panel_contexts.append(
            {
                "panel": panel,
                "figures": [
                    {"id": id_, "title": fig.title}
                    for id_, fig in zip(ids, panel.figures, strict=True)
                ],
                "tables": [_table_context(t) for t in panel.tables],
            }
        )
    answers: list[OutcomeAnswer] = run_answers(run)
    context = {
        "run": run,
        "trial": run.trial,
        "prereg": prereg,
        "plan": prereg.plan,
        "results": summary.results,
        "correction": CORRECTION_NAMES[summary.results.multiplicity],
        "answers": answers,
        "integrity": [_table_context(t) for t in integrity_tables(run, data, generator=generator)],
        "panels": panel_contexts,
        "figures": figures,
        "plotly": plotly.source,
        "draw_figures": DRAW_FIGURES,
        "script_hashes": " ".join([csp_hash(plotly.source), csp_hash(DRAW_FIGURES)]),
        "css": report_css(),
        "finished": _time(run.finished_at),
        "generated": _time(generated_at),
        "generator": generator,
    }
    return render_to_string(TEMPLATE, context)


def report_filename(run: AnalysisRun) -> str:
    return f"{run.trial.slug}-run-{run.pk}-report.html"


@require_safe
@login_required
@permission_required(VIEW_RESULTS, raise_exception=True)
def report_download(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    """The report of one finished run of a trial, as a download, for the trial's analysts and
    coordinators: the dashboard's rule (``trials.view_results``), so no oversight body's member,
    blinded or not, reads unblinded results here."""
    trial = get_object_or_404(Trial, slug=slug)
    if not request.user.has_perm(VIEW_RESULTS, trial):
        raise PermissionDenied("You are not an analyst or coordinator of this trial.")
    run = trial.analysis_runs.filter(pk=run_id, status=AnalysisRun.Status.FINISHED).first()
    if run is None:
        raise Http404("This trial has no finished analysis run with that number.")
    response = HttpResponse(render_report(run), content_type="text/html; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{report_filename(run)}"'
    return response
