"""The embedded demo and local development: SQLite and a file-system broker, no servers needed.

Set ``DATABASE_URL`` / ``CELERY_BROKER_URL`` to use PostgreSQL and a real broker instead.
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env_bool, env_str

DEBUG = env_bool("DJANGO_DEBUG", True)
# A fixed key is fine for a demo that listens on loopback only; production refuses to start without
# its own key.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-demo-key-not-for-production-0123456789abcdefghij")

if CELERY_BROKER_URL.startswith("filesystem://"):  # noqa: F405
    # Kombu's file-system transport moves message files between folders; they must exist.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Without this, broadcast (pidbox) files land in ./control of the working directory.
        "control_folder": str(_broker_dir / "control"),
    }

# Every e-mail becomes a file in var/mail/ (one per connection), where the demo's users read
# their invitations and notifications.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
# Static files come from the apps' folders (runserver / the test client), not a collected copy.
STATIC_ROOT = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
