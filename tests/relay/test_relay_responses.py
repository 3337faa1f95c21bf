"""aiohttp and ASGI responses over real sockets: headers, disconnect policy, slow clients, stop."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from relay_support import aiohttp_server, data_events, user, uvicorn_server

import rxchat
from rxchat import operators as ops
from rxchat import relay
from rxchat.mock import MockServer


def chunks(url: str, model: str) -> Any:
    return rxchat.chat_completion_stream(
        model=model, messages=user("Hi"), base_url=url, api_key="k"
    )


FINISHED = web.AppKey("finished", list)


def live_app(mock_url: str, **options: Any) -> web.Application:
    """GET /chat?model=...&format=... relays a new generation (no log)."""
    finished: list[relay.SSEStream] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        source = chunks(mock_url, request.query.get("model", "mock"))
        response = await relay.aiohttp_response(
            request,
            source,
            request.query.get("format", "events"),
            **options,  # type: ignore[arg-type]
        )
        finished.append(response[relay.STREAM_KEY])
        return response

    app = web.Application()
    app[FINISHED] = finished
    app.router.add_get("/chat", chat)
    return app


async def read_events(response: aiohttp.ClientResponse, count: int) -> bytes:
    """Read until ``count`` events have arrived; returns what was read."""
    body = b""
    while body.count(b"\n\n") < count:
        body += await response.content.readany()
    return body


@pytest.mark.parametrize("format", ["openai", "events", "ai-sdk-ui"])
async def test_aiohttp_headers(mock_server: MockServer, format: str) -> None:
    async with (
        aiohttp_server(live_app(mock_server.url)) as base,
        aiohttp.ClientSession() as http,
        http.get(f"{base}/chat", params={"format": format}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        ui = response.headers.get("x-vercel-ai-ui-message-stream")
        assert ui == ("v1" if format == "ai-sdk-ui" else None)
        body = await response.read()
    assert data_events(body)[-1][2] in ("[DONE]",) or data_events(body)[-1][1] == "done"


async def test_cancel_policy_closes_the_upstream(mock_server: MockServer) -> None:
    app = live_app(mock_server.url, disconnect_poll=0.05)
    async with aiohttp_server(app) as base, aiohttp.ClientSession() as http:
        response = await http.get(f"{base}/chat", params={"model": "mock?tokens=500&delay=0.02"})
        await read_events(response, 3)
        response.close()  # the browser tab closes
        record = await mock_server.wait_for_disconnect(timeout=5)
        assert record.chunks < 500
        for _ in range(100):
            if app[FINISHED]:
                break
            await asyncio.sleep(0.02)
        assert app[FINISHED][0].outcome == "disconnected"
    assert mock_server.streams[0].outcome == "disconnected"


async def test_detach_policy_lets_the_generation_finish(mock_server: MockServer) -> None:
    app = live_app(mock_server.url, disconnect_poll=0.05, on_disconnect="detach")
    async with aiohttp_server(app) as base, aiohttp.ClientSession() as http:
        response = await http.get(f"{base}/chat", params={"model": "mock?tokens=40&delay=0.01"})
        await read_events(response, 3)
        response.close()
        await mock_server.wait_for_idle(timeout=10)
    assert mock_server.streams[0].outcome == "completed"
    assert mock_server.disconnects == []


async def test_asgi_fastapi_response_and_disconnect(mock_server: MockServer) -> None:
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/chat")
    async def chat(model: str = "mock", format: str = "events") -> Any:
        return relay.asgi_response(chunks(mock_server.url, model), format)  # type: ignore[arg-type]

    async with uvicorn_server(api) as base, aiohttp.ClientSession() as http:
        async with http.get(
            f"{base}/chat", params={"format": "ai-sdk-ui", "model": "mock?tokens=6"}
        ) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            assert r.headers["X-Accel-Buffering"] == "no"
            assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
            parts = [d for _, _, d in data_events(await r.read())]
        assert parts[-1] == "[DONE]" and orjson.loads(parts[-2])["type"] == "finish"
        response = await http.get(f"{base}/chat", params={"model": "mock?tokens=500&delay=0.02"})
        await read_events(response, 3)
        response.close()
        record = await mock_server.wait_for_disconnect(timeout=5)
        assert record.chunks < 500


async def test_starlette_streaming_response_with_sse() -> None:
    """Any framework: the SSEStream is an async iterator of bytes with its headers."""
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def chat(request: Any) -> StreamingResponse:
        items = [
            {
                "id": "c",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "a\n\nb"}, "finish_reason": "stop"}],
            }
        ]
        body = relay.sse(items, "events")
        return StreamingResponse(body, headers=body.headers)

    async with (
        uvicorn_server(Starlette(routes=[Route("/", chat)])) as base,
        aiohttp.ClientSession() as http,
        http.get(base) as response,
    ):
        events = data_events(await response.read())
    assert orjson.loads(events[0][2])["delta"] == "a\n\nb"
    assert [e for _, e, _ in events] == ["content.delta", "content.done", "done"]


async def slow_client(port: int, path: str) -> socket.socket:
    """A raw HTTP client with a tiny receive buffer that does not read (yet)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


