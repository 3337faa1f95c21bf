"""What the producer logs: the chunks' JSON texts as the server sent them (from rxchat's network
sources), the encoded chunks otherwise; on every backend."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from reactivex import operators as rops

import rxchat
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Hello"}]

A = '{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}, "finish_reason": null}]}'
B = '{"choices":[{"delta":{"content":"llo"},"index":0,"finish_reason":null}],"x_vendor":{"k":[1,2]},"id":"c1"}'
NO_INDEX = '{"id":"c1","choices":[{"delta":{"content":" there"}}]}'
MULTI_LINE = 'data: {"id":"c1",\ndata:  "choices":[{"index":0,"delta":{"content":"!"}}]}\n\n'
C = '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


def sse(*payloads: str) -> bytes:
    return b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)


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
