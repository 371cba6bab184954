"""The Flower ServerApp that releases windows imports none of the statistics stack: its
SuperExec (federated.superexec) imports Flower, Django and the release path before it forks a
ServerApp task, and the task then calibrates and draws the release with OpenDP's core modules
(federated.mechanism). Only the analysis worker fits models; a window needs none of them."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.federated.conftest import TELEMETRY

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

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
vector = {{"minutes": 30, "sessions": 2, "late_night_days": 1}}
release(plan, {{"a": [vector] * 3, "b": [vector] * 3}}, reserved_nano_rho=plan.nano_rho)
rho_to_epsilon(0.01, 1e-7)
print(json.dumps(sorted(name for name in sys.modules if name.partition(".")[0] in {stack})))
"""


def test_a_serverapp_task_releases_a_window_without_the_statistics_stack():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://flourish@db.example.org:5432/flourish",
        "CELERY_BROKER_URL": "amqp://flourish@mq.example.org:5672//",
        "DJANGO_ALLOWED_HOSTS": "flourish.example.org",
    }
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE.format(stack=set(STATISTICS_STACK)),
            json.dumps(TELEMETRY),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    loaded = json.loads(probe.stdout.splitlines()[-1])
    assert loaded == [], f"imported by the ServerApp: {loaded}"
