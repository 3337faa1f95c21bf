"""AsyncClient / Client against the embedded mock server on loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from support import ThreadedMock, user

import rxchat
from rxchat import AsyncClient, AsyncStream, Client, InputObject, SendResponse, Stream, Timeout
from rxchat._portal import get_portal
from rxchat.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IncompleteStreamError,
    NotFoundError,
    StreamConsumedError,
)
from rxchat.mock import MockServer
from rxchat.types import ChatCompletion, ChatCompletionChunk

LONG = "m?tokens=100000&delay=0.005"  # never ends on its own within a test



@pytest.fixture
async def aclient(server: MockServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=server.url, api_key="sk-test-0123456789abcdef") as c:
        yield c


@pytest.fixture
def mock() -> Iterator[ThreadedMock]:
    m = ThreadedMock()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def client(mock: ThreadedMock) -> Iterator[Client]:
    with Client(base_url=mock.url, api_key="sk-test-0123456789abcdef") as c:
        yield c


# -- configuration -----------------------------------------------------------------------


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RXCHAT_API_KEY", "OPENAI_API_KEY", "RXCHAT_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    c = Client()
    assert c.api_key is None
    assert c.base_url == "https://api.openai.com/v1"
    c.close()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    c = Client()
    assert (c.api_key, c.base_url) == ("sk-openai", "http://127.0.0.1:9/v1")
    c.close()
    monkeypatch.setenv("RXCHAT_API_KEY", "sk-rxchat")
    monkeypatch.setenv("RXCHAT_BASE_URL", "http://127.0.0.1:10/v1")
    c = Client()
    assert (c.api_key, c.base_url) == ("sk-rxchat", "http://127.0.0.1:10/v1")
    c.close()
    c = Client(api_key="explicit", base_url="http://localhost:11/v1")
    assert (c.api_key, c.base_url) == ("explicit", "http://localhost:11/v1")
    c.close()


def test_repr_hides_key() -> None:
    key = "sk-secret-ABCDEFGHIJKLMNOP"
    c = Client(api_key=key, base_url="http://127.0.0.1:9/v1")
    a = AsyncClient(api_key=key, base_url="http://127.0.0.1:9/v1")
    try:
        for obj in (c, a, c.chat.completions, a.chat.completions):
            assert key not in repr(obj)
        assert "127.0.0.1:9" in repr(c)
    finally:
        c.close()


def test_bad_options() -> None:
    with pytest.raises(ValueError):
        Client(base_url="not a url")
    with pytest.raises(ValueError):
        Client(base_url="http://127.0.0.1:9/v1", max_retries=-1)
    with pytest.raises(TypeError):
        Client(base_url="http://127.0.0.1:9/v1", timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Client(api_key=123)  # type: ignore[arg-type]


def test_timeout_forms() -> None:
    c = Client(base_url="http://127.0.0.1:9/v1", timeout=5)
    assert c.timeout == Timeout(connect=5, read=5, total=None)
    c.close()
    c = Client(base_url="http://127.0.0.1:9/v1", timeout=Timeout(connect=1, read=2, total=3))
    assert c.timeout.total == 3
    c2 = c.with_options(timeout=None, max_retries=0)
    assert c2.timeout == Timeout(None, None, None)
    assert c2.max_retries == 0 and c.max_retries == 2
    c.close()
    c2.close()


async def test_missing_key_is_fine_for_open_servers(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url) as c:
        assert c.api_key is None
        completion = await c.chat.completions.create(model="m", messages=user("hi"))
        assert completion.choices[0].message.content


async def test_key_is_sent_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RXCHAT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with MockServer(api_key="sk-right-123456789") as server:
        async with AsyncClient(base_url=server.url) as c:
            with pytest.raises(AuthenticationError) as info:
                await c.chat.completions.create(model="m", messages=user("hi"))
            assert info.value.status_code == 401
        async with AsyncClient(base_url=server.url, api_key="sk-right-123456789") as c:
            completion = await c.chat.completions.create(model="m", messages=user("hi"))
            assert completion.choices[0].finish_reason == "stop"
        monkeypatch.setenv("RXCHAT_API_KEY", "sk-right-123456789")
        async with AsyncClient(base_url=server.url) as c:
            await c.chat.completions.create(model="m", messages=user("hi"))


# -- async create ----------------------------------------------------------------------


async def test_async_create_whole_and_streamed_agree(aclient: AsyncClient, server: MockServer) -> None:
    whole = await aclient.chat.completions.create(model="m?tokens=12", messages=user("hello"))
    assert isinstance(whole, ChatCompletion)
    stream = await aclient.chat.completions.create(
        model="m?tokens=12", messages=user("hello"), stream=True
    )
    assert isinstance(stream, AsyncStream)
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.text or "" for c in chunks)
    assert text == whole.choices[0].message.content == server.streams[-1].texts[0]
    assert chunks[-1].finish_reason == "stop"
    assert stream.closed
    body = server.requests[-1].body
    assert body["stream"] is True and body["model"] == "m?tokens=12"
    assert "stream" not in server.requests[0].body


async def test_async_stream_consumed_once(aclient: AsyncClient) -> None:
    stream = await aclient.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    assert len([c async for c in stream]) > 0
    with pytest.raises(StreamConsumedError):
        async for _ in stream:
            pass
    with pytest.raises(StreamConsumedError):
        await stream.__anext__()


async def test_async_anext_then_iteration_is_rejected(aclient: AsyncClient) -> None:
    stream = await aclient.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    first = await stream.__anext__()
    assert first.role == "assistant"
    with pytest.raises(StreamConsumedError):
        stream.__aiter__()
    rest = []
    while True:
        try:
            rest.append(await stream.__anext__())
        except StopAsyncIteration:
            break
    assert rest[-1].finish_reason == "stop"
    await stream.close()


async def test_async_break_closes_connection(aclient: AsyncClient, server: MockServer) -> None:
    stream = await aclient.chat.completions.create(model=LONG, messages=user("x"), stream=True)
    n = 0
    async for _ in stream:
        n += 1
        if n == 3:
            break
    record = await server.wait_for_disconnect(5.0)
    assert record.chunks >= 3
    assert server.streams[-1].outcome == "disconnected"


async def test_async_context_manager_closes(aclient: AsyncClient, server: MockServer) -> None:
    async with await aclient.chat.completions.create(model=LONG, messages=user("x"), stream=True) as s:
        await s.__anext__()
    assert s.closed
    await server.wait_for_disconnect(5.0)
    with pytest.raises(StreamConsumedError):
        async for _ in s:
            pass


async def test_async_cancel_task_closes_connection(aclient: AsyncClient, server: MockServer) -> None:
    got = asyncio.Event()

    async def consume() -> None:
        stream = await aclient.chat.completions.create(model=LONG, messages=user("x"), stream=True)
        async for _ in stream:
            got.set()

    task = asyncio.create_task(consume())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_for_disconnect(5.0)


async def test_async_status_errors_raise_from_create(aclient: AsyncClient) -> None:
    with pytest.raises(NotFoundError):
        await aclient.chat.completions.create(
            model="m?status=404", messages=user("x"), stream=True
        )
    with pytest.raises(BadRequestError) as info:
        await aclient.chat.completions.create(model="m", messages=[], stream=True)
    assert "messages" in str(info.value)


async def test_bad_arguments_raise_before_any_request(aclient: AsyncClient, server: MockServer) -> None:
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="m", messages="hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="", messages=user("x"))
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="m", messages=["hello"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="m", messages=user("x"), response_format=3)
    with pytest.raises(TypeError):
        await aclient.chat.completions.create(model="m", messages=user("x"), timeout="1")
    assert server.requests == []


async def test_params_extra_body_and_headers_reach_the_server(
    aclient: AsyncClient, server: MockServer
) -> None:
    await aclient.chat.completions.create(
        model="m",
        messages=user("x"),
        temperature=0.5,
        seed=7,
        metadata={"k": "v"},
        extra_body={"custom_field": 1},
        extra_headers={"X-Trace": "abc"},
    )
    record = server.requests[-1]
    assert record.body["temperature"] == 0.5 and record.body["seed"] == 7
    assert record.body["metadata"] == {"k": "v"} and record.body["custom_field"] == 1
    assert "top_p" not in record.body  # None means "not sent"
    assert {k.lower(): v for k, v in record.headers.items()}["x-trace"] == "abc"


async def test_default_headers(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url, default_headers={"X-Mock-Tokens": "2"}) as c:
        completion = await c.chat.completions.create(model="m", messages=user("x"))
    assert completion.usage is not None and completion.usage.completion_tokens == 2


async def test_usage_chunk(aclient: AsyncClient) -> None:
    stream = await aclient.chat.completions.create(
        model="m?tokens=4", messages=user("x"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


async def test_connection_refused() -> None:
    async with AsyncClient(base_url="http://127.0.0.1:9/v1", max_retries=0) as c:
        with pytest.raises(APIConnectionError):
            await c.chat.completions.create(model="m", messages=user("x"), stream=True)


async def test_read_timeout_per_call(aclient: AsyncClient) -> None:
    with pytest.raises(APITimeoutError):
        await aclient.chat.completions.create(
            model="m?stall_headers=2", messages=user("x"), stream=True, timeout=0.2,
        )


async def test_read_timeout_between_chunks_keeps_count(server: MockServer) -> None:
    async with AsyncClient(base_url=server.url, timeout=Timeout(read=0.2), max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="m?tokens=10&stall_between=2&stall_after=3", messages=user("x"), stream=True
        )
        seen = []
        with pytest.raises(APITimeoutError) as info:
            async for chunk in stream:
                seen.append(chunk)
        assert len(seen) == info.value.chunks_received >= 3


async def test_truncated_stream_is_not_success(aclient: AsyncClient) -> None:
    stream = await aclient.chat.completions.create(
        model="m?tokens=5&no_done=1", messages=user("x"), stream=True
    )
    with pytest.raises(IncompleteStreamError):
        async for _ in stream:
            pass


async def test_client_closed_rejects_requests(server: MockServer) -> None:
    c = AsyncClient(base_url=server.url)
    await c.close()
    await c.close()
    assert c.closed
    with pytest.raises(RuntimeError):
        await c.chat.completions.create(model="m", messages=user("x"))


# -- sync ------------------------------------------------------------------------------


def test_sync_create_whole_and_streamed(client: Client, mock: ThreadedMock) -> None:
    whole = client.chat.completions.create(model="m?tokens=20", messages=user("hello"))
    stream = client.chat.completions.create(model="m?tokens=20", messages=user("hello"), stream=True)
    assert isinstance(stream, Stream)
    with stream:
        texts = [c.text or "" for c in stream]
    assert "".join(texts) == whole.choices[0].message.content == mock.server.streams[-1].texts[0]
    with pytest.raises(StreamConsumedError):
        list(stream)


def test_sync_next(client: Client) -> None:
    stream = client.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    assert next(stream).role == "assistant"
    with pytest.raises(StreamConsumedError):
        iter(stream)
    rest = list(_drain(stream))
    assert rest[-1].finish_reason == "stop"


def _drain(stream: Stream) -> Iterator[ChatCompletionChunk]:
    while True:
        try:
            yield next(stream)
        except StopIteration:
            return


def test_sync_break_closes_connection_before_returning(client: Client, mock: ThreadedMock) -> None:
    stream = client.chat.completions.create(model=LONG, messages=user("x"), stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    assert stream.closed
    record = mock.wait_for_disconnect()
    assert record.chunks >= 3


def test_sync_exception_in_loop_closes_connection(client: Client, mock: ThreadedMock) -> None:
    stream = client.chat.completions.create(model=LONG, messages=user("x"), stream=True)
    with pytest.raises(ZeroDivisionError):
        for _ in stream:
            1 / 0  # noqa: B018
    assert stream.closed
    mock.wait_for_disconnect()


def test_sync_unread_stream_closed_by_with(client: Client, mock: ThreadedMock) -> None:
    with client.chat.completions.create(model=LONG, messages=user("x"), stream=True):
        pass
    mock.wait_for_disconnect()


def test_sync_dropped_stream_is_released(client: Client, mock: ThreadedMock) -> None:
    stream = client.chat.completions.create(model=LONG, messages=user("x"), stream=True)
    next(stream)
    del stream
    gc.collect()
    mock.wait_for_disconnect()


def test_sync_backpressure_bounds_the_queue(client: Client, mock: ThreadedMock) -> None:
    # A consumer that stops reading: the pump stops after a bounded number of batches.
    stream = client.chat.completions.create(
        model="m?tokens=200000", messages=user("x"), stream=True
    )
    it = iter(stream)
    next(it)
    bridge = stream._bridge
    assert bridge is not None
    threading.Event().wait(0.3)  # let the pump run ahead as far as it may
    assert 1 <= len(bridge._items) <= bridge._maxsize
    assert mock.server.streams[-1].outcome is None  # the server is held back, not finished
    it.close()  # type: ignore[attr-defined]
    assert stream.closed
    mock.wait_for_disconnect()


def test_sync_status_error_and_connection_error(client: Client) -> None:
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="m?status=404", messages=user("x"), stream=True)
    with Client(base_url="http://127.0.0.1:9/v1", max_retries=0) as c, pytest.raises(APIConnectionError):
        c.chat.completions.create(model="m", messages=user("x"))


def test_sync_errors_mid_stream_after_chunks(client: Client) -> None:
    stream = client.chat.completions.create(
        model="m?tokens=10&error_after=4", messages=user("x"), stream=True
    )
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(rxchat.errors.StreamAPIError) as info:
        for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 4 == info.value.chunks_received


def test_sync_client_from_portal_thread_is_refused(client: Client) -> None:
    async def inside() -> None:
        client.chat.completions.create(model="m", messages=user("x"))

    with pytest.raises(RuntimeError, match="own event-loop thread"):
        get_portal().call(inside)


def test_many_sync_clients_share_one_loop_thread(mock: ThreadedMock) -> None:
    before = threading.active_count()
    clients = [Client(base_url=mock.url) for _ in range(5)]
    for c in clients:
        c.chat.completions.create(model="m?tokens=1", messages=user("x"))
    assert threading.active_count() <= before + 1
    for c in clients:
        c.close()
        c.close()


def test_sync_client_from_threads(client: Client, mock: ThreadedMock) -> None:
    results: dict[int, str] = {}

    def work(i: int) -> None:
        with client.chat.completions.create(
            model=f"m?tokens={5 + i}", messages=user(f"n{i}"), stream=True
        ) as s:
            results[i] = "".join(c.text or "" for c in s)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == list(range(6))
    expected = {r.request_id: r.texts[0] for r in mock.server.streams}
    assert sorted(results.values()) == sorted(expected.values())


# -- event streams ---------------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int


async def test_async_event_stream(aclient: AsyncClient, server: MockServer) -> None:
    async with aclient.chat.completions.stream(model="m?tokens=8", messages=user("x")) as stream:
        types = [event.type async for event in stream]
        completion = await stream.get_final_completion()
    assert types[0] == "chunk" and "content.delta" in types and types[-1] == "content.done"
    assert completion.choices[0].message.content == server.streams[-1].texts[0]
    assert stream.current_completion_snapshot.choices[0].message.content == server.streams[-1].texts[0]


async def test_async_event_stream_structured(aclient: AsyncClient, server: MockServer) -> None:
    async with aclient.chat.completions.stream(
        model="m", messages=user("x"), response_format=Person
    ) as stream:
        completion = await stream.get_final_completion()
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Person)
    rf = server.requests[-1].body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"]["additionalProperties"] is False


async def test_async_event_stream_leaving_early_closes(aclient: AsyncClient, server: MockServer) -> None:
    async with aclient.chat.completions.stream(model=LONG, messages=user("x")) as stream:
        async for event in stream:
            if event.type == "content.delta":
                break
    await server.wait_for_disconnect(5.0)
    with pytest.raises(IncompleteStreamError):
        await stream.get_final_completion()


async def test_async_until_done_and_partial_next(aclient: AsyncClient) -> None:
    async with aclient.chat.completions.stream(model="m?tokens=6", messages=user("x")) as stream:
        first = await stream.__anext__()
        assert first.type == "chunk"
        assert (await stream.until_done()) is stream
        completion = await stream.get_final_completion()
    assert completion.choices[0].finish_reason == "stop"


def test_sync_event_stream(client: Client, mock: ThreadedMock) -> None:
    with client.chat.completions.stream(model="m?tokens=8", messages=user("x")) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        completion = stream.get_final_completion()
    assert "".join(deltas) == completion.choices[0].message.content == mock.server.streams[-1].texts[0]


def test_sync_event_stream_leaving_early_closes_at_once(client: Client, mock: ThreadedMock) -> None:
    with client.chat.completions.stream(model=LONG, messages=user("x")) as stream:
        for event in stream:
            if event.type == "content.delta":
                break
        assert stream.closed
    mock.wait_for_disconnect()


def test_sync_event_stream_error_carries_partial_completion(client: Client) -> None:
    with client.chat.completions.stream(
        model="m?tokens=10&error_after=5", messages=user("x")
    ) as stream, pytest.raises(rxchat.errors.StreamAPIError) as info:
        for _ in stream:
            pass
    partial = info.value.completion
    assert partial is not None
    assert partial.choices[0].message.content
    assert stream.current_completion_snapshot.choices[0].message.content == (
        partial.choices[0].message.content
    )


# -- observe ---------------------------------------------------------------------------


async def test_async_observe_is_cold_and_uses_client_config(server: MockServer) -> None:
    async with AsyncClient(
        base_url=server.url, api_key="sk-k-123456789", default_headers={"X-Mock-Tokens": "3"}
    ) as c:
        source = c.chat.completions.observe(model="m", messages=user("x"))
        assert server.requests == []
        chunks: list[ChatCompletionChunk] = []
        done = asyncio.Event()
        source.subscribe(on_next=chunks.append, on_completed=done.set)
        await asyncio.wait_for(done.wait(), 5)
        assert len(server.requests) == 1
        assert "".join(c.text or "" for c in chunks) == server.streams[-1].texts[0]
        assert len(server.streams[-1].texts[0].split()) >= 1


async def test_async_observe_dispose_closes(aclient: AsyncClient, server: MockServer) -> None:
    got = asyncio.Event()
    sub = aclient.chat.completions.observe(model=LONG, messages=user("x")).subscribe(
        on_next=lambda _c: got.set()
    )
    await got.wait()
    sub.dispose()
    await server.wait_for_disconnect(5.0)


def test_sync_observe_runs_on_the_loop_thread(client: Client, mock: ThreadedMock) -> None:
    chunks: list[ChatCompletionChunk] = []
    threads: set[str] = set()
    done = threading.Event()

    def on_next(chunk: ChatCompletionChunk) -> None:
        threads.add(threading.current_thread().name)
        chunks.append(chunk)

    client.chat.completions.observe(model="m?tokens=5", messages=user("x")).subscribe(
        on_next=on_next, on_completed=done.set
    )
    assert done.wait(5)
    assert threads == {"rxchat-portal"}
    assert "".join(c.text or "" for c in chunks) == mock.server.streams[-1].texts[0]


def test_sync_observe_works_with_reactivex_run(client: Client, mock: ThreadedMock) -> None:
    # Observable.run() subscribes with a NewThreadScheduler; the socket still runs on our loop.
    import reactivex.operators as rx

    from rxchat import operators as ops

    source = client.chat.completions.observe(model="m?tokens=5", messages=user("x"))
    deltas = source.pipe(ops.text(), rx.to_list()).run()
    assert "".join(deltas) == mock.server.streams[-1].texts[0]


# -- Edgee style -----------------------------------------------------------------------


def test_edgee_inputs_reach_the_server(client: Client, mock: ThreadedMock) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    list(client.stream("m", "Tell me a story"))
    assert mock.server.requests[-1].body["messages"] == user("Tell me a story")
    list(client.stream("m", {"messages": [{"role": "system", "content": "s"}, *user("u")]}))
    assert mock.server.requests[-1].body["messages"][0] == {"role": "system", "content": "s"}
    chunks = list(
        client.stream(
            "m", InputObject(messages=user("u"), tools=tools, tool_choice="auto", tags=["a"])
        )
    )
    body = mock.server.requests[-1].body
    assert body["tools"] == tools and body["tool_choice"] == "auto" and body["tags"] == ["a"]
    assert chunks[-1].finish_reason == "tool_calls"
    assert body["stream"] is True


def test_edgee_compression_toggles_are_headers(client: Client, mock: ThreadedMock) -> None:
    client.send("m", InputObject(messages=user("u"), output_brevity=True))
    headers = {k.lower(): v for k, v in mock.server.requests[-1].headers.items()}
    assert headers["x-edgee-compression-brevity"] == "true"


def test_edgee_bad_inputs() -> None:
    c = Client(base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(TypeError):
            c.stream("m", 42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="unknown input key"):
            c.stream("m", {"messages": user("x"), "temprature": 1})
        with pytest.raises(ValueError):
            c.stream("m", {"tools": []})
        with pytest.raises(TypeError):
            c.stream("m", {"messages": "hello"})
        with pytest.raises(ValueError):
            c.stream("m", InputObject(messages=[{"content": "no role"}]))
    finally:
        c.close()


def test_edgee_send(client: Client, mock: ThreadedMock) -> None:
    response = client.send("m?tokens=6", "What is the capital of France?")
    assert isinstance(response, SendResponse)
    assert response.text == mock.server.streams[-1].texts[0] if mock.server.streams else response.text
    assert response.finish_reason == "stop"
    assert response.message is not None and response.message["role"] == "assistant"
    assert response.tool_calls is None
    assert response.usage is not None and response.usage.completion_tokens == 6
    assert response.usage.total_tokens == response.usage.prompt_tokens + 6
    assert response.completion is not None and response.completion.choices[0].message.content == response.text


def test_edgee_send_tool_calls(client: Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    response = client.send("m", {"messages": user("Weather in Paris?"), "tools": tools})
    assert response.finish_reason == "tool_calls"
    assert response.text is None
    calls: list[dict[str, Any]] = response.tool_calls or []
    assert calls[0]["function"]["name"] == "get_weather"
    assert calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")


def test_edgee_send_stream_true(client: Client, mock: ThreadedMock) -> None:
    stream = client.send("m?tokens=7", "Hi", stream=True)
    assert isinstance(stream, Stream)
    text = "".join(chunk.text or "" for chunk in stream)
    assert text == mock.server.streams[-1].texts[0]


def test_edgee_stream_is_lazy(client: Client, mock: ThreadedMock) -> None:
    stream = client.stream("m", "Hi")
    assert mock.server.requests == []
    roles = [c.role for c in stream if c.role]
    assert roles == ["assistant"]
    assert len(mock.server.requests) == 1


async def test_async_edgee(aclient: AsyncClient, server: MockServer) -> None:
    text = ""
    async for chunk in aclient.stream("m?tokens=5", "Tell me a story"):
        text += chunk.text or ""
    assert text == server.streams[-1].texts[0]
    response = await aclient.send("m?tokens=5", "Tell me a story")
    assert response.text == text
    stream = await aclient.send("m?tokens=5", {"messages": user("Tell me a story")}, stream=True)
    assert "".join([c.text or "" async for c in stream]) == text


# -- lifetime --------------------------------------------------------------------------


async def test_unclosed_async_client_leaves_no_warning(server: MockServer) -> None:
    # filterwarnings=error: an unclosed session or connector warning would fail this test.
    client = AsyncClient(base_url=server.url)
    stream = await client.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    [c async for c in stream]
    del client, stream
    gc.collect()
    await asyncio.sleep(0)


def test_temporary_client_lives_as_long_as_its_stream(mock: ThreadedMock) -> None:
    stream = Client(base_url=mock.url).with_options(max_retries=0).chat.completions.create(
        model="m?tokens=9", messages=user("x"), stream=True
    )
    gc.collect()
    assert "".join(c.text or "" for c in stream) == mock.server.streams[-1].texts[0]
    del stream
    gc.collect()


def test_dropped_sync_client_closes_its_connections(mock: ThreadedMock) -> None:
    client = Client(base_url=mock.url)
    stream = client.chat.completions.create(model=LONG, messages=user("x"), stream=True)
    next(stream)
    transport = client._async._transport
    del client, stream
    gc.collect()
    mock.wait_for_disconnect()
    for _ in range(100):
        session = transport._session
        if session is None or session.closed:
            break
        threading.Event().wait(0.01)
    assert transport._session is None or transport._session.closed


# -- parse -----------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


async def test_async_parse_response_format(aclient: AsyncClient, server: MockServer) -> None:
    completion = await aclient.chat.completions.parse(
        model="m", messages=user("x"), response_format=City
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City)
    assert parsed == City.model_validate_json(completion.choices[0].message.content or "")
    assert "stream" not in server.requests[-1].body
    assert server.requests[-1].body["response_format"]["json_schema"]["name"] == "City"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


async def test_async_parse_agrees_with_stream(aclient: AsyncClient) -> None:
    whole = await aclient.chat.completions.parse(
        model="m", messages=user("x"), response_format=City
    )
    async with aclient.chat.completions.stream(
        model="m", messages=user("x"), response_format=City
    ) as stream:
        streamed = await stream.get_final_completion()
    assert whole.choices[0].message.parsed == streamed.choices[0].message.parsed


def test_sync_parse_tools(client: Client) -> None:
    completion = client.chat.completions.parse(
        model="m",
        messages=user("Weather?"),
        tools=[rxchat._parsing.pydantic_function_tool(City, name="lookup")],
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "lookup"
    assert isinstance(calls[0].function.parsed_arguments, City)


def test_sync_parse_length_raises(client: Client) -> None:
    with pytest.raises(rxchat.errors.LengthFinishReasonError) as info:
        client.chat.completions.parse(
            model="m", messages=user("x"), response_format=City, max_tokens=2
        )
    assert info.value.completion is not None


async def test_async_closed_stream_cannot_be_iterated(aclient: AsyncClient) -> None:
    stream = await aclient.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    await stream.close()
    with pytest.raises(StreamConsumedError):
        async for _ in stream:
            pass


def test_sync_closed_stream_cannot_be_iterated(client: Client) -> None:
    stream = client.chat.completions.create(model="m?tokens=3", messages=user("x"), stream=True)
    stream.close()
    with pytest.raises(StreamConsumedError):
        list(stream)


def test_no_task_left_on_the_loop_thread(client: Client, mock: ThreadedMock) -> None:
    with client.chat.completions.stream(model="m?tokens=5", messages=user("x")) as stream:
        stream.until_done()
    for i, _ in enumerate(client.chat.completions.create(model=LONG, messages=user("x"), stream=True)):
        if i == 3:
            break
    with client.chat.completions.create(model=LONG, messages=user("x"), stream=True) as raw:
        next(raw)
    list(client.stream("m?tokens=3", "hi"))
    mock.wait_for_disconnect(count=2)

    async def others() -> set[asyncio.Task[Any]]:
        await asyncio.sleep(0.05)  # let finalizer tasks, if any, run
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert get_portal().call(others) == set()
