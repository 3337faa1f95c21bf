"""rxchat._compat: every aiohttp internal rxchat relies on, checked against the installed aiohttp.

If one of these fails after an aiohttp upgrade, the matching function in ``rxchat/_compat.py``
needs a new implementation; nothing else in rxchat touches aiohttp's internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rxchat import _compat


def test_self_check_finds_every_internal() -> None:
    assert _compat.self_check() == []


@pytest.fixture
async def slow_body() -> AsyncIterator[str]:
    """A server that sends two parts of a body and then waits (the connection stays open)."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"part one;")
        await resp.write(b"part two;")
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        release.set()
        await runner.cleanup()


async def test_take_buffered_returns_unread_bytes(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        for _ in range(100):
            if len(_compat.take_buffered(resp.content)) or resp.content.is_eof():
                break
            await asyncio.sleep(0.01)
        # Taken once: the buffer is empty afterwards.
        assert _compat.take_buffered(resp.content) == b""
        resp.close()


async def test_take_buffered_honours_a_partial_read(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        first = await resp.content.readexactly(5)  # leaves an offset inside the first part
        for _ in range(100):
            if resp.content._size >= 13:  # the rest of both parts has arrived
                break
            await asyncio.sleep(0.01)
        rest = _compat.take_buffered(resp.content)
        assert first + rest == b"part one;part two;"
        resp.close()


async def test_fail_reader_wakes_a_waiting_read(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        await resp.content.readexactly(len(b"part one;part two;"))
        waiting = asyncio.ensure_future(resp.content.readany())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        error = RuntimeError("woken")
        _compat.fail_reader(resp.content, error)
        with pytest.raises(RuntimeError, match="woken"):
            await asyncio.wait_for(waiting, 2)
        resp.close()


async def test_on_connection_lost_fires_and_can_be_removed(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session:
        fired: list[str] = []
        async with session.get(slow_body) as resp:
            unwatch = _compat.on_connection_lost(resp, lambda: fired.append("lost"))
            assert unwatch is not None
            resp.close()  # closes the TCP connection
            for _ in range(100):
                if fired:
                    break
                await asyncio.sleep(0.01)
        assert fired == ["lost"]
        async with session.get(slow_body) as resp:
            unwatch = _compat.on_connection_lost(resp, lambda: fired.append("again"))
            assert unwatch is not None
            unwatch()
            resp.close()
            await asyncio.sleep(0.05)
        assert fired == ["lost"]


async def test_close_connector_now_closes_without_awaiting() -> None:
    connector = aiohttp.TCPConnector()
    assert _compat.close_connector_now(connector)
    assert connector.closed
    await connector.close()  # idempotent, no warning


def test_parser_errors_are_known() -> None:
    from aiohttp import http_exceptions

    for cls in (
        http_exceptions.TransferEncodingError,
        http_exceptions.ContentLengthError,
        http_exceptions.BadStatusLine,
        http_exceptions.LineTooLong,
    ):
        assert issubclass(cls, _compat.HTTP_PROCESSING_ERRORS)
        assert not issubclass(cls, aiohttp.ClientError)  # why rxchat must catch them itself
