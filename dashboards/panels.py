"""The dashboard's panels, built from stored results only (pure functions: no database, no
model fitting). They read the typed documents of ``analytics.results`` and ``federated.release``
by attribute; a new panel is a function here taking :class:`~analytics.results.Results`, added
to :func:`dashboard_panels`.

Every panel carries a confirmatory/exploratory label, a title, a one-line plain-language reading
computed from the numbers it shows, its figures (Plotly, with titles and axis labels in units)
and its tables (each offered as CSV). A panel is *confirmatory* when it shows a pre-registered
confirmatory estimate, or the integrity record (registration, CONSORT, allocation, attrition,
convergence) of a confirmatory run; everything else is exploratory.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analytics.results import (
    BayesianEstimate,
    CommunityEffect,
    Consort,
    Diagnostics,
    Divergence,
    Estimate,
    FrequentistEstimate,
    OrdinalEstimate,
    PosteriorSummary,
    Results,
)
from dashboards.answer import (
    OutcomeAnswer,
    number,
    p_phrase,
    p_text,
    probability_relation,
    probability_text,
)
from dashboards.figures import GREY, OKABE_ITO, Figure, rgba
from dashboards.selectors import Names, RunSummary, TrialRecord
from federated.release import DoseSlope, PrivacyBudgetSummary, ReleasedValue
from safety.selectors import ArmRate
from stats.diagnostics import MAX_RHAT, MIN_ESS

CONFIRMATORY = "confirmatory"
EXPLORATORY = "exploratory"
METHOD_NAMES = {
    "mixedlm": "mixed model",
    "gee": "GEE",
    "ancova": "ANCOVA",
    "bayes_growth": "Bayesian growth",
    "bayes_ordinal": "Bayesian ordinal",
}
FREQUENTIST_GROWTH = ("mixedlm", "gee")
MIN_RELIABILITY = 0.70  # the usual floor for group comparisons (Nunnally 1978)


@dataclass(frozen=True)
class Table:
    name: str  # also the CSV file's stem
    caption: str
    columns: list[str]
    rows: list[list]


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    label: str
    reading: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def words(code: str) -> str:
    """``mental_wellbeing`` → ``Mental wellbeing``."""
    text = str(code).replace("_", " ")
    return text[:1].upper() + text[1:]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(value: float | None, digits: int) -> float | str:
    """A table cell: the value rounded, or empty where there is none."""
    return "" if value is None else round(value, digits)


def arm_colours(arms: Iterable[str]) -> dict[str, str]:
    return {arm: OKABE_ITO[i % len(OKABE_ITO)] for i, arm in enumerate(arms)}


# --- the answer -------------------------------------------------------------------------------


def answer_figure(answer: OutcomeAnswer) -> Figure:
    """The answer's compact figure: the confirmatory contrast and the Bayesian model's interval
    against zero and the MID per wave on both sides. It has no title (the sentence above it is
    its title), its rows are named above their markers and the MID is marked on the axis, so the
    whole width is the plot's and nothing runs into anything on a phone."""
    a = answer
    rows = [
        ("Mixed model (the plan's test)", a.estimate, a.ci_low, a.ci_high, {"symbol": "square"})
    ]
    if a.bayes_estimate is not None:
        bayes = (a.bayes_estimate, a.bayes_ci_low, a.bayes_ci_high)
        rows.append(("Bayesian model", *bayes, {"symbol": "diamond"}))
    fig = Figure("", "Points per wave (95% interval)", "", height=130 + 50 * len(rows))
    ends = [0.0, *_interval_rows(fig, rows)]
    fig.add_vline(0, line={"color": GREY, "width": 1})
    ticks: dict = {}
    if a.mid_per_wave is not None:
        mid = a.mid_per_wave
        for side in (1, -1):
            fig.add_vline(side * mid, line={"color": OKABE_ITO[1], "dash": "dash"})
        ends += [mid, -mid]
        ticks = {
            "tickvals": [-mid, 0, mid],
            "ticktext": [f"−{mid:.2f} (−MID)", "0", f"{mid:.2f} (MID)"],
        }
    margin = 0.08 * (max(ends) - min(ends) or 1.0)
    fig.axis("x", range=[min(ends) - margin, max(ends) + margin], **ticks)
    fig.layout["margin"].update(t=10, b=10)
    return fig


# --- status -----------------------------------------------------------------------------------


def status_panel(record: TrialRecord, run: RunSummary | None, label: str) -> Panel:
    approved = ", ".join(a["body"] for a in record.approvals) or "no body"
    missing = record.missing_approvals
    pending = ", ".join(f"version {v}" for v in record.pending_versions)
    registration = [
        ["Lifecycle state", record.state],
        ["Pre-registration version in force", record.preregistration_version or "none"],
        ["Versions awaiting approval", pending or "none"],
        ["Pre-registration SHA-256", record.preregistration_sha256 or "–"],
        ["Frozen at", record.frozen_at or "–"],
        ["Audit chain head (publish to make the trail checkable)", record.audit_chain_head],
    ]
    if run:
        registration += [
            ["Analysis run", f"{run.id} ({run.kind}), finished {run.finished_at}"],
            ["Run's pre-registration SHA-256", run.preregistration_sha256],
            ["Code version", run.code_version],
            ["Data snapshot SHA-256", run.data_snapshot_sha256],
        ]
    if run and run.results.interim:
        registration.append(["Interim looks", run.results.interim.status])
    if record.preregistration_version:
        reading = (
            f"The trial is {record.state}; version {record.preregistration_version} of the plan "
            f"is in force, approved by {approved}"
            + (f"; {pending} awaits approval by {', '.join(missing)}" if pending else "")
            + f"; {len(record.deviations)} protocol deviation(s) recorded."
        )
    elif pending:
        reading = (
            f"The trial is {record.state}; no version of the plan is in force yet: {pending} "
            f"awaits approval by {', '.join(missing)}."
        )
    else:
        reading = f"The trial is {record.state} and has no frozen pre-registration yet."
    return Panel(
        key="status",
        title="Trial status, pre-registration and oversight",
        label=label,
        reading=reading,
        tables=[
            Table("registration", "Registration record", ["Item", "Value"], registration),
            Table(
                "approvals",
                "Approvals by oversight body",
                ["Body", "Kind", "Version approved", "Decided by", "Decided at (UTC)"],
                [
                    [a["body"], a["kind"], a["version"], a["decided_by"], a["decided_at"]]
                    for a in record.approvals
                ]
                + [[name, "", "awaiting approval", "", ""] for name in missing],
            ),
            Table(
                "deviations",
                "Protocol deviations",
                ["Recorded", "Kind", "Version in force", "Description"],
                [
                    [d["recorded_at"], d["kind"], d["version"], d["description"]]
                    for d in record.deviations
                ],
            ),
        ],
    )


