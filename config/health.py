"""``GET /healthz``: 200 when the database and the broker answer, 503 otherwise."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means unhealthy; report it, never raise
        return False, type(error).__name__
    return True, connection.vendor


def _broker_ok() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            transport = conn.transport_cls
    except Exception as error:
        return False, type(error).__name__
    return True, str(transport)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database_ok, database_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    healthy = database_ok and broker_ok
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": {"ok": database_ok, "detail": database_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
    }
    return JsonResponse(body, status=200 if healthy else 503)
