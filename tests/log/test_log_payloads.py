"""What the producer logs: the chunks' JSON texts as the server sent them (from rxchat's network
sources), the encoded chunks otherwise; on every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from reactivex import operators as rops
from support.wire import A, B, C, sse

import rxchat
import rxchat.redis
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Hello"}]

NO_INDEX = '{"id":"c1","choices":[{"delta":{"content":" there"}}]}'
MULTI_LINE = 'data: {"id":"c1",\ndata:  "choices":[{"index":0,"delta":{"content":"!"}}]}\n\n'


def stream(url: str, model: str = "m") -> Any:
    return rxchat.chat_completion_stream(model=model, messages=USER, base_url=url, api_key="k")


async def logged_lines(log: rxchat.StreamLog, stream_id: str) -> list[bytes]:
    """The chunk lines of every chunk entry, as the backend holds them."""
    entries = await log._backend.read(stream_id, 0, 10_000, None)
    return [line for _, f in entries if f[b"t"] == b"c" for line in f[b"d"].split(b"\n")]


async def test_the_log_holds_the_texts_the_server_sent(
    stream_log: rxchat.StreamLog, sse_server: tuple[str, list[bytes]]
) -> None:
    url, bodies = sse_server
    bodies.append(sse(A, B, C) + b"data: [DONE]\n\n")
    handle = await stream_log.publish(stream(url))
    assert (await handle.wait()).status == "completed"
    assert await logged_lines(stream_log, handle.stream_id) == [A.encode(), B.encode(), C.encode()]
    got = [c async for c in stream_log.read(handle.stream_id)]
    direct = await stream(url).pipe(rops.to_list())
    assert [c.to_dict() for c in got] == [c.to_dict() for c in direct]
    assert got[1].to_dict()["x_vendor"] == {"k": [1, 2]}  # unknown fields kept


async def test_amended_and_multi_line_chunks_are_logged_one_per_line(
    stream_log: rxchat.StreamLog, sse_server: tuple[str, list[bytes]]
) -> None:
    url, bodies = sse_server
    bodies.append(sse(A, NO_INDEX) + MULTI_LINE.encode() + sse(C) + b"data: [DONE]\n\n")
    handle = await stream_log.publish(stream(url))
    await handle.wait()
    lines = await logged_lines(stream_log, handle.stream_id)
    assert len(lines) == 4
    assert lines[0] == A.encode()
    # The chunk the decoder gave its choice index to is logged as the chunk, index included.
    assert orjson.loads(lines[1])["choices"][0]["index"] == 0
    assert lines[2] == b'{"id":"c1",  "choices":[{"index":0,"delta":{"content":"!"}}]}'
    got = [c async for c in stream_log.read(handle.stream_id)]
    assert [c.text for c in got] == ["He", " there", "!", None]
    assert [c.position for c in got] == [1, 2, 3, 4]
    direct = await stream(url).pipe(rops.to_list())
    assert [c.to_dict() for c in got] == [c.to_dict() for c in direct]


async def test_a_source_behind_an_operator_is_logged_as_encoded_chunks(
    stream_log: rxchat.StreamLog, sse_server: tuple[str, list[bytes]]
) -> None:
    url, bodies = sse_server
    bodies.append(sse(A, B, C) + b"data: [DONE]\n\n")
    # Not an rxchat network source any more: what the operator emits is logged.
    shouting = stream(url).pipe(
        rops.map(lambda c: c.model_copy(update={"model": "changed"}))  # type: ignore[no-any-return]
    )
    handle = await stream_log.publish(shouting)
    await handle.wait()
    lines = await logged_lines(stream_log, handle.stream_id)
    assert [orjson.loads(line)["model"] for line in lines] == ["changed"] * 3
    got = [c async for c in stream_log.read(handle.stream_id)]
    assert [c.text for c in got] == ["He", "llo", None]


@pytest.mark.parametrize("delay", ["", "&delay=0.002"])
async def test_max_chunks_cuts_a_whole_read_at_the_limit(
    mock_server: MockServer, delay: str
) -> None:
    # Without a delay one socket read brings hundreds of chunks: the limit falls inside a batch.
    async with rxchat.MemoryStreamLog(max_chunks=10) as log:
        handle = await log.publish(stream(mock_server.url, f"mock?tokens=500{delay}"))
        got: list[int] = []
        with pytest.raises(rxchat.StreamLimitError):
            async for chunk in log.read(handle.stream_id):
                got.append(chunk.position)
        assert got == list(range(1, 11))
        info = await handle.wait()
        assert info.status == "error" and info.chunks == 10


# -- catching up: Redis merges consecutive entries into few replies ------------------------------


def big_chunks(count: int, size: int) -> list[dict[str, Any]]:
    return [
        {"id": "b", "choices": [{"index": 0, "delta": {"content": f"{i:06d}" + "x" * size}}]}
        for i in range(count)
    ]


async def test_catch_up_of_one_chunk_per_entry(stream_log: rxchat.StreamLog) -> None:
    # batch_size=1: an entry per chunk, as a stream written at a model's pace has.
    stream_log.options["batch_size"] = 1
    handle = await stream_log.publish(rxchat.from_chunks(big_chunks(3000, 10)))
    await handle.wait()
    got = [c async for c in stream_log.read(handle.stream_id)]
    assert [c.position for c in got] == list(range(1, 3001))
    assert [(c.text or "")[:6] for c in got] == [f"{i:06d}" for i in range(3000)]
    # Resuming in the middle, and reading the rest again, give the same chunks.
    rest = [c.position async for c in stream_log.read(handle.stream_id, after=1234)]
    assert rest == list(range(1235, 3001))


async def test_catch_up_larger_than_one_reply(stream_log: rxchat.StreamLog) -> None:
    # About 3.5 MB of chunks: several catch-up replies (each about 1 MiB) on Redis.
    stream_log.options["batch_size"] = 7
    handle = await stream_log.publish(rxchat.from_chunks(big_chunks(1000, 3500)))
    await handle.wait()
    got = [c async for c in stream_log.read(handle.stream_id)]
    assert [c.position for c in got] == list(range(1, 1001))
    assert all(len(c.text or "") == 3506 for c in got)


async def test_a_hole_in_the_log_is_found_while_catching_up(
    redis_server: Any, redis_prefix: str
) -> None:
    async with rxchat.redis.RedisStreamLog(
        redis_server.url, prefix=redis_prefix, batch_size=1
    ) as log:
        handle = await log.publish(rxchat.from_chunks(big_chunks(50, 10)))
        await handle.wait()
        key = f"{redis_prefix}:{{{handle.stream_id}}}:log"
        await log.client.xdel(key, "20-0", "21-0")  # as a server that lost entries would
        got: list[int] = []
        with pytest.raises(rxchat.StreamDataLostError, match="lost chunks 20 to 21"):
            async for chunk in log.read(handle.stream_id):
                got.append(chunk.position)
        assert got == list(range(1, 20))


async def test_entries_rxchat_did_not_write_are_typed_errors(
    redis_server: Any, redis_prefix: str
) -> None:
    good = b'{"choices":[{"index":0,"delta":{"content":"a"}}]}'
    foreign = {b"something": b"else"}
    not_a_chunk = {b"t": b"c", b"f": b"2", b"d": b'{"choices": 3}'}
    async with rxchat.redis.RedisStreamLog(redis_server.url, prefix=redis_prefix) as log:
        for sid, second, error in [("foreign", foreign, "not an rxchat log entry"),
                                   ("bad", not_a_chunk, "not a chunk")]:  # fmt: skip
            await log._backend.create(sid, {"status": "running"}, conversation_id=None,
                                      lease=30, ttl=60)  # fmt: skip
            key = f"{redis_prefix}:{{{sid}}}:log"
            await log.client.xadd(key, {b"t": b"c", b"f": b"1", b"d": good}, id="1-0")
            await log.client.xadd(key, second, id="2-0")
            got: list[str | None] = []
            with pytest.raises(rxchat.StreamLogError, match=error) as caught:
                async for chunk in log.read(sid):
                    got.append(chunk.text)
            assert got == ["a"] and caught.value.stream_id == sid


# -- following: the waiting readers of a stream share one XREAD -----------------------------------


async def test_followers_in_one_process_share_a_waiting_connection(
    redis_server: Any, redis_prefix: str, mock_server: MockServer
) -> None:
    import redis.asyncio as aioredis

    admin = aioredis.Redis.from_url(redis_server.url)
    fast = {"lease": 0.6, "flush_interval": 0.005}
    try:
        async with (
            rxchat.redis.RedisStreamLog(redis_server.url, prefix=redis_prefix, **fast) as producer,
            rxchat.redis.RedisStreamLog(redis_server.url, prefix=redis_prefix, **fast) as log,
        ):
            handle = await producer.publish(stream(mock_server.url, "mock?tokens=150&delay=0.01"))

            async def follow() -> list[int]:
                return [c.position async for c in log.read(handle.stream_id)]

            readers = [asyncio.ensure_future(follow()) for _ in range(40)]
            peak = 0
            while not all(r.done() for r in readers):
                # Connections waiting in XREAD BLOCK (the producer's never do).
                peak = max(peak, (await admin.info("clients"))["blocked_clients"])
                await asyncio.sleep(0.005)
            total = (await handle.wait()).chunks
            for reader in readers:
                assert reader.result() == list(range(1, total + 1))
            # 40 followers, not 40 connections held in XREAD BLOCK (one each, before).
            assert 1 <= peak <= 3, peak
    finally:
        await admin.aclose()


async def test_closing_the_log_ends_its_followers_with_a_typed_error(
    redis_server: Any, redis_prefix: str, mock_server: MockServer
) -> None:
    fast = {"lease": 0.6, "flush_interval": 0.005}
    async with rxchat.redis.RedisStreamLog(
        redis_server.url, prefix=redis_prefix, **fast
    ) as producer:
        handle = await producer.publish(stream(mock_server.url, "mock?tokens=2000&delay=0.01"))
        log = rxchat.redis.RedisStreamLog(redis_server.url, prefix=redis_prefix, **fast)
        got: list[int] = []

        async def follow() -> None:
            async for chunk in log.read(handle.stream_id):
                got.append(chunk.position)

        readers = [asyncio.ensure_future(follow()) for _ in range(3)]
        while len(got) < 30:
            await asyncio.sleep(0.01)
        await log.aclose()
        for reader in readers:
            with pytest.raises(rxchat.StreamLogError, match="closed"):
                await asyncio.wait_for(reader, 5)
        await handle.cancel()


async def test_followers_joining_at_different_times_and_positions_get_every_chunk(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(stream(mock_server.url, "mock?tokens=300&delay=0.003"))

    seen: list[int] = []  # what the first follower got: chunks that are in the log

    async def follow(delay: float, after: int) -> list[int]:
        await asyncio.sleep(delay)
        while after and (not seen or seen[-1] < after):  # join once `after` is logged (load)
            await asyncio.sleep(0.005)
        got = []
        async for chunk in stream_log.read(handle.stream_id, after=after):
            got.append(chunk.position)
            if delay == 0.0:
                seen.append(chunk.position)
        return got

    plan = [(0.0, 0), (0.05, 0), (0.1, 5), (0.2, 0), (0.3, 40), (0.45, 1), (0.6, 0)]
    results = await asyncio.gather(*(follow(d, a) for d, a in plan))
    total = (await handle.wait()).chunks
    for (_, after), got in zip(plan, results, strict=True):
        assert got == list(range(after + 1, total + 1))
