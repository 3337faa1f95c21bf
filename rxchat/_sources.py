"""Observable sources: live chat-completion streams and replays of recorded ones.

Live sources (``chat_completion_stream``, ``observable_from_batches``, and the replay sources fed
by an async iterable) run as one asyncio task per subscription on the subscriber's event loop:
the running loop, or the loop of an ``AsyncIOScheduler`` / ``AsyncIOThreadSafeScheduler`` passed
as ``subscribe(..., scheduler=...)``. ``on_next`` is called directly from the task that reads
the socket, so a slow subscriber slows the reading (back-pressure) instead of growing a queue.
Disposing the subscription closes the connection at once and cancels the task quietly:
``CancelledError`` never reaches ``on_error``.

Replay sources over synchronous inputs (bytes, a file, an iterable) behave like
``reactivex.from_iterable``: they emit on the subscribing thread during ``subscribe`` (no event
loop needed), or through the scheduler given to ``subscribe``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import orjson
from pydantic import ValidationError
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import CurrentThreadScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler
from typing_extensions import Unpack

from ._chunk_decoder import FEED_SIZE, ChunkDecoder
from ._compat import direct_on_next, scheduler_loop
from ._config import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._config import DEFAULT_TIMEOUT, QueryValue, Timeout
from ._config import resolve_api_key as resolve_api_key
from ._config import resolve_base_url as resolve_base_url
from ._flow import FLOW_GATE
from ._params import SOURCE_PARAMS, SourceParams, build_request, expand_params
from ._transport import HTTPTransport
from .errors import InvalidChunkError
from .types import ChatCompletionChunk

__all__ = [
    "BatchStream",
    "ChunkSource",
    "chat_completion_stream",
    "from_chunks",
    "from_sse_bytes",
    "observable_from_batches",
    "resolve_api_key",
    "resolve_base_url",
]

_READ_SIZE = 1 << 16  # file reads; decoded in FEED_SIZE slices

SSESource: TypeAlias = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | Iterable[bytes] | AsyncIterable[bytes]
)
ChunkLike: TypeAlias = ChatCompletionChunk | Mapping[str, Any]


class BatchStream(Protocol):
    """What :func:`observable_from_batches` reads: an async iterator of chunk lists."""

    def __aiter__(self) -> AsyncIterator[list[ChatCompletionChunk]]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class _PayloadStream(Protocol):
    """A batch stream that also tells each batch's JSON texts (``ChunkBatchStream.payloads``)."""

    @property
    def payloads(self) -> list[str | None]: ...


OnBatch: TypeAlias = Callable[[list[ChatCompletionChunk], list[str | None] | None], None]
"""``on_batch(chunks, payloads)`` of :meth:`ChunkSource.subscribe_batches`."""


# -- running work on the subscriber's loop ----------------------------------------------------


