"""The mock server notices a client that goes away mid-stream, records it and stops generating."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from mock_helpers import USER

from rxchat.mock import MockServer, MockState, create_app


class _PlainRunner:
    """The mock app under a default aiohttp runner (no handler cancellation): polling path."""

    def __init__(self) -> None:
        self.state = MockState()
        self.runner = web.AppRunner(create_app(state=self.state), shutdown_timeout=0.5)
        self.url = ""

    async def __aenter__(self) -> _PlainRunner:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


@pytest.fixture(params=["handler_cancellation", "polling"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[MockServer | _PlainRunner]:
    if request.param == "handler_cancellation":
        async with MockServer() as s:
            yield s
    else:
        async with _PlainRunner() as p:
            yield p


def _state(server: MockServer | _PlainRunner) -> MockState:
    return server.state


@pytest.mark.parametrize(
    ("model", "read_first"),
    [
        ("mock?tokens=100000&delay=0.02", True),  # paced stream
        ("mock?stall_first=30", False),  # stalled before the first chunk
        ("mock?tokens=50&stall_between=30&stall_after=3", True),  # stalled mid-stream
        ("mock?tokens=50&stall_first=30&keepalive=0.01", True),  # stalled, sending keep-alives
        ("mock?tokens=1000000", True),  # fast path: big batched writes
        ("mock?tokens=1000&drip=1", True),  # one byte at a time
        ("mock?tokens=1000&drip=1&drip_delay=0.002", True),  # one byte at a time, paced
    ],
)
async def test_disconnect_is_recorded_and_generation_stops(
    server: MockServer | _PlainRunner, http: aiohttp.ClientSession, model: str, read_first: bool
) -> None:
    state = _state(server)
    body = {"model": model, "messages": USER, "stream": True}
    resp = await http.post(server.url + "/chat/completions", json=body)
    assert resp.status == 200
    if read_first:
        await resp.content.readany()
    await state.wait_for(lambda: state.active_streams == 1, 2.0)
    closed_at = time.monotonic()
    resp.close()
    record = await state.wait_for_disconnect(timeout=2.0)
    assert record.at >= closed_at
    assert record.request_id == state.streams[-1].request_id
    stream = state.streams[-1]
    assert stream.outcome == "disconnected"
    assert record.chunks == stream.chunks
    await state.wait_for_idle(2.0)
    chunks = stream.chunks
    await asyncio.sleep(0.05)
    assert stream.chunks == chunks  # nothing more was generated
    assert state.completed == 0


async def test_normal_completion_is_not_a_disconnect(
    server: MockServer | _PlainRunner, http: aiohttp.ClientSession
) -> None:
    state = _state(server)
    body = {"model": "mock?tokens=3&delay=0.001", "messages": USER, "stream": True}
    for _ in range(3):
        async with http.post(server.url + "/chat/completions", json=body) as resp:
            await resp.read()
    await state.wait_for(lambda: state.completed == 3, 2.0)
    assert state.disconnects == []
    assert [s.outcome for s in state.streams] == ["completed"] * 3
    assert state.active_streams == 0


async def test_several_disconnects_in_order(
    mock_server: MockServer, http: aiohttp.ClientSession
) -> None:
    body = {"model": "mock?tokens=1000&delay=0.01", "messages": USER, "stream": True}
    responses = [
        await http.post(mock_server.url + "/chat/completions", json=body) for _ in range(3)
    ]
    for r in responses:
        await r.content.readany()
    for r in reversed(responses):
        r.close()
        await asyncio.sleep(0.01)
    await mock_server.wait_for_disconnect(2.0, count=3)
    ids = [d.request_id for d in mock_server.disconnects]
    assert ids == [s.request_id for s in reversed(mock_server.streams)]


async def test_wait_for_disconnect_times_out(mock_server: MockServer) -> None:
    with pytest.raises(TimeoutError):
        await mock_server.wait_for_disconnect(0.05)


async def test_close_with_a_stream_running(http: aiohttp.ClientSession) -> None:
    server = MockServer()
    await server.start()
    body = {"model": "mock?stall_first=30", "messages": USER, "stream": True}
    resp = await http.post(server.url + "/chat/completions", json=body)
    await server.state.wait_for(lambda: server.active_streams == 1, 2.0)
    await server.close()
    assert server.active_streams == 0
    assert server.streams[-1].outcome == "disconnected"
    resp.close()
