"""Redis unreachable mid-stream, in one process: bounded buffering, resume, giving up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import reactivex
from _redis_support import RedisServer
from reactivex import operators as rops
from reactivex.subject import Subject

import rxchat
import rxchat.redis
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Hello"}]
BOUND = 10.0  # functional bound (hang detection)


@pytest.fixture
def redis_alone() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill and restart (with its data kept)."""
    server = RedisServer(persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def observe(server: MockServer, model: str) -> Any:
    return rxchat.chat_completion_stream(
        model=model, messages=USER, base_url=server.url, api_key="unused"
    )


async def wait_until(predicate: Any, timeout: float = BOUND) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_producer_buffers_bounded_pauses_the_source_and_writes_in_order(
    redis_alone: RedisServer, mock_server: MockServer
) -> None:
    async with rxchat.redis.RedisStreamLog(
        redis_alone.url, lease=3.0, max_buffered=20, give_up_after=20.0
    ) as log:
        handle = await log.publish(observe(mock_server, "mock?tokens=1500&delay=0.001"))
        producer = handle._producer
        await wait_until(lambda: producer.written >= 10)
        redis_alone.kill()
        high = 0
        for _ in range(50):  # 0.5 s down: the model streams on, into a bounded buffer
            high = max(high, len(producer.pending))
            await asyncio.sleep(0.01)
        # The source paused at max_buffered; one 8 KiB read may bring a few dozen more. Not
        # paused, 0.5 s of this stream would be hundreds.
        assert 20 <= high <= 120
        redis_alone.start()
        info = await asyncio.wait_for(handle.wait(), 6 * BOUND)
        assert info.status == "completed"
        chunks = await log.read(handle.stream_id).pipe(rops.to_list())
        assert [c.position for c in chunks] == list(range(1, len(chunks) + 1))
        assert "".join(c.text or "" for c in chunks) == mock_server.streams[0].texts[0]
        assert mock_server.streams[0].outcome == "completed"


async def test_producer_gives_up_with_a_typed_error_and_stops_the_model(
    redis_alone: RedisServer, mock_server: MockServer
) -> None:
    async with rxchat.redis.RedisStreamLog(redis_alone.url, give_up_after=1.0) as log:
        handle = await log.publish(observe(mock_server, "mock?tokens=3000&delay=0.005"))
        await wait_until(lambda: handle._producer.written >= 5)
        redis_alone.kill()
        with pytest.raises(rxchat.StreamLogUnavailableError) as caught:
            await asyncio.wait_for(handle.wait(), BOUND)
        assert caught.value.stream_id == handle.stream_id
        await mock_server.wait_for_disconnect(BOUND)  # the upstream was disposed


async def test_a_source_that_cannot_pause_gives_up_past_the_bound(
    redis_alone: RedisServer,
) -> None:
    chunk = rxchat.ChatCompletionChunk.from_wire(
        {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
        }
    )
    async with rxchat.redis.RedisStreamLog(
        redis_alone.url, max_buffered=100, give_up_after=30.0
    ) as log:
        subject: Subject[rxchat.ChatCompletionChunk] = Subject()
        handle = await log.publish(subject)
        redis_alone.kill()
        for _ in range(100 + 4096 + 10):  # a hot source: nothing can slow it down
            subject.on_next(chunk)
        with pytest.raises(rxchat.StreamLogUnavailableError, match="max_buffered"):
            await asyncio.wait_for(handle.wait(), BOUND)
        assert len(handle._producer.pending) <= 100 + 4096  # memory stayed bounded
        redis_alone.start()


async def test_reader_reconnects_and_resumes_from_its_position(
    redis_alone: RedisServer, mock_server: MockServer
) -> None:
    async with (
        rxchat.redis.RedisStreamLog(redis_alone.url, lease=3.0) as producer_log,
        rxchat.redis.RedisStreamLog(redis_alone.url, lease=3.0) as reader_log,
    ):
        handle = await producer_log.publish(observe(mock_server, "mock?tokens=200&delay=0.005"))
        got: list[rxchat.LoggedChunk] = []
        done = asyncio.get_running_loop().create_future()
        reader_log.read(handle.stream_id).subscribe(
            got.append, done.set_exception, lambda: done.set_result(None)
        )
        await wait_until(lambda: len(got) >= 20)
        redis_alone.kill()
        await asyncio.sleep(0.3)
        redis_alone.start()
        await asyncio.wait_for(done, BOUND)
        assert [c.position for c in got] == list(range(1, len(got) + 1))
        assert "".join(c.text or "" for c in got) == mock_server.streams[0].texts[0]


async def test_reader_gives_up_when_redis_stays_down(redis_alone: RedisServer) -> None:
    async with (
        rxchat.redis.RedisStreamLog(redis_alone.url, give_up_after=1.0) as producer_log,
        rxchat.redis.RedisStreamLog(redis_alone.url, give_up_after=1.0) as reader_log,
    ):
        handle = await producer_log.publish(reactivex.never())
        reader = reader_log.read(handle.stream_id)
        failed = asyncio.get_running_loop().create_future()
        reader.subscribe(on_error=failed.set_result)
        await asyncio.sleep(0.2)
        redis_alone.kill()
        error = await asyncio.wait_for(failed, BOUND)
        assert isinstance(error, rxchat.StreamLogUnavailableError)
        with pytest.raises(rxchat.StreamLogUnavailableError):
            await asyncio.wait_for(handle.wait(), BOUND)  # its heartbeat and writes fail too
