"""HTTPTransport and ChunkBatchStream against the embedded mock server on real loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

import rxchat
from rxchat._transport import (
    DEFAULT_TIMEOUT,
    ChunkBatchStream,
    HTTPTransport,
    ResponseInfo,
    Timeout,
    _retry_after,
)
from rxchat.errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EventTooLargeError,
    IncompleteStreamError,
    InternalServerError,
    InvalidChunkError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamAPIError,
    UnprocessableEntityError,
)
from rxchat.mock import MockServer
from rxchat.types import ChatCompletionChunk

# Functional bound: a connection left to a timeout, the garbage collector or the end of the answer
# would take seconds. Typical latency is about 1 ms (benchmarks/bench_faults.py measures it); the
# margin keeps a loaded CI machine that deschedules a thread from failing the test.
DISCONNECT_BOUND = 0.5

SECRET = "sk-rxchat-SENTINEL-0123456789abcdef"
USER = [{"role": "user", "content": "Say something"}]


def body(model: str = "mock", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER, "stream": True, **extra}



@pytest.fixture
async def transport(server: MockServer) -> AsyncIterator[HTTPTransport]:
    t = HTTPTransport(
        base_url=server.url, api_key=SECRET, timeout=Timeout(connect=5, read=5), backoff_base=0.001
    )
    async with t:
        yield t


async def collect(
    stream: ChunkBatchStream,
) -> tuple[list[list[ChatCompletionChunk]], BaseException | None]:
    batches: list[list[ChatCompletionChunk]] = []
    try:
        async for batch in stream:
            batches.append(batch)
    except Exception as err:
        return batches, err
    return batches, None


def text_of(batches: list[list[ChatCompletionChunk]]) -> str:
    return "".join(c.text or "" for b in batches for c in b)


# -- Timeout -------------------------------------------------------------------------------


def test_timeout_coerce() -> None:
    assert Timeout.coerce(3) == Timeout(connect=3, read=3, total=None)
    assert Timeout.coerce(2.5) == Timeout(connect=2.5, read=2.5, total=None)
    assert Timeout.coerce(None) == Timeout(connect=None, read=None, total=None)
    t = Timeout(connect=1, read=2, total=3)
    assert Timeout.coerce(t) is t
    assert Timeout(connect=10.0, read=60.0, total=None) == DEFAULT_TIMEOUT


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_timeout_rejects_bad_numbers(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number > 0"):
        Timeout.coerce(bad)
    with pytest.raises(ValueError):
        Timeout(total=bad)


@pytest.mark.parametrize("bad", ["5", True, [1]])
def test_timeout_rejects_bad_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        Timeout.coerce(bad)


def test_retry_after_parsing() -> None:
    assert _retry_after({"retry-after-ms": "250"}) == 0.25
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({"retry-after": "0"}) == 0.0
    assert _retry_after({"retry-after": "120"}) is None  # unreasonable: our backoff decides
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None
    when = datetime.now(UTC) + timedelta(seconds=10)
    value = _retry_after({"retry-after": format_datetime(when, usegmt=True)})
    assert value is not None and 5 < value <= 10
    past = datetime.now(UTC) - timedelta(seconds=10)
    assert _retry_after({"retry-after": format_datetime(past, usegmt=True)}) == 0.0
    # retry-after-ms wins over Retry-After
    assert _retry_after({"retry-after-ms": "10", "retry-after": "30"}) == 0.01


def test_backoff_grows_and_is_capped() -> None:
    t = HTTPTransport(base_url="http://127.0.0.1:1/v1", api_key=None, timeout=Timeout())
    for retry, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delay = t.backoff(retry, None)
        assert nominal * 0.75 <= delay <= nominal
    assert t.backoff(3, {"retry-after": "0.2"}) == 0.2


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "ftp://host/v1", "/v1", ""])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        HTTPTransport(base_url=url, api_key=SECRET, timeout=Timeout())


def test_bad_max_retries_and_timeout() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        HTTPTransport(base_url="http://h/v1", api_key=None, timeout=Timeout(), max_retries=-1)
    with pytest.raises(TypeError, match="Timeout"):
        HTTPTransport(base_url="http://h/v1", api_key=None, timeout=5)  # type: ignore[arg-type]


def test_repr_has_no_key() -> None:
    t = HTTPTransport(
        base_url="http://127.0.0.1:9/v1", api_key=SECRET, timeout=Timeout(), max_retries=1
    )
    text = repr(t) + str(t) + t.base_url
    assert SECRET not in text
    assert "127.0.0.1:9/v1" in text
    stream = t.stream("/chat/completions", body())
    assert SECRET not in repr(stream)
    with_user = HTTPTransport(
        base_url="http://user:pw@127.0.0.1:9/v1", api_key=None, timeout=Timeout(), max_retries=1
    )
    text = repr(with_user) + str(with_user) + with_user.base_url
    assert "pw" not in text
    assert "127.0.0.1:9/v1" in text


async def test_closed_transport_refuses() -> None:
    t = HTTPTransport(base_url="http://127.0.0.1:9/v1", api_key=None, timeout=Timeout())
    await t.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await t.stream("/chat/completions", body()).start()


# -- streaming -------------------------------------------------------------------------------


async def test_stream_delivers_every_chunk_in_batches(
    server: MockServer, transport: HTTPTransport
) -> None:
    stream = transport.stream("/chat/completions", body("mock?tokens=40"))
    batches, err = await collect(stream)
    assert err is None
    assert batches and all(batches), "batches are never empty"
    chunks = [c for b in batches for c in b]
    assert chunks[0].role == "assistant"
    assert chunks[-1].finish_reason == "stop"
    assert text_of(batches) == server.streams[-1].texts[0]
    assert stream.chunks_received == len(chunks)
    assert stream.status_code == 200
    assert stream.response_headers is not None
    assert stream.request_id == server.requests[-1].request_id
    assert stream.retries == 0
    assert server.completed == 1
    # Further iteration just ends.
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_request_shape(server: MockServer, transport: HTTPTransport) -> None:
    stream = transport.stream(
        "chat/completions", body("mock?tokens=3", temperature=0.5), headers={"X-Extra": "1"}
    )
    async with stream:
        async for _ in stream:
            pass
    record = server.requests[-1]
    assert record.method == "POST"
    assert record.path == "/v1/chat/completions"
    assert record.body["temperature"] == 0.5 and record.body["stream"] is True
    headers = {k.lower(): v for k, v in record.headers.items()}
    assert headers["accept"] == "text/event-stream"
    assert headers["content-type"] == "application/json"
    assert headers["x-rxchat-retry-count"] == "0"
    assert headers["x-extra"] == "1"
    assert headers["user-agent"].startswith("rxchat/")


async def test_api_key_is_sent_as_bearer() -> None:
    async with MockServer(api_key=SECRET) as server:
        async with HTTPTransport(base_url=server.url, api_key=SECRET, timeout=Timeout()) as t:
            batches, err = await collect(t.stream("/chat/completions", body("mock?tokens=2")))
            assert err is None and batches
        async with HTTPTransport(
            base_url=server.url, api_key="sk-wrong-key-000000", timeout=Timeout(), max_retries=0
        ) as t:
            _, err = await collect(t.stream("/chat/completions", body()))
            assert isinstance(err, AuthenticationError)
            assert err.status_code == 401
            assert "sk-wrong-key-000000" not in str(err) + repr(err) + repr(err.body)


async def test_pydantic_models_in_body_are_serialised(
    server: MockServer, transport: HTTPTransport
) -> None:
    message = rxchat.types.ChatCompletionMessage(role="assistant", content="earlier answer")
    stream = transport.stream(
        "/chat/completions",
        {"model": "mock?tokens=2", "stream": True, "messages": [*USER, message]},
    )
    _, err = await collect(stream)
    assert err is None
    assert server.requests[-1].body["messages"][1] == {
        "role": "assistant",
        "content": "earlier answer",
    }


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
async def test_status_errors_are_typed(
    server: MockServer, status: int, cls: type[APIStatusError]
) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=SECRET, timeout=Timeout(), max_retries=0
    ) as t:
        stream = t.stream("/chat/completions", body(f"mock?status={status}"))
        with pytest.raises(cls) as info:
            await stream.start()
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert isinstance(err.response, ResponseInfo) and err.response.status == status
    assert isinstance(err.body, dict) and "error" in err.body
    assert err.message == err.body["error"]["message"]
    assert err.request_id == server.requests[-1].request_id
    assert SECRET not in str(err) + repr(err.response)


async def test_unknown_path_is_not_found(transport: HTTPTransport) -> None:
    with pytest.raises(NotFoundError):
        await transport.post_json("/nope", {"x": 1})


# -- retries ---------------------------------------------------------------------------------


async def test_429_with_retry_after_then_success(
    server: MockServer, transport: HTTPTransport
) -> None:
    stream = transport.stream(
        "/chat/completions", body("mock?status=429&retry_after=0&fail_times=2&key=a&tokens=5")
    )
    batches, err = await collect(stream)
    assert err is None
    assert text_of(batches)
    assert stream.retries == 2
    counts = [
        r.headers.get("x-rxchat-retry-count") or r.headers.get("X-Rxchat-Retry-Count")
        for r in server.requests
    ]
    assert counts == ["0", "1", "2"]


async def test_retry_after_ms_is_honoured(server: MockServer, transport: HTTPTransport) -> None:
    stream = transport.stream(
        "/chat/completions", body("mock?status=503&retry_after_ms=1&fail_times=1&key=b&tokens=3")
    )
    _, err = await collect(stream)
    assert err is None
    assert stream.retries == 1 and len(server.requests) == 2


async def test_retries_are_bounded(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(), max_retries=3, backoff_base=0.001
    ) as t:
        with pytest.raises(InternalServerError):
            await t.stream("/chat/completions", body("mock?status=500")).start()
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(
    server: MockServer, transport: HTTPTransport, status: int
) -> None:
    with pytest.raises(APIStatusError):
        await transport.stream("/chat/completions", body(f"mock?status={status}")).start()
    assert len(server.requests) == 1


async def test_no_retry_after_the_body_began(server: MockServer, transport: HTTPTransport) -> None:
    stream = transport.stream("/chat/completions", body("mock?tokens=20&drop_after=3"))
    batches, err = await collect(stream)
    assert isinstance(err, APIConnectionError) and not isinstance(err, APITimeoutError)
    assert err.chunks_received == 3 == sum(map(len, batches))
    assert "after 3 chunks" in str(err)
    assert err.__cause__ is not None
    assert len(server.requests) == 1, "a stream that produced output is never replayed"


async def test_connection_refused_is_retried_then_raised() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with HTTPTransport(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key=SECRET,
        timeout=Timeout(connect=2),
        max_retries=2,
        backoff_base=0.001,
    ) as t:
        stream = t.stream("/chat/completions", body())
        with pytest.raises(APIConnectionError) as info:
            await stream.start()
    err = info.value
    assert not isinstance(err, APITimeoutError)
    assert f"127.0.0.1:{port}" in str(err)
    assert SECRET not in str(err)
    assert err.__cause__ is not None


async def test_should_retry_header_and_json_instead_of_stream() -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.headers["x-rxchat-retry-count"])
        if request.match_info["kind"] == "noretry":
            return web.json_response(
                {"error": {"message": "busy"}}, status=503, headers={"x-should-retry": "false"}
            )
        if request.match_info["kind"] == "retry400":
            if len(calls) == 1:
                return web.json_response(
                    {"error": {"message": "odd"}}, status=400, headers={"x-should-retry": "true"}
                )
            return web.json_response({"error": {"message": "still odd"}}, status=400)
        if request.match_info["kind"] == "jsonerror":
            return web.json_response({"error": {"message": "quota exhausted"}})
        if request.match_info["kind"] == "plain":
            return web.Response(text="upstream exploded", status=502)
        return web.json_response({"id": "x", "choices": []})

    app = web.Application()
    app.router.add_post("/v1/{kind}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        async with HTTPTransport(
            base_url=url, api_key=None, timeout=Timeout(), max_retries=2, backoff_base=0.001
        ) as t:
            with pytest.raises(InternalServerError, match="busy"):
                await t.stream("/noretry", body()).start()
            assert calls == ["0"]
            calls.clear()
            with pytest.raises(BadRequestError, match="still odd"):
                await t.stream("/retry400", body()).start()
            assert calls == ["0", "1"]
            with pytest.raises(APIError, match="quota exhausted"):
                await t.stream("/jsonerror", body()).start()
            with pytest.raises(APIResponseValidationError, match="application/json"):
                await t.stream("/completion", body()).start()
            calls.clear()
            with pytest.raises(InternalServerError, match="upstream exploded") as info:
                await t.stream("/plain", body()).start()
            assert info.value.body == "upstream exploded"
            assert calls == ["0", "1", "2"]
    finally:
        await runner.cleanup()


# -- timeouts --------------------------------------------------------------------------------


async def test_read_timeout_before_first_chunk(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(read=0.1), max_retries=0
    ) as t:
        stream = t.stream("/chat/completions", body("mock?stall_first=5"))
        with pytest.raises(APITimeoutError, match="read timeout") as info:
            await stream.start()
    assert info.value.chunks_received == 0


async def test_read_timeout_mid_stream_keeps_chunks(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(read=0.1), max_retries=2
    ) as t:
        stream = t.stream("/chat/completions", body("mock?tokens=10&stall_between=5&stall_after=4"))
        batches, err = await collect(stream)
    assert isinstance(err, APITimeoutError)
    assert err.chunks_received == 4 == sum(map(len, batches))
    assert len(server.requests) == 1


async def test_keepalive_bytes_reset_the_read_timeout(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(read=0.15), max_retries=0
    ) as t:
        stream = t.stream("/chat/completions", body("mock?tokens=4&stall_first=0.5&keepalive=0.03"))
        batches, err = await collect(stream)
    assert err is None
    assert batches[-1][-1].finish_reason == "stop"
    assert stream.keepalive_comments >= 5


async def test_total_timeout_covers_the_stream(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(total=0.3), max_retries=0
    ) as t:
        stream = t.stream("/chat/completions", body("mock?tokens=1000&delay=0.02"))
        batches, err = await collect(stream)
    assert isinstance(err, APITimeoutError)
    assert "total timeout" in str(err)
    assert 0 < err.chunks_received == sum(map(len, batches))


async def test_per_request_timeout_overrides(server: MockServer, transport: HTTPTransport) -> None:
    stream = transport.stream(
        "/chat/completions", body("mock?stall_first=5"), timeout=Timeout(read=0.05)
    )
    transport.max_retries = 0
    with pytest.raises(APITimeoutError):
        await stream.start()


# -- faults in the body --------------------------------------------------------------------------


async def test_invalid_json_mid_stream(transport: HTTPTransport) -> None:
    batches, err = await collect(
        transport.stream("/chat/completions", body("mock?tokens=10&bad_json_after=3"))
    )
    assert isinstance(err, InvalidChunkError)
    assert err.raw.startswith("{not json")
    assert err.chunks_received == 3 == sum(map(len, batches))


@pytest.mark.parametrize("fault", ["error_after=2", "event_error_after=2"])
async def test_error_frame_mid_stream(transport: HTTPTransport, fault: str) -> None:
    batches, err = await collect(
        transport.stream("/chat/completions", body(f"mock?tokens=10&{fault}"))
    )
    assert isinstance(err, StreamAPIError)
    assert err.chunks_received == 2 == sum(map(len, batches))


async def test_body_without_done_is_incomplete(transport: HTTPTransport) -> None:
    batches, err = await collect(
        transport.stream("/chat/completions", body("mock?tokens=6&no_done=1"))
    )
    assert isinstance(err, IncompleteStreamError)
    assert err.chunks_received == sum(map(len, batches)) > 0


async def test_drip_one_byte_at_a_time(server: MockServer, transport: HTTPTransport) -> None:
    batches, err = await collect(
        transport.stream("/chat/completions", body("mock?tokens=8&drip=1"))
    )
    assert err is None
    assert text_of(batches) == server.streams[-1].texts[0]


async def test_ten_megabyte_event(transport: HTTPTransport) -> None:
    batches, err = await collect(
        transport.stream("/chat/completions", body("mock?tokens=3&big_event=10000000"))
    )
    assert err is None
    assert max(len(c.text or "") for b in batches for c in b) >= 10_000_000


async def test_max_event_bytes(server: MockServer) -> None:
    async with HTTPTransport(
        base_url=server.url, api_key=None, timeout=Timeout(), max_event_bytes=100_000
    ) as t:
        _, err = await collect(
            t.stream("/chat/completions", body("mock?tokens=3&big_event=1000000"))
        )
    assert isinstance(err, EventTooLargeError)
    assert err.limit == 100_000
    await server.wait_for_idle()


# -- cancellation ------------------------------------------------------------------------------


async def _started(transport: HTTPTransport) -> ChunkBatchStream:
    stream = transport.stream("/chat/completions", body("mock?tokens=100000&delay=0.005"))
    await stream.__anext__()
    return stream


async def test_aclose_disconnects_at_once(server: MockServer, transport: HTTPTransport) -> None:
    stream = await _started(transport)
    closed_at = time.monotonic()
    await stream.aclose()
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - closed_at < DISCONNECT_BOUND
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_leaving_async_with_disconnects(server: MockServer, transport: HTTPTransport) -> None:
    async with transport.stream("/chat/completions", body("mock?tokens=100000&delay=0.005")) as s:
        async for _ in s:
            break
        left_at = time.monotonic()
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - left_at < DISCONNECT_BOUND


async def test_cancelling_the_reader_disconnects(
    server: MockServer, transport: HTTPTransport
) -> None:
    started = asyncio.Event()

    async def reader() -> None:
        async for _ in transport.stream(
            "/chat/completions", body("mock?tokens=100000&delay=0.005")
        ):
            started.set()

    task = asyncio.create_task(reader())
    await started.wait()
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - cancelled_at < DISCONNECT_BOUND


async def test_cancel_while_waiting_for_the_first_byte(
    server: MockServer, transport: HTTPTransport
) -> None:
    task = asyncio.create_task(
        transport.stream("/chat/completions", body("mock?stall_first=30")).start()
    )
    await server.state.wait_for(lambda: server.active_streams == 1, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_for_disconnect(timeout=2)


async def test_garbage_collected_stream_disconnects(
    server: MockServer, transport: HTTPTransport
) -> None:
    stream = await _started(transport)
    del stream
    gc.collect()  # whichever frees it (refcount or the collector), the finalizer closes it
    dropped_at = time.monotonic()
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - dropped_at < DISCONNECT_BOUND


async def test_transport_aclose_leaves_nothing_behind(server: MockServer) -> None:
    t = HTTPTransport(base_url=server.url, api_key=None, timeout=Timeout())
    stream = await _started(t)
    await t.aclose()
    await t.aclose()  # idempotent
    await server.wait_for_disconnect(timeout=2)
    _, err = await collect(stream)
    assert isinstance(err, APIConnectionError) or err is None
    assert t.closed
    # The mock server's own handler task may still be finishing its cancellation (Python 3.12+
    # takes a loop turn longer): give cancellations under way a moment, then nothing may remain.
    for _ in range(20):
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if not left:
            break
        await asyncio.sleep(0.01)
    assert left == []


async def test_connection_is_reused_after_done(
    server: MockServer, transport: HTTPTransport
) -> None:
    for _ in range(3):
        _, err = await collect(transport.stream("/chat/completions", body("mock?tokens=3")))
        assert err is None
    connector = transport.session().connector
    assert connector is not None
    # One pooled keep-alive connection, reused by the three requests.
    assert sum(len(v) for v in connector._conns.values()) == 1


# -- many at once -------------------------------------------------------------------------------


async def test_many_concurrent_streams_are_exact(
    server: MockServer, transport: HTTPTransport
) -> None:
    async def one(i: int) -> tuple[str, str]:
        stream = transport.stream(
            "/chat/completions", body(f"mock?tokens={20 + i}&delay=0.001", seed=i)
        )
        batches, err = await collect(stream)
        assert err is None
        return text_of(batches), stream.request_id or ""

    results = await asyncio.gather(*(one(i) for i in range(100)))
    planned = {r.request_id: r.texts[0] for r in server.streams}
    for text, request_id in results:
        assert text == planned[request_id]


# -- post_json -------------------------------------------------------------------------------------


async def test_post_json(server: MockServer, transport: HTTPTransport) -> None:
    data = await transport.post_json(
        "/chat/completions", {"model": "mock?tokens=4", "messages": USER}
    )
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"]


async def test_post_json_retries_and_raises(server: MockServer, transport: HTTPTransport) -> None:
    data = await transport.post_json(
        "/chat/completions",
        {"model": "mock?status=429&retry_after=0&fail_times=1&key=pj&tokens=2", "messages": USER},
    )
    assert data["object"] == "chat.completion"
    assert len(server.requests) == 2
    with pytest.raises(BadRequestError):
        await transport.post_json(
            "/chat/completions", {"model": "mock?status=400", "messages": USER}
        )


# -- secrets ---------------------------------------------------------------------------------------


async def test_key_never_in_errors_or_logs(
    server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rxchat")
    texts: list[str] = []
    async with HTTPTransport(
        base_url=server.url,
        api_key=SECRET,
        timeout=Timeout(read=0.1),
        max_retries=1,
        backoff_base=0.001,
    ) as t:
        texts.append(repr(t))
        for model in [
            "mock?status=429",
            "mock?status=401",
            "mock?tokens=5&drop_after=2",
            "mock?stall_first=5",
            "mock?tokens=5&bad_json_after=1",
            "mock?tokens=3",
        ]:
            stream = t.stream("/chat/completions", body(model))
            texts.append(repr(stream))
            _, err = await collect(stream)
            if err is not None:
                texts += [
                    str(err),
                    repr(err),
                    repr(getattr(err, "body", None)),
                    repr(err.__cause__),
                ]
                texts.append(repr(getattr(err, "response", None)))
    texts += [r.getMessage() for r in caplog.records]
    assert any("retry" in r.getMessage() for r in caplog.records)
    assert any("-> 200" in r.getMessage() for r in caplog.records)
    joined = "\n".join(texts)
    assert SECRET not in joined
    assert "SENTINEL" not in joined


async def test_verify_ssl_is_on_by_default(server: MockServer) -> None:
    t = HTTPTransport(base_url=server.url, api_key=None, timeout=Timeout())
    async with t:
        connector = t.session().connector
        assert connector is not None
        assert connector._ssl is True  # type: ignore[attr-defined]
    t2 = HTTPTransport(base_url=server.url, api_key=None, timeout=Timeout(), verify_ssl=False)
    async with t2:
        connector = t2.session().connector
        assert connector is not None
        assert connector._ssl is False  # type: ignore[attr-defined]


# -- idle timeout: model output, not bytes ---------------------------------------------------


async def test_idle_timeout_is_not_reset_by_keepalives(server: MockServer) -> None:
    # The server stalls after 3 chunks but keeps the connection warm with comments every 50 ms:
    # the read timeout (5 s) never fires, the idle timeout for model output does.
    t = HTTPTransport(base_url=server.url, api_key=SECRET, timeout=Timeout(read=5, idle=0.3))
    async with t:
        stream = t.stream(
            "/chat/completions",
            body("mock?tokens=10&stall_between=5&stall_after=3&keepalive=0.05"),
        )
        batches, err = await collect(stream)
    assert isinstance(err, rxchat.IdleTimeoutError)
    assert isinstance(err, APITimeoutError)
    assert err.chunks_received == 3 == sum(map(len, batches))
    assert stream.keepalive_comments > 0
    assert "keep-alive" in str(err)
    record = await server.wait_for_disconnect(timeout=2)
    assert record.chunks == 3


async def test_idle_timeout_lets_a_steady_stream_through(server: MockServer) -> None:
    t = HTTPTransport(base_url=server.url, api_key=SECRET, timeout=Timeout(read=5, idle=0.5))
    async with t:
        batches, err = await collect(
            t.stream("/chat/completions", body("mock?tokens=40&delay=0.01"))
        )
    assert err is None
    assert sum(map(len, batches)) == 42  # role chunk + 40 tokens + finish chunk


async def test_idle_timeout_ignores_the_consumers_own_time(server: MockServer) -> None:
    # A consumer slower than the idle timeout is not the model's silence.
    t = HTTPTransport(base_url=server.url, api_key=SECRET, timeout=Timeout(read=5, idle=0.2))
    async with t:
        n = 0
        async for batch in t.stream("/chat/completions", body("mock?tokens=3&delay=0.01")):
            n += len(batch)
            await asyncio.sleep(0.3)
    assert n == 5


def test_idle_timeout_is_validated() -> None:
    with pytest.raises(ValueError):
        Timeout(idle=0)
    assert Timeout(idle=2).idle == 2
    assert Timeout.coerce(3).idle is None


def test_credentials_in_url_and_api_key_conflict_early() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        HTTPTransport(base_url="http://u:p@127.0.0.1:1/v1", api_key=SECRET, timeout=Timeout())
    assert SECRET not in str(info.value) and "u:p" not in str(info.value)
    HTTPTransport(base_url="http://u:p@127.0.0.1:1/v1", api_key=None, timeout=Timeout())
