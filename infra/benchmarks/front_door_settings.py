"""Settings for the front-door benchmark, in the benchmark process and its gunicorn.

The test settings on a database of the run's own (``FRONT_DOOR_BENCH_DATABASE``, named per run
by the benchmark), e-mail through the loopback SMTP server it starts (``EMAIL_BACKEND``,
``EMAIL_HOST``, ``EMAIL_PORT``), and a URLconf that adds the baseline view to the product's
URLs. The load generator stands in for a TLS-terminating proxy that appends each participant's
address to ``X-Forwarded-For``, so the per-client limits of the front door
(``surveys.services.FRONT_DOOR_LIMITS``) count each simulated person as the client they are
(``config.security.client_ip``).
"""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import DATABASES

DATABASES["default"]["NAME"] = os.environ["FRONT_DOOR_BENCH_DATABASE"]
ROOT_URLCONF = "infra.benchmarks.front_door_urls"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