# --- CONSORT ----------------------------------------------------------------------------------


def consort_figure(consort: Consort, names: Names) -> Figure:
    """The CONSORT 2010 flow as boxes and arrows, each box's numbers from the stored counts."""
    fig = Figure("CONSORT flow of participants", "", "", height=520)
    arms = consort.arms
    width = 1.0 / max(len(arms), 1)

    def box(x: float, y: float, text: str, w: float = 0.26) -> None:
        fig.add_shape(
            type="rect",
            x0=x - w / 2,
            x1=x + w / 2,
            y0=y - 0.06,
            y1=y + 0.06,
            line={"color": GREY},
            fillcolor="#f4f4f4",
        )
        fig.add_annotation(x=x, y=y, text=text, showarrow=False, font={"size": 13})

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        fig.add_annotation(
            x=x1, y=y1 + 0.065, ax=x0, ay=y0 - 0.065, xref="x", yref="y", axref="x", ayref="y",
            text="", showarrow=True, arrowhead=2, arrowcolor=GREY,
        )  # fmt: skip

    box(0.5, 0.92, f"Assessed for eligibility (n = {consort.assessed})")
    excluded = "<br>".join(f"{r}: {n}" for r, n in consort.excluded_reasons.items())
    box(0.85, 0.78, f"Excluded (n = {consort.excluded})<br>{excluded}", w=0.28)
    box(0.5, 0.64, f"Consented and randomised (n = {consort.consented})")
    arrow(0.5, 0.92, 0.5, 0.64)
    for i, arm in enumerate(arms):
        x = width * (i + 0.5)
        reasons = "; ".join(f"{r}: {n}" for r, n in arm.withdrawal_reasons.items())
        box(x, 0.46, f"Allocated to {names.arm(arm.slug)}<br>(n = {arm.allocated})", w=width * 0.9)
        box(
            x,
            0.28,
            f"Answered wave {consort.final_wave} (n = {arm.followed_up})<br>"
            f"Withdrew (n = {arm.withdrawn}){'<br>' + reasons if reasons else ''}",
            w=width * 0.9,
        )
        box(x, 0.10, f"Analysed, ANCOVA (n = {arm.analysed})", w=width * 0.9)
        arrow(0.5, 0.64, x, 0.46)
        arrow(x, 0.46, x, 0.28)
        arrow(x, 0.28, x, 0.10)
    fig.axis("x", visible=False, range=[0, 1])
    fig.axis("y", visible=False, range=[0, 1])
    return fig


def consort_panel(consort: Consort, label: str, names: Names) -> Panel:
    allocated = sum(a.allocated for a in consort.arms)
    analysed = sum(a.analysed for a in consort.arms)
    share = analysed / allocated if allocated else 0
    return Panel(
        key="consort",
        title="CONSORT flow",
        label=label,
        reading=f"Of {allocated} participants randomised, {analysed} ({share:.0%}) answered "
        f"both the baseline and wave {consort.final_wave} and enter the final-wave analysis.",
        figures=[consort_figure(consort, names)],
        tables=[
            Table(
                "consort",
                "CONSORT counts per arm",
                ["Arm", "Allocated", "Followed up", "Analysed", "Withdrawn", "Reasons"],
                [
                    [
                        names.arm(a.slug),
                        a.allocated,
                        a.followed_up,
                        a.analysed,
                        a.withdrawn,
                        "; ".join(f"{r}: {n}" for r, n in a.withdrawal_reasons.items()),
                    ]
                    for a in consort.arms
                ],
            )
        ],
    )


# --- enrolment, SRM, attrition ----------------------------------------------------------------


def enrolment_panel(
    enrolment: list[dict], results: Results, colours: dict, label: str, names: Names
) -> Panel:
    srm = results.srm
    attrition = results.attrition
    cumulative = Figure(
        "Enrolment over time", "Date enrolled (UTC)", "Participants enrolled (cumulative count)"
    )
    for arm, colour in colours.items():
        days = [row for row in enrolment if row["arm"] == arm]
        total, counts = 0, []
        for row in days:
            total += row["n"]
            counts.append(total)
        cumulative.add_trace(
            dict(
                type="scatter",
                x=[row["day"] for row in days],
                y=counts,
                name=names.arm(arm),
                mode="lines+markers",
                line={"color": colour, "shape": "hv"},
            )
        )
    response = Figure(
        "Response rate per wave", "Wave (index; 0 = baseline)", "Responded (% of randomised)"
    )
    for arm, colour in colours.items():
        response.add_trace(
            dict(
                type="scatter",
                x=[w.wave for w in attrition],
                y=[100 * w.response_rate.get(arm, 0) for w in attrition],
                name=names.arm(arm),
                mode="lines+markers",
                line={"color": colour},
            )
        )
    response.axis("y", range=[0, 105])
    response.axis("x", dtick=1)
    differential = [w.wave for w in attrition if w.differential]
    last = attrition[-1] if attrition else None
    reading = (
        ("Allocation departs from the planned ratio (SRM " if srm.mismatch else "No sign of ")
        + f"sample-ratio mismatch (χ² = {srm.chi2:.2f}, {p_phrase(srm.p_value)})"
        + (")" if srm.mismatch else "")
        + "; "
        + (
            f"response rates differ between arms at wave(s) {', '.join(map(str, differential))}."
            if differential
            else "response rates do not differ between arms at any wave"
            + (
                f" (wave {last.wave}: "
                + ", ".join(f"{names.arm(a)} {r:.0%}" for a, r in last.response_rate.items())
                + ")."
                if last
                else "."
            )
        )
    )
    return Panel(
        key="enrolment",
        title="Enrolment, sample-ratio mismatch and attrition",
        label=label,
        reading=reading,
        figures=[cumulative, response],
        tables=[
            Table(
                "srm",
                f"Sample-ratio mismatch: χ² = {srm.chi2:.2f}, df = {srm.df}, "
                f"{p_phrase(srm.p_value)} (flagged below {srm.threshold})",
                ["Arm", "Observed", "Expected"],
                [[names.arm(a), n, round(srm.expected[a], 1)] for a, n in srm.observed.items()],
            ),
            Table(
                "attrition",
                "Response and differential attrition per wave",
                ["Wave", "Arm", "Randomised", "Responded", "Response rate", "χ²", "p", "Flag"],
                [
                    [
                        w.wave,
                        names.arm(arm),
                        w.allocated[arm],
                        w.responded[arm],
                        round(w.response_rate[arm], 4),
                        round(w.chi2, 3),
                        round(w.p_value, 4),
                        "differential" if w.differential else "",
                    ]
                    for w in attrition
                    for arm in w.allocated
                ],
            ),
        ],
    )


