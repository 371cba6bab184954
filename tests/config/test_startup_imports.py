"""The web process starts without the numerical stack. The models' libraries load in the worker
that fits them (``analytics.services`` imports ``analytics.analysis`` inside the run), Dash on the
first dashboard request, OpenDP on the first use of a mechanism, SciPy and pandas in the admin
views that compute with them, so gunicorn's workers and every ``manage.py`` command that loads
the URL conf start without them. NumPy stays: a submission's careless-responding flags use it."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]

# scikit-learn comes with OpenDP; PyTensor with PyMC. The openai client is not numerical but as
# large; only the worker's drift watch sends with it (safety.canary).
NUMERICAL_STACK = (
    "scipy",
    "pandas",
    "pyarrow",
    "jax",
    "numpyro",
    "opendp",
    "sklearn",
    "statsmodels",
    "pymc",
    "pytensor",
    "dash",
    "openai",
)

# What gunicorn does before its first answer: config.wsgi runs django.setup() (settings, every
# app's ready(), the admin's autodiscovery of every admin module), then the first request loads
# the URL conf and every view module it names.
PROBE = """
import json, sys
import config.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
print(json.dumps(sorted(name for name in sys.modules if name.partition(".")[0] in {stack})))
"""


def test_the_web_process_starts_without_the_numerical_stack():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://flourish@db.example.org:5432/flourish",
        "CELERY_BROKER_URL": "amqp://flourish@mq.example.org:5672//",
        "DJANGO_ALLOWED_HOSTS": "flourish.example.org",
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(stack=set(NUMERICAL_STACK))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    loaded = json.loads(probe.stdout.splitlines()[-1])
    assert loaded == [], f"imported at start-up: {loaded}"
