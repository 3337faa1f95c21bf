"""Fixtures of the stream log tests: each contract test runs on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import rxchat

BACKENDS = ["memory"]

# Short times so that lease expiry and reconnects are observed in a test's time.
FAST = {"lease": 0.6, "flush_interval": 0.005, "give_up_after": 5.0}


@pytest.fixture(params=BACKENDS)
async def stream_log(request: pytest.FixtureRequest) -> AsyncIterator[rxchat.StreamLog]:
    """A stream log of each kind, with short leases."""
    if request.param == "memory":
        log: rxchat.StreamLog = rxchat.MemoryStreamLog(**FAST)  # type: ignore[arg-type]
    else:  # pragma: no cover - filled in with the Redis backend
        raise AssertionError(request.param)
    async with log:
        yield log