# --- forest plots -----------------------------------------------------------------------------


def _row_name(estimate: Estimate, names: Names, several_outcomes: bool) -> str:
    name = f"{names.arm(estimate.arm)} · {METHOD_NAMES[estimate.method]}"
    if several_outcomes:
        name = f"{names.outcome(estimate.outcome)}: {name}"
    return name if estimate.confirmatory else f"{name} (exploratory)"


def _mid_per_wave(estimates: Sequence[Estimate]) -> float | None:
    """The MID spread over the waves to the outcome wave: the growth difference per wave that
    reaches the minimal important difference by then."""
    with_mid = next(
        (e for e in estimates if isinstance(e, BayesianEstimate) and e.mid is not None and e.wave),
        None,
    )
    return None if with_mid is None else with_mid.mid / with_mid.wave


def _interval_trace(name: str, estimate: float, low: float, high: float, **style) -> dict:
    """A point estimate with its interval as a horizontal error bar, on row ``name``."""
    colour = style.pop("colour", OKABE_ITO[0])
    return {
        "type": "scatter",
        "name": name,
        "x": [estimate],
        "y": [name],
        "mode": "markers",
        "marker": {"size": 11, "color": colour, "line": {"color": colour, "width": 2}, **style},
        "error_x": {
            "type": "data",
            "symmetric": False,
            "array": [high - estimate],
            "arrayminus": [estimate - low],
            "color": colour,
            "thickness": 2,
        },
        "showlegend": False,
        "hovertemplate": f"{name}<br>{estimate:.3f} [{low:.3f}, {high:.3f}]<extra></extra>",
    }


def _interval_rows(fig: Figure, rows: Sequence[tuple[str, float, float, float, dict]]) -> list:
    """Draw each row (name, estimate, interval, marker style) top to bottom, its name written
    above its marker rather than as a tick label: long names (an arm's, a model's) then take
    no width from the plot, which on a phone would leave it too narrow to read. Returns the
    interval ends."""
    ends = []
    for position, (name, estimate, low, high, style) in enumerate(rows):
        y = len(rows) - 1 - position
        fig.add_trace({**_interval_trace(name, estimate, low, high, **style), "y": [y]})
        fig.add_annotation(
            text=name.replace(" · ", "<br>"), x=0, xref="x domain", y=y, yref="y",
            xanchor="left", yanchor="bottom", yshift=8, showarrow=False,
            font={"size": 13, "color": GREY}, align="left",
        )  # fmt: skip
        ends += [low, high]
    fig.axis("y", range=[-0.5, len(rows) - 0.2], visible=False)
    # No tick labels on the left: the plot takes the whole width.
    fig.layout["margin"].update(l=10, r=10)
    return ends


def _zero_and_mid(fig: Figure, mid: float | None, x_range: Sequence[float] = ()) -> None:
    fig.add_vline(0, line={"color": GREY, "width": 1})
    if mid is not None:
        fig.add_vline(mid, line={"color": OKABE_ITO[1], "dash": "dash"})
        # At the foot of the line, clear of the row names above the markers, and on the side
        # towards the middle, so that it stays inside the figure.
        right_half = bool(x_range) and mid > sum(x_range) / 2
        fig.add_annotation(
            text=f"MID {mid:.2f}/wave", x=mid, xref="x", y=0, yref="y domain",
            xanchor="right" if right_half else "left", yanchor="bottom", showarrow=False,
            font={"color": OKABE_ITO[1]}, bgcolor="rgba(255,255,255,0.8)",
        )  # fmt: skip


def forest_figures(estimates: Sequence[Estimate], names: Names) -> list[Figure]:
    """The frequentist and the Bayesian growth contrasts (each arm against the control, which
    the panel's reading names) as two figures on one x range."""
    growth = [e for e in estimates if e.estimand == "growth_difference_per_wave"]
    several = len({e.outcome for e in growth}) > 1
    mid = _mid_per_wave(estimates)
    ends = [x for e in growth for x in (e.ci_low, e.ci_high)] + [0.0, mid or 0.0]
    margin = 0.08 * (max(ends) - min(ends) or 1.0)
    shared_range = [min(ends) - margin, max(ends) + margin]
    figures = []
    # Titles short enough for a phone's width; the panel's title names the dimension.
    for family, methods in (
        ("Mixed model and GEE", FREQUENTIST_GROWTH),
        ("Bayesian growth model", ("bayes_growth",)),
    ):
        shown = [e for e in growth if e.method in methods]
        fig = Figure(
            family,
            "Points per wave (95% interval)",
            "Arm · model",
            height=max(240, 170 + 50 * len(shown)),
        )
        rows = []
        for e in shown:
            colour = OKABE_ITO[0] if e.method != "gee" else OKABE_ITO[2]
            style = {
                "colour": colour,
                "symbol": "diamond" if e.method == "bayes_growth" else "square",
                **({} if e.confirmatory else {"color": "white"}),
            }
            rows.append((_row_name(e, names, several), e.estimate, e.ci_low, e.ci_high, style))
        _interval_rows(fig, rows)
        _zero_and_mid(fig, mid, shared_range)
        fig.axis("x", range=shared_range)
        figures.append(fig)
    return figures


