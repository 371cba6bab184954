"""Real brokers and a real ``celery beat`` for the fault tests of analysis runs."""

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kombu import Connection

from infra.services import broker_answers
from tests.conftest import WorkerProcess, start_celery_process

# Both brokers the platform supports, on their usual local ports (Redis on a database of its own).
BROKERS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/3",
}


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    queue: str  # this test's own, so no other worker takes its tasks

    def env(self, **extra: str) -> dict[str, str]:
        """The test's broker, with its queue for every task: the sweep's re-queued runs too."""
        queues = {"CELERY_TASK_DEFAULT_QUEUE": self.queue, "CELERY_ANALYSIS_QUEUE": self.queue}
        return {"CELERY_BROKER_URL": self.url, **queues, **extra}


@pytest.fixture(params=list(BROKERS))
def broker(request) -> Iterator[Broker]:
    url = BROKERS[request.param]
    if not broker_answers(url):
        pytest.skip(f"No {request.param} broker answers at {url}.")
    broker = Broker(request.param, url, f"flourish-fault-{secrets.token_hex(4)}")
    yield broker
    _forget_queue(broker)


def _forget_queue(broker: Broker) -> None:
    """Delete the test's queue, and on Redis the message a killed worker left unacknowledged
    (Redis would otherwise restore it into the queue once its visibility timeout passed)."""
    with Connection(broker.url) as connection:
        channel = connection.default_channel
        if not broker.url.startswith("redis://"):
            channel.queue_delete(broker.queue)
            return
        # Kombu's Redis channel deletes only the queues it declared itself; these are keys.
        client = channel.client
        for tag, payload in client.hscan_iter(channel.unacked_key):
            if json.loads(payload)[-1] == broker.queue:  # [message, exchange, routing key]
                client.zrem(channel.unacked_index_key, tag)
                client.hdel(channel.unacked_key, tag)
        client.delete(broker.queue, channel.keyprefix_queue % broker.queue)


def start_celery_beat(
    artifacts_dir: Path, tmp_path: Path, *, name: str, env: dict[str, str]
) -> WorkerProcess:
    """``celery beat`` in its own process group, publishing the beat schedule to ``env``'s
    broker and queue; returns once it has started."""
    schedule, pidfile = str(tmp_path / "beat-schedule"), str(tmp_path / "beat.pid")
    return start_celery_process(
        artifacts_dir, name=name, arguments=["beat", "-s", schedule, "--pidfile", pidfile], env=env
    )
