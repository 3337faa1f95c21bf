"""The JSON texts of chunks as received: ``ChunkDecoder.payloads``, ``ChunkBatchStream.payloads``
and ``ChunkSource.subscribe_batches`` (what the stream log stores instead of encoding the models
again)."""

from __future__ import annotations

import asyncio
from typing import Any

from reactivex import operators as rops
from support.wire import A, B, C, sse

import rxchat
from rxchat import ChatCompletionChunk, ChunkDecoder
from rxchat._sources import ChunkSource, observable_from_batches
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Hello"}]

NO_INDEX = '{"id":"c1","choices":[{"delta":{"content":"!"}}]}'


# -- the decoder ---------------------------------------------------------------------------------


def test_decoder_payloads_are_the_texts_as_received() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(sse(A, B))
    assert [c.text for c in chunks] == ["He", "llo"]
    assert decoder.payloads == [A, B]
    # A read with [DONE] takes the general path: the same texts, aligned with the chunks.
    chunks = decoder.feed(sse(C) + b"data: [DONE]\n\n")
    assert len(chunks) == 1 and chunks[0].finish_reason == "stop"
    assert decoder.payloads == [C]
    assert decoder.feed(b"data: [DONE]\n\n") == [] and decoder.payloads == []


def test_decoder_payloads_follow_each_feed() -> None:
    decoder = ChunkDecoder()
    data = sse(A)
    assert decoder.feed(data[:30]) == [] and decoder.payloads == []  # nothing completed yet
    assert [c.text for c in decoder.feed(data[30:])] == ["He"]
    assert decoder.payloads == [A]
    assert decoder.feed(b": keep-alive\n\n") == [] and decoder.payloads == []


def test_an_amended_chunk_has_no_payload() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(sse(A, NO_INDEX, B))
    assert [c.text for c in chunks] == ["He", "!", "llo"]
    assert chunks[1].choices[0].index == 0  # the decoder gave the choice its position
    assert decoder.payloads == [A, None, B]


def test_a_multi_line_event_payload_is_its_data_joined() -> None:
    decoder = ChunkDecoder()
    body = b'data: {"id":"c1",\ndata:  "choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    chunks = decoder.feed(body)
    assert [c.text for c in chunks] == ["x"]
    assert decoder.payloads == ['{"id":"c1",\n "choices":[{"index":0,"delta":{"content":"x"}}]}']


def test_payloads_of_the_chunks_before_an_invalid_one() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(sse(A, B) + b"data: {not json\n\n")
    assert len(chunks) == 2 and decoder.payloads == [A, B]
    assert isinstance(decoder.error, rxchat.InvalidChunkError)


# -- the source ----------------------------------------------------------------------------------


def stream(url: str, model: str = "m") -> Any:
    return rxchat.chat_completion_stream(model=model, messages=USER, base_url=url, api_key="k")


async def batches_of(
    source: ChunkSource,
) -> tuple[list[list[ChatCompletionChunk]], list[list[str | None] | None]]:
    done = asyncio.get_running_loop().create_future()
    got: list[list[ChatCompletionChunk]] = []
    texts: list[list[str | None] | None] = []

    def on_batch(chunks: list[ChatCompletionChunk], payloads: list[str | None] | None) -> None:
        got.append(list(chunks))
        texts.append(None if payloads is None else list(payloads))

    source.subscribe_batches(on_batch, done.set_exception, lambda: done.set_result(None))
    await done
    return got, texts


async def test_network_sources_are_chunk_sources(mock_server: MockServer) -> None:
    assert isinstance(stream(mock_server.url), ChunkSource)
    async with rxchat.AsyncClient(base_url=mock_server.url, api_key="k") as client:
        assert isinstance(client.chat.completions.observe(model="m", messages=USER), ChunkSource)


async def test_subscribe_batches_gives_the_chunks_with_their_texts(
    sse_server: tuple[str, list[bytes]],
) -> None:
    url, bodies = sse_server
    bodies.append(sse(A, NO_INDEX, B, C) + b"data: [DONE]\n\n")
    got, texts = await batches_of(stream(url))
    flat = [c for batch in got for c in batch]
    direct = await stream(url).pipe(rops.to_list())
    assert [c.to_dict() for c in flat] == [c.to_dict() for c in direct]
    assert [t for batch in texts for t in batch or []] == [A, None, B, C]
    assert all(
        batch is not None and len(batch) == len(g) for batch, g in zip(texts, got, strict=True)
    )


async def test_subscribe_batches_ends_with_the_error_after_the_chunks(
    sse_server: tuple[str, list[bytes]],
) -> None:
    url, bodies = sse_server
    bodies.append(sse(A, B) + b"data: {not json\n\n")
    got: list[str | None] = []
    done = asyncio.get_running_loop().create_future()

    def on_batch(chunks: list[ChatCompletionChunk], payloads: list[str | None] | None) -> None:
        got.extend(payloads or [])

    stream(url).subscribe_batches(on_batch, done.set_result, lambda: done.set_result(None))
    error = await done
    assert isinstance(error, rxchat.InvalidChunkError)
    assert got == [A, B]


async def test_disposing_inside_on_batch_stops_and_closes_the_connection(
    mock_server: MockServer,
) -> None:
    calls: list[int] = []
    subscription: Any = None

    def on_batch(chunks: list[ChatCompletionChunk], payloads: list[str | None] | None) -> None:
        calls.append(len(chunks))
        subscription.dispose()

    ended: list[object] = []
    subscription = stream(mock_server.url, "mock?tokens=2000&delay=0.002").subscribe_batches(
        on_batch, ended.append, lambda: ended.append("completed")
    )
    await mock_server.wait_for_disconnect(2.0)
    await asyncio.sleep(0.05)
    assert len(calls) == 1 and ended == []


async def test_a_batch_stream_without_texts_gives_none(mock_server: MockServer) -> None:
    class Plain:
        """A batch stream of its own (not rxchat's transport): it keeps no texts."""

        def __init__(self) -> None:
            self.items = [[rxchat.ChatCompletionChunk.from_json(A)]]

        def __aiter__(self) -> Plain:
            return self

        async def __anext__(self) -> list[ChatCompletionChunk]:
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop()

        async def aclose(self) -> None:
            pass

    source = observable_from_batches(Plain)
    assert isinstance(source, ChunkSource)
    got, texts = await batches_of(source)
    assert [c.text for batch in got for c in batch] == ["He"] and texts == [None]
