"""The basic Plotly bundle the dashboards load instead of the full one: pinned with plotly.py,
sufficient for every figure, and refused when it is not the pinned archive."""

import base64
import hashlib

import pytest
from plotly.offline import get_plotlyjs_version

from dashboards import panels as p
from dashboards import plotly_bundle
from dashboards.selectors import dashboard_data
from tests.dashboards.test_panels import BUDGET, TELEMETRY_ROWS


def test_the_installed_bundle_is_the_plotly_js_that_plotly_py_ships():
    # make installs it; a plotly upgrade must move the pin with it.
    script = plotly_bundle.BUNDLE_DIR / plotly_bundle.SCRIPT
    assert plotly_bundle.bundle_version(script) == plotly_bundle.VERSION == get_plotlyjs_version()
    assert (plotly_bundle.BUNDLE_DIR / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.django_db
def test_every_figure_uses_a_trace_type_the_bundle_carries(analysed_trial):
    data = dashboard_data(analysed_trial)
    panels = p.dashboard_panels(data.record, data.run, data.enrolment, BUDGET, TELEMETRY_ROWS)
    types = {trace["type"] for panel in panels for fig in panel.figures for trace in fig.data}
    assert types and types <= plotly_bundle.TRACE_TYPES


def test_an_archive_that_is_not_the_pinned_one_is_refused():
    archive = b"a tarball from somewhere else"
    with pytest.raises(plotly_bundle.IntegrityError, match="nothing was installed"):
        plotly_bundle.verified(archive)
    # The same check passes the right bytes through (a sha512 of these bytes, base64).
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(archive).digest()).decode()
    assert plotly_bundle.verified(archive, integrity) is archive
