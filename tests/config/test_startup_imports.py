"""The web process starts without the numerical stack. The models' libraries load in the worker
that fits them (``analytics.services`` imports ``analytics.analysis`` inside the run), Dash on the
first dashboard request, OpenDP on the first use of a mechanism, SciPy and pandas in the admin
views that compute with them, so gunicorn's workers and every ``manage.py`` command that loads
the URL conf start without them. NumPy stays: a submission's careless-responding flags use it."""

import pytest

from tests.import_probe import packages_loaded

pytestmark = pytest.mark.unit

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
import config.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
"""


def test_the_web_process_starts_without_the_numerical_stack():
    loaded = packages_loaded(PROBE, NUMERICAL_STACK)
    assert loaded == [], f"imported at start-up: {loaded}"
