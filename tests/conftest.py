"""Shared fixtures: the embedded mock server on a real loopback socket."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
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


@pytest.fixture
async def sse_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """``(base_url, bodies)``: a server that answers every chat request with ``bodies[0]``, the
    SSE body the test put there, byte for byte."""
    bodies: list[bytes] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(bodies[0])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}/v1", bodies
    finally:
        await runner.cleanup()
