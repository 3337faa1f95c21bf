"""Stream objects of the SDK facades.

* :class:`AsyncStream` / :class:`Stream` — what ``create(stream=True)`` and ``client.stream()``
  return: iterables of :class:`~rxchat.types.ChatCompletionChunk`, context managers, closable,
  consumable once.
* :class:`AsyncChatCompletionStream` / :class:`ChatCompletionStream` — the event streams of
  ``client.chat.completions.stream(...)`` (``content.delta``, ``content.done``, ...), with
  ``get_final_completion()``, ``until_done()`` and ``current_completion_snapshot``; their
  managers :class:`AsyncChatCompletionStreamManager` / :class:`ChatCompletionStreamManager`.

The async classes hold the logic. The sync ones forward to them: the request runs on the
background loop of :mod:`rxchat._portal`, and whole per-read batches of chunks cross to the
consuming thread through a bounded :class:`~rxchat._portal.BatchBridge` (no round trip per chunk).
The event state (``ChatCompletionStreamState``) runs in the consuming thread.

Leaving a ``with`` block, ``close()``, ``break`` out of a ``for`` loop, or an exception in the loop
body closes the connection before control returns to you (sync) or on the next loop iteration
(``async for`` + ``break``, through asyncio's async-generator finalizer).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from ._portal import BatchBridge, Portal
from .errors import APIConnectionError, IncompleteStreamError, RxChatError, StreamConsumedError
from .types import ChatCompletionChunk

if TYPE_CHECKING:
    from ._state import ChatCompletionStreamState
    from ._transport import ChunkBatchStream
    from .events import ChatCompletionStreamEvent
    from .types import ParsedChatCompletion

__all__ = [
    "AsyncChatCompletionStream",
    "AsyncChatCompletionStreamManager",
    "AsyncStream",
    "ChatCompletionStream",
    "ChatCompletionStreamManager",
    "Stream",
]

# Defaults to None so that ``stream(...)`` without response_format needs no annotation.
ResponseFormatT = TypeVar("ResponseFormatT", default=None)

_BRIDGE_BATCHES = 8  # per-read batches buffered between the loop thread and the consumer


def _consumed() -> StreamConsumedError:
    return StreamConsumedError(
        "this stream was already iterated (or closed); a stream can be consumed once — "
        "make a new request to read the answer again"
    )


# -- chunk streams ------------------------------------------------------------------------


class AsyncStream:
    """Chunks of one streamed completion: ``async for chunk in stream``.

    Returned (already started) by ``await client.chat.completions.create(..., stream=True)`` and
    (started on first use) by the Edgee-style ``client.stream(model, input)``. Also an async
    context manager; leaving it, :meth:`close`, ``break`` or cancelling the task closes the
    connection. A stream can be iterated once: a second iteration raises
    :class:`~rxchat.StreamConsumedError`.

    Errors in the middle of the stream raise from the iteration after the chunks that arrived
    before them were delivered; ``err.chunks_received`` counts them.

    Example:
        >>> stream = await client.chat.completions.create(model="m", messages=msgs, stream=True)  # doctest: +SKIP
        >>> async with stream:  # doctest: +SKIP
        ...     async for chunk in stream:
        ...         print(chunk.text or "", end="")
    """

    __slots__ = ("__weakref__", "_claimed", "_closed", "_iter", "_open_source", "_source")

    def __init__(self, open_source: Callable[[], ChunkBatchStream]) -> None:
        self._open_source = open_source
        self._source: ChunkBatchStream | None = None
        self._claimed = False
        self._closed = False
        self._iter: AsyncIterator[ChatCompletionChunk] | None = None

    @property
    def source(self) -> ChunkBatchStream | None:
        """The transport stream once the request was made (status, headers, retries)."""
        return self._source

    async def start(self) -> AsyncStream:
        """Send the request now (idempotent); status errors raise here.

        Raises:
            APIStatusError: the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached (``APITimeoutError`` on timeout).
            StreamConsumedError: the stream was closed already.
        """
        await self._started()
        return self

    async def _started(self) -> ChunkBatchStream:
        if self._closed:
            raise _consumed()
        source = self._source
        if source is None:
            source = self._source = self._open_source()
            try:
                await source.start()
            except BaseException:
                self._closed = True
                source.abort()
                raise
        return source

    def _claim(self) -> None:
        if self._claimed:
            raise _consumed()
        self._claimed = True

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        self._claim()
        # Not stored: when an ``async for`` breaks, the generator is finalized and closes.
        return self._chunks()

    async def __anext__(self) -> ChatCompletionChunk:
        iterator = self._iter
        if iterator is None:
            self._claim()
            iterator = self._iter = self._chunks()
        return await iterator.__anext__()

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            source = await self._started()
            async for batch in source:
                for chunk in batch:
                    yield chunk
        finally:
            await self.close()

    def iter_batches(self) -> AsyncGenerator[list[ChatCompletionChunk], None]:
        """The chunks in per-read batches (one list per read from the socket) instead of one by
        one: ``async for batch in stream.iter_batches()``.

        Consumes the stream as ``async for`` does (a stream is read once) and closes it at
        the end, on ``break`` (when the generator is closed) and on errors.

        Raises:
            StreamConsumedError: the stream was iterated already (raised here, not on the first
                ``__anext__``).
        """
        self._claim()
        return self._batches()

    async def _batches(self) -> AsyncGenerator[list[ChatCompletionChunk], None]:
        try:
            source = await self._started()
            async for batch in source:
                yield batch
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the connection now (idempotent); the stream cannot be iterated afterwards."""
        self._closed = True
        source = self._source
        if source is not None:
            await source.aclose()

    aclose = close

    @property
    def closed(self) -> bool:
        """Whether the stream was closed (explicitly, at its end, or on an error)."""
        return self._closed

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _pump(
    bridge: BatchBridge[list[ChatCompletionChunk]],
    batches: AsyncIterator[list[ChatCompletionChunk]],
    done: threading.Event,
) -> None:
    try:
        await bridge.run(batches)
    finally:
        done.set()


