"""The throwaway servers `make test` starts on a machine where none is running."""

import shutil
from contextlib import ExitStack

import pytest

from infra.services import (
    broker_answers,
    find_postgres_bin,
    postgres_answers,
    start_postgres,
    start_redis,
)

pytestmark = pytest.mark.slow


@pytest.mark.skipif(find_postgres_bin("initdb") is None, reason="PostgreSQL binaries not installed")
def test_throwaway_postgres_starts_answers_and_is_removed():
    with ExitStack() as stack:
        url = start_postgres(stack)
        assert postgres_answers(url)
    assert not postgres_answers(url)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_throwaway_redis_starts_answers_and_is_removed():
    with ExitStack() as stack:
        url = start_redis(stack)
        assert broker_answers(url)
    assert not broker_answers(url)
