"""Settings shared by every deployment; each value that differs between machines comes from the
environment.

Environment variables read here:

``DATABASE_URL``        the system of record (``postgres://…``; ``sqlite:///…`` for the demo)
``DATABASE_APP_ROLE``   the application role ``migrate`` grants row access to (two-role setups)
``CELERY_BROKER_URL``   RabbitMQ (``amqp://…``), Redis (``redis://…``) or ``filesystem://``
``DJANGO_SECRET_KEY``   signing key for sessions and participant links
``DJANGO_ALLOWED_HOSTS``comma-separated host names
``DJANGO_DEBUG``        ``1`` to enable debug pages (never in production)
``EMAIL_URL``-style settings: ``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``,
``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``DEFAULT_FROM_EMAIL``
``FLOURISH_SITE_URL``   the address participants' links start with (``https://…``)
``FLOURISH_CODE_VERSION`` the commit recorded with every analysis run; the Docker image is built
                        with it (it has no ``.git``); unset: ``git rev-parse`` of the checkout
``LOGIN_FAILURE_LIMIT`` failed sign-ins per user name and address before a lock-out
``LOGIN_COOLOFF_MINUTES`` how long a lock-out lasts
``ANALYSIS_RUN_STALE_SECONDS``, ``ANALYSIS_RUN_SWEEP_SECONDS`` when beat re-queues an analysis
                        run whose worker went silent, and how often it looks
``CELERY_ANALYSIS_QUEUE`` the queue analysis runs are sent to (``analyses``)
``CELERY_WORKER_MAX_TASKS_PER_CHILD`` tasks a worker's pool process runs before it is replaced
``CANARY_SWEEP_SECONDS``, ``CANARY_TIMEOUT_SECONDS`` how often the arms' drift watch sends its
                        canary prompts (hourly) and how long it waits for an endpoint (10 s)
``ASSISTANT_API_KEYS``  the keys for the arms' endpoints, per host: ``host=key`` pairs separated by
                        commas (``api.openai.com=sk-…,llm.lab.example:8000=…``); the host is the
                        endpoint URL's, with its port if it names one. Per host, so that one
                        provider's key never reaches another arm's endpoint (a coordinator
                        chooses the URL); an unlisted host gets a placeholder, no key
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_HASHES
from kombu import Exchange, Queue

from config.security import csp_hash

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Local state of the embedded demo (SQLite file, file-system broker); ignored by git.
VAR_DIR = Path(os.environ.get("FLOURISH_VAR_DIR", BASE_DIR / "var"))
# JAX keeps compiled programs here, so a worker's second process need not compile them again
# (read when JAX starts, which is after settings load); within a process, a fit of data in the
# same size class reuses its compiled sampler (stats.bayes_growth).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(VAR_DIR / "jax-cache"))
# One JAX CPU device per chain of the Bayesian fits (4 chains), so that their chains run in
# parallel threads; set here because JAX reads it once, when it starts (stats.compiled).
os.environ.setdefault("JAX_NUM_CPU_DEVICES", "4")


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Django DATABASES entry for ``url``, with the options each engine needs here."""
    config = dj_database_url.parse(url)
    if config["ENGINE"] == "django.db.backends.postgresql":
        # psycopg 3's pool; pooling requires CONN_MAX_AGE = 0 (Django raises otherwise).
        config["CONN_MAX_AGE"] = 0
        config.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 8, "timeout": 10}
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        # The demo's web server, worker and beat share one file: take the write lock at BEGIN
        # (no lock-upgrade deadlocks) and let readers proceed during writes (WAL).
        config.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    return config


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "simple_history",
    "csp",
    "axes",
    "trials",
    "safety",
    "notifications",
    "surveys",
    "analytics",
    "federated",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.security.PersonalLinkHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Lets the configuration history name the signed-in user who made each change.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into its lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'flourish.sqlite3'}")
    )
}
# The role web processes and workers connect as; `migrate`, run as the owner role, grants it row
# access to every table (trials/database_roles.py). Empty: no grants (one role, as in the demo).
DATABASE_APP_ROLE = env_str("DATABASE_APP_ROLE", "")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out user name and address before any password is
# checked (so even the right password is refused during a lock-out), then Django's own backend.
# The groups' model permissions come from ModelBackend; the per-trial object permissions from
# the rules of trials/rules.py (rules' backend authenticates nobody).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "rules.permissions.ObjectPermissionBackend",
]
# Login throttling on every sign-in form (/admin/login/ and /accounts/login/): failures count per
# user name *and* address, so guessing one account's password stops after the limit while
# neither a shared office address nor a stranger typing someone's user name locks others out.
# Every failure, lock-out and sign-in is a row (AccessAttempt, AccessFailureLog, AccessLog; read
# only, in the admin, to superusers) and a WARNING log line from the "axes" loggers.
AXES_FAILURE_LIMIT = int(env_str("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env_str("LOGIN_COOLOFF_MINUTES", "30")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"  # 429 Too Many Requests
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# Participant pages and e-mails speak the participant's language; the admin follows the browser.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The site's own style sheet (config/static), beside the apps' static folders.
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Content-Security-Policy on every response (django-csp 4): scripts, styles, images, fonts and
# data fetches only from this server, no inline script or style (the templates link their CSS
# and JavaScript as files), nothing may frame a page, and forms post only back to this server.
# The dashboard page adds what Dash and Plotly need, and only that (dashboards.views).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Style attributes: only these two exact ones (CSP3 'unsafe-hashes'), which admin pages
        # write: simple-history's version list and a frozen plan's content (trials.admin).
        "style-src-attr": [
            UNSAFE_HASHES,
            csp_hash("border-top: 0"),
            csp_hash("white-space:pre-wrap"),
        ],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboards:trial_list"

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env_str("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Flourish <flourish@localhost>")

# Participant links are signed with SECRET_KEY and expire after this many seconds.
PARTICIPANT_LINK_MAX_AGE = int(env_str("PARTICIPANT_LINK_MAX_AGE", str(60 * 60 * 24 * 30)))
SITE_URL = env_str("FLOURISH_SITE_URL", "http://localhost:8000")
# Which code made a result (analytics.services.code_version); empty: the checkout's git commit.
FLOURISH_CODE_VERSION = env_str("FLOURISH_CODE_VERSION")

# Invitations: a row claimed for sending longer ago than the lease, and still not marked sent,
# belongs to a sender that died mid-send; it becomes "unknown" and is never resent by itself.
INVITATION_SEND_LEASE_SECONDS = int(env_str("INVITATION_SEND_LEASE_SECONDS", "600"))
INVITATION_MAX_ATTEMPTS = 3  # a refused connection is retried; the message never left

# Celery: reliability over throughput. A task may run twice after a worker dies, so every task
# is idempotent on a natural key.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "flourish")
# Model fits have a queue of their own, so that a deployment can give them workers of their own
# (`celery worker -Q analyses`, infra/RUNBOOK.md) and keep short tasks (sweeps, invitations) from
# waiting behind a fit. A worker started without -Q consumes every queue declared here (one, when
# both names are the same). Each is declared as Celery declares a queue it creates itself: an
# exchange and a routing key of its name.
ANALYSIS_QUEUE = env_str("CELERY_ANALYSIS_QUEUE", "analyses")
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in dict.fromkeys([CELERY_TASK_DEFAULT_QUEUE, ANALYSIS_QUEUE])
]
CELERY_TASK_ROUTES = {"analytics.tasks.analysis_run_execute_task": {"queue": ANALYSIS_QUEUE}}
# A pool process is replaced after this many tasks, which returns to the system the memory that
# JAX's compiled programs and NumPy's buffers keep after a fit.
CELERY_WORKER_MAX_TASKS_PER_CHILD = int(env_str("CELERY_WORKER_MAX_TASKS_PER_CHILD", "20"))
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results live in PostgreSQL rows, not in a result backend
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"confirm_publish": True}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands a message not acknowledged within this time to another worker, even while the
    # first still executes it: it must outlast the longest task (the hard time limit).
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_TASK_TIME_LIMIT + 600
# An analysis run whose worker has not reported for this long is re-queued by beat's sweep
# (analytics.services); the worker executing a run reports ten times in that span.
ANALYSIS_RUN_STALE_SECONDS = float(env_str("ANALYSIS_RUN_STALE_SECONDS", "300"))
ANALYSIS_RUN_SWEEP_SECONDS = float(env_str("ANALYSIS_RUN_SWEEP_SECONDS", "60"))
# The arms' drift watch (safety.canary): how often it probes the endpoints, how long it waits.
CANARY_SWEEP_SECONDS = float(env_str("CANARY_SWEEP_SECONDS", "3600"))
CANARY_TIMEOUT_SECONDS = float(env_str("CANARY_TIMEOUT_SECONDS", "10"))
ASSISTANT_API_KEYS = dict(pair.split("=", 1) for pair in env_list("ASSISTANT_API_KEYS", []))
CELERY_BEAT_SCHEDULE: dict = {
    # Runs whose worker stopped heart-beating; cheap when there are none.
    "analysis-runs-sweep": {
        "task": "analytics.tasks.analysis_runs_sweep",
        "schedule": ANALYSIS_RUN_SWEEP_SECONDS,
    },
    # Due invitations and reminders are rows; the sweep is cheap when nothing is due.
    "invitations-sweep": {"task": "surveys.tasks.invitations_sweep", "schedule": 60.0},
    "quality-sweep": {"task": "surveys.tasks.quality_sweep", "schedule": 600.0},
    # Notifications' backstop: what the task after each event did not send, and the daily digests.
    "notifications-sweep": {"task": "notifications.tasks.notifications_sweep", "schedule": 60.0},
    # Ended telemetry windows without a release; each is released once (keyed in the ledger).
    "telemetry-windows-sweep": {
        "task": "federated.tasks.telemetry_windows_sweep",
        "schedule": 3600.0,
    },
    # The arms' canary prompts (safety.canary); a sweep is keyed by its task id.
    "canary-sweep": {"task": "safety.tasks.canary_sweep", "schedule": CANARY_SWEEP_SECONDS},
}

# The Flower SuperLink (host:port) that telemetry release windows are submitted to; empty: none,
# and the sweep leaves windows waiting. Replies are awaited for FLOWER_REPLY_TIMEOUT seconds.
FLOWER_SUPERLINK = env_str("FLOWER_SUPERLINK")
FLOWER_REPLY_TIMEOUT = float(env_str("FLOWER_REPLY_TIMEOUT", "600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
