"""Settings for the survey-submission benchmark, in the benchmark process and its gunicorn.

The test settings (PostgreSQL, no debug, static files from the apps) on a database of the
benchmark's own, with a URLconf that adds the baseline view to the product's URLs, so the real
pages and the baseline go through the same middleware.
"""

from config.settings.test import *  # noqa: F403
from config.settings.test import DATABASES

# Created, migrated and dropped by the benchmark, on the server DATABASE_URL names: never the
# developer's data.
DATABASES["default"]["NAME"] = "bench_surveys"
ROOT_URLCONF = "infra.benchmarks.survey_urls"
