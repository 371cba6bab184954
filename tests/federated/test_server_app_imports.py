"""The Flower ServerApp that releases windows imports none of the statistics stack: its
SuperExec (federated.superexec) imports Flower, Django and the release path before it forks a
ServerApp task, and the task then calibrates and draws the release with OpenDP's core modules
(federated.mechanism). Only the analysis worker fits models; a window needs none of them."""

import json

import pytest

from tests.federated.conftest import TELEMETRY
from tests.import_probe import packages_loaded

pytestmark = pytest.mark.unit

STATISTICS_STACK = (
    "scipy",
    "pandas",
    "pyarrow",
    "statsmodels",
    "sklearn",
    "jax",
    "numpyro",
    "pymc",
    "pytensor",
)

# What a ServerApp task has loaded once it has released a window: the SuperExec's imports (those
# of the ServerApp's `main`, Django set up), then the window's OpenDP calibration and draw.
PROBE = """
import json, sys
from federated.superexec import _entry_point
_entry_point("serverapp")
from federated.mechanism import release, release_plan, rho_to_epsilon
from trials.telemetry import TelemetrySection
plan = release_plan(TelemetrySection.model_validate(json.loads(sys.argv[1])))
vector = {"minutes": 30, "sessions": 2, "late_night_days": 1}
release(plan, {"a": [vector] * 3, "b": [vector] * 3}, reserved_nano_rho=plan.nano_rho)
rho_to_epsilon(0.01, 1e-7)
"""


def test_a_serverapp_task_releases_a_window_without_the_statistics_stack():
    loaded = packages_loaded(PROBE, STATISTICS_STACK, json.dumps(TELEMETRY))
    assert loaded == [], f"imported by the ServerApp: {loaded}"
