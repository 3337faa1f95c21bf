"""Stopping a stream stops the spend: every way a user stops reading closes the TCP connection.

The mock server (on its own thread) records the moment it notices the disconnect; the bound of
100 ms is functional — a path that relied on a timeout, the garbage collector or the end of the
answer would take seconds. ``benchmarks/bench_faults.py`` reports the measured latencies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from cancelkit import PATHS, Stop
from faultkit import HANG_GUARD
from support import ThreadedMock

from rxchat._portal import get_portal

BOUND = 0.1  # seconds from the user's action to the server noticing
ATTEMPTS = 3  # best of: a loaded CI machine may deschedule a thread once


@pytest.mark.parametrize("path", [pytest.param(p, id=p.__name__) for p in PATHS])
async def test_stopping_closes_the_connection_at_once(
    path: Callable[[ThreadedMock], Awaitable[Stop]],
    threaded_server: ThreadedMock,
    no_leftover_tasks: None,
) -> None:
    stops: list[Stop] = []
    async with asyncio.timeout(HANG_GUARD):
        for _ in range(ATTEMPTS):
            stop = await path(threaded_server)
            stops.append(stop)
            # The server stopped generating: nothing written after it noticed.
            assert stop.outcome == "disconnected"
            assert stop.chunks_later == stop.chunks_at_disconnect
            if stop.latency < BOUND:
                break
    assert min(s.latency for s in stops) < BOUND, [round(s.latency, 4) for s in stops]
    await threaded_server.acall(threaded_server.server.wait_for_idle(2))


async def test_sync_paths_leave_nothing_on_rxchat_loop(threaded_server: ThreadedMock) -> None:
    """After the sync paths, rxchat's background loop runs no task of theirs."""
    from cancelkit import sync_event_stream_exit, sync_for_break, sync_with_exit

    for path in (sync_for_break, sync_with_exit, sync_event_stream_exit):
        await path(threaded_server)
    portal = get_portal()

    async def others() -> list[str]:
        me = asyncio.current_task()
        for _ in range(20):
            left = [t for t in asyncio.all_tasks() if t is not me]
            if not left:
                return []
            await asyncio.sleep(0.01)
        return [repr(t) for t in left]

    left = await asyncio.wrap_future(portal.submit(others()))
    assert left == []


async def test_ctrl_c_in_the_cli_closes_the_connection(
    threaded_server: ThreadedMock, no_leftover_tasks: None
) -> None:
    from cancelkit import cli_interrupt

    stops: list[Stop] = []
    async with asyncio.timeout(HANG_GUARD * 2):
        for _ in range(ATTEMPTS):
            stop = await cli_interrupt(threaded_server)
            stops.append(stop)
            assert stop.outcome == "disconnected"
            assert stop.chunks_later == stop.chunks_at_disconnect
            if stop.latency < BOUND:
                break
    assert min(s.latency for s in stops) < BOUND, [round(s.latency, 4) for s in stops]
