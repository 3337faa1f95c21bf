"""rxchat.to_async_iterator: async for over an Observable, bounded, against the mock server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import reactivex

import rxchat
from rxchat import operators as ops
from rxchat.errors import APIConnectionError, BufferOverflowError
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Say something"}]
# Functional bound (see tests/test_transport.py): measured latency is about a millisecond.
DISCONNECT_BOUND = 0.5


def stream_of(server: MockServer, model: str) -> reactivex.Observable[Any]:
    return rxchat.chat_completion_stream(
        model=model, messages=USER, base_url=server.url, api_key="sk-test"
    )


async def test_iterates_the_text_of_a_stream(
    mock_server: MockServer, no_leftover_tasks: None
) -> None:
    texts = [
        t
        async for t in rxchat.to_async_iterator(
            stream_of(mock_server, "mock?tokens=40").pipe(ops.accumulate(), ops.text())
        )
    ]
    assert "".join(texts) == mock_server.streams[-1].texts[0]


async def test_error_arrives_after_the_items_before_it(mock_server: MockServer) -> None:
    chunks: list[Any] = []
    with pytest.raises(APIConnectionError) as info:
        async for chunk in rxchat.to_async_iterator(
            stream_of(mock_server, "mock?tokens=10&drop_after=4")
        ):
            chunks.append(chunk)
    assert len(chunks) == 4 == info.value.chunks_received


async def test_slow_consumer_pauses_the_socket_reader(mock_server: MockServer) -> None:
    # A fast 20 000-chunk stream, a consumer that yields to the loop on every item: with a
    # bound of 64 the buffer never holds more than the bound plus one network read.
    it = rxchat.to_async_iterator(stream_of(mock_server, "mock?tokens=20000"), max_buffered=64)
    n = 0
    async with it:
        async for _ in it:
            n += 1
            if n % 8 == 0:
                await asyncio.sleep(0)
    assert n == 20002
    assert it.high_water < 64 + 4096
    assert it.high_water < 2000, it.high_water  # far below the 20 000 an unbounded queue holds


async def test_unbounded_consumer_would_hold_everything(mock_server: MockServer) -> None:
    # The contrast for the test above: a plain subscriber receives the whole answer while
    # nothing consumes it, so without the gate the buffer would grow with the answer.
    received: list[Any] = []
    done = asyncio.Event()
    stream_of(mock_server, "mock?tokens=20000").subscribe(
        received.append, lambda e: done.set(), done.set
    )
    await asyncio.wait_for(done.wait(), 30)
    assert len(received) == 20002


async def test_break_closes_the_connection(
    mock_server: MockServer, no_leftover_tasks: None
) -> None:
    it = rxchat.to_async_iterator(stream_of(mock_server, "mock?tokens=100000&delay=0.001"))
    async for _ in it:
        break
    left_at = time.monotonic()
    del it  # what a `for` statement's end does with its iterator
    record = await mock_server.wait_for_disconnect(timeout=2)
    assert record.at - left_at < DISCONNECT_BOUND


async def test_async_with_closes_the_connection(mock_server: MockServer) -> None:
    async with rxchat.to_async_iterator(
        stream_of(mock_server, "mock?tokens=100000&delay=0.001")
    ) as it:
        await anext(it)
        left_at = time.monotonic()
    record = await mock_server.wait_for_disconnect(timeout=2)
    assert record.at - left_at < DISCONNECT_BOUND
    with pytest.raises(StopAsyncIteration):
        await anext(it)


async def test_a_source_that_cannot_pause_overflows_with_a_typed_error() -> None:
    # A synchronous replay emits everything at subscription: it cannot be paused.
    body = b"".join(
        b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
        for _ in range(6000)
    )
    received = 0
    with pytest.raises(BufferOverflowError) as info:
        async for _ in rxchat.to_async_iterator(rxchat.from_sse_bytes(body), max_buffered=10):
            received += 1
    assert info.value.limit == 10 + 4096
    assert received == 10 + 4096 + 1  # what arrived before the overflow is still delivered
    assert "max_buffered" in str(info.value)


async def test_any_observable() -> None:
    items = [i async for i in rxchat.to_async_iterator(reactivex.from_iterable(range(1000)))]
    assert items == list(range(1000))


async def test_broadcast_is_not_paused_by_one_slow_consumer(mock_server: MockServer) -> None:
    shared = stream_of(mock_server, "mock?tokens=3000").pipe(ops.broadcast())
    it = rxchat.to_async_iterator(shared, max_buffered=8)
    first = await anext(it)  # the bridge is the first subscriber: it starts the request
    other: list[Any] = []
    done = asyncio.Event()
    shared.subscribe(other.append, lambda e: done.set(), done.set)
    await asyncio.wait_for(done.wait(), 10)  # completes although the bridge reads no further
    assert len(other) == 3002  # a late subscriber gets the chunks so far, then the rest
    rest = [c async for c in it]
    assert [first, *rest] == other
    assert len(mock_server.requests) == 1


def test_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_buffered"):
        rxchat.to_async_iterator(reactivex.empty(), max_buffered=0)