def _target_loop(scheduler: abc.SchedulerBase | None) -> tuple[asyncio.AbstractEventLoop, bool]:
    """The loop to run on, and whether it must be reached thread-safely."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if isinstance(scheduler, AsyncIOScheduler):
        loop = scheduler_loop(scheduler)
        return loop, loop is not running and loop.is_running()
    if running is None:
        raise RuntimeError(
            "rxchat streams run on an asyncio event loop: subscribe inside a running loop "
            "(in a coroutine), or pass scheduler=AsyncIOThreadSafeScheduler(loop) to subscribe()"
        )
    return running, False


def _report(loop: asyncio.AbstractEventLoop, message: str, err: BaseException) -> None:
    loop.call_exception_handler({"message": message, "exception": err})


class TaskRun:
    """One subscription of a task-driven source."""

    __slots__ = ("disposed", "loop", "observer", "on_batch", "stream", "task")

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        loop: asyncio.AbstractEventLoop,
        on_batch: OnBatch | None = None,
    ) -> None:
        self.observer = observer
        self.loop = loop
        self.on_batch = on_batch  # set: whole batches go there instead of observer.on_next
        self.disposed = False
        self.task: asyncio.Task[None] | None = None
        self.stream: Any = None  # has a sync abort() when it holds a connection

    def start(self, body: Callable[[TaskRun], Awaitable[None]]) -> None:
        if not self.disposed:
            self.task = self.loop.create_task(self._main(body))

    async def _main(self, body: Callable[[TaskRun], Awaitable[None]]) -> None:
        observer = self.observer
        try:
            await body(self)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if self.disposed:
                return
            self.disposed = True
            try:
                observer.on_error(err)
            except Exception as err2:
                # The subscriber has no error handler (reactivex re-raises): report it like
                # any unhandled callback error instead of losing it in a finished task.
                _report(self.loop, "unhandled error in an rxchat stream subscriber", err2)
        else:
            if self.disposed:
                return
            self.disposed = True
            try:
                observer.on_completed()
            except Exception as err:
                _report(
                    self.loop, "error raised by an rxchat stream subscriber's on_completed", err
                )

    def dispose(self) -> None:
        self.disposed = True
        loop = self.loop
        if loop.is_closed():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or not loop.is_running():
            self._cancel()
        else:
            loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        stream = self.stream
        abort = getattr(stream, "abort", None)
        if abort is not None:
            abort()  # the TCP connection closes now, not when the task next runs
        task = self.task
        if task is not None and not task.done():
            try:
                current = asyncio.current_task(self.loop)
            except RuntimeError:
                current = None
            if task is not current:
                task.cancel()  # disposal from inside on_next returns through the flag instead


def _subscribe_run(
    body: Callable[[TaskRun], Awaitable[None]],
    observer: abc.ObserverBase[Any],
    scheduler: abc.SchedulerBase | None,
    on_batch: OnBatch | None = None,
) -> abc.DisposableBase:
    loop, threadsafe = _target_loop(scheduler)
    run = TaskRun(observer, loop, on_batch)
    if threadsafe:
        loop.call_soon_threadsafe(run.start, body)
    else:
        run.start(body)
    return Disposable(run.dispose)


def task_observable(body: Callable[[TaskRun], Awaitable[None]]) -> Observable[ChatCompletionChunk]:
    """A cold Observable whose every subscription runs ``body(run)`` as a task on the target
    loop; disposing cancels the task. The seam the tool loop (rxchat._tools) builds on."""

    def subscribe(
        observer: abc.ObserverBase[ChatCompletionChunk],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        return _subscribe_run(body, observer, scheduler)

    return Observable(subscribe)


class ChunkSource(Observable[ChatCompletionChunk]):
    """The Observable of a network chunk stream (``chat_completion_stream``, ``observe``,
    :func:`observable_from_batches`): an ordinary cold ``Observable[ChatCompletionChunk]``, which
    can also hand a consumer each read's chunks at once, with their JSON texts as the server sent
    them (:meth:`subscribe_batches`) — for consumers that store or forward chunks verbatim (the
    stream log) instead of taking them one by one and serializing them again.
    """

    def __init__(self, body: Callable[[TaskRun], Awaitable[None]]) -> None:
        self._body = body

        def subscribe(
            observer: abc.ObserverBase[ChatCompletionChunk],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            return _subscribe_run(body, observer, scheduler)

        super().__init__(subscribe)

    def subscribe_batches(
        self,
        on_batch: OnBatch,
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """Subscribe for whole batches: ``on_batch(chunks, payloads)`` once per read (the same
        chunks, in the same order, as ``on_next`` would get one by one), then ``on_error`` or
        ``on_completed``. ``payloads[i]`` is the JSON text ``chunks[i]`` was read from, exactly as
        received, or ``None`` when the decoder amended that chunk; ``payloads`` is ``None`` when
        the batch stream does not keep them (an :func:`observable_from_batches` stream other
        than rxchat's transport). Disposal, scheduling and back-pressure are those of
        ``subscribe``; disposing from inside ``on_batch`` delivers nothing more.
        """
        observer = _BatchEnd(on_error, on_completed)
        return _subscribe_run(self._body, observer, scheduler, on_batch)


class _BatchEnd(abc.ObserverBase[ChatCompletionChunk]):
    """The end callbacks of a :meth:`ChunkSource.subscribe_batches` subscription."""

    __slots__ = ("_on_completed", "_on_error")

    def __init__(
        self, on_error: Callable[[Exception], None], on_completed: Callable[[], None]
    ) -> None:
        self._on_error = on_error
        self._on_completed = on_completed

    def on_next(self, value: ChatCompletionChunk) -> None:  # pragma: no cover - see on_batch
        raise AssertionError("a batch subscription receives whole batches")

    def on_error(self, error: Exception) -> None:
        self._on_error(error)

    def on_completed(self) -> None:
        self._on_completed()


async def _pump(run: TaskRun, stream: BatchStream) -> None:
    """Deliver every chunk of a batch stream, batch by batch, until the end or disposal."""
    run.stream = stream
    if run.on_batch is not None:
        await _pump_batches(run, stream, run.on_batch)
        return
    observer = run.observer
    # What Observable.subscribe hands every source is an AutoDetachObserver, whose on_next is
    # "return if is_stopped, else call _on_next": done inline here, it saves a Python call per
    # chunk (rxchat._compat.direct_on_next).
    on_next, detach = direct_on_next(observer)
    gate = FLOW_GATE.get()  # set by a bounded async bridge downstream (rxchat.to_async_iterator)
    try:
        async for batch in stream:
            for chunk in batch:
                if run.disposed or (detach is not None and detach.is_stopped):
                    return
                on_next(chunk)
            if run.disposed:
                return
            if gate is not None and gate.closed:
                await gate.wait_open()  # the consumer is behind: read no further for now
                if run.disposed:
                    return
    finally:
        run.stream = None
        await stream.aclose()


async def _pump_batches(run: TaskRun, stream: BatchStream, on_batch: OnBatch) -> None:
    """``_pump`` for a batch subscription: each batch at once, with its JSON texts."""
    keeps = isinstance(stream, _PayloadStream)
    gate = FLOW_GATE.get()
    try:
        async for batch in stream:
            if run.disposed:
                return
            on_batch(batch, stream.payloads if keeps else None)  # type: ignore[attr-defined]
            if run.disposed:
                return
            if gate is not None and gate.closed:
                await gate.wait_open()
                if run.disposed:
                    return
    finally:
        run.stream = None
        await stream.aclose()


def observable_from_batches(
    open_stream: Callable[[], BatchStream],
    *,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> Observable[ChatCompletionChunk]:
    """A cold Observable of chunks over a batch stream (the building block of live sources).

    Each subscription calls ``open_stream()`` on the event loop, then delivers each chunk of
    each batch with ``on_next`` from the reading task. Disposal closes the stream at once.

    Args:
        open_stream: makes a new stream per subscription, e.g.
            ``lambda: transport.stream("/chat/completions", body)``.
        on_close: awaited after the stream closed (whatever the outcome), e.g. to close a
            transport owned by the subscription.

    Returns:
        An ``Observable[ChatCompletionChunk]``; errors of the stream arrive through
        ``on_error`` after the chunks received before them.

    Raises:
        RuntimeError: (on subscribe) no running event loop and no asyncio scheduler given.

    >>> chunks = observable_from_batches(lambda: transport.stream("/chat/completions", body))
    ... # doctest: +SKIP
    """

    async def body(run: TaskRun) -> None:
        try:
            await _pump(run, open_stream())
        finally:
            if on_close is not None:
                await on_close()

    return ChunkSource(body)


_SOURCE_VALID = (
    *("model", "messages", "base_url", "api_key", "timeout", "max_retries", "headers"),
    *("max_event_bytes", "verify_ssl", "default_query", "stream", "response_format"),
    *SOURCE_PARAMS,
)


@expand_params(SourceParams)
def chat_completion_stream(
    *,
    model: str,
    messages: Iterable[Mapping[str, Any] | Any],
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | Timeout | None = DEFAULT_TIMEOUT,
    max_retries: int = 2,
    headers: Mapping[str, str] | None = None,
    max_event_bytes: int | None = None,
    verify_ssl: bool = True,
    default_query: Mapping[str, QueryValue] | None = None,
    stream: Literal[True] = True,
    response_format: Any = None,
    **params: Unpack[SourceParams],
) -> Observable[ChatCompletionChunk]:
    """A streamed chat completion as a cold Observable of chunks.

    Each subscription sends one ``POST {base_url}/chat/completions`` with
    ``{"model", "messages", "stream": true, **params}`` on its own connection, closed at the end.
    Disposing the subscription cancels the request and closes the connection at once.

    Args:
        model: the model name.
        messages: the conversation (dicts, or pydantic message models).
        base_url: the API root including ``/v1``; defaults to ``RXCHAT_BASE_URL``, then
            ``OPENAI_BASE_URL``, then ``https://api.openai.com/v1``.
        api_key: defaults to ``RXCHAT_API_KEY``, then ``OPENAI_API_KEY``.
        timeout: seconds (connect and read), a :class:`~rxchat.Timeout`, or ``None`` for none.
        max_retries: retries of failures before the body begins (never once output arrived).
        headers: extra request headers.
        max_event_bytes: bound on one SSE event's size (``EventTooLargeError`` past it);
            64 MiB by default.
        verify_ssl: TLS certificate verification; on unless explicitly turned off.
        default_query: query parameters added to the URL (Azure's ``api-version``); a query in
            ``base_url`` is kept as well.
        stream: always ``True`` (``False`` is a :class:`ValueError`).
        response_format: a pydantic model class or another type (sent as a strict
            ``json_schema``), or a response-format dict.
        **params: the OpenAI API's other request fields (:class:`~rxchat.SourceParams`:
            ``temperature``, ``tools``, ``stream_options``, ...) and ``extra_body``, merged into
            the body last (a provider's own fields). Any other name is a :class:`TypeError`.

    Returns:
        ``Observable[ChatCompletionChunk]``. ``data: [DONE]`` completes it.

    Raises:
        TypeError, ValueError: (at call time) bad arguments.
        APIStatusError: (``on_error``) the server answered 4xx/5xx.
        APIConnectionError, APITimeoutError: (``on_error``) network failures and timeouts.
        InvalidChunkError, StreamAPIError, IncompleteStreamError: (``on_error``) faults in the
            body, after the chunks that preceded them.

    >>> texts = rxchat.chat_completion_stream(
    ...     model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    ... ).pipe(rx.map(lambda c: c.text))  # reactivex.operators as rx  # doctest: +SKIP
    """
    if stream is not True:
        raise ValueError("chat_completion_stream always streams; do not pass stream=False")
    body = build_request(
        "chat_completion_stream()", _SOURCE_VALID, model=model, messages=messages,
        params=params, response_format=response_format, stream=True,
    ).body  # fmt: skip
    request_timeout = Timeout.coerce(timeout)
    url = resolve_base_url(base_url)
    key = resolve_api_key(api_key)
    options: dict[str, Any] = {
        "base_url": url,
        "api_key": key,
        "timeout": request_timeout,
        "max_retries": max_retries,
        "max_event_bytes": max_event_bytes,
        "verify_ssl": verify_ssl,
        "default_query": default_query,
    }
    # Validate the options now (a bad URL is a programming error, not a stream error).
    HTTPTransport(**options)
    extra = dict(headers) if headers else None

    async def run_request(run: TaskRun) -> None:
        transport = HTTPTransport(**options)
        try:
            await _pump(run, transport.stream("/chat/completions", body, headers=extra))
        finally:
            await transport.aclose()

    return ChunkSource(run_request)


# -- replays --------------------------------------------------------------------------------


def _sync_observable(
    make: Callable[[], Iterator[ChatCompletionChunk]],
) -> Observable[ChatCompletionChunk]:
    """Emit a lazily produced iterator, like ``reactivex.from_iterable`` (disposal between items)."""

    def subscribe(
        observer: abc.ObserverBase[ChatCompletionChunk],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        disposed = False

        def action(_: abc.SchedulerBase, __: Any = None) -> None:
            iterator = make()
            try:
                for chunk in iterator:
                    if disposed:
                        return
                    observer.on_next(chunk)
            except Exception as err:
                if not disposed:
                    observer.on_error(err)
                return
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            if not disposed:
                observer.on_completed()

        def dispose() -> None:
            nonlocal disposed
            disposed = True

        sched = scheduler or CurrentThreadScheduler.singleton()
        return CompositeDisposable(Disposable(dispose), sched.schedule(action))

    return Observable(subscribe)


def _slices(data: bytes) -> Iterator[bytes]:
    """``data`` in pieces of at most FEED_SIZE bytes (see rxchat._decode.FEED_SIZE)."""
    if len(data) <= FEED_SIZE:
        yield data
        return
    for start in range(0, len(data), FEED_SIZE):
        yield data[start : start + FEED_SIZE]


def _decode_reads(reads: Iterable[bytes]) -> Iterator[ChatCompletionChunk]:
    decoder = ChunkDecoder()
    for data in reads:
        for piece in _slices(_as_bytes(data)):
            yield from decoder.feed(piece)
            if decoder.error is not None:
                raise decoder.error
            if decoder.done:
                return
    decoder.close()


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"from_sse_bytes reads bytes, got {type(data).__name__}"
        + ("; encode the text first (text.encode())" if isinstance(data, str) else "")
    )


def _file_reads(path: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(_READ_SIZE):
            yield data


def from_sse_bytes(source: SSESource) -> Observable[ChatCompletionChunk]:
    """Replay a recorded response body (SSE bytes) as an Observable of chunks.

    The bytes go through the same decoder as live streams: ``data: [DONE]`` completes, invalid
    JSON raises :class:`~rxchat.InvalidChunkError` carrying the raw text, an ``error`` frame raises
    :class:`~rxchat.StreamAPIError`, and a body without ``[DONE]`` nor finish reason raises
    :class:`~rxchat.IncompleteStreamError` — each after the chunks that came before it.

    Args:
        source: the body as ``bytes``; a file path (``str`` or ``os.PathLike``) to read; an
            iterable of ``bytes`` reads; or an async iterable of ``bytes`` reads. Sync sources
            emit during ``subscribe`` (or on the given scheduler); async ones run as a task on
            the event loop, like live streams.

    Returns:
        A cold ``Observable[ChatCompletionChunk]``; each subscription reads the source again
        (a one-shot iterator can of course be read only once).

    Raises:
        TypeError: (at call time) an unsupported source; (``on_error``) a read that is not bytes.
        OSError: (``on_error``) the file cannot be read.

    >>> body = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\\n\\n'
    >>> from_sse_bytes(body).pipe(rx.map(lambda c: c.text)).run()  # doctest: +SKIP
    'Hi'
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return _sync_observable(lambda: _decode_reads((data,)))
    if isinstance(source, str | os.PathLike):
        path = source
        return _sync_observable(lambda: _decode_reads(_file_reads(path)))
    if isinstance(source, AsyncIterable):
        reads = source

        async def body(run: TaskRun) -> None:
            decoder = ChunkDecoder()
            iterator = aiter(reads)
            on_next = run.observer.on_next
            try:
                async for data in iterator:
                    for piece in _slices(_as_bytes(data)):
                        for chunk in decoder.feed(piece):
                            if run.disposed:
                                return
                            on_next(chunk)
                        if decoder.error is not None:
                            raise decoder.error
                        if decoder.done or run.disposed:
                            return
                decoder.close()
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()

        return task_observable(body)
    if isinstance(source, Iterable):
        reads_ = source
        return _sync_observable(lambda: _decode_reads(reads_))
    raise TypeError(
        "from_sse_bytes expects bytes, a file path, or an (async) iterable of bytes, "
        f"not {type(source).__name__}"
    )


def _to_chunk(item: object, index: int) -> ChatCompletionChunk:
    if isinstance(item, ChatCompletionChunk):
        return item
    if isinstance(item, Mapping):
        try:
            return ChatCompletionChunk.model_validate(item)
        except ValidationError as err:
            try:
                raw = orjson.dumps(item, default=repr).decode()
            except TypeError:
                raw = repr(item)
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:3]
            )
            error = InvalidChunkError(
                f"item {index} is not a chat-completion chunk ({problems})",
                raw=raw,
                chunks_received=index,
            )
            raise error from None
    raise TypeError(
        f"from_chunks expects ChatCompletionChunk models or dicts, got {type(item).__name__} "
        f"at item {index}"
    )