def _estimate_reading(
    dimension: str, estimates: Sequence[Estimate], control: str, names: Names
) -> str:
    mixed = [e for e in estimates if isinstance(e, FrequentistEstimate) and e.method == "mixedlm"]
    key = next((e for e in mixed if e.confirmatory), next(iter(mixed), None))
    bayes = next((e for e in estimates if isinstance(e, BayesianEstimate)), None)
    if key is None and bayes is None:
        return f"No growth estimate for {names.dimension(dimension)}."
    parts = []
    if key is not None:
        more = "more" if key.estimate >= 0 else "less"
        parts.append(
            f"On {names.outcome(key.outcome)} ({names.dimension(dimension)}), scores under "
            f"{names.arm(key.arm)} gained {abs(key.estimate):.2f} score points per wave {more} "
            f"than under {names.arm(control)} (95% CI {number(key.ci_low)} to "
            f"{number(key.ci_high)}, adjusted {p_phrase(key.p_adjusted)})"
        )
    if bayes is not None:
        above = bayes.prob_above_mid
        parts.append(
            f"the Bayesian model gives P(difference > 0) {probability_relation(bayes.prob_benefit)}"
            + ("" if above is None else f" and P(> MID) {probability_relation(above)}")
        )
    unreportable = [e for e in estimates if not e.reportable]
    tail = f" {len(unreportable)} estimate(s) are not reportable." if unreportable else ""
    return "; ".join(parts) + "." + tail


def estimates_table(name: str, caption: str, estimates: Sequence[Estimate], names: Names) -> Table:
    """Every estimate, the numbers a reader compares first (estimate, interval, p, posterior
    probabilities) in the first columns, so that a narrow screen shows them first."""
    return Table(
        name,
        caption,
        [
            "Outcome",
            "Arm",
            "Method",
            "Estimate",
            "95% low",
            "95% high",
            "p adjusted",
            "P(benefit)",
            "P(> MID)",
            "Label",
            "Estimand",
            "SE",
            "p",
            "Dimension",
            "Role",
            "Wave",
            "n",
            "Reportable",
        ],
        [
            [
                names.outcome(e.outcome),
                names.arm(e.arm),
                METHOD_NAMES[e.method],
                round(e.estimate, 4),
                round(e.ci_low, 4),
                round(e.ci_high, 4),
                p_text(e.p_adjusted) if isinstance(e, FrequentistEstimate) else "",
                probability_text(e.prob_benefit, 3)
                if isinstance(e, BayesianEstimate | OrdinalEstimate)
                else "",
                probability_text(e.prob_above_mid, 3)
                if isinstance(e, BayesianEstimate) and e.prob_above_mid is not None
                else "",
                CONFIRMATORY if e.confirmatory else EXPLORATORY,
                e.estimand,
                round(e.std_error, 4),
                p_text(e.p_value) if isinstance(e, FrequentistEstimate) else "",
                names.dimension(e.dimension),
                e.role,
                e.wave,
                e.n_participants,
                "yes" if e.reportable else "no: " + "; ".join(e.not_reportable_because),
            ]
            for e in estimates
        ],
    )


def forest_panels(results: Results, names: Names | None = None) -> list[Panel]:
    names = names or Names()
    control = results.control
    by_dimension: dict[str, list[Estimate]] = {}
    for e in results.estimates:
        by_dimension.setdefault(e.dimension, []).append(e)
    panels = []
    for dimension, estimates in by_dimension.items():
        confirmatory = any(e.confirmatory for e in estimates)
        panels.append(
            Panel(
                key=f"forest-{dimension}",
                title=f"Effect on {names.dimension(dimension)}: frequentist and Bayesian",
                label=CONFIRMATORY if confirmatory else EXPLORATORY,
                reading=_estimate_reading(dimension, estimates, control, names),
                figures=forest_figures(estimates, names),
                tables=[
                    estimates_table(
                        f"estimates-{dimension}",
                        f"Every estimate on {names.dimension(dimension)}; filled markers are "
                        "confirmatory, hollow ones exploratory",
                        estimates,
                        names,
                    )
                ],
                notes=[
                    "ANCOVA (difference at the outcome wave, score points) and the ordinal model "
                    "(latent SD units) have other units and are in the table only."
                ],
            )
        )
    return panels


# --- posteriors -------------------------------------------------------------------------------


def posterior_panel(results: Results, colours: dict, names: Names) -> Panel | None:
    densities = results.bayes_growth.posterior_densities
    if not densities:
        return None
    control = results.control
    bayes = [e for e in results.estimates if isinstance(e, BayesianEstimate)]
    figures = []
    for outcome in dict.fromkeys(d.outcome for d in densities):
        rows = [e for e in bayes if e.outcome == outcome]
        fig = Figure(
            f"Posterior of the growth difference: {names.outcome(outcome)}",
            f"Growth difference vs {names.arm(control)} (score points per wave)",
            "Posterior density (per score point per wave)",
        )
        for d in (d for d in densities if d.outcome == outcome):
            e = next((r for r in rows if r.arm == d.arm), None)
            fig.add_trace(
                dict(
                    type="scatter",
                    x=d.x,
                    y=d.density,
                    name=f"{names.arm(d.arm)}: P(> 0) {probability_relation(e.prob_benefit)}"
                    if e
                    else names.arm(d.arm),
                    mode="lines",
                    fill="tozeroy",
                    line={"color": colours.get(d.arm, OKABE_ITO[0])},
                    fillcolor=rgba(colours.get(d.arm, OKABE_ITO[0]), 0.2),
                )
            )
        _zero_and_mid(fig, _mid_per_wave(rows))
        figures.append(fig)
    lead = next((e for e in bayes if e.confirmatory), bayes[0] if bayes else None)
    reading = (
        f"For {names.outcome(lead.outcome)}, the probability that scores gain more under "
        f"{names.arm(lead.arm)} than under {names.arm(control)} is "
        f"{probability_text(lead.prob_benefit)}"
        + (
            ""
            if lead.prob_above_mid is None
            else f"; that they gain at least the MID more, {probability_text(lead.prob_above_mid)}"
        )
        + "."
        if lead
        else "No Bayesian estimates."
    )
    return Panel(
        key="posteriors",
        title="Posterior distributions and P(benefit)",
        label=CONFIRMATORY if any(e.confirmatory for e in bayes) else EXPLORATORY,
        reading=reading,
        figures=figures,
        tables=[estimates_table("posteriors", "Bayesian growth estimates", bayes, names)],
    )


# --- trajectories -----------------------------------------------------------------------------