class Stream:
    """Chunks of one streamed completion: ``for chunk in stream`` (synchronous).

    Returned by ``client.chat.completions.create(..., stream=True)`` and the Edgee-style
    ``client.stream(model, input)`` / ``client.send(model, input, stream=True)``. A context
    manager; leaving it, :meth:`close`, ``break``, or an exception in the loop body closes the
    connection before control returns. Iterable once: a second iteration raises
    :class:`~rxchat.StreamConsumedError`.

    The HTTP work runs on rxchat's background loop; chunks arrive here in per-read batches
    through a bounded queue, so a slow consumer slows the reading instead of filling memory.

    Example:
        >>> with client.chat.completions.create(model="m", messages=msgs, stream=True) as stream:  # doctest: +SKIP
        ...     for chunk in stream:
        ...         print(chunk.text or "", end="")
    """

    __slots__ = (
        "__weakref__",
        "_async",
        "_bridge",
        "_claimed",
        "_closed",
        "_iter",
        "_maxsize",
        "_portal",
        "_pump",
        "_pump_done",
    )

    def __init__(self, async_stream: AsyncStream, portal: Portal, *, maxsize: int = _BRIDGE_BATCHES) -> None:
        self._async = async_stream
        self._portal = portal
        self._maxsize = maxsize
        self._bridge: BatchBridge[list[ChatCompletionChunk]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._pump_done = threading.Event()
        self._claimed = False
        self._closed = False
        self._iter: Iterator[ChatCompletionChunk] | None = None

    @property
    def source(self) -> ChunkBatchStream | None:
        """The transport stream once the request was made (status, headers, retries)."""
        return self._async.source

    def start(self) -> Stream:
        """Send the request now (idempotent); status errors raise here."""
        self._portal.call(self._async.start)
        return self

    def _claim(self) -> None:
        if self._claimed:
            raise _consumed()
        self._claimed = True

    def _start_pump(self) -> BatchBridge[list[ChatCompletionChunk]]:
        async def start() -> BatchBridge[list[ChatCompletionChunk]]:
            await self._async.start()
            batches = self._async.iter_batches()
            bridge: BatchBridge[list[ChatCompletionChunk]] = BatchBridge(
                asyncio.get_running_loop(), maxsize=self._maxsize
            )
            # The task must not reference this object: a dropped Stream is then collected and
            # its finalizer closes the connection.
            self._pump = asyncio.create_task(_pump(bridge, batches, self._pump_done))
            return bridge

        if self._closed:
            raise _consumed()
        bridge = self._bridge = self._portal.call(start)
        return bridge

    def iter_batches(self) -> Generator[list[ChatCompletionChunk], None, None]:
        """The chunks in per-read batches (one list per read from the socket) instead of one by
        one: ``for batch in stream.iter_batches()``.

        Consumes the stream as ``for`` does (a stream is read once) and closes it at the end,
        on ``break`` (when the generator is closed) and on errors.

        Raises:
            StreamConsumedError: the stream was iterated already (raised here).
        """
        self._claim()
        return self._batches()

    def _batches(self) -> Generator[list[ChatCompletionChunk], None, None]:
        try:
            get = self._start_pump().get
            while True:
                try:
                    batch = get()
                except StopIteration:
                    return
                yield batch
        finally:
            self.close()

    def _chunks(self) -> Iterator[ChatCompletionChunk]:
        try:
            get = self._start_pump().get
            while True:
                try:
                    batch = get()
                except StopIteration:
                    return
                yield from batch
        finally:
            self.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        self._claim()
        # Not stored: when a ``for`` loop breaks, the generator is closed at once and closes us.
        return self._chunks()

    def __next__(self) -> ChatCompletionChunk:
        iterator = self._iter
        if iterator is None:
            self._claim()
            iterator = self._iter = self._chunks()
        return next(iterator)

    def close(self) -> None:
        """Close the connection now and wait until it is closed (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self._portal.usable:
            # Interpreter exit: the portal's shutdown closed the connection already (and its
            # thread may be frozen). Forked child: the connection is the parent's to close.
            return
        bridge = self._bridge
        if bridge is not None:
            bridge.close()
        pump = self._pump
        if pump is not None and self._pump_done.is_set():
            return  # the pump ended and closed the stream itself

        async def stop() -> None:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            await self._async.close()

        if self._portal.in_portal_thread():
            self._portal.loop.create_task(stop())
            return
        try:
            self._portal.call(stop)
        except APIConnectionError:
            if self._portal.usable:
                raise
            # The interpreter began to exit meanwhile: the portal's shutdown closed it.

    @property
    def closed(self) -> bool:
        """Whether the stream was closed."""
        return self._closed

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Dropped without being closed: release the connection without blocking the collector.
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if not self._portal.usable:
            return  # see close()
        try:
            pump = self._pump
            bridge = self._bridge
            if bridge is not None:
                bridge.close()

            async def stop() -> None:
                if pump is not None:
                    pump.cancel()
                await self._async.close()

            loop = self._portal.loop
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(stop(), loop)
        except Exception:  # finalizers must not raise
            pass


# -- event streams ------------------------------------------------------------------------


def _annotate(err: RxChatError, state: ChatCompletionStreamState[Any]) -> None:
    """Attach the snapshot accumulated so far to an error that has none."""
    if err.completion is None:
        with contextlib.suppress(Exception):
            err.completion = state.current_completion_snapshot


class _EventStreamBase(Generic[ResponseFormatT]):
    """What the sync and async event streams share: the state and its bookkeeping."""

    _state: ChatCompletionStreamState[ResponseFormatT]
    _done: bool

    @property
    def current_completion_snapshot(self) -> ParsedChatCompletion[ResponseFormatT]:
        """The completion accumulated so far (content, tool calls, finish reasons, usage)."""
        return self._state.current_completion_snapshot

    @property
    def state(self) -> ChatCompletionStreamState[ResponseFormatT]:
        """The underlying :class:`~rxchat.ChatCompletionStreamState`."""
        return self._state

    def _abandoned(self) -> IncompleteStreamError:
        err = IncompleteStreamError(
            "the event stream was closed before it finished (a loop over it ended early, "
            "or close() was called); the final completion is not available"
        )
        _annotate(err, self._state)
        return err


class AsyncChatCompletionStream(_EventStreamBase[ResponseFormatT]):
    """Events of one streamed completion: ``async for event in stream``.

    Yielded by ``async with client.chat.completions.stream(...) as stream``. Event types and
    fields are those of the OpenAI / Dedalus SDKs (``chunk``, ``content.delta``,
    ``content.done``, ``refusal.delta``, ``refusal.done``,
    ``tool_calls.function.arguments.delta`` / ``.done``, ``logprobs.*``), plus
    ``reasoning.delta`` / ``reasoning.done``.

    Raises (from the iteration): the transport's errors, :class:`~rxchat.LengthFinishReasonError`
    / :class:`~rxchat.ContentFilterFinishReasonError` when a parseable ``response_format`` or
    strict tools were given; every error carries ``.completion``, the snapshot so far.
    """

    def __init__(
        self, raw: AsyncStream, state: ChatCompletionStreamState[ResponseFormatT]
    ) -> None:
        self._raw = raw
        self._state = state
        self._done = False
        self._iter: AsyncIterator[ChatCompletionStreamEvent] | None = None

    def __aiter__(self) -> AsyncIterator[ChatCompletionStreamEvent]:
        return self._events(self._raw.iter_batches())

    async def __anext__(self) -> ChatCompletionStreamEvent:
        iterator = self._iter
        if iterator is None:
            iterator = self._iter = self._events(self._raw.iter_batches())
        return await iterator.__anext__()

    async def _events(
        self, batches: AsyncGenerator[list[ChatCompletionChunk], None]
    ) -> AsyncIterator[ChatCompletionStreamEvent]:
        handle = self._state.handle_chunk
        try:
            async for batch in batches:
                for chunk in batch:
                    for event in handle(chunk):
                        yield event
            self._done = True
        except RxChatError as err:
            _annotate(err, self._state)
            raise
        finally:
            await batches.aclose()
            await self._raw.close()

    async def until_done(self) -> AsyncChatCompletionStream[ResponseFormatT]:
        """Read the rest of the stream (events are dropped); returns the stream.

        Raises:
            IncompleteStreamError: the stream was closed before it finished.
        """
        if self._done:
            return self
        iterator = self._iter
        if iterator is None:
            try:
                batches = self._raw.iter_batches()
            except StreamConsumedError:
                raise self._abandoned() from None
            iterator = self._iter = self._events(batches)
        async for _ in iterator:
            pass
        if not self._done:
            raise self._abandoned()
        return self

    async def get_final_completion(self) -> ParsedChatCompletion[ResponseFormatT]:
        """Wait for the end of the stream and return the accumulated, parsed completion.

        ``completion.choices[0].message.parsed`` holds the ``response_format`` model instance
        and each tool call's ``function.parsed_arguments`` the parsed arguments.
        """
        await self.until_done()
        return self._state.get_final_completion()

    async def close(self) -> None:
        """Close the connection now (idempotent)."""
        await self._raw.close()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._raw.closed

    @property
    def response(self) -> ChunkBatchStream | None:
        """The transport stream (status code, response headers, retries)."""
        return self._raw.source

    async def __aenter__(self) -> AsyncChatCompletionStream[ResponseFormatT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ChatCompletionStream(_EventStreamBase[ResponseFormatT]):
    """Events of one streamed completion: ``for event in stream`` (synchronous).

    Yielded by ``with client.chat.completions.stream(...) as stream``; see
    :class:`AsyncChatCompletionStream` for the events and errors. The event state runs in the
    consuming thread; chunks cross from rxchat's loop thread in per-read batches.
    """

    def __init__(self, raw: Stream, state: ChatCompletionStreamState[ResponseFormatT]) -> None:
        self._raw = raw
        self._state = state
        self._done = False
        self._iter: Iterator[ChatCompletionStreamEvent] | None = None

    @classmethod
    def from_async(
        cls, stream: AsyncChatCompletionStream[ResponseFormatT], portal: Portal
    ) -> ChatCompletionStream[ResponseFormatT]:
        """The sync face of an (entered, not yet iterated) async event stream on ``portal``'s loop."""
        return cls(Stream(stream._raw, portal), stream.state)

    def __iter__(self) -> Iterator[ChatCompletionStreamEvent]:
        return self._events(self._raw.iter_batches())

    def __next__(self) -> ChatCompletionStreamEvent:
        iterator = self._iter
        if iterator is None:
            iterator = self._iter = self._events(self._raw.iter_batches())
        return next(iterator)

    def _events(
        self, batches: Generator[list[ChatCompletionChunk], None, None]
    ) -> Iterator[ChatCompletionStreamEvent]:
        handle = self._state.handle_chunk
        try:
            for batch in batches:
                for chunk in batch:
                    yield from handle(chunk)
            self._done = True
        except RxChatError as err:
            _annotate(err, self._state)
            raise
        finally:
            batches.close()
            self._raw.close()

    def until_done(self) -> ChatCompletionStream[ResponseFormatT]:
        """Read the rest of the stream (events are dropped); returns the stream.

        Raises:
            IncompleteStreamError: the stream was closed before it finished.
        """
        if self._done:
            return self
        iterator = self._iter
        if iterator is None:
            try:
                batches = self._raw.iter_batches()
            except StreamConsumedError:
                raise self._abandoned() from None
            iterator = self._iter = self._events(batches)
        for _ in iterator:
            pass
        if not self._done:
            raise self._abandoned()
        return self

    def get_final_completion(self) -> ParsedChatCompletion[ResponseFormatT]:
        """Wait for the end of the stream and return the accumulated, parsed completion."""
        self.until_done()
        return self._state.get_final_completion()

    def close(self) -> None:
        """Close the connection now and wait until it is closed (idempotent)."""
        self._raw.close()

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._raw.closed

    @property
    def response(self) -> ChunkBatchStream | None:
        """The transport stream (status code, response headers, retries)."""
        return self._raw.source

    def __enter__(self) -> ChatCompletionStream[ResponseFormatT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def in_thread(
    stream: AsyncChatCompletionStream[ResponseFormatT], portal: Portal
) -> ChatCompletionStream[ResponseFormatT]:
    """The synchronous event stream over the same request and state as ``stream``, an async
    event stream not iterated yet whose request runs on ``portal``'s loop (the sync client's
    ``stream(...)``)."""
    return ChatCompletionStream(Stream(stream._raw, portal), stream._state)


class AsyncChatCompletionStreamManager(Generic[ResponseFormatT]):
    """``async with client.chat.completions.stream(...) as stream``: sends the request on entry.

    Leaving the block closes the connection, even when the stream was not read to the end.
    """

    def __init__(
        self,
        open_stream: Callable[[], Awaitable[AsyncChatCompletionStream[ResponseFormatT]]],
    ) -> None:
        self._open_stream = open_stream
        self._stream: AsyncChatCompletionStream[ResponseFormatT] | None = None

    async def __aenter__(self) -> AsyncChatCompletionStream[ResponseFormatT]:
        if self._stream is not None:
            raise _consumed()
        self._stream = await self._open_stream()
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.close()


class ChatCompletionStreamManager(Generic[ResponseFormatT]):
    """``with client.chat.completions.stream(...) as stream``: sends the request on entry.

    Leaving the block closes the connection at once, even when the stream was not read to the end.
    """

    def __init__(self, open_stream: Callable[[], ChatCompletionStream[ResponseFormatT]]) -> None:
        self._open_stream = open_stream
        self._stream: ChatCompletionStream[ResponseFormatT] | None = None

    def __enter__(self) -> ChatCompletionStream[ResponseFormatT]:
        if self._stream is not None:
            raise _consumed()
        self._stream = self._open_stream()
        return self._stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()
