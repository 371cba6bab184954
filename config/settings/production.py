"""Production: every secret and address from the environment, HTTPS everywhere.

Passes ``manage.py check --deploy`` with no warnings when ``DJANGO_SECRET_KEY`` is a long random
value. Behind a TLS-terminating proxy, set ``DJANGO_SECURE_PROXY_SSL_HEADER=1``.
"""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import SECRET_KEY, env_bool, env_str

DEBUG = False
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        "Set DJANGO_SECRET_KEY to a random value of at least 50 characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`."
    )
if not env_str("DATABASE_URL"):
    raise ImproperlyConfigured("Set DATABASE_URL (postgres://user:password@host:5432/name).")
if not env_str("CELERY_BROKER_URL"):
    raise ImproperlyConfigured("Set CELERY_BROKER_URL (amqp://user:password@host:5672//).")

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Load balancers probe health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = int(env_str("DJANGO_SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
