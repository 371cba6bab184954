import pytest
from kombu import Connection

pytestmark = pytest.mark.django_db


def test_healthz_checks_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "detail": "postgresql"}
    assert body["broker"]["ok"] is True


def test_healthz_is_503_when_the_broker_is_down(client, monkeypatch):
    from config.celery import app

    # A real connection attempt to a loopback port where nothing listens (9, discard).
    monkeypatch.setattr(
        app, "connection_for_write", lambda: Connection("amqp://guest:guest@127.0.0.1:9//")
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"]["ok"] is False and body["database"]["ok"] is True
