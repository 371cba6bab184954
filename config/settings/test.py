"""Settings for the test suite: a real PostgreSQL and a real broker, found by ``infra/services.py``
(``make test`` sets ``DATABASE_URL`` and ``CELERY_BROKER_URL`` before pytest starts)."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import database_from_url, env_str

DATABASE_URL = env_str("DATABASE_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if not DATABASE_URL.startswith("postgres") or not CELERY_BROKER_URL:
    raise ImproperlyConfigured(
        "The tests run against a real PostgreSQL and a real broker: run them with `make test`, "
        "or set DATABASE_URL=postgres://… and CELERY_BROKER_URL=amqp://… (or redis://…)."
    )
DATABASES = {"default": database_from_url(DATABASE_URL)}

SECRET_KEY = "test-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# A worker started by a test may send through a loopback SMTP server instead.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# Static files come from the apps' folders (runserver / the test client), not a collected copy.
STATIC_ROOT = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
