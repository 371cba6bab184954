"""Panels of a trial's design: a factorial trial's main effects and interactions (a forest of
the plan's contrasts, frequentist and Bayesian side by side, and the interaction plot of the
cells' growth), the moderators' effects, and what the baseline covariates bought in precision.

Pure functions of the stored results (``analytics.results``), like ``dashboards.panels``, whose
:class:`~dashboards.panels.Panel` they return: :func:`design_panels` gives them all, in reading
order, and nothing for a trial without a design, moderators or covariates.
"""

from collections.abc import Sequence

from analytics.results import DesignEffect, FrequentistEstimate, Results
from dashboards.answer import p_text
from dashboards.figures import GREY, OKABE_ITO, Figure
from dashboards.panels import CONFIRMATORY, EXPLORATORY, METHOD_NAMES, Panel, Table, words
from dashboards.selectors import Names

KIND_NAMES = {
    "main_effect": "main effect",
    "interaction": "interaction",
    "levels": "levels",
    "moderator": "moderator",
}


def _row(effect: DesignEffect, names: Names) -> str:
    """What an effect estimates, arms by their names (a moderator effect starts with its arm)."""
    if effect.kind != "moderator":
        return effect.label
    arm, _, moderator = effect.label.partition(" × ")
    return f"{names.arm(arm)} × {moderator}"


def _label(effects: Sequence[DesignEffect]) -> str:
    return CONFIRMATORY if any(e.confirmatory for e in effects) else EXPLORATORY


def design_effects_figures(
    title: str, effects: Sequence[DesignEffect], names: Names
) -> list[Figure]:
    """Forests of design effects (growth per wave): the mixed model's, then the Bayesian
    model's, on one x range; filled markers are confirmatory, hollow ones exploratory."""
    ends = [x for e in effects for x in (e.ci_low, e.ci_high)] + [0.0]
    margin = 0.08 * (max(ends) - min(ends) or 1.0)
    figures = []
    for method in ("mixedlm", "bayes_growth"):
        rows = [e for e in effects if e.method == method]
        if not rows:
            continue
        fig = Figure(
            f"{title}: {METHOD_NAMES[method]}",
            "Score points per wave (95% interval)",
            "Contrast",
            height=max(240, 200 + 40 * len(rows)),
        )
        for e in rows:
            colour = OKABE_ITO[0] if e.kind != "interaction" else OKABE_ITO[1]
            fig.add_trace(
                {
                    "type": "scatter",
                    "x": [e.estimate],
                    "y": [_row(e, names)],
                    "mode": "markers",
                    "marker": {
                        "size": 11,
                        "color": colour if e.confirmatory else "white",
                        "line": {"color": colour, "width": 2},
                        "symbol": "diamond" if method == "bayes_growth" else "square",
                    },
                    "error_x": {
                        "type": "data",
                        "symmetric": False,
                        "array": [e.ci_high - e.estimate],
                        "arrayminus": [e.estimate - e.ci_low],
                        "color": colour,
                        "thickness": 2,
                    },
                    "showlegend": False,
                    "hovertemplate": f"{_row(e, names)}<br>{e.estimate:.3f} "
                    f"[{e.ci_low:.3f}, {e.ci_high:.3f}]<extra></extra>",
                }
            )
        fig.add_vline(0, line={"color": GREY, "width": 1})
        fig.axis("x", range=[min(ends) - margin, max(ends) + margin])
        fig.axis("y", autorange="reversed")
        figures.append(fig)
    return figures


