"""Settings for the survey-submission benchmark, in the benchmark process and its gunicorn.

The test settings (PostgreSQL, no debug, static files from the apps) on a database of the
benchmark's own, with a URLconf that adds the baseline view to the product's URLs, so the real
pages and the baseline go through the same middleware.
"""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import DATABASES

# Created, migrated and dropped by the benchmark, on the server DATABASE_URL names: never the
# developer's data, and named per run (infra.bench.run_database_name), which the benchmark
# passes to its gunicorn workers in the environment.
DATABASES["default"]["NAME"] = os.environ["SURVEY_BENCH_DATABASE"]
ROOT_URLCONF = "infra.benchmarks.survey_urls"
