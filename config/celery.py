"""The Celery application shared by web processes, workers and beat.

Settings come from Django's settings under the ``CELERY_`` namespace, so the broker is chosen by
the same environment variables as everything else (see ``config/settings/base.py``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# DjangoTask adds delay_on_commit(): tasks are enqueued only once the transaction commits.
app = Celery("flourish", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
