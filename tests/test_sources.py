"""Observable sources: live streams from the mock server (loopback) and replays."""

from __future__ import annotations

import asyncio
import gc
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as rops
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat._sources import (
    chat_completion_stream,
    from_chunks,
    from_sse_bytes,
    observable_from_batches,
    resolve_api_key,
    resolve_base_url,
)
from rxchat._transport import HTTPTransport, Timeout
from rxchat.errors import (
    APIConnectionError,
    AuthenticationError,
    EventTooLargeError,
    IncompleteStreamError,
    InvalidChunkError,
    RateLimitError,
    StreamAPIError,
)
from rxchat.mock import MockServer
from rxchat.types import ChatCompletionChunk

# Functional bound: a connection left to a timeout, the garbage collector or the end of the answer
# would take seconds. Typical latency is about 1 ms (benchmarks/bench_faults.py measures it); the
# margin keeps a loaded CI machine that deschedules a thread from failing the test.
DISCONNECT_BOUND = 0.5

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"
RECORDINGS = sorted(CORPUS.glob("*.sse"))
USER = [{"role": "user", "content": "Hello"}]
KEY = "sk-source-SENTINEL-abcdef0123456789"



class Recorder:
    """An observer that records everything, and the thread/task of each call."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.error: Exception | None = None
        self.completed = False
        self.ended = asyncio.Event()
        self.threads: set[int] = set()
        self.in_task = True

    def on_next(self, value: Any) -> None:
        self.items.append(value)
        self.threads.add(threading.get_ident())
        try:
            self.in_task = self.in_task and asyncio.current_task() is not None
        except RuntimeError:
            self.in_task = False

    def on_error(self, err: Exception) -> None:
        self.error = err
        self.ended.set()

    def on_completed(self) -> None:
        self.completed = True
        self.ended.set()

    @property
    def text(self) -> str:
        return "".join(c.text or "" for c in self.items)


def stream_of(
    server: MockServer, model: str = "mock", **params: Any
) -> Observable[ChatCompletionChunk]:
    return chat_completion_stream(
        model=model, messages=USER, base_url=server.url, api_key=KEY, **params
    )


async def settle() -> None:
    """Let finished subscription tasks run their cleanup."""
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)


def other_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


# -- chat_completion_stream ------------------------------------------------------------------


async def test_stream_delivers_all_chunks(server: MockServer) -> None:
    rec = Recorder()
    stream_of(server, "mock?tokens=30").subscribe(rec)
    await asyncio.wait_for(rec.ended.wait(), 5)
    assert rec.completed and rec.error is None
    assert rec.text == server.streams[-1].texts[0]
    assert rec.items[-1].finish_reason == "stop"
    assert rec.in_task, "on_next is called from the reading task"
    assert rec.threads == {threading.get_ident()}
    await settle()
    assert other_tasks() == []


async def test_max_event_bytes_bounds_one_event(server: MockServer) -> None:
    # A 2 MB event against a 64 KiB bound: the chunks before it arrive, then a clear error.
    rec = Recorder()
    stream_of(server, "mock?tokens=5&big_event=2000000", max_event_bytes=65536).subscribe(rec)
    await asyncio.wait_for(rec.ended.wait(), 10)
    assert isinstance(rec.error, EventTooLargeError)
    assert "max_event_bytes=65536" in str(rec.error)
    assert [c.role for c in rec.items] == ["assistant"]  # the role chunk came before it


async def test_await_gives_the_last_chunk(server: MockServer) -> None:
    last = await stream_of(server, "mock?tokens=5")
    assert isinstance(last, ChatCompletionChunk)
    assert last.finish_reason == "stop"
    texts = await stream_of(server, "mock?tokens=5").pipe(
        rops.map(lambda c: c.text or ""), rops.reduce(lambda a, b: a + b, "")
    )
    assert texts == server.streams[-1].texts[0]


async def test_request_body_and_headers(server: MockServer) -> None:
    await stream_of(
        server,
        "mock?tokens=2",
        temperature=0.2,
        stream_options={"include_usage": True},
        headers={"X-Trace": "t1"},
    )
    record = server.requests[-1]
    assert record.body["stream"] is True
    assert record.body["temperature"] == 0.2
    assert record.body["stream_options"] == {"include_usage": True}
    assert record.body["messages"] == USER
    assert {k.lower(): v for k, v in record.headers.items()}["x-trace"] == "t1"


async def test_cold_each_subscription_is_a_request(server: MockServer) -> None:
    source = stream_of(server, "mock?tokens=3")
    await source
    await source
    assert len(server.requests) == 2


async def test_environment_fallbacks(server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RXCHAT_BASE_URL", "OPENAI_BASE_URL", "RXCHAT_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_base_url(None) == "https://api.openai.com/v1"
    assert resolve_api_key(None) is None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_base_url(None) == "http://127.0.0.1:1/v1"
    assert resolve_api_key(None) == "sk-openai"
    monkeypatch.setenv("RXCHAT_BASE_URL", server.url)
    monkeypatch.setenv("RXCHAT_API_KEY", KEY)
    assert resolve_base_url("http://explicit/v1") == "http://explicit/v1"
    assert resolve_api_key("sk-explicit") == "sk-explicit"
    # The key from the environment reaches a server that requires it.
    async with MockServer(api_key=KEY) as guarded:
        monkeypatch.setenv("RXCHAT_BASE_URL", guarded.url)
        last = await chat_completion_stream(model="mock?tokens=2", messages=USER)
        assert last.finish_reason == "stop"


def test_bad_arguments_fail_at_call_time() -> None:
    with pytest.raises(TypeError, match="model"):
        chat_completion_stream(model="", messages=USER, base_url="http://h/v1")
    with pytest.raises(TypeError, match="messages"):
        chat_completion_stream(model="m", messages="hi", base_url="http://h/v1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="always streams"):
        chat_completion_stream(model="m", messages=USER, base_url="http://h/v1", stream=False)
    with pytest.raises(ValueError, match="base_url"):
        chat_completion_stream(model="m", messages=USER, base_url="localhost:8000")
    with pytest.raises(ValueError, match="finite"):
        chat_completion_stream(model="m", messages=USER, base_url="http://h/v1", timeout=-1)


@pytest.mark.parametrize(
    ("model", "error", "chunks"),
    [
        ("mock?tokens=10&drop_after=4", APIConnectionError, 4),
        ("mock?tokens=10&bad_json_after=3", InvalidChunkError, 3),
        ("mock?tokens=10&error_after=2", StreamAPIError, 2),
        ("mock?tokens=5&no_done=1", IncompleteStreamError, 6),
        ("mock?status=429", RateLimitError, 0),
    ],
)
async def test_errors_arrive_after_the_chunks_before_them(
    server: MockServer, model: str, error: type[Exception], chunks: int
) -> None:
    rec = Recorder()
    chat_completion_stream(
        model=model, messages=USER, base_url=server.url, max_retries=0
    ).subscribe(rec)
    await asyncio.wait_for(rec.ended.wait(), 5)
    assert isinstance(rec.error, error)
    assert len(rec.items) == chunks
    assert rec.error.chunks_received == chunks  # type: ignore[attr-defined]
    assert not rec.completed
    await settle()
    assert other_tasks() == []


async def test_auth_error_has_no_key() -> None:
    async with MockServer(api_key="sk-the-right-one-123456") as server:
        rec = Recorder()
        stream_of(server).subscribe(rec)
        await asyncio.wait_for(rec.ended.wait(), 5)
    assert isinstance(rec.error, AuthenticationError)
    assert KEY not in str(rec.error) + repr(rec.error) + repr(rec.error.body)


# -- disposal ------------------------------------------------------------------------------------


async def test_dispose_closes_the_connection_quietly(server: MockServer) -> None:
    rec = Recorder()
    subscription = stream_of(server, "mock?tokens=100000&delay=0.005").subscribe(rec)
    while len(rec.items) < 5:
        await asyncio.sleep(0.005)
    disposed_at = time.monotonic()
    subscription.dispose()
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - disposed_at < DISCONNECT_BOUND
    await settle()
    assert rec.error is None and not rec.completed, "disposal is quiet"
    assert other_tasks() == []
    gc.collect()  # an unclosed session would warn here (warnings are errors)


async def test_dispose_before_the_response(server: MockServer) -> None:
    rec = Recorder()
    subscription = stream_of(server, "mock?stall_first=30").subscribe(rec)
    await server.state.wait_for(lambda: server.active_streams == 1, 2)
    subscription.dispose()
    await server.wait_for_disconnect(timeout=2)
    await settle()
    assert rec.items == [] and rec.error is None and not rec.completed
    assert other_tasks() == []


async def test_dispose_right_after_subscribe_sends_nothing(server: MockServer) -> None:
    rec = Recorder()
    stream_of(server).subscribe(rec).dispose()
    await settle()
    assert server.requests == []
    assert other_tasks() == []


async def test_take_disposes_from_inside_on_next(server: MockServer) -> None:
    first = await stream_of(server, "mock?tokens=100000&delay=0.002").pipe(
        rops.take(3), rops.to_list()
    )
    assert len(first) == 3
    record = await server.wait_for_disconnect(timeout=2)
    assert record.chunks < 100
    await settle()
    assert other_tasks() == []


async def test_cancelling_the_awaiting_task_closes_the_connection(server: MockServer) -> None:
    async def consume() -> Any:
        return await stream_of(server, "mock?tokens=100000&delay=0.005")

    task = asyncio.create_task(consume())
    await server.state.wait_for(lambda: server.active_streams == 1, 2)
    await asyncio.sleep(0.02)
    task.cancel()
    # reactivex's to_future disposes the subscription when its future is cancelled.
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_for_disconnect(timeout=2)
    await settle()
    assert other_tasks() == []


async def test_exception_in_on_next_goes_to_on_error(server: MockServer) -> None:
    errors: list[Exception] = []
    done = asyncio.Event()

    def on_next(chunk: ChatCompletionChunk) -> None:
        raise ValueError("subscriber bug")

    def on_error(err: Exception) -> None:
        errors.append(err)
        done.set()

    stream_of(server, "mock?tokens=100000&delay=0.005").subscribe(on_next, on_error)
    await asyncio.wait_for(done.wait(), 5)
    assert isinstance(errors[0], ValueError)
    await server.wait_for_disconnect(timeout=2)
    await settle()
    assert other_tasks() == []


async def test_error_without_handler_is_reported_to_the_loop(server: MockServer) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        stream_of(server, "mock?status=400").subscribe(lambda _: None)  # no on_error
        for _ in range(200):
            if reported:
                break
            await asyncio.sleep(0.005)
    finally:
        loop.set_exception_handler(previous)
    assert reported and "rxchat" in reported[0]["message"]
    await settle()


# -- scheduling ------------------------------------------------------------------------------------


def test_subscribing_without_a_loop_is_a_clear_error() -> None:
    errors: list[Exception] = []
    chat_completion_stream(model="m", messages=USER, base_url="http://127.0.0.1:9/v1").subscribe(
        on_error=errors.append
    )
    assert isinstance(errors[0], RuntimeError)
    assert "event loop" in str(errors[0])


def test_thread_safe_scheduler_from_another_thread() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        server = MockServer()
        url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        items: list[ChatCompletionChunk] = []
        threads: set[int] = set()
        done = threading.Event()

        def on_next(chunk: ChatCompletionChunk) -> None:
            items.append(chunk)
            threads.add(threading.get_ident())

        chat_completion_stream(model="mock?tokens=6", messages=USER, base_url=url).subscribe(
            on_next,
            lambda e: done.set(),
            done.set,
            scheduler=AsyncIOThreadSafeScheduler(loop),
        )
        assert done.wait(5)
        assert items[-1].finish_reason == "stop"
        assert threads == {thread.ident}, "callbacks run on the loop's thread"

        # Dispose from the foreign thread: the connection closes on the loop.
        sub = chat_completion_stream(
            model="mock?tokens=100000&delay=0.005", messages=USER, base_url=url
        ).subscribe(lambda _: None, scheduler=AsyncIOThreadSafeScheduler(loop))
        asyncio.run_coroutine_threadsafe(
            server.state.wait_for(lambda: server.active_streams == 1, 2), loop
        ).result(5)
        sub.dispose()
        asyncio.run_coroutine_threadsafe(server.wait_for_disconnect(2), loop).result(5)
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- observable_from_batches -------------------------------------------------------------------------


async def test_observable_from_batches_with_a_shared_transport(server: MockServer) -> None:
    closed: list[bool] = []

    async def on_close() -> None:
        closed.append(True)

    async with HTTPTransport(base_url=server.url, api_key=None, timeout=Timeout()) as t:
        body = {"model": "mock?tokens=7", "messages": USER, "stream": True}
        source = observable_from_batches(
            lambda: t.stream("/chat/completions", body), on_close=on_close
        )
        a = await source.pipe(rops.to_list())
        b = await source.pipe(rops.to_list())
    assert [c.text for c in a] == [c.text for c in b]
    assert a[-1].finish_reason == "stop"
    assert closed == [True, True]
    assert len(server.requests) == 2


# -- from_sse_bytes ----------------------------------------------------------------------------------


def _splits(data: bytes, rng: random.Random) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        n = rng.randint(1, 64)
        yield data[i : i + n]
        i += n


def _dump(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    return [c.to_dict() for c in chunks]


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_corpus_replays_the_same_whatever_the_reads(path: Path) -> None:
    data = path.read_bytes()
    whole = from_sse_bytes(data).pipe(rops.to_list()).run()
    assert whole, "each recording has chunks"
    by_path = from_sse_bytes(path).pipe(rops.to_list()).run()
    by_str = from_sse_bytes(str(path)).pipe(rops.to_list()).run()
    one_byte = from_sse_bytes(data[i : i + 1] for i in range(len(data))).pipe(rops.to_list()).run()
    random_reads = (
        from_sse_bytes(list(_splits(data, random.Random(path.name)))).pipe(rops.to_list()).run()
    )
    expected = _dump(whole)
    for other in (by_path, by_str, one_byte, random_reads):
        assert _dump(other) == expected
    # Round trip: the chunks, serialised as SSE again, replay to the same chunks.
    again = (
        b"".join(b"data: " + c.to_json().encode() + b"\n\n" for c in whole) + b"data: [DONE]\n\n"
    )
    assert _dump(from_sse_bytes(again).pipe(rops.to_list()).run()) == expected


async def test_from_sse_bytes_async_iterable() -> None:
    data = (CORPUS / "plain_text.sse").read_bytes()

    async def reads() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):
            await asyncio.sleep(0)
            yield data[i : i + 7]

    chunks = await from_sse_bytes(reads()).pipe(rops.to_list())
    assert _dump(chunks) == _dump(from_sse_bytes(data).pipe(rops.to_list()).run())


SSE_OK = (
    b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
)


def _run(
    source: Observable[ChatCompletionChunk],
) -> tuple[list[ChatCompletionChunk], Exception | None, bool]:
    items: list[ChatCompletionChunk] = []
    errors: list[Exception] = []
    completed: list[bool] = []
    source.subscribe(items.append, errors.append, lambda: completed.append(True))
    return items, (errors[0] if errors else None), bool(completed)


def test_from_sse_bytes_is_synchronous_without_a_loop() -> None:
    items, err, completed = _run(from_sse_bytes(SSE_OK))
    assert [c.text for c in items] == ["a", "b"] and err is None and completed


def test_from_sse_bytes_stops_at_done() -> None:
    reads_taken: list[int] = []

    def reads() -> Iterator[bytes]:
        for i, part in enumerate([SSE_OK, b"data: [DONE]\n\n", b"data: {not json}\n\n"]):
            reads_taken.append(i)
            yield part

    items, err, completed = _run(from_sse_bytes(reads()))
    assert len(items) == 2 and err is None and completed
    assert reads_taken == [0, 1], "nothing is read after [DONE]"


def test_from_sse_bytes_errors() -> None:
    items, err, _ = _run(from_sse_bytes(SSE_OK[:60] + b"\n\ndata: nope\n\n"))
    assert isinstance(err, InvalidChunkError) and err.raw == "nope"
    assert [c.text for c in items] == ["a"]
    items, err, _ = _run(from_sse_bytes(SSE_OK.split(b"\n\n")[0] + b"\n\n"))
    assert isinstance(err, IncompleteStreamError) and err.chunks_received == 1
    items, err, _ = _run(from_sse_bytes(b'data: {"error": {"message": "overloaded"}}\n\n'))
    assert isinstance(err, StreamAPIError) and "overloaded" in str(err)
    _, err, _ = _run(from_sse_bytes(["data: text\n\n"]))  # type: ignore[list-item]
    assert isinstance(err, TypeError) and "encode" in str(err)
    _, err, _ = _run(from_sse_bytes(Path("/nonexistent/recording.sse")))
    assert isinstance(err, FileNotFoundError)
    with pytest.raises(TypeError, match="from_sse_bytes"):
        from_sse_bytes(42)  # type: ignore[arg-type]


def test_from_sse_bytes_with_a_test_scheduler() -> None:
    scheduler = TestScheduler()
    results = scheduler.start(lambda: from_sse_bytes(SSE_OK).pipe(rops.map(lambda c: c.text)))
    assert results.messages == [
        ReactiveTest.on_next(200, "a"),
        ReactiveTest.on_next(200, "b"),
        ReactiveTest.on_completed(200),
    ]


# -- from_chunks -----------------------------------------------------------------------------------


def _chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


def test_from_chunks_dicts_and_models() -> None:
    raw = [_chunk("a"), _chunk("b", "stop")]
    frozen = orjson.dumps(raw)
    model = ChatCompletionChunk.model_validate(_chunk("c"))
    items, err, completed = _run(from_chunks([*raw, model]))
    assert err is None and completed
    assert [c.text for c in items] == ["a", "b", "c"]
    assert items[2] is model
    assert orjson.dumps(raw) == frozen, "the input is not modified"


def test_from_chunks_is_cold_and_lazy() -> None:
    source = from_chunks([_chunk("a"), _chunk("b")])
    assert len(source.pipe(rops.to_list()).run()) == 2
    assert len(source.pipe(rops.to_list()).run()) == 2
    pulled: list[int] = []

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(1000):
            pulled.append(i)
            yield _chunk(str(i))

    first = from_chunks(gen()).pipe(rops.take(2), rops.to_list()).run()
    assert [c.text for c in first] == ["0", "1"]
    assert len(pulled) <= 3, "disposal stops the iteration"


def test_from_chunks_bad_items() -> None:
    items, err, _ = _run(from_chunks([_chunk("a"), {"choices": "nope"}]))
    assert isinstance(err, InvalidChunkError)
    assert err.chunks_received == 1 and '"nope"' in err.raw
    assert [c.text for c in items] == ["a"]
    _, err, _ = _run(from_chunks([_chunk("a"), 42]))  # type: ignore[list-item]
    assert isinstance(err, TypeError) and "item 1" in str(err)
    with pytest.raises(TypeError):
        from_chunks(_chunk("a"))  # type: ignore[arg-type]


async def test_from_chunks_async_iterable_and_await() -> None:
    async def gen() -> AsyncIterator[dict[str, Any]]:
        for text in "xyz":
            await asyncio.sleep(0)
            yield _chunk(text)

    last = await from_chunks(gen())
    assert last.text == "z"
    assert (await from_chunks([_chunk("q")])).text == "q"


async def test_replays_compose_with_reactivex() -> None:
    merged = await reactivex.merge(from_chunks([_chunk("a")]), from_chunks([_chunk("b")])).pipe(
        rops.map(lambda c: c.text), rops.to_list()
    )
    assert sorted(merged) == ["a", "b"]
