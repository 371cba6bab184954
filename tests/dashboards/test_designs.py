"""The design panels (dashboards.designs): factorial contrasts with the interaction plot,
moderators and covariate adjustment, drawn from a stored run's results only."""

import pytest

from analytics.results import (
    CovariateAdjustment,
    DesignEffect,
    FactorialCells,
    FrequentistEstimate,
    JointTest,
)
from dashboards.designs import design_panels, interaction_figure
from dashboards.selectors import Names

pytestmark = pytest.mark.unit

CELLS = {
    "a": {"mode": "text", "kind": "open"},
    "b": {"mode": "voice", "kind": "open"},
    "c": {"mode": "text", "kind": "task"},
    "d": {"mode": "voice", "kind": "task"},
}


def _effect(**fields) -> DesignEffect:
    return DesignEffect(
        **{
            "outcome": "who5",
            "instrument": "who5",
            "dimension": "mental_wellbeing",
            "role": "primary",
            "wave": 3,
            "estimate": 0.5,
            "std_error": 0.2,
            "ci_low": 0.1,
            "ci_high": 0.9,
            "n_participants": 400,
            "n_observations": 1400,
            "reportable": True,
        }
        | fields
    )


def _factorial_results(golden):
    results = golden.results
    b = next(
        e
        for e in results.estimates
        if isinstance(e, FrequentistEstimate) and e.method == "mixedlm" and e.arm == "b"
    )
    cells = [
        b.model_copy(
            update={"arm": arm, "estimate": value, "ci_low": value - 0.3, "ci_high": value + 0.3}
        )
        for arm, value in (("b", 0.4), ("c", 0.2), ("d", 1.1))
    ]
    outcome = b.outcome
    effects = [
        _effect(
            outcome=outcome,
            kind="main_effect",
            contrast="main effect of mode",
            label="mode: voice − text",
            method=method,
            confirmatory=True,
            **extra,
        )
        for method, extra in (
            ("mixedlm", {"p_value": 0.01, "p_adjusted": 0.02, "df": 390.0}),
            ("bayes_growth", {"prob_benefit": 0.99}),
        )
    ] + [
        _effect(
            outcome=outcome,
            kind="interaction",
            contrast="interaction mode × kind",
            label="mode: voice − text × kind: task − open",
            method="mixedlm",
            estimate=0.5,
            p_value=0.2,
            p_adjusted=0.2,
            df=390.0,
            confirmatory=True,
        ),
        _effect(
            outcome=outcome,
            kind="moderator",
            contrast="language",
            label="b × language=de",
            method="mixedlm",
            estimate=0.3,
            p_value=0.04,
            p_adjusted=0.08,
            df=380.0,
            confirmatory=False,
        ),
    ]
    return results.model_copy(
        update={
            "estimates": [e for e in results.estimates if e is not b] + cells,
            "factorial": FactorialCells(
                factors={"mode": ["text", "voice"], "kind": ["open", "task"]}, cells=CELLS
            ),
            "design_effects": effects,
            "joint_tests": [
                JointTest(
                    outcome=outcome,
                    contrast="main effect of mode",
                    f_statistic=6.2,
                    df_numerator=1,
                    df_denominator=390.0,
                    p_value=0.013,
                    confirmatory=True,
                )
            ],
            "covariate_adjustment": [
                CovariateAdjustment(
                    outcome=outcome,
                    arm="b",
                    covariates=["baseline swls"],
                    std_error_adjusted=0.18,
                    std_error_unadjusted=0.2,
                    variance_ratio=0.81,
                )
            ],
        }
    ), outcome


def test_a_two_arm_run_has_no_design_panels(golden):
    assert design_panels(golden.results) == []


def test_factorial_moderator_and_covariate_panels_show_the_stored_numbers(golden):
    results, outcome = _factorial_results(golden)
    factorial, moderators, covariates = design_panels(results, Names(arms={"b": "Voice, open"}))
    assert factorial.label == "confirmatory" and moderators.label == "exploratory"
    assert factorial.reading.startswith("main effect of mode, mode: voice − text: +0.50")
    frequentist, bayesian, plot = factorial.figures
    assert [t["y"][0] for t in bayesian.data] == ["mode: voice − text"]
    assert {t["y"][0] for t in frequentist.data} == {
        "mode: voice − text",
        "mode: voice − text × kind: task − open",
    }
    assert factorial.tables[0].rows[0][10:12] == ["0.010", "0.020"]
    assert factorial.tables[1].rows == [
        ["main effect of mode", 6.2, 1, 390.0, "0.013", "confirmatory"]
    ]
    assert "0.81" in covariates.reading and covariates.tables[0].rows[0][-1] == 0.81
    # Arms are called by their names.
    assert moderators.tables[0].rows[0][3] == "Voice, open × language=de"
    assert covariates.tables[0].rows[0][1] == "Voice, open"
    # The interaction plot: a line per kind, the control cell at 0.
    lines = {t["name"]: t for t in plot.data}
    assert lines["kind open"]["x"] == ["text", "voice"]
    assert lines["kind open"]["y"] == pytest.approx([0.0, 0.4])
    assert lines["kind task"]["y"] == pytest.approx([0.2, 1.1])
    assert plot.layout["title"]["text"] and plot.to_dict()["layout"]["yaxis"]["title"]["text"]


def test_no_interaction_plot_without_two_factors(golden):
    results, outcome = _factorial_results(golden)
    one = results.model_copy(
        update={
            "factorial": FactorialCells(
                factors={"mode": ["text", "voice"]},
                cells={"a": {"mode": "text"}, "b": {"mode": "voice"}},
            )
        }
    )
    assert interaction_figure(one, outcome, Names()) is None


def test_the_dashboard_places_the_design_panels_after_the_forests(golden):
    from dataclasses import replace

    from dashboards import panels as p
    from tests.dashboards.test_panels import ENROLMENT, RECORD, _run

    results, _ = _factorial_results(golden)
    run = replace(_run(golden), results=results)
    keys = [panel.key for panel in p.dashboard_panels(RECORD, run, ENROLMENT, None, [])]
    first_design = keys.index(design_panels(results)[0].key)
    assert keys[first_design - 1].startswith("forest-") and "posteriors" in keys[first_design:]
