"""Helpers for the relay tests: servers on loopback, independent SSE parsers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx_sse._decoders as httpx_sse_decoders
from aiohttp import web
from httpx_sse import ServerSentEvent as HttpxEvent

import rxchat


def parse_with_httpx_sse(body: bytes, *, split: int | None = None) -> list[HttpxEvent]:
    """Events of an SSE body as httpx-sse's decoder sees them (optionally fed in pieces)."""
    lines = httpx_sse_decoders.SSELineDecoder()
    decoder = httpx_sse_decoders.SSEDecoder()
    text = body.decode("utf-8")
    step = split or len(text) or 1
    events = []
    for start in range(0, len(text), step):
        for line in lines.decode(text[start : start + step]):
            event = decoder.decode(line)
            if event is not None:
                events.append(event)
    for line in lines.flush():
        event = decoder.decode(line)
        if event is not None:
            events.append(event)
    return events


def parse_with_rxchat(body: bytes) -> list[rxchat.ServerSentEvent]:
    decoder = rxchat.SSEDecoder()
    return [*decoder.feed(body), *decoder.flush()]


def data_events(body: bytes) -> list[tuple[str, str, str]]:
    """``(id, event, data)`` of every event of a body (httpx-sse), the same as rxchat decodes."""
    ours = [(e.id or "", e.event or "message", e.data) for e in parse_with_rxchat(body)]
    theirs = [(e.id, e.event, e.data) for e in parse_with_httpx_sse(body)]
    assert ours == theirs
    return theirs


@contextlib.asynccontextmanager
async def aiohttp_server(app: web.Application, **runner: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port; yields ``http://127.0.0.1:PORT``."""
    app_runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, **runner)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await app_runner.cleanup()


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port, on this loop."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