def _validated(items: Iterable[object]) -> Iterator[ChatCompletionChunk]:
    for index, item in enumerate(items):
        yield _to_chunk(item, index)


def from_chunks(
    chunks: Iterable[ChunkLike] | AsyncIterable[ChunkLike],
) -> Observable[ChatCompletionChunk]:
    """Replay chunks (models, or dicts as decoded from JSON) as an Observable.

    Dicts are validated into :class:`~rxchat.ChatCompletionChunk` (the input is not modified).
    Unlike :func:`from_sse_bytes` there is no ``[DONE]``: the Observable completes when the
    iterable ends, whether or not a finish reason was seen.

    Args:
        chunks: an iterable (emitted during ``subscribe``, or on the given scheduler) or an
            async iterable (run as a task on the event loop).

    Returns:
        A cold ``Observable[ChatCompletionChunk]``.

    Raises:
        InvalidChunkError: (``on_error``) a dict that is not a chunk, with its JSON as ``.raw``,
            after the valid items before it.
        TypeError: (``on_error``) an item that is neither a chunk nor a dict; (at call time) not
            an iterable.

    >>> from_chunks([{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}]).pipe(
    ...     rx.map(lambda c: c.text)).run()  # doctest: +SKIP
    'Hi'
    """
    if isinstance(chunks, AsyncIterable):
        items = chunks

        async def body(run: TaskRun) -> None:
            iterator = aiter(items)
            on_next = run.observer.on_next
            index = 0
            try:
                async for item in iterator:
                    chunk = _to_chunk(item, index)
                    index += 1
                    if run.disposed:
                        return
                    on_next(chunk)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()

        return task_observable(body)
    if isinstance(chunks, Iterable) and not isinstance(chunks, str | bytes | Mapping):
        sync_items = chunks
        return _sync_observable(lambda: _validated(sync_items))
    raise TypeError(
        f"from_chunks expects an iterable of chunks or dicts, not {type(chunks).__name__}"
    )