def trajectory_panel(results: Results, colours: dict, names: Names) -> Panel | None:
    points = results.trajectories
    if not points:
        return None
    # The plan's order: primary outcome first.
    order = [o.code for o in results.outcomes]
    outcomes = sorted(dict.fromkeys(p.outcome for p in points), key=order.index)
    figures = []
    for outcome in outcomes:
        fig = Figure(
            f"Mean score by wave and arm: {names.outcome(outcome)}",
            "Wave (index; 0 = baseline)",
            "Mean score (score points, 95% band)",
        )
        fig.axis("x", dtick=1)
        for arm, colour in colours.items():
            rows = [p for p in points if p.outcome == outcome and p.arm == arm]
            banded = [p for p in rows if p.ci_low is not None]
            fig.add_trace(
                dict(
                    type="scatter",
                    x=[p.wave for p in banded] + [p.wave for p in reversed(banded)],
                    y=[p.ci_high for p in banded] + [p.ci_low for p in reversed(banded)],
                    mode="lines",
                    fill="toself",
                    fillcolor=rgba(colour, 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
            fig.add_trace(
                dict(
                    type="scatter",
                    x=[p.wave for p in rows],
                    y=[p.mean for p in rows],
                    name=names.arm(arm),
                    mode="lines+markers",
                    line={"color": colour},
                )
            )
        figures.append(fig)
    first = outcomes[0]
    changes = []
    for arm in colours:
        rows = [p for p in points if p.outcome == first and p.arm == arm]
        if len(rows) > 1:
            changes.append(f"{names.arm(arm)} {rows[-1].mean - rows[0].mean:+.2f}")
    return Panel(
        key="trajectories",
        title="Growth trajectories per arm",
        label=EXPLORATORY,
        reading=f"Observed mean {names.outcome(first)} from baseline to the last wave: "
        + ", ".join(changes)
        + " score points (descriptive; the models above give the adjusted contrast).",
        figures=figures,
        tables=[
            Table(
                "trajectories",
                "Observed means per outcome, arm and wave",
                ["Outcome", "Arm", "Wave", "n", "Mean", "95% low", "95% high"],
                [
                    [
                        names.outcome(p.outcome),
                        names.arm(p.arm),
                        p.wave,
                        p.n,
                        round(p.mean, 4),
                        _cell(p.ci_low, 4),
                        _cell(p.ci_high, 4),
                    ]
                    for p in points
                ],
            )
        ],
    )


# --- communities ------------------------------------------------------------------------------


def _community_row(
    effect: CommunityEffect, dimension: str, weight: float, s: PosteriorSummary, names: Names
) -> list:
    return [
        effect.community,
        names.arm(effect.arm),
        dimension,
        round(weight, 3),
        round(s.mean, 4),
        round(s.ci_low, 4),
        round(s.ci_high, 4),
        round(s.prob_benefit, 3),
    ]


def community_panel(results: Results, names: Names | None = None) -> Panel | None:
    names = names or Names()
    effects = results.bayes_growth.community_effects
    if not effects:
        return None
    control = results.control
    fig = Figure(
        "Community-weighted composite by community",
        "Composite growth difference (baseline SD per wave, 95% interval)",
        "Community · contrast",
        height=max(300, 90 + 50 * len(effects)),
    )
    with_composite = [c for c in effects if c.composite]
    for i, c in enumerate(with_composite):
        s = c.composite
        fig.add_trace(
            dict(
                type="scatter",
                x=[s.mean],
                y=[f"{c.community} · {names.arm(c.arm)} − {names.arm(control)}"],
                mode="markers",
                marker={"size": 11, "color": OKABE_ITO[i % len(OKABE_ITO)], "symbol": "diamond"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [s.ci_high - s.mean],
                    "arrayminus": [s.mean - s.ci_low],
                },
                showlegend=False,
            )
        )
    fig.add_vline(0, line={"color": GREY, "width": 1})
    rows = []
    for c in effects:
        rows += [
            _community_row(c, names.outcome(outcome), c.weights.get(outcome, 0.0), s, names)
            for outcome, s in c.per_dimension.items()
        ]
        if c.composite:
            composite = "weighted composite (SD units)"
            rows.append(_community_row(c, composite, 1.0, c.composite, names))
    reading = (
        "Composite P(benefit): "
        + "; ".join(
            f"{names.arm(c.arm)} in {c.community} {probability_text(c.composite.prob_benefit)}"
            for c in with_composite
        )
        + "."
        if with_composite
        else "No community has declared weights, so no composite is shown."
    )
    return Panel(
        key="communities",
        title="Per-community effects and each community's weighted composite",
        label=EXPLORATORY,
        reading=reading,
        figures=[fig],
        tables=[
            Table(
                "communities",
                "Growth difference per community and dimension (score points per wave) and "
                "composite with the community's own weights",
                [
                    "Community",
                    "Arm",
                    "Dimension",
                    "Weight",
                    "Mean",
                    "95% low",
                    "95% high",
                    "P(benefit)",
                ],
                rows,
            )  # fmt: skip
        ],
    )


# --- divergence -------------------------------------------------------------------------------


def _divergence_label(row: Divergence, names: Names) -> str:
    # Sources read "<kind>: <detail>" (analytics.analysis): the kind names the bar.
    return f"{names.arm(row.arm)} ({row.engagement_source.partition(':')[0]})"


def divergence_panel(results: Results, colours: dict, names: Names | None = None) -> Panel:
    names = names or Names()
    rows = results.divergence
    if not rows:
        return Panel(
            key="divergence",
            title="Engagement vs flourishing divergence",
            label=EXPLORATORY,
            reading="Not computed: the run has no engagement measure beside a flourishing "
            "outcome (the reliance score or telemetry).",
        )
    fig = Figure(
        "P(engagement rose while flourishing did not)",
        "Arm (vs control)",
        "Posterior probability (0–1)",
    )
    # An arm can have two rows: engagement from the survey's reliance score and from DP telemetry.
    fig.add_trace(
        dict(
            type="bar",
            x=[_divergence_label(r, names) for r in rows],
            y=[r.probability for r in rows],
            marker={"color": [colours.get(r.arm, OKABE_ITO[0]) for r in rows]},
            showlegend=False,
        )
    )
    fig.add_hline(
        rows[0].threshold, line={"color": OKABE_ITO[1], "dash": "dash"}, text="flag threshold"
    )
    fig.axis("y", range=[0, 1])
    flagged = [_divergence_label(r, names) for r in rows if r.flagged]
    return Panel(
        key="divergence",
        title="Engagement vs flourishing divergence",
        label=EXPLORATORY,
        reading=(
            f"Flagged: arm(s) {', '.join(flagged)} likely raised engagement without raising "
            "flourishing."
            if flagged
            else "No arm is flagged: none is likely to have raised engagement without flourishing."
        ),
        figures=[fig],
        tables=[
            Table(
                "divergence",
                "Divergence per arm",
                [
                    "Arm",
                    "Engagement source",
                    "Flourishing source",
                    "P(engagement rose)",
                    "P(flourishing rose)",
                    "P(divergence)",
                    "Threshold",
                    "Flagged",
                ],
                [
                    [
                        names.arm(r.arm),
                        r.engagement_source,
                        r.flourishing_source,
                        round(r.prob_engagement_rose, 3),
                        round(r.prob_flourishing_rose, 3),
                        round(r.probability, 3),
                        r.threshold,
                        "yes" if r.flagged else "no",
                    ]
                    for r in rows
                ],
            )  # fmt: skip
        ],
    )


# --- DP telemetry -----------------------------------------------------------------------------


def budget_gauge(budget: PrivacyBudgetSummary) -> Figure:
    """The privacy budget as a bar gauge: what is spent, then what remains, on an axis that
    ends at the plan's total ρ (bars rather than Plotly's dial, which the dashboards' basic
    Plotly bundle does not carry; see ``dashboards.plotly_bundle``)."""
    fig = Figure(
        f"Privacy budget: {budget.spent_rho:.3f} of {budget.total_rho:.3f} ρ spent",
        x_title="ρ (zero-concentrated DP)",
        y_title="Budget",
        height=240,
    )
    for name, value, marker in [
        ("spent", budget.spent_rho, {"color": OKABE_ITO[0]}),
        ("remaining", budget.remaining_rho,
         {"color": "white", "line": {"color": OKABE_ITO[0], "width": 2}}),
    ]:  # fmt: skip
        fig.add_trace(
            {
                "type": "bar",
                "orientation": "h",
                "name": name,
                "y": ["ρ"],
                "x": [value],
                "marker": marker,
                "hovertemplate": f"{name}: %{{x:.3f}} ρ<extra></extra>",
            }
        )
    fig.layout["barmode"] = "stack"
    fig.axis("x", range=[0, budget.total_rho])
    fig.axis("y", showticklabels=False)
    return fig


def releases_figure(releases: list[ReleasedValue], colours: dict, names: Names) -> Figure:
    """Each metric's released values per window and arm, one metric at a time (a menu in the
    figure switches, in the browser): one figure to draw however many metrics the plan has.

    Means per participant compare across arms; sums grow with how many devices report, so they
    stay in the table, and the count of reporting devices is one of the choices."""
    groups = list(dict.fromkeys((r.metric, r.statistic) for r in releases if r.statistic != "sum"))
    groups.sort(key=lambda group: group[1] == "count")  # the means first, as they compare

    def titles(group: tuple[str, str]) -> tuple[str, str]:
        first = next(r for r in releases if (r.metric, r.statistic) == group)
        return (
            f"{first.label} ({group[1]}), DP releases",
            f"{first.unit} ({group[1]}, 95% interval)",
        )

    title, y_title = titles(groups[0])
    fig = Figure(title, "End of release window (date)", y_title)
    owners = []
    for position, group in enumerate(groups):
        rows = [r for r in releases if (r.metric, r.statistic) == group]
        for arm in dict.fromkeys(r.arm for r in rows):
            points = [r for r in rows if r.arm == arm]
            owners.append(position)
            fig.add_trace(
                dict(
                    type="scatter",
                    x=[r.window_end for r in points],
                    y=[r.estimate for r in points],
                    name=names.arm(arm),
                    mode="lines+markers",
                    visible=position == 0,
                    line={"color": colours.get(arm, OKABE_ITO[-1])},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [r.ci_high - r.estimate for r in points],
                        "arrayminus": [r.estimate - r.ci_low for r in points],
                    },
                )
            )
    fig.layout["margin"]["t"] = 110
    fig.layout["updatemenus"] = [
        {
            "type": "dropdown",
            "x": 1,
            "y": 1.02,
            "xanchor": "right",
            "yanchor": "bottom",
            "buttons": [
                {
                    "label": f"{metric} ({statistic})",
                    "method": "update",
                    "args": [
                        {"visible": [owner == position for owner in owners]},
                        {"title.text": titles(group)[0], "yaxis.title.text": titles(group)[1]},
                    ],
                }
                for position, group in enumerate(groups)
                for metric, statistic in [group]
            ],
        }
    ]
    return fig


def telemetry_panel(
    budget: PrivacyBudgetSummary | None,
    releases: list[ReleasedValue],
    colours: dict,
    names: Names | None = None,
) -> Panel:
    names = names or Names()
    figures: list[Figure] = []
    if budget:
        figures.append(budget_gauge(budget))
    if any(r.statistic != "sum" for r in releases):
        figures.append(releases_figure(releases, colours, names))
    if budget:
        reading = (
            f"{budget.spent_rho:.3f} of {budget.total_rho:.3f} ρ is spent "
            f"(ε = {budget.epsilon:.2f} at δ = {budget.delta:g}); "
            f"{len({r.window_end for r in releases})} release window(s), every value with "
            "its noise-aware interval."
        )
    else:
        reading = "This trial has no privacy budget, so no telemetry has been released."
    return Panel(
        key="telemetry",
        title="Differentially private telemetry and privacy budget",
        label=EXPLORATORY,
        reading=reading,
        figures=figures,
        tables=[
            Table(
                "telemetry",
                "Released aggregates (noisy; no raw rows exist)",
                [
                    "Window start",
                    "Window end",
                    "Arm",
                    "Metric",
                    "Statistic",
                    "Unit",
                    "Estimate",
                    "SE",
                    "95% low",
                    "95% high",
                ],
                [
                    [
                        r.window_start,
                        r.window_end,
                        names.arm(r.arm),
                        r.metric,
                        r.statistic,
                        r.unit,
                        round(r.estimate, 4),
                        round(r.std_error, 4),
                        round(r.ci_low, 4),
                        round(r.ci_high, 4),
                    ]
                    for r in releases
                ],
            )  # fmt: skip
        ],
    )


# --- psychometrics ----------------------------------------------------------------------------


def _width(low: float | None, high: float | None) -> float | None:
    """An error bar's length; none (no bar) where an interval end is undefined."""
    return None if low is None or high is None else high - low


def psychometrics_panel(results: Results, names: Names | None = None) -> Panel | None:
    names = names or Names()
    scores = results.psychometrics
    if not scores:
        return None
    fig = Figure(
        "Internal consistency by wave",
        "Wave (index; 0 = baseline)",
        "Cronbach's α (0–1, 95% interval)",
    )
    fig.axis("x", dtick=1)
    reliability_rows, invariance_rows, lows = [], [], []
    for i, s in enumerate(scores):
        points = [(r.wave, r.alpha.value) for r in s.reliability if r.alpha.value]
        if points:
            fig.add_trace(
                dict(
                    type="scatter",
                    x=[wave for wave, _ in points],
                    y=[a.alpha for _, a in points],
                    name=names.outcome(s.score),
                    mode="lines+markers",
                    line={"color": OKABE_ITO[i % len(OKABE_ITO)]},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [_width(a.alpha, a.ci_high) for _, a in points],
                        "arrayminus": [_width(a.ci_low, a.alpha) for _, a in points],
                    },
                )
            )
        for r in s.reliability:
            alpha, omega = r.alpha.value, r.omega.value
            if alpha and alpha.alpha < MIN_RELIABILITY:
                lows.append(f"{names.outcome(s.score)} at wave {r.wave}")
            reliability_rows.append(
                [
                    s.instrument,
                    s.score,
                    r.wave,
                    r.n,
                    round(alpha.alpha, 3) if alpha else r.alpha.reason,
                    _cell(alpha.ci_low, 3) if alpha else "",
                    _cell(alpha.ci_high, 3) if alpha else "",
                    round(omega.omega, 3) if omega else r.omega.reason,
                ]
            )
        for group, result in s.invariance.items():
            if not result.value:
                invariance_rows.append([s.score, group, "", "", "", "", result.reason])
                continue
            for step in result.value.steps:
                holds = step.holds
                invariance_rows.append(
                    [
                        s.score,
                        group,
                        step.model,
                        _fmt(step.cfi, 3),
                        _fmt(step.delta_cfi, 3),
                        _fmt(step.rmsea, 3),
                        "" if holds is None else ("holds" if holds else "does not hold"),
                    ]
                )
    fig.add_hline(
        MIN_RELIABILITY,
        line={"color": OKABE_ITO[1], "dash": "dash"},
        text=f"α = {MIN_RELIABILITY:.2f}",
    )
    return Panel(
        key="psychometrics",
        title="Psychometrics: reliability and measurement invariance",
        label=EXPLORATORY,
        reading=(
            f"Reliability is below {MIN_RELIABILITY:.2f} for {', '.join(lows)}: read those "
            "scores' effects with care."
            if lows
            else f"Every score's α is at least {MIN_RELIABILITY:.2f} at every wave."
        ),
        figures=[fig],
        tables=[
            Table(
                "reliability",
                "Reliability per score and wave",
                ["Instrument", "Score", "Wave", "n", "α", "α 95% low", "α 95% high", "ω"],
                reliability_rows,
            ),
            Table(
                "invariance",
                "Measurement invariance (configural → metric → scalar; ΔCFI ≤ .010)",
                ["Score", "Across", "Model", "CFI", "ΔCFI", "RMSEA", "Result or reason"],
                invariance_rows,
            ),
        ],
    )


# --- diagnostics ------------------------------------------------------------------------------


def diagnostics_panel(diagnostics: Diagnostics, label: str) -> Panel:
    gates = diagnostics.gates
    quantity_names = list(gates.per_quantity)
    quantities = list(gates.per_quantity.values())
    ess = Figure(
        "Convergence: bulk and tail ESS", "Quantity", "Worst effective sample size (draws)"
    )
    for i, (name, values) in enumerate(
        [
            ("bulk ESS", [q.ess_bulk for q in quantities]),
            ("tail ESS", [q.ess_tail for q in quantities]),
        ]
    ):
        ess.add_trace(
            dict(type="bar", x=quantity_names, y=values, name=name, marker={"color": OKABE_ITO[i]})
        )
    ess.add_hline(MIN_ESS, line={"color": OKABE_ITO[1], "dash": "dash"}, text=f"{MIN_ESS}")
    rhat = Figure("Convergence: rank-normalised split-R̂", "Quantity", "Worst R̂ (ratio)")
    rhat.add_trace(
        {
            "type": "bar",
            "x": quantity_names,
            "y": [q.rhat for q in quantities],
            "name": "R̂",
            "marker": {"color": OKABE_ITO[2]},
        }
    )
    rhat.add_hline(MAX_RHAT, line={"color": OKABE_ITO[1], "dash": "dash"}, text=f"{MAX_RHAT}")
    rhat.axis("y", range=[0.99, max([MAX_RHAT + 0.01, *(q.rhat for q in quantities)])])
    rows = [
        ["max R̂", round(gates.max_rhat, 4), f"≤ {MAX_RHAT}", gates.max_rhat <= MAX_RHAT],
        ["min bulk ESS", round(gates.min_ess_bulk), f"≥ {MIN_ESS}",
         gates.min_ess_bulk >= MIN_ESS],
        ["min tail ESS", round(gates.min_ess_tail), f"≥ {MIN_ESS}",
         gates.min_ess_tail >= MIN_ESS],
        ["divergences", gates.divergences, "0", gates.divergences == 0],
    ]  # fmt: skip
    table_rows = [[name, value, limit, "pass" if ok else "fail"] for name, value, limit, ok in rows]
    table_rows += [
        ["chains × draws", f"{gates.chains} × {gates.draws_per_chain}", "", ""],
        ["target acceptance", _cell(diagnostics.target_accept, 3), "", ""],
        ["sampling time (s)", _cell(diagnostics.bayes_seconds, 1), "", ""],
    ]
    reading = (
        f"The posterior is the Laplace approximation at its mode: the participants' wave "
        f"patterns make {diagnostics.bayes_groups:,} groups, more than NUTS samples in reasonable "
        "time, and that many participants make the posterior normal to within its Monte Carlo "
        "error. Its draws are independent, so R̂ and ESS measure only their Monte Carlo error. "
        if diagnostics.bayes_method == "laplace"
        else ""
    ) + (
        f"The Bayesian fit passes its gates (R̂ {gates.max_rhat:.3f}, bulk ESS "
        f"{gates.min_ess_bulk:.0f}, tail ESS {gates.min_ess_tail:.0f}, "
        f"{gates.divergences} divergences): its estimates are reportable."
        if gates.passed
        else "The Bayesian fit fails its gates, so its estimates are not reportable: "
        + "; ".join(gates.reasons)
        + "."
    )
    return Panel(
        key="diagnostics",
        title="Run diagnostics (R̂, ESS, divergences)",
        label=label,
        reading=reading,
        figures=[ess, rhat],
        tables=[
            Table(
                "diagnostics", "Convergence gates", ["Check", "Value", "Gate", "Result"], table_rows
            )
        ],  # fmt: skip
    )


# --- harms ------------------------------------------------------------------------------------

HARM_NAMES = {
    "adverse_events": "any adverse event",
    "serious_adverse_events": "a serious adverse event",
    "reliable_deterioration": "a reliable deterioration",
}


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def harms_figure(rates: Sequence[ArmRate], colours: dict, names: Names) -> Figure:
    """Per harm, each arm's difference from the control in the share of participants harmed,
    with its Newcombe interval."""
    fig = Figure(
        "Harms: difference from the control in the share of participants harmed",
        "Arm minus control (percentage points, 95% interval)",
        "Harm · arm",
    )
    for rate in rates:
        for metric, harm in rate.harms.items():
            versus = harm.versus_control
            if versus is None:
                continue
            row = f"{words(HARM_NAMES[metric])} · {names.arm(rate.arm)}"
            colour = colours.get(rate.arm, GREY)
            fig.add_trace(
                {
                    "type": "scatter",
                    "x": [100 * versus.estimate],
                    "y": [row],
                    "mode": "markers",
                    "marker": {"size": 11, "color": "white", "line": {"color": colour, "width": 2}},
                    "error_x": {
                        "type": "data",
                        "symmetric": False,
                        "array": [100 * (versus.upper - versus.estimate)],
                        "arrayminus": [100 * (versus.estimate - versus.lower)],
                        "color": colour,
                        "thickness": 2,
                    },
                    "showlegend": False,
                    "hovertemplate": f"{row}<br>{100 * versus.estimate:.1f} "
                    f"[{100 * versus.lower:.1f}, {100 * versus.upper:.1f}] points<extra></extra>",
                }
            )
    fig.add_vline(0, line={"color": GREY, "width": 1})
    fig.axis("y", autorange="reversed")
    return fig


def harms_panel(
    rates: Sequence[ArmRate], colours: dict, names: Names | None = None
) -> Panel | None:
    """Adverse events and reliable deterioration per arm (``safety.selectors.harm_rates``):
    shares of participants with at least one, Wilson intervals, and differences from the
    control, Newcombe's. Always exploratory: no harm is a pre-registered hypothesis (a harm
    boundary is a stopping rule the bodies are told about, ``safety.harms``)."""
    names = names or Names()
    if not any(rate.participants for rate in rates):
        return None
    rows = []
    for rate in rates:
        for metric, harm in rate.harms.items():
            share, versus = harm.share, harm.versus_control
            rows.append(
                [
                    names.arm(rate.arm) + (" (control)" if rate.is_control else ""),
                    rate.participants,
                    HARM_NAMES[metric],
                    harm.count,
                    _cell(share.estimate if share else None, 3),
                    _cell(share.lower if share else None, 3),
                    _cell(share.upper if share else None, 3),
                    _cell(versus.estimate if versus else None, 3),
                    _cell(versus.lower if versus else None, 3),
                    _cell(versus.upper if versus else None, 3),
                ]
            )
    compared = [
        (versus, names.arm(rate.arm), metric)
        for rate in rates
        for metric, harm in rate.harms.items()
        if (versus := harm.versus_control) is not None
    ]
    participants = sum(rate.participants for rate in rates)
    if compared:
        versus, arm, metric = max(compared, key=lambda item: item[0].lower)
        reading = (
            f"Among {participants} participants, the clearest excess over the control is "
            f"{HARM_NAMES[metric]} in {arm}: {_percent(versus.first.estimate)} against "
            f"{_percent(versus.second.estimate)}, a difference of "
            f"{100 * versus.estimate:.1f} points (95% interval {100 * versus.lower:.1f} to "
            f"{100 * versus.upper:.1f})."
        )
    else:
        reading = f"Among {participants} participants, no arm can be compared with the control yet."
    figures = [harms_figure(rates, colours, names)] if compared else []
    return Panel(
        key="harms",
        title="Harms: adverse events and reliable deterioration per arm",
        label=EXPLORATORY,
        reading=reading,
        figures=figures,
        tables=[
            Table(
                "harms",
                "Participants with at least one harm, per arm: share with Wilson 95% interval, "
                "difference from the control with Newcombe's 95% interval",
                [
                    "Arm",
                    "Participants",
                    "Harm",
                    "With harm",
                    "Share",
                    "Share low",
                    "Share high",
                    "Difference",
                    "Difference low",
                    "Difference high",
                ],
                rows,
            )
        ],
        notes=[
            "Serious events count once a coordinator has assessed them; participants' own "
            "reports count as adverse events from the day they are sent."
        ],
    )


# --- all --------------------------------------------------------------------------------------


def dashboard_panels(
    record: TrialRecord,
    run: RunSummary | None,
    enrolment: list[dict],
    privacy_budget: PrivacyBudgetSummary | None,
    telemetry: list[ReleasedValue],
    harms: Sequence[ArmRate] = (),
    dose: Sequence[DoseSlope] = (),
) -> list[Panel]:
    """Every panel of a trial's dashboard, in reading order."""
    # The design and dose panels build on this module's helpers, so they are imported here.
    from dashboards.designs import design_panels
    from dashboards.dose import dose_panel

    label = run.kind if run else EXPLORATORY
    panels = [status_panel(record, run, label)]
    if run is None:
        colours = arm_colours(rate.arm for rate in harms)
        harms_shown = harms_panel(harms, colours, Names(arms=record.arm_names))
        return panels + ([harms_shown] if harms_shown else [])
    results, names = run.results, run.names
    colours = arm_colours(a.slug for a in results.consort.arms)
    candidates = [
        consort_panel(results.consort, label, names),
        enrolment_panel(enrolment, results, colours, label, names),
        *forest_panels(results, names),
        *design_panels(results, names),
        posterior_panel(results, colours, names),
        trajectory_panel(results, colours, names),
        community_panel(results, names),
        divergence_panel(results, colours, names),
        telemetry_panel(privacy_budget, telemetry, colours, names),
        dose_panel(list(dose)),
        harms_panel(harms, colours, names),
        psychometrics_panel(results, names),
        diagnostics_panel(run.diagnostics, label),
    ]
    return panels + [p for p in candidates if p is not None]
