"""Retries through the clients: only before the first byte of the body, never a replayed stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from support import ThreadedMock, user

from rxchat import AsyncClient, Client, Timeout
from rxchat.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    StreamAPIError,
)
from rxchat.mock import MockServer


@pytest.fixture
def mock() -> Iterator[ThreadedMock]:
    m = ThreadedMock()
    try:
        yield m
    finally:
        m.close()


def _chat_requests(server: MockServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


async def test_429_retry_after_then_200_streamed(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client:
        stream = await client.chat.completions.create(
            model="m?tokens=6&fault=status:429,retry_after:0.01,fail_times:1",
            messages=user("x"),
            stream=True,
        )
        text = "".join([c.text or "" async for c in stream])
        assert stream.source is not None and stream.source.retries == 1
    assert _chat_requests(server) == 2
    assert text == server.streams[-1].texts[0]


async def test_429_retry_after_ms_then_200_event_stream(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client, client.chat.completions.stream(
        model="m?tokens=6&status=429&retry_after_ms=10&fail_times=1", messages=user("x")
    ) as stream:
        completion = await stream.get_final_completion()
    assert _chat_requests(server) == 2
    assert completion.choices[0].message.content == server.streams[-1].texts[0]


async def test_429_then_200_whole_and_edgee(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client:
        completion = await client.chat.completions.create(
            model="m?status=429&retry_after=0.01&fail_times=1&key=a", messages=user("x")
        )
        assert completion.choices[0].finish_reason == "stop"
        response = await client.send("m?status=503&retry_after=0&fail_times=2&key=b", "hi")
        assert response.finish_reason == "stop"
    assert _chat_requests(server) == 2 + 3


def test_sync_429_then_200(mock: ThreadedMock) -> None:
    with Client(base_url=mock.url) as client:
        with client.chat.completions.stream(
            model="m?status=429&retry_after=0.01&fail_times=1", messages=user("x")
        ) as stream:
            completion = stream.get_final_completion()
        assert completion.choices[0].message.content == mock.server.streams[-1].texts[0]
        chunks = list(
            client.stream("m?status=500&retry_after=0&fail_times=1&key=k2", "hello")
        )
        assert chunks[-1].finish_reason == "stop"
    assert _chat_requests(mock.server) == 4


async def test_retries_exhausted_raise_the_status_error(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url, max_retries=1) as client:
        with pytest.raises(RateLimitError) as info:
            await client.chat.completions.create(
                model="m?status=429&retry_after=0&fail_times=5", messages=user("x"), stream=True
            )
    assert info.value.status_code == 429
    assert _chat_requests(server) == 2


async def test_max_retries_zero(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url, max_retries=0) as client:
        with pytest.raises(InternalServerError):
            await client.chat.completions.create(model="m?status=500", messages=user("x"))
    assert _chat_requests(server) == 1


async def test_client_errors_are_not_retried(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client:
        with pytest.raises(BadRequestError):
            await client.chat.completions.create(model="m?status=400", messages=user("x"), stream=True)
    assert _chat_requests(server) == 1


async def test_with_options_changes_retries(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url, max_retries=0) as client:
        retrying = client.with_options(max_retries=1)
        try:
            await retrying.chat.completions.create(
                model="m?status=503&retry_after=0&fail_times=1", messages=user("x")
            )
        finally:
            await retrying.close()
    assert _chat_requests(server) == 2


async def test_timeout_before_first_byte_is_retried(server: MockServer) -> None:
    async with AsyncClient(
        base_url=server.url, timeout=Timeout(read=0.1), max_retries=1
    ) as client:
        with pytest.raises(APITimeoutError):
            await client.chat.completions.create(
                model="m?stall_headers=1", messages=user("x"), stream=True
            )
    assert _chat_requests(server) == 2


class Answer(BaseModel):
    title: str
    words: list[str]


async def test_error_after_first_chunk_is_not_retried_and_keeps_partial(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client, client.chat.completions.stream(
        model="m?tokens=20&error_after=4", messages=user("x")
    ) as stream:
        deltas: list[str] = []
        with pytest.raises(StreamAPIError) as info:
            async for event in stream:
                if event.type == "content.delta":
                    deltas.append(event.delta)
    assert _chat_requests(server) == 1
    err = info.value
    assert err.completion is not None
    partial = err.completion.choices[0].message.content
    assert partial == "".join(deltas) and partial
    assert server.streams[-1].texts[0].startswith(partial)
    assert err.chunks_received == 4


async def test_connection_drop_after_chunks_is_not_retried(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as client, client.chat.completions.stream(
        model="m?tokens=20&drop_after=3", messages=user("x"), response_format=Answer
    ) as stream:
        with pytest.raises(APIConnectionError) as info:
            await stream.until_done()
    assert _chat_requests(server) == 1
    assert info.value.completion is not None
    assert info.value.chunks_received == 3


def test_sync_500_mid_stream_raises_with_partial(mock: ThreadedMock) -> None:
    with Client(base_url=mock.url) as client:
        with client.chat.completions.stream(
            model="m?tokens=20&event_error_after=2", messages=user("x")
        ) as stream, pytest.raises(StreamAPIError) as info:
            stream.until_done()
        chunks: list[str] = []
        raw = client.chat.completions.create(
            model="m?tokens=20&error_after=2&key=raw", messages=user("x"), stream=True
        )
        with pytest.raises(StreamAPIError) as raw_info:
            for chunk in raw:
                chunks.append(chunk.text or "")
    assert _chat_requests(mock.server) == 2
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "".join(chunks)
    assert raw_info.value.chunks_received == 2 == len(chunks)
