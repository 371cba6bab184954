"""The basic Plotly bundle the dashboards load instead of the full one: pinned with plotly.py,
sufficient for every figure, and refused when it is not the pinned archive."""

import pytest
from plotly.offline import get_plotlyjs_version

from dashboards import panels as p
from dashboards import plotly_bundle
from dashboards.selectors import dashboard_data
from tests.dashboards.test_panels import BUDGET, TELEMETRY_ROWS


def test_the_installed_bundle_is_the_plotly_js_that_plotly_py_ships():
    # make installs it; a plotly upgrade must move the pin with it.
    bundle = plotly_bundle.BUNDLE
    assert bundle.installed_script() is not None
    assert bundle.script_version(bundle.path) == bundle.version == get_plotlyjs_version()
    assert (bundle.directory / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.django_db
def test_every_figure_uses_a_trace_type_the_bundle_carries(analysed_trial):
    data = dashboard_data(analysed_trial)
    panels = p.dashboard_panels(data.record, data.run, data.enrolment, BUDGET, TELEMETRY_ROWS)
    types = {trace["type"] for panel in panels for fig in panel.figures for trace in fig.data}
    assert types and types <= plotly_bundle.TRACE_TYPES
