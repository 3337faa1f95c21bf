"""Fixtures of the stream log tests: each contract test runs on every backend, Redis on a real
redis-server (one per session; each test has its own key prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from _redis_support import RedisServer

import rxchat
import rxchat.redis

BACKENDS = ["memory", "redis"]

# Short times so that lease expiry and reconnects are observed in a test's time.
FAST = {"lease": 0.6, "flush_interval": 0.005, "give_up_after": 5.0}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free 127.0.0.1 port for the whole session."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of its own for each test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=BACKENDS)
async def stream_log(
    request: pytest.FixtureRequest, redis_prefix: str
) -> AsyncIterator[rxchat.StreamLog]:
    """A stream log of each kind, with short leases."""
    if request.param == "memory":
        log: rxchat.StreamLog = rxchat.MemoryStreamLog(**FAST)  # type: ignore[arg-type]
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        log = rxchat.redis.RedisStreamLog(server.url, prefix=redis_prefix, **FAST)  # type: ignore[arg-type]
    async with log:
        yield log
