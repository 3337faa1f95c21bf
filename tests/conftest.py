"""Shared fixtures: the embedded mock server on a real loopback socket."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

from rxchat.mock import MockServer

# Property tests: never fail on a slow machine for being slow (no deadline, no too_slow check).
# In CI (CI=true) examples are derived from the test, not drawn at random, so a run is
# reproducible; locally each run explores new examples.
settings.register_profile("rxchat", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "rxchat-ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    print_blob=True,
)
settings.load_profile("rxchat-ci" if os.environ.get("CI") else "rxchat")


@pytest.fixture
async def mock_server() -> AsyncIterator[MockServer]:
    """A mock server on a free 127.0.0.1 port; ``mock_server.url`` is the ``/v1`` base URL."""
    async with MockServer() as server:
        yield server


@pytest.fixture
def server(mock_server: MockServer) -> MockServer:
    """``mock_server`` under the short name most test files use (one server per test)."""
    return mock_server


@pytest.fixture
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail the test if it leaves tasks running on the loop (connections, readers, timers)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(20):  # let cancellations that are already under way finish
        left = asyncio.all_tasks() - before - {asyncio.current_task()}
        if not left:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"tasks left running: {sorted(map(repr, left))}")
