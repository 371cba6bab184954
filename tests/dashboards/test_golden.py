"""The golden analysis run the panel tests read: it is a results document of today's shape, and
how to make it again.

``golden_results.json`` holds the results and diagnostics documents a real confirmatory run
stored for ``small_trial`` after its DP telemetry windows were released, with the item-level
ordinal model, so that every section of the document is filled. After a change to the document's
shape (``analytics.results``), regenerate it and read the diff:

    REGENERATE_GOLDEN=1 make test PYTEST_ARGS="tests/dashboards/test_golden.py"
"""

import json
import os

import pytest
from pydantic import ValidationError

from analytics.results import Diagnostics, Results
from analytics.seeding import synthetic_telemetry_release
from analytics.services import analysis_run_create, analysis_run_execute
from dashboards import panels as p
from dashboards.selectors import Names
from tests.dashboards.conftest import GOLDEN_PATH, golden_document

REGENERATE = (
    "the golden run is not of today's shape: regenerate it (see tests/dashboards/test_golden.py)"
)


def test_the_golden_run_is_exactly_a_results_document_of_today_s_shape():
    document = golden_document()
    # Read and written back unchanged: no key the type lacks, none it would add.
    assert (
        Results.model_validate(document["results"]).model_dump(mode="json") == (document["results"])
    ), REGENERATE
    assert (
        Diagnostics.model_validate(document["diagnostics"]).model_dump(mode="json")
        == (document["diagnostics"])
    ), REGENERATE
    # The published schema describes every section that is stored.
    assert set(Results.model_json_schema()["properties"]) == set(document["results"])


def test_the_golden_run_fills_every_section_the_panels_draw(golden):
    results = golden.results
    assert {e.method for e in results.estimates} == set(p.METHOD_NAMES)
    assert results.bayes_growth.posterior_densities and results.bayes_growth.community_effects
    assert results.trajectories and results.attrition and results.psychometrics
    assert results.ordinal and results.divergence
    assert any(
        s.startswith("DP telemetry") for s in (d.engagement_source for d in results.divergence)
    )


def test_a_misspelt_or_mistyped_section_is_refused_and_an_older_run_still_reads():
    document = golden_document()["results"]
    with pytest.raises(ValidationError, match="trajectory"):
        Results.model_validate(document | {"trajectory": []})
    with pytest.raises(ValidationError, match="estimates.0"):
        Results.model_validate(
            document | {"estimates": [document["estimates"][0] | {"estimate": "0.5"}]}
        )
    # Runs stored before a section existed read with its default (the panel is left out).
    older = {k: v for k, v in document.items() if k not in ("trajectories", "psychometrics")}
    results = Results.model_validate(older)
    assert results.trajectories == [] and p.trajectory_panel(results, {}, Names()) is None


@pytest.mark.skipif(
    not os.environ.get("REGENERATE_GOLDEN"), reason="Regenerates the golden run on request only."
)
def test_regenerate_the_golden_run(small_trial):
    synthetic_telemetry_release(trial=small_trial, minutes_effect=20.0, seed=7)
    run = analysis_run_create(trial=small_trial, ordinal=True, enqueue=False)
    run = analysis_run_execute(run_id=run.pk)
    assert run.status == "finished", run.error
    document = {"results": run.results, "diagnostics": run.diagnostics}
    GOLDEN_PATH.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
