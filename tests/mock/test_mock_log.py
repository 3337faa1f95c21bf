"""The request log of ``rxchat serve``: a line per request and per outcome, never the key."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

import rxchat
from rxchat.mock import MockServer
from rxchat.mock._log import request_log

SECRET = "sk-log-test-0123456789abcdef"
USER = [{"role": "user", "content": "Hello"}]


@pytest.fixture
async def logged() -> AsyncIterator[tuple[MockServer, io.StringIO]]:
    out = io.StringIO()
    server = MockServer(api_key=SECRET)
    outer, inner = request_log(out, api_key=SECRET)
    server.app.middlewares.insert(0, outer)
    server.app.middlewares.append(inner)
    async with server:
        yield server, out


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


async def test_a_completed_stream(logged: tuple[MockServer, io.StringIO]) -> None:
    server, out = logged
    async with rxchat.AsyncClient(base_url=server.url, api_key=SECRET) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o?tokens=5&delay=0.001", messages=USER, stream=True, max_tokens=50
        )
        chunks = [c async for c in stream]
    arrived, ended = _lines(out)
    assert arrived.startswith("rxchat serve: req_000001 POST /v1/chat/completions model=gpt-4o")
    assert "stream" in arrived and "max_tokens=50" in arrived
    assert "options: tokens=5 delay=0.001" in arrived and "faults:" not in arrived
    assert ended.startswith(f"rxchat serve: req_000001 200 completed after {len(chunks)} chunks (")
    assert SECRET not in out.getvalue()


async def test_faults_and_a_dropped_connection(logged: tuple[MockServer, io.StringIO]) -> None:
    server, out = logged
    async with rxchat.AsyncClient(base_url=server.url, api_key=SECRET, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="mock?tokens=20&drop_after=3", messages=USER, stream=True
        )
        with pytest.raises(rxchat.APIConnectionError):
            async for _ in stream:
                pass
    arrived, ended = _lines(out)
    assert "faults: drop_after=3" in arrived and "options: tokens=20" in arrived
    assert "200 dropped by the drop_after fault after 3 chunks" in ended


async def test_a_client_that_disconnects(logged: tuple[MockServer, io.StringIO]) -> None:
    server, out = logged
    async with rxchat.AsyncClient(base_url=server.url, api_key=SECRET) as client:
        stream = await client.chat.completions.create(
            model="mock?tokens=100000&delay=0.005", messages=USER, stream=True
        )
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 4:
                break
        await stream.close()
    record = await server.wait_for_disconnect(timeout=5)
    for _ in range(100):
        if len(_lines(out)) == 2:
            break
        await asyncio.sleep(0.01)
    ended = _lines(out)[1]
    assert f"req_000001 client disconnected after {record.chunks} chunks" in ended


async def test_errors_and_refused_requests(logged: tuple[MockServer, io.StringIO]) -> None:
    server, out = logged
    async with aiohttp.ClientSession() as http:
        wrong = {"Authorization": "Bearer sk-wrong-key-0123456789"}
        async with http.post(
            server.url + "/chat/completions", json={"model": "m", "messages": USER}, headers=wrong
        ) as resp:
            assert resp.status == 401
        right = {"Authorization": f"Bearer {SECRET}"}
        body = {"model": "mock?status=429&retry_after=1", "messages": USER, "stream": True}
        async with http.post(server.url + "/chat/completions", json=body, headers=right) as resp:
            assert resp.status == 429
        body = {"model": "mock?tokens=many", "messages": USER}
        async with http.post(server.url + "/chat/completions", json=body, headers=right) as resp:
            assert resp.status == 400
        async with http.get(server.url + "/nowhere", headers=right) as resp:
            assert resp.status == 404
    lines = _lines(out)
    assert len(lines) == 8, lines
    assert "req_000001 401 error: Incorrect API key provided." in lines[1]
    assert "faults: status=429 retry_after=1" in lines[2]
    assert "req_000002 429 error: Rate limit reached" in lines[3]
    assert "req_000003 400 error:" in lines[5] and "tokens" in lines[5]
    assert "GET /v1/nowhere" in lines[6] and "404 error" in lines[7]
    text = out.getvalue()
    assert SECRET not in text and "sk-wrong-key-0123456789" not in text


@pytest.mark.timeout(300)
async def test_rxchat_serve_logs_to_stderr() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RXCHAT_API_KEY", "OPENAI_API_KEY", "RXCHAT_BASE_URL", "OPENAI_BASE_URL")
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        "serve",
        "--port",
        "0",
        "--api-key",
        SECRET,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        url = line.split("listening on ")[1].split()[0]
        async with rxchat.AsyncClient(base_url=url, api_key=SECRET) as client:
            await client.chat.completions.create(model="gpt-4o?tokens=3", messages=USER)
        first = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        second = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        proc.send_signal(signal.SIGINT)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert first.startswith("rxchat serve: req_000001 POST /v1/chat/completions model=gpt-4o")
    assert "options: tokens=3" in first
    assert second.startswith("rxchat serve: req_000001 200 completed")
    assert SECRET not in first + second + rest.decode()
