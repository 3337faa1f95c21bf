"""Resume: a client that reconnects with Last-Event-ID gets exactly what it missed — live, after
the end, and from another worker process over a Redis stream log."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from relay_support import aiohttp_server, data_events

import rxchat
import rxchat.redis
from rxchat import relay
from rxchat.mock import MockServer


async def start(http: aiohttp.ClientSession, base: str, mode: str = "text") -> str:
    async with http.post(
        f"{base}/api/chat", json={"mode": mode, "messages": [{"role": "user", "content": "Hi"}]}
    ) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["stream_id"])


async def first_events(
    http: aiohttp.ClientSession, url: str, count: int
) -> list[tuple[str, str, str]]:
    """Read ``count`` events, then drop the connection (a network blip, a closed tab)."""
    async with http.get(url) as response:
        body = b""
        while body.count(b"\n\n") < count:
            body += await response.content.readany()
    return data_events(body[: _end_of_event(body, count)])


def _end_of_event(body: bytes, count: int) -> int:
    end = 0
    for _ in range(count):
        end = body.index(b"\n\n", end) + 2
    return end


async def everything(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> list[tuple[str, str, str]]:
    async with http.get(url, headers=headers) as response:
        assert response.status == 200
        return data_events(await response.read())


@pytest.fixture
async def memory_page(mock_server: MockServer) -> Any:
    app = relay.chat_app(base_url=mock_server.url, model="mock?tokens=80&delay=0.01")
    async with aiohttp_server(app) as base:
        yield base


@pytest.mark.parametrize("format", ["events", "ai-sdk-ui", "openai"])
@pytest.mark.parametrize("mode", ["text", "structured", "tools"])
async def test_last_event_id_resumes_with_no_gap_and_no_duplicate(
    memory_page: str, format: str, mode: str
) -> None:
    async with aiohttp.ClientSession() as http:
        stream_id = await start(http, memory_page, mode)
        url = f"{memory_page}/api/streams/{stream_id}?format={format}"
        head = await first_events(http, url, 5)
        assert [i for i, _, _ in head] == ["1", "2", "3", "4", "5"]
        rest = await everything(http, url, **{"Last-Event-ID": head[-1][0]})  # while it runs
        full = await everything(http, url)  # after the end: the whole stream, from the log
    assert head + rest == full
    assert rest[0][0] == "6"
    assert full[-1][2] == "[DONE]" or full[-1][1] == "done"


async def test_resume_after_the_end_and_by_query_parameter(memory_page: str) -> None:
    async with aiohttp.ClientSession() as http:
        stream_id = await start(http, memory_page)
        url = f"{memory_page}/api/streams/{stream_id}"
        full = await everything(http, url)
        tail = await everything(
            http, f"{url}&last_event_id=70" if "?" in url else f"{url}?last_event_id=70"
        )
        assert tail == full[70:]
        assert await everything(http, url, **{"Last-Event-ID": full[-1][0]}) == []
        async with http.get(url, headers={"Last-Event-ID": "bogus"}) as response:
            assert response.status == 400
            assert "cannot resume after event id 'bogus'" in await response.text()
        async with http.get(url, headers={"Last-Event-ID": "100000"}) as response:
            [(_, event, data)] = data_events(await response.read())
        assert event == "error" and "UnknownEventIdError" in data
        assert f"the stream has {len(full)} events" in data
        async with http.get(f"{memory_page}/api/streams/no-such-stream") as response:
            assert response.status == 404


async def test_resume_on_another_worker_process(
    mock_server: MockServer, relay_redis: Any, redis_prefix: str, other_worker: str
) -> None:
    async with rxchat.redis.RedisStreamLog(
        relay_redis.url, prefix=redis_prefix, flush_interval=0.005
    ) as log:
        app = relay.chat_app(base_url=mock_server.url, model="mock?tokens=80&delay=0.01", log=log)
        async with aiohttp_server(app) as here, aiohttp.ClientSession() as http:
            stream_id = await start(http, here)  # the generation runs in this process
            for format in ("events", "ai-sdk-ui"):
                head = await first_events(
                    http, f"{here}/api/streams/{stream_id}?format={format}", 7
                )
                there = f"{other_worker}/api/streams/{stream_id}?format={format}"
                rest = await everything(http, there, **{"Last-Event-ID": head[-1][0]})
                full = await everything(http, f"{here}/api/streams/{stream_id}?format={format}")
                assert head + rest == full, format
                assert await everything(http, there) == full  # after the end, there too


async def test_stop_from_another_worker_process(
    mock_server: MockServer, relay_redis: Any, redis_prefix: str, other_worker: str
) -> None:
    async with rxchat.redis.RedisStreamLog(
        relay_redis.url, prefix=redis_prefix, flush_interval=0.005
    ) as log:
        app = relay.chat_app(base_url=mock_server.url, model="mock?tokens=500&delay=0.02", log=log)
        async with aiohttp_server(app) as here, aiohttp.ClientSession() as http:
            stream_id = await start(http, here)
            async with http.get(f"{here}/api/streams/{stream_id}?format=ai-sdk-ui") as reader:
                body = await reader.content.readany()
                async with http.post(f"{other_worker}/api/streams/{stream_id}/stop") as r:
                    assert await r.json() == {"stopped": True}
                body += await reader.read()
    record = await mock_server.wait_for_disconnect(timeout=5)
    assert record.chunks < 500
    parts = [d for _, _, d in data_events(body)]
    assert parts[-1] == "[DONE]" and '"type":"abort"' in parts[-2]