def interaction_figure(results: Results, outcome: str, names: Names) -> Figure | None:
    """The interaction plot of the first two factors: each cell's growth per wave minus the
    reference cell's (the mixed model's arm contrasts; the reference cell is 0), the first
    factor's levels along x, a line per level of the second. Parallel lines: no interaction."""
    design = results.factorial
    if design is None or len(design.factors) < 2:
        return None
    first, second = list(design.factors)[:2]
    growth = {
        e.arm: e
        for e in results.estimates
        if isinstance(e, FrequentistEstimate) and e.method == "mixedlm" and e.outcome == outcome
    }
    if not growth:
        return None
    fig = Figure(
        f"{names.outcome(outcome)}: growth of each cell, {first} × {second}",
        f"{words(first)} (level)",
        f"Growth per wave minus {names.arm(results.control)}'s (score points, 95% interval)",
    )
    for position, level in enumerate(design.factors[second]):
        xs, ys, highs, lows = [], [], [], []
        for x in design.factors[first]:
            arms = [
                arm
                for arm, cell in design.cells.items()
                if cell[first] == x and cell[second] == level
            ]
            # With more than two factors a (first, second) pair holds several cells: their mean.
            cells = [growth.get(arm) for arm in arms]
            known = [c for c in cells if c is not None]
            reference = [arm for arm in arms if arm == results.control]
            if len(known) + len(reference) != len(arms):
                continue
            xs.append(x)
            ys.append(sum(c.estimate for c in known) / len(arms))
            highs.append(sum(c.ci_high - c.estimate for c in known) / len(arms))
            lows.append(sum(c.estimate - c.ci_low for c in known) / len(arms))
        fig.add_trace(
            {
                "type": "scatter",
                "x": xs,
                "y": ys,
                "name": f"{second} {level}",
                "mode": "lines+markers",
                "line": {"color": OKABE_ITO[position % len(OKABE_ITO)]},
                "error_y": {"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
            }
        )
    fig.add_hline(0, line={"color": GREY, "width": 1})
    return fig


def design_effects_table(
    name: str, caption: str, effects: Sequence[DesignEffect], names: Names
) -> Table:
    return Table(
        name,
        caption,
        [
            "Outcome",
            "Kind",
            "Contrast",
            "Estimate of",
            "Method",
            "Estimate",
            "SE",
            "95% low",
            "95% high",
            "df",
            "p",
            "p adjusted",
            "P(benefit)",
            "n",
            "Label",
            "Reportable",
        ],
        [
            [
                e.outcome,
                KIND_NAMES[e.kind],
                e.contrast,
                _row(e, names),
                METHOD_NAMES[e.method],
                round(e.estimate, 4),
                round(e.std_error, 4),
                round(e.ci_low, 4),
                round(e.ci_high, 4),
                round(e.df, 1) if e.df is not None else "",
                p_text(e.p_value) if e.p_value is not None else "",
                p_text(e.p_adjusted) if e.p_adjusted is not None else "",
                round(e.prob_benefit, 3) if e.prob_benefit is not None else "",
                e.n_participants,
                CONFIRMATORY if e.confirmatory else EXPLORATORY,
                "yes" if e.reportable else "no",
            ]
            for e in effects
        ],
    )


def _reading(effects: Sequence[DesignEffect], names: Names) -> str:
    mixed = [e for e in effects if e.method == "mixedlm"]
    key = next((e for e in mixed if e.confirmatory), next(iter(mixed), None))
    if key is None:
        return "Only the Bayesian model estimated these contrasts."
    clear = [e for e in mixed if e.p_adjusted is not None and e.p_adjusted < 0.05]
    return (
        f"{key.contrast}, {_row(key, names)}: {key.estimate:+.2f} points per wave "
        f"[{key.ci_low:+.2f}, {key.ci_high:+.2f}], p adjusted {p_text(key.p_adjusted)}. "
        f"{len(clear)} of {len(mixed)} mixed-model estimates have an adjusted p below 0.05."
    )


def factorial_panels(results: Results, names: Names) -> list[Panel]:
    """Per outcome: the plan's main effects and interactions, and the interaction plot."""
    panels = []
    effects = [e for e in results.design_effects if e.kind != "moderator"]
    for outcome in dict.fromkeys(e.outcome for e in effects):
        mine = [e for e in effects if e.outcome == outcome]
        tests = [t for t in results.joint_tests if t.outcome == outcome]
        figures = design_effects_figures(
            f"{names.outcome(outcome)}: main effects and interactions", mine, names
        )
        plot = interaction_figure(results, outcome, names)
        tables = [
            design_effects_table(
                f"design-effects-{outcome}",
                f"The factorial contrasts on {names.outcome(outcome)}; filled markers are "
                "confirmatory",
                mine,
                names,
            )
        ]
        if tests:
            tables.append(
                Table(
                    f"joint-tests-{outcome}",
                    "F tests that every estimate of a contrast is zero (Satterthwaite df)",
                    ["Contrast", "F", "df", "denominator df", "p", "Label"],
                    [
                        [
                            t.contrast,
                            round(t.f_statistic, 4),
                            t.df_numerator,
                            round(t.df_denominator, 1),
                            p_text(t.p_value),
                            CONFIRMATORY if t.confirmatory else EXPLORATORY,
                        ]
                        for t in tests
                    ],
                )
            )
        panels.append(
            Panel(
                key=f"factorial-{outcome}",
                title=f"Factorial effects on {names.outcome(outcome)}: main effects and "
                "interactions",
                label=_label(mine),
                reading=_reading(mine, names),
                figures=figures + ([plot] if plot is not None else []),
                tables=tables,
                notes=[
                    "A main effect is a level against the reference level, averaged over the "
                    "other factors' levels; an interaction is a difference of differences. "
                    "The interaction plot shows each cell's growth minus the control cell's."
                ],
            )
        )
    return panels


def moderator_panel(results: Results, names: Names) -> Panel | None:
    """The arms' interactions with the plan's moderators, on growth per wave."""
    effects = [e for e in results.design_effects if e.kind == "moderator"]
    if not effects:
        return None
    return Panel(
        key="moderators",
        title="Who benefits: the arms' effects by moderator",
        label=_label(effects),
        reading=_reading(effects, names),
        figures=[
            figure
            for outcome in dict.fromkeys(e.outcome for e in effects)
            for figure in design_effects_figures(
                f"{names.outcome(outcome)}: arm × moderator",
                [e for e in effects if e.outcome == outcome],
                names,
            )
        ],
        tables=[
            design_effects_table(
                "moderators",
                "Arm × moderator effects on growth per wave (a category against the most "
                "common one)",
                effects,
                names,
            )
        ],
    )


def covariate_panel(results: Results, names: Names) -> Panel | None:
    """What adjusting for the plan's baseline covariates did to each arm contrast's SE."""
    rows = results.covariate_adjustment
    if not rows:
        return None
    best = min(rows, key=lambda r: r.variance_ratio)
    return Panel(
        key="covariates",
        title="Precision bought by the baseline covariates",
        label=results.kind,
        reading=f"Adjusting for {', '.join(best.covariates)} multiplied the variance of "
        f"{names.arm(best.arm)}'s growth contrast on {names.outcome(best.outcome)} by "
        f"{best.variance_ratio:.2f} "
        f"(SE {best.std_error_unadjusted:.3f} → {best.std_error_adjusted:.3f}).",
        tables=[
            Table(
                "covariate-adjustment",
                "SE (posterior SD) of each arm's growth contrast, adjusted and unadjusted",
                [
                    "Outcome",
                    "Arm",
                    "Model",
                    "Covariates",
                    "SE adjusted",
                    "SE unadjusted",
                    "SE² ratio",
                ],
                [
                    [
                        r.outcome,
                        names.arm(r.arm),
                        METHOD_NAMES[r.method],
                        ", ".join(r.covariates),
                        round(r.std_error_adjusted, 4),
                        round(r.std_error_unadjusted, 4),
                        round(r.variance_ratio, 4),
                    ]
                    for r in rows
                ],
            )
        ],
    )


def design_panels(results: Results, names: Names | None = None) -> list[Panel]:
    """Every design panel of a run, in reading order (none for a plain two-arm trial); arms and
    outcomes are called by ``names`` (the dashboards' :class:`~dashboards.selectors.Names`)."""
    names = names or Names()
    optional = [moderator_panel(results, names), covariate_panel(results, names)]
    return factorial_panels(results, names) + [p for p in optional if p is not None]
