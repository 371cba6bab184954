"""The ServerApp's grid asks the SuperLink for replies promptly (federated.server_app.PromptGrid)
and keeps Flower's send_and_receive contract: every reply that arrives within the timeout, one
per message, and without a timeout all of them."""

import itertools
from types import SimpleNamespace

import pytest

from federated import server_app
from federated.server_app import PromptGrid

pytestmark = pytest.mark.unit


class _SlowLink:
    """A SuperLink stand-in: each message's reply becomes available at a given pull."""

    def __init__(self, ready_at_pull: dict[str, int]) -> None:
        self.ready_at_pull = ready_at_pull
        self.pulls = 0
        self.pulled: set[str] = set()

    def push_messages(self, messages):
        return [message.id for message in messages]

    def pull_messages(self, message_ids):
        self.pulls += 1
        ready = [
            message_id
            for message_id in message_ids
            if self.ready_at_pull[message_id] <= self.pulls and message_id not in self.pulled
        ]
        self.pulled.update(ready)
        return [_reply(message_id) for message_id in ready]


def _reply(message_id: str) -> SimpleNamespace:
    return SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=message_id))


def _messages(ids):
    return [SimpleNamespace(id=message_id) for message_id in ids]


def test_it_gathers_every_reply_however_late_without_a_timeout(monkeypatch):
    monkeypatch.setattr(server_app.time, "sleep", lambda seconds: None)
    link = _SlowLink({"a": 1, "b": 4, "c": 9})
    replies = PromptGrid(link).send_and_receive(_messages("abc"))
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b", "c"]
    assert link.pulls == 9  # no pull after the last reply


def test_it_returns_what_arrived_by_the_timeout(monkeypatch):
    clock = itertools.count(step=0.25)  # seconds, exact in binary
    monkeypatch.setattr(server_app.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(server_app.time, "sleep", lambda seconds: None)
    link = _SlowLink({"a": 1, "b": 2, "c": 10_000})
    replies = PromptGrid(link).send_and_receive(_messages("abc"), timeout=1.0)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
    # Asked until the clock reached the timeout (at the fourth pull), then no more.
    assert link.pulls == 4


@pytest.mark.django_db
def test_the_serverapp_keeps_flowers_own_http_requests_out_of_the_log_it_uploads():
    """Flower uploads the ServerApp's output to the SuperLink, one HTTP request per batch; were
    httpx's INFO line for each request logged, every upload would queue another and the run's end
    would wait out Flower's 3 s flush (flwr.supercore.logger.flush_logs)."""
    import logging

    from trials.models import Trial

    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    httpx_logger.setLevel(logging.INFO)
    context = SimpleNamespace(run_config={"trial": "no-such-trial", "window": 0})
    try:
        with pytest.raises(Trial.DoesNotExist):
            server_app.main(grid=_SlowLink({}), context=context)
        assert not httpx_logger.isEnabledFor(logging.INFO)
    finally:
        httpx_logger.setLevel(level)