async def read_all(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    received = b""
    while not received.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
        data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        if not data:
            break
        received += data
    sock.close()
    return received


async def test_a_slow_client_is_cut_off_and_the_others_are_not(mock_server: MockServer) -> None:
    """A shared live stream cannot wait for one browser: the slow one is cut off, with a reason."""
    # about 250 kB/s (a fast model is 25 kB/s); the fast browser takes it as it comes
    shared = chunks(mock_server.url, "mock?tokens=3000&delay=0.001").pipe(ops.broadcast())
    app = live_app(mock_server.url)

    async def chat(request: web.Request) -> web.StreamResponse:
        # small kernel buffers, so that a client that does not read is noticed soon
        assert request.transport is not None
        request.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
        )
        response = await relay.aiohttp_response(
            request, shared, "openai", max_buffer=64 * 1024, overflow_grace=30.0
        )
        app[FINISHED].append(response[relay.STREAM_KEY])
        return response

    app.router.add_get("/shared", chat)
    async with aiohttp_server(app) as base, aiohttp.ClientSession() as http:

        async def fast_browser() -> bytes:
            async with http.get(f"{base}/shared") as fast:
                return await fast.read()

        fast = asyncio.ensure_future(fast_browser())
        while not mock_server.requests:
            await asyncio.sleep(0.01)
        slow = await slow_client(int(base.rsplit(":", 1)[1]), "/shared")
        body = await fast
        assert data_events(body)[-1][2] == "[DONE]"  # the other browser got all of it
        await mock_server.wait_for_idle(timeout=10)
        assert mock_server.streams[0].outcome == "completed"  # the generation went on
        received = await read_all(slow)  # the slow one reads at last: the reason is its end
        for _ in range(100):
            if len(app[FINISHED]) == 2:
                break
            await asyncio.sleep(0.02)
    fast_stream, slow_stream = app[FINISHED]
    assert fast_stream.outcome == "completed"
    assert slow_stream.outcome == "slow_client"
    assert isinstance(slow_stream.error, relay.SlowClientError)
    assert b"the client read too slowly" in received and b"SlowClientError" in received
    assert b"[DONE]" not in received


async def test_a_slow_reader_of_a_stream_log_is_paced_not_cut_off(mock_server: MockServer) -> None:
    """A stream log waits for each reader: the slow one reads at its pace, memory stays bounded."""
    log = rxchat.MemoryStreamLog()
    app = live_app(mock_server.url)

    async def read(request: web.Request) -> web.StreamResponse:
        response = await relay.aiohttp_response(
            request, log=log, stream_id=request.match_info["id"], format="openai",
            max_buffer=64 * 1024, on_disconnect="detach",
        )  # fmt: skip
        app[FINISHED].append(response[relay.STREAM_KEY])
        return response

    app.router.add_get("/streams/{id}", read)
    async with log, aiohttp_server(app) as base:
        handle = await log.publish(chunks(mock_server.url, "mock?tokens=6000&delay=0"))
        slow = await slow_client(int(base.rsplit(":", 1)[1]), f"/streams/{handle.stream_id}")
        assert (await handle.wait()).status == "completed"
        received = await read_all(slow)
    assert received.rstrip().endswith(b"data: [DONE]\n\n\r\n0")
    [stream] = app[FINISHED]
    assert stream.outcome == "completed"


async def test_stop_by_stream_id(mock_server: MockServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        source = chunks(mock_server.url, "mock?tokens=500&delay=0.02")
        return await relay.aiohttp_response(
            request, source, "ai-sdk-ui", stream_id=request.match_info["id"]
        )

    async def stop(request: web.Request) -> web.Response:
        return web.json_response({"stopped": await relay.stop(request.match_info["id"])})

    app = web.Application()
    app.router.add_get("/chat/{id}", chat)
    app.router.add_post("/chat/{id}/stop", stop)
    async with aiohttp_server(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/chat/s1") as response:
            head = await read_events(response, 4)
            async with http.post(f"{base}/chat/s1/stop") as r:
                assert await r.json() == {"stopped": True}
            body = head + await response.read()
        async with http.post(f"{base}/chat/s1/stop") as r:
            assert await r.json() == {"stopped": False}
    parts = [d for _, _, d in data_events(body)]
    assert parts[-1] == "[DONE]" and orjson.loads(parts[-2]) == {
        "type": "abort",
        "reason": "stopped",
    }
    record = await mock_server.wait_for_disconnect(timeout=5)
    assert record.chunks < 500


async def test_a_broadcast_serves_several_browsers_with_one_request(
    mock_server: MockServer,
) -> None:
    shared = chunks(mock_server.url, "mock?tokens=30&delay=0.005").pipe(ops.broadcast())

    async def chat(request: web.Request) -> web.StreamResponse:
        return await relay.aiohttp_response(request, shared, "openai")

    app = web.Application()
    app.router.add_get("/chat", chat)
    async with aiohttp_server(app) as base, aiohttp.ClientSession() as http:

        async def one() -> bytes:
            async with http.get(f"{base}/chat") as response:
                return await response.read()

        bodies = await asyncio.gather(*(one() for _ in range(3)))
    assert len(mock_server.requests) == 1
    assert all(data_events(b)[-1][2] == "[DONE]" for b in bodies)
