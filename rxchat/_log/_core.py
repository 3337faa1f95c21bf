"""The stream log: publish, read, cancel and inspect streams, over a :class:`Backend`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypedDict, TypeVar, cast

import orjson
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler
from typing_extensions import Unpack

from .._async_iter import to_async_iterator
from .._compat import scheduler_loop
from .._flow import FLOW_GATE, FlowGate
from .._sources import ChunkSource
from .._state import ChatCompletionStreamState
from ..errors import RxChatError
from ..types import ChatCompletion, ChatCompletionChunk
from ._backend import Backend
from ._codec import (
    ChunkEntry,
    EndEntry,
    Terminal,
    decode_entry,
    encode_chunk,
    encode_chunks,
    encode_end,
    error_from_json,
    is_end,
    load_chunks,
)
from ._errors import (
    ProducerLostError,
    StreamCancelledError,
    StreamDataLostError,
    StreamExistsError,
    StreamLimitError,
    StreamLogError,
    StreamLogUnavailableError,
    StreamNotFoundError,
)
from ._models import plain
from ._types import LoggedChunk, StreamInfo, StreamStatus

__all__ = ["LogOptions", "StreamHandle", "StreamLog", "StreamReader"]

log = logging.getLogger("rxchat")
_dumps = orjson.dumps
_T = TypeVar("_T")

_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_READ_COUNT = 64  # entries per waiting read (each up to batch_size chunks)
_CATCH_UP_COUNT = 1024  # entries per read that does not wait (Redis merges them into few replies)
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0
# What one network read can add after the gate closed (as in the async bridge).
_READ_ALLOWANCE = 4096


class LogOptions(TypedDict, total=False):
    """Options of a stream log (keyword arguments of ``MemoryStreamLog`` / ``RedisStreamLog``).

    Attributes:
        flush_interval: at most one chunk entry per this many seconds per stream: chunks that
            arrive meanwhile are coalesced into the next one, so a chunk waits this long at most
            (default 0.01; a chunk after a quiet interval is written at once).
        batch_size: chunks per entry at most; a full batch is written at once (default 256).
        lease: seconds without a heartbeat after which readers report the producer lost
            (default 5.0; heartbeats every lease / 3).
        ttl: seconds a stream stays readable after its terminal entry (default 600); a stream
            whose producer died expires ``lease + ttl`` after its last heartbeat.
        max_chunks: chunks per stream at most; beyond, the producer stops it with
            ``StreamLimitError`` (default 100_000).
        max_bytes: logged JSON bytes per stream at most, likewise (default 64 MiB).
        max_buffered: chunks the producer holds while the log is unreachable before it pauses
            its source (rxchat's network sources stop reading the socket; default 10_000); a
            source that cannot pause makes it give up with ``StreamLogUnavailableError`` past
            ``max_buffered + 4096`` (what one network read may still bring).
        give_up_after: seconds the log may stay unreachable before a producer gives up (and a
            reader stops reconnecting) with ``StreamLogUnavailableError`` (default 30.0).
    """

    flush_interval: float
    batch_size: int
    lease: float
    ttl: float
    max_chunks: int
    max_bytes: int
    max_buffered: int
    give_up_after: float


_DEFAULTS: LogOptions = {
    "flush_interval": 0.01,
    "batch_size": 256,
    "lease": 5.0,
    "ttl": 600.0,
    "max_chunks": 100_000,
    "max_bytes": 64 * 1024 * 1024,
    "max_buffered": 10_000,
    "give_up_after": 30.0,
}


def _check_options(options: Mapping[str, Any]) -> LogOptions:
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown stream log option(s): {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {**_DEFAULTS, **options}
    for name, value in merged.items():
        integer = name in ("batch_size", "max_chunks", "max_bytes", "max_buffered")
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            kind = "an integer" if integer else "a number"
            raise TypeError(f"{name} must be {kind}, not {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be > 0, not {value!r}")
    return cast(LogOptions, merged)


def _check_stream_id(stream_id: object) -> str:
    if not isinstance(stream_id, str) or not _ID.fullmatch(stream_id):
        raise ValueError(
            f"a stream id is 1-128 characters among A-Z a-z 0-9 _ . : -, not {stream_id!r}"
        )
    return stream_id


def _check_after(after: object) -> int:
    if after is None:
        return 0
    if isinstance(after, str) and after.isdigit():  # a Last-Event-ID header, as sent
        return int(after)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError(f"after must be a chunk position (an integer >= 0), not {after!r}")
    return after


class StreamLog:
    """Streams that outlive their request: publish a chunk Observable under an id, read it back,
    resume it and cancel it from anywhere the log reaches.

    Use :class:`~rxchat.MemoryStreamLog` (one process) or :class:`rxchat.redis.RedisStreamLog`
    (any number of processes); both have these methods and the same guarantees: chunks in order,
    no gap and no duplicate across resumes, exactly one terminal entry per stream, typed errors
    for cancelled / producer lost / not found / data lost.
    """

    def __init__(self, backend: Backend, **options: Unpack[LogOptions]) -> None:
        self._backend = backend
        self.options: LogOptions = _check_options(options)
        self._producers: dict[str, _Producer] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    # -- produce ----------------------------------------------------------------------------------

    async def publish(
        self,
        source: Observable[Any],
        *,
        stream_id: str | None = None,
        conversation_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> StreamHandle:
        """Start logging a chunk Observable under a stream id; returns at once.

        The source is subscribed here and runs on its own, whoever reads: closing the HTTP
        request that called ``publish`` does not stop it; ``cancel`` does.

        Args:
            source: an Observable of :class:`~rxchat.types.ChatCompletionChunk` (or chunk dicts),
                e.g. ``client.chat.completions.observe(...)``.
            stream_id: the id to publish under (default: a new random id).
            conversation_id: the conversation this answers; ``find_active(conversation_id)``
                finds the stream while it runs.
            metadata: string fields kept with the stream (user id, ...), see ``info``.

        Returns:
            A :class:`StreamHandle`: ``stream_id``, ``await wait()``, ``await cancel()``.

        Raises:
            StreamExistsError: ``stream_id`` is taken.
            ValueError: a malformed stream id or metadata.
            StreamLogUnavailableError: the log could not be reached within ``give_up_after``.
        """
        if self._closed:
            raise RuntimeError("this stream log is closed")
        sid = _check_stream_id(stream_id) if stream_id is not None else secrets.token_urlsafe(12)
        if conversation_id is not None:
            _check_stream_id(conversation_id)
        meta = dict(metadata or {})
        for key, value in meta.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"metadata maps strings to strings, not {key!r}: {value!r}")
        fields = {
            "status": "running",
            "created": repr(time.time()),
            "metadata": _dumps_meta(meta),
        }
        if conversation_id is not None:
            fields["conversation"] = conversation_id
        options = self.options
        created = await self._retry(
            sid,
            lambda: self._backend.create(
                sid,
                fields,
                conversation_id=conversation_id,
                lease=options["lease"],
                ttl=options["lease"] + options["ttl"],
            ),
        )
        if not created:
            raise StreamExistsError(f"a stream {sid!r} exists already", stream_id=sid)
        producer = _Producer(
            self._backend, self.options, self._retry, self._forget, sid, conversation_id, fields
        )
        self._producers[sid] = producer
        await self._retry(sid, lambda: self._backend.watch_cancels(sid, self._cancel_requested))
        self._ensure_heartbeat()
        producer.start(source)
        return StreamHandle(self, producer)

    def _cancel_requested(self, stream_id: str) -> None:
        producer = self._producers.get(stream_id)
        if producer is not None:
            producer.cancel()

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        """Renew every running producer's lease, a third of a lease apart, in one round trip;
        pick up cancel requests whose notification was missed. Heartbeats failing for
        ``give_up_after`` make the producers give up (their source disposed)."""
        options = self.options
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while self._producers:
            await asyncio.sleep(options["lease"] / 3)
            producers = {sid: p for sid, p in self._producers.items() if not p.ended_writing}
            if not producers:
                continue
            conversations = {
                sid: p.conversation_id
                for sid, p in producers.items()
                if p.conversation_id is not None
            }
            try:
                cancelled = await self._backend.heartbeat(
                    list(producers),
                    conversations,
                    lease=options["lease"],
                    ttl=options["lease"] + options["ttl"],
                )
            except self._backend.connection_errors as err:
                if loop.time() - last_ok < options["give_up_after"]:
                    log.debug("stream log heartbeat failed, retrying: %s", err)
                    continue
                for sid, producer in producers.items():
                    producer.give_up(
                        StreamLogUnavailableError(
                            f"the stream log was unreachable for {options['give_up_after']:g} s "
                            f"(stream {sid!r}): {err}",
                            stream_id=sid,
                        )
                    )
                continue
            last_ok = loop.time()
            for sid in cancelled:
                self._cancel_requested(sid)

    def _forget(self, producer: _Producer) -> None:
        if self._producers.get(producer.stream_id) is producer:
            del self._producers[producer.stream_id]

    # -- read -------------------------------------------------------------------------------------

    def read(self, stream_id: str, *, after: int | str | None = None) -> StreamReader:
        """The chunks of a stream, from the start (or after a position), then live, to the end.

        Cold: each subscription (or ``async for``) reads on its own. Each item is a
        :class:`~rxchat.LoggedChunk` (a chunk, with ``.position``). The Observable completes after
        the last chunk of a completed stream; otherwise it ends with the stream's error.

        Args:
            stream_id: the stream to read.
            after: the position of the last chunk already seen (``0`` or ``None``: from the
                start); a ``Last-Event-ID`` string of digits is taken as is.

        Returns:
            A :class:`StreamReader`: an ``Observable[LoggedChunk]`` you can also ``async for``.

        Raises:
            ValueError: a malformed stream id or position (at once).
            StreamNotFoundError: (on subscribe) no such stream, or it expired.
            StreamCancelledError: the stream was cancelled (``.completion``: what was logged).
            ProducerLostError: the producer's lease expired without a terminal entry.
            StreamDataLostError: the log lost entries the reader needs.
            StreamLogUnavailableError: the log stayed unreachable for ``give_up_after``.
            RxChatError: the same error class the producer's source raised.
        """
        sid = _check_stream_id(stream_id)
        position = _check_after(after)
        return StreamReader(self._read, sid, position)

    async def _read(self, stream_id: str, after: int, emit: Callable[[LoggedChunk], bool]) -> None:
        """Emit the stream's chunks after ``after``; return at a completed end, raise otherwise.

        ``emit`` returns False when the subscriber has gone."""
        backend = self._backend
        lease = self.options["lease"]
        poll = min(max(lease / 5, 0.05), 1.0)
        cursor = _Cursor(after)
        meta = await self._retry(stream_id, lambda: backend.meta(stream_id))
        if meta is None:
            raise StreamNotFoundError(
                f"no stream {stream_id!r} (never published, or expired)", stream_id=stream_id
            )
        if after:
            top = await self._retry(stream_id, lambda: backend.last_entry(stream_id))
            if top is None or after > top:
                raise StreamLogError(
                    f"position {after} is past the end of stream {stream_id!r} "
                    f"({top or 0} chunks logged)",
                    stream_id=stream_id,
                )
        gate = FLOW_GATE.get()
        loop = asyncio.get_running_loop()
        # Catch up with large pages that do not wait, the next one asked for while one is
        # delivered; then follow with waiting reads (back to catching up whenever a waiting read
        # returns a full page: the reader is behind).
        block: float | None = None
        prefetch: asyncio.Task[list[tuple[int, dict[bytes, bytes]]]] | None = None
        try:
            while True:
                if prefetch is not None:
                    entries, prefetch = await prefetch, None
                else:
                    entries = await self._read_page(stream_id, cursor, cursor.entry, block)
                if block is None:
                    if not entries:
                        block = poll
                        continue
                    if not is_end(entries[-1][1]):
                        prefetch = loop.create_task(
                            self._read_page(stream_id, cursor, entries[-1][0], None)
                        )
                elif len(entries) >= _READ_COUNT:
                    block = None
                if not entries:
                    if await self._retry(stream_id, lambda: backend.lease_alive(stream_id)):
                        continue
                    if loop.time() - cursor.reconnected < lease:
                        continue  # the producer may be reconnecting too: give it a lease's time
                    # The lease is gone: the terminal entry may have been written meanwhile.
                    entries = await self._read_page(stream_id, cursor, cursor.entry, None)
                    if not entries:
                        await self._raise_lost(stream_id, cursor)
                if not await self._deliver(stream_id, entries, cursor, emit, gate):
                    return
        finally:
            if prefetch is not None:
                _discard(prefetch)

    async def _read_page(
        self, stream_id: str, cursor: _Cursor, after: int, block: float | None
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        """The entries after ``after``: a large page at once (``block`` None), or a waiting
        read; retried while the log is unreachable."""
        count = _CATCH_UP_COUNT if block is None else _READ_COUNT
        return await self._retry(
            stream_id,
            functools.partial(self._backend.read, stream_id, after, count, block),
            on_reconnect=lambda: self._check_kept(stream_id, cursor),
        )

    async def _deliver(
        self,
        stream_id: str,
        entries: list[tuple[int, dict[bytes, bytes]]],
        cursor: _Cursor,
        emit: Callable[[LoggedChunk], bool],
        gate: FlowGate | None,
    ) -> bool:
        """Emit the entries' chunks in order; False once the stream completed (or the subscriber
        left), the stream's error raised at an error end."""
        for entry_id, fields in entries:
            entry = self._decode(stream_id, entry_id, fields)
            if isinstance(entry, EndEntry):
                await self._end(stream_id, entry, cursor)
                return False
            if entry.first > cursor.position + 1:
                raise StreamDataLostError(
                    f"stream {stream_id!r} lost chunks {cursor.position + 1} to "
                    f"{entry.first - 1} (the log's server lost data)",
                    stream_id=stream_id,
                    chunks_received=cursor.position,
                )
            try:
                for chunk in load_chunks(entry, stream_id, cursor.position):
                    if not emit(chunk):
                        return False
            except ValueError as err:  # pydantic's ValidationError is one
                raise StreamLogError(
                    f"entry {entry_id} of stream {stream_id!r} holds what is not a chunk: {err}",
                    stream_id=stream_id,
                ) from None
            cursor.entry = entry_id
            cursor.position = entry.last
            if gate is not None and gate.closed:  # the async-for body is behind
                await gate.wait_open()
        return True

    def _decode(self, stream_id: str, entry_id: int, fields: dict[bytes, bytes]) -> Any:
        try:
            return decode_entry(entry_id, fields)
        except (ValueError, KeyError) as err:
            raise StreamLogError(
                f"entry {entry_id} of stream {stream_id!r} is not an rxchat log entry: {err}",
                stream_id=stream_id,
            ) from err

    async def _check_kept(self, stream_id: str, cursor: _Cursor) -> None:
        """After a reconnect: the log must still hold what this reader saw."""
        cursor.reconnected = asyncio.get_running_loop().time()
        meta = await self._backend.meta(stream_id)
        top = await self._backend.last_entry(stream_id)
        if meta is None or (cursor.entry and (top is None or top < cursor.entry)):
            raise StreamDataLostError(
                f"stream {stream_id!r} lost entries after position {top or 0} while the reader "
                "was disconnected (the log's server restarted without them)",
                stream_id=stream_id,
                chunks_received=cursor.position,
            )

    async def _raise_lost(self, stream_id: str, cursor: _Cursor) -> None:
        meta = await self._retry(stream_id, lambda: self._backend.meta(stream_id))
        completion = await self._completion(stream_id)
        if meta is None:
            raise StreamDataLostError(
                f"stream {stream_id!r} disappeared from the log while being read",
                stream_id=stream_id,
                chunks_received=cursor.position,
            )
        raise ProducerLostError(
            f"the producer of stream {stream_id!r} stopped renewing its lease "
            f"({self.options['lease']:g} s) without ending the stream",
            stream_id=stream_id,
            completion=completion,
            chunks_received=cursor.position,
        )

    async def _end(self, stream_id: str, entry: EndEntry, cursor: _Cursor) -> None:
        if entry.total > cursor.position:
            raise StreamDataLostError(
                f"stream {stream_id!r} lost chunks {cursor.position + 1} to {entry.total}",
                stream_id=stream_id,
                chunks_received=cursor.position,
            )
        if entry.status == "completed":
            return
        completion = await self._completion(stream_id)
        if entry.status == "cancelled":
            raise StreamCancelledError(
                f"stream {stream_id!r} was cancelled after {entry.total} chunks",
                stream_id=stream_id,
                completion=completion,
                chunks_received=entry.total,
            )
        error = error_from_json(entry.error or {}, stream_id=stream_id, completion=completion)
        error.chunks_received = entry.total
        raise error

    async def _completion(self, stream_id: str) -> ChatCompletion | None:
        """What the log holds, accumulated (for the ``.completion`` of errors)."""
        state = ChatCompletionStreamState()
        after = 0
        try:
            while True:
                entries = await self._backend.read(stream_id, after, _READ_COUNT, None)
                if not entries:
                    break
                for entry_id, fields in entries:
                    entry = decode_entry(entry_id, fields)
                    if isinstance(entry, ChunkEntry):
                        for chunk in load_chunks(entry, stream_id, 0):
                            state.handle_chunk(chunk)
                    after = entry_id
            return state.current_completion_snapshot if state.chunks_handled else None
        except (RxChatError, ValueError, KeyError, *self._backend.connection_errors) as err:  # type: ignore[misc]
            log.warning("could not rebuild the completion of stream %r: %s", stream_id, err)
            return None

    # -- control ----------------------------------------------------------------------------------

    async def cancel(self, stream_id: str) -> bool:
        """Stop a stream from any process: its producer disposes its source (the connection to
        the model server closes), logs what it had and the ``cancelled`` entry; every reader then
        ends with :class:`~rxchat.StreamCancelledError`.

        Returns:
            True when the stream was running; False when it had already ended (or was lost).

        Raises:
            StreamNotFoundError: no such stream.
        """
        sid = _check_stream_id(stream_id)
        info = await self.info(sid)
        if info.status != "running":
            return False
        producer = self._producers.get(sid)
        if producer is not None:  # here: no round trip needed
            producer.cancel()
        await self._retry(sid, lambda: self._backend.request_cancel(sid))
        return True

    async def info(self, stream_id: str) -> StreamInfo:
        """The state of a stream.

        Raises:
            StreamNotFoundError: no such stream.
        """
        sid = _check_stream_id(stream_id)
        backend = self._backend
        meta = await self._retry(sid, lambda: backend.meta(sid))
        if meta is None:
            raise StreamNotFoundError(
                f"no stream {sid!r} (never published, or expired)", stream_id=sid
            )
        status = cast(StreamStatus, meta.get("status", "running"))
        if status == "running":
            chunks = await self._retry(sid, lambda: backend.last_entry(sid)) or 0
            if not await self._retry(sid, lambda: backend.lease_alive(sid)):
                status = "lost"
        else:
            chunks = int(meta.get("chunks", 0))
        ended = meta.get("ended")
        return StreamInfo(
            stream_id=sid,
            status=status,
            chunks=chunks,
            metadata=_loads_meta(meta.get("metadata", "")),
            conversation_id=meta.get("conversation"),
            created_at=float(meta.get("created", 0.0)),
            ended_at=float(ended) if ended else None,
            error_type=meta.get("error_type"),
            error_message=meta.get("error_message"),
        )

    async def find_active(self, conversation_id: str) -> StreamInfo | None:
        """The running stream published with this ``conversation_id``, if any (a reloaded page
        finds the answer still being written)."""
        cid = _check_stream_id(conversation_id)
        sid = await self._retry(cid, lambda: self._backend.find_active(cid))
        if sid is None:
            return None
        try:
            info = await self.info(sid)
        except StreamNotFoundError:
            return None
        return info if info.status == "running" else None

    async def aclose(self) -> None:
        """Cancel the streams this log is producing (they end ``cancelled``), wait for their
        terminal entries, and release connections."""
        self._closed = True
        producers = list(self._producers.values())
        for producer in producers:
            producer.cancel()
        for producer in producers:
            with contextlib.suppress(RxChatError):  # reported to the handle's own waiter
                await producer.finished
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._backend.aclose()

    async def __aenter__(self: _LogT) -> _LogT:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- retrying a round trip ------------------------------------------------------------------

    async def _retry(
        self,
        stream_id: str,
        op: Callable[[], Awaitable[_T]],
        *,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        deadline: float | None = None,
    ) -> _T:
        """Run ``op``; while the server is unreachable retry it with backoff, at most
        ``give_up_after`` seconds."""
        errors = self._backend.connection_errors
        try:
            return await op()
        except errors as first:
            error: BaseException = first
        loop = asyncio.get_running_loop()
        give_up = deadline if deadline is not None else loop.time() + self.options["give_up_after"]
        delay = _BACKOFF_FIRST
        while True:
            if loop.time() + delay > give_up:
                raise StreamLogUnavailableError(
                    f"the stream log was unreachable for {self.options['give_up_after']:g} s "
                    f"(stream {stream_id!r}): {error}",
                    stream_id=stream_id,
                ) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            try:
                if on_reconnect is not None:
                    await on_reconnect()
                return await op()
            except errors as err:
                error = err


_LogT = TypeVar("_LogT", bound=StreamLog)


class _Cursor:
    __slots__ = ("entry", "position", "reconnected")

    def __init__(self, after: int) -> None:
        self.position = after  # last chunk delivered
        self.entry = after  # read entries with ids past this one
        self.reconnected = float("-inf")  # loop time of the last reconnect


def _discard(task: asyncio.Task[Any]) -> None:
    """Cancel a read nobody will await; an error it already had is not reported as lost."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _dumps_meta(meta: dict[str, str]) -> str:
    import orjson

    return orjson.dumps(meta).decode()


def _loads_meta(raw: str) -> dict[str, str]:
    import orjson

    if not raw:
        return {}
    value = orjson.loads(raw)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# -- reading: an Observable that is also async-iterable --------------------------------------------


_Follow = Callable[[str, int, Callable[[LoggedChunk], bool]], Awaitable[None]]
"""What a :class:`StreamReader` reads with (the log's ``_read``): emit a stream's chunks after a
position; ``emit`` returns False when the subscriber has gone."""


class StreamReader(Observable[LoggedChunk]):
    """``log.read(...)``: an ``Observable[LoggedChunk]``; ``async for chunk in reader`` works too
    (a bounded bridge: the reader stops reading the log while the loop body is behind)."""

    def __init__(self, follow: _Follow, stream_id: str, after: int) -> None:
        self.stream_id = stream_id
        self.after = after
        self._follow = follow
        super().__init__(self._subscribe_reader)

    def __aiter__(self) -> AsyncIterator[LoggedChunk]:
        return to_async_iterator(self)

    def _subscribe_reader(
        self, observer: abc.ObserverBase[LoggedChunk], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        loop = _loop_of(scheduler)
        stopped = False

        def emit(chunk: LoggedChunk) -> bool:
            if stopped:
                return False
            observer.on_next(chunk)
            return not stopped

        async def body() -> None:
            try:
                await self._follow(self.stream_id, self.after, emit)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not stopped:
                    observer.on_error(err)
                return
            if not stopped:
                observer.on_completed()

        task = loop.create_task(body())

        def dispose() -> None:
            nonlocal stopped
            stopped = True
            if not task.done():
                if loop.is_closed():
                    return
                try:
                    running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    task.cancel()
                else:
                    loop.call_soon_threadsafe(task.cancel)

        return Disposable(dispose)


def _loop_of(scheduler: abc.SchedulerBase | None) -> asyncio.AbstractEventLoop:
    if isinstance(scheduler, AsyncIOScheduler):
        return scheduler_loop(scheduler)
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "a stream log is read on an asyncio event loop: subscribe inside a running loop, "
            "or pass scheduler=AsyncIOScheduler(loop) to subscribe()"
        ) from None


# -- producing ----------------------------------------------------------------------------------


class StreamHandle:
    """The producer's side of one published stream."""

    def __init__(self, log: StreamLog, producer: _Producer) -> None:
        self._log = log
        self._producer = producer

    @property
    def stream_id(self) -> str:
        return self._producer.stream_id

    def done(self) -> bool:
        """Whether the terminal entry is written (or the producer gave up)."""
        return self._producer.finished.done()

    async def wait(self) -> StreamInfo:
        """Wait for the end of the stream; returns its final info (``completed``, ``error`` or
        ``cancelled``: the stream's outcome, which readers get too).

        Raises:
            StreamLogUnavailableError: the log stayed unreachable for ``give_up_after`` seconds;
                the producer disposed its source and gave up.
        """
        await asyncio.shield(self._producer.finished)
        return await self._log.info(self.stream_id)

    async def cancel(self) -> bool:
        """``log.cancel(stream_id)``."""
        return await self._log.cancel(self.stream_id)

    def __repr__(self) -> str:
        return f"StreamHandle({self.stream_id!r})"


class _Retry(Protocol):
    """:meth:`StreamLog._retry`, as the producers call it."""

    def __call__(
        self,
        stream_id: str,
        op: Callable[[], Awaitable[_T]],
        *,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        deadline: float | None = None,
    ) -> Awaitable[_T]: ...


class _Producer:
    """Subscribes the source, coalesces chunks into entries, writes them in order, then the
    terminal entry. At most one write is in flight; chunks that arrive meanwhile wait in
    ``pending`` (bounded)."""

    def __init__(
        self,
        backend: Backend,
        options: LogOptions,
        retry: _Retry,
        forget: Callable[[_Producer], None],
        stream_id: str,
        conversation_id: str | None,
        meta: dict[str, str],
    ) -> None:
        self.backend = backend
        self.options = options
        self.retry = retry
        self.forget = forget
        self.stream_id = stream_id
        self.conversation_id = conversation_id
        self.meta = meta
        self.loop = asyncio.get_running_loop()
        # JSON texts, taken at once: a chunk model kept until the flush would survive
        # garbage-collector passes (measured: the whole source's CPU again); strings are not
        # tracked. From rxchat's network sources they are the payloads as received; other
        # sources' chunks are encoded here.
        self.pending: list[str] = []
        # When the last chunk write started: the next one starts flush_interval later at the
        # earliest (a chunk that arrives after a quiet interval is written at once).
        self.last_write = float("-inf")
        self.written = 0  # position of the last chunk written
        self.received = 0
        self.bytes = 0
        self.end: tuple[Terminal, BaseException | None] | None = None
        self.ended_writing = False
        self.gate = FlowGate()
        self.subscription: abc.DisposableBase | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.batch_size = options["batch_size"]
        self.interval = options["flush_interval"]
        self.max_buffered = options["max_buffered"]
        self.max_chunks = options["max_chunks"]

    def start(self, source: Observable[Any]) -> None:
        self.task = self.loop.create_task(self._run())
        token = FLOW_GATE.set(self.gate)  # a network source pauses while the log is unreachable
        scheduler = AsyncIOScheduler(self.loop)
        try:
            if isinstance(source, ChunkSource):
                # Whole reads with the JSON texts the server sent: nothing to encode again.
                subscription = contextvars.copy_context().run(
                    source.subscribe_batches,
                    self.on_batch,
                    self.on_error,
                    self.on_completed,
                    scheduler=scheduler,
                )
            else:
                subscription = contextvars.copy_context().run(
                    source.subscribe,
                    self.on_next,
                    self.on_error,
                    self.on_completed,
                    scheduler=scheduler,
                )
        except Exception as err:  # subscribe itself failed
            self.on_error(err)
            return
        finally:
            FLOW_GATE.reset(token)
        if self.end is not None:
            subscription.dispose()
        else:
            self.subscription = subscription

    # -- the source's side (synchronous callbacks) ---------------------------------------------

    def on_next(self, item: Any) -> None:
        if self.end is not None:
            return
        if type(item) is not ChatCompletionChunk and not isinstance(item, ChatCompletionChunk):
            try:
                item = ChatCompletionChunk.from_wire(dict(item))
            except Exception as err:
                self._stop(
                    "error",
                    TypeError(
                        f"publish() logs ChatCompletionChunk items, got {type(item).__name__}: {err}"
                    ),
                )
                return
        try:
            payload = _dumps(item, default=plain).decode()  # encode_chunk(item), inlined
        except (TypeError, ValueError) as err:  # orjson.JSONEncodeError is a TypeError
            self._stop("error", TypeError(f"a chunk that cannot be logged as JSON: {err}"))
            return
        if self.received >= self.max_chunks:
            self._over_limit()
            return
        pending = self.pending
        pending.append(payload)
        self.received += 1
        size = len(pending)
        if size == 1:
            self._wake()
        elif size >= self.batch_size:
            self._added(False)

    def on_batch(self, chunks: list[ChatCompletionChunk], payloads: list[str | None] | None) -> None:
        """A read's chunks from an rxchat network source, with the JSON texts they were read
        from (``ChunkSource.subscribe_batches``)."""
        if self.end is not None:
            return
        if payloads is None or len(payloads) != len(chunks) or None in payloads:
            try:
                texts = [
                    text if payloads is not None and (text := payloads[i]) is not None
                    else encode_chunk(chunk).decode()
                    for i, chunk in enumerate(chunks)
                ]  # fmt: skip
            except (TypeError, ValueError) as err:
                self._stop("error", TypeError(f"a chunk that cannot be logged as JSON: {err}"))
                return
        else:
            texts = cast("list[str]", payloads)
        room = self.max_chunks - self.received
        over = len(texts) > room
        if over:
            texts = texts[:room]
        pending = self.pending
        was_empty = not pending
        pending += texts
        self.received += len(texts)
        if texts:
            self._added(was_empty)
        if over:
            self._over_limit()

    def _added(self, was_empty: bool) -> None:
        """Chunks were added to ``pending``: wake the writer (it waits for the flush interval
        unless the batch is full), pause the source (or give up) past ``max_buffered``."""
        size = len(self.pending)
        if was_empty or size >= self.batch_size:
            self._wake()
        if size >= self.max_buffered:
            self.gate.close()
            if size >= self.max_buffered + _READ_ALLOWANCE:
                self.give_up(
                    StreamLogUnavailableError(
                        f"stream {self.stream_id!r}: {size} chunks waited for the log to come back; "
                        "the source could not be paused (raise max_buffered)",
                        stream_id=self.stream_id,
                    )
                )

    def _over_limit(self) -> None:
        self._stop(
            "error",
            StreamLimitError(
                f"stream {self.stream_id!r} exceeded max_chunks={self.options['max_chunks']}",
                stream_id=self.stream_id,
            ),
        )

    def on_error(self, error: Exception) -> None:
        if self.end is None:
            self.end = ("error", error)
            self.subscription = None
            self._wake()

    def on_completed(self) -> None:
        if self.end is None:
            self.end = ("completed", None)
            self.subscription = None
            self._wake()

    def cancel(self) -> None:
        self._stop("cancelled", None)

    def _stop(self, status: Terminal, error: BaseException | None) -> None:
        if self.end is not None:
            return
        self.end = (status, error)
        self._dispose_source()
        self._wake()

    def give_up(self, error: StreamLogUnavailableError) -> None:
        self._stop("error", error)
        if not self.finished.done():
            self.finished.set_exception(error)
        self.task.cancel()

    def _dispose_source(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            subscription.dispose()  # closes the connection to the model server now

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the writer task -------------------------------------------------------------------------

    async def _sleep(self, delay: float | None) -> None:
        self.waiter = self.loop.create_future()
        timer = None if delay is None else self.loop.call_later(delay, self._wake)
        try:
            await self.waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def _run(self) -> None:
        try:
            await self._write_all()
        except StreamLogUnavailableError as err:
            self._stop("error", err)
            if not self.finished.done():
                self.finished.set_exception(err)
        except asyncio.CancelledError:
            if not self.finished.done():  # the loop is shutting down
                self.finished.cancel()
            raise
        except BaseException as err:
            self._dispose_source()
            if not self.finished.done():
                self.finished.set_exception(err)
            raise
        else:
            if not self.finished.done():
                self.finished.set_result(None)
        finally:
            self.ended_writing = True
            self.forget(self)
            try:
                await self.backend.unwatch_cancels(self.stream_id)
            except Exception as err:  # the stream is over; a failed unsubscribe only logs
                log.debug("unwatch_cancels(%r) failed: %s", self.stream_id, err)

    async def _write_all(self) -> None:
        loop = self.loop
        pending = self.pending
        while True:
            if pending:
                # At most one write per flush interval: what arrives meanwhile shares an entry
                # (a full batch or the end goes at once).
                if (
                    len(pending) < self.batch_size
                    and self.end is None
                    and (delay := self.last_write + self.interval - loop.time()) > 0
                ):
                    await self._sleep(delay)
                    continue
                batch = pending[: self.batch_size]
                del pending[: self.batch_size]
                self.last_write = loop.time()
                await self._write_chunks(batch)
                if self.gate.closed and len(pending) <= self.max_buffered // 2:
                    self.gate.open()
            elif self.end is not None:
                await self._write_end(*self.end)
                return
            else:
                await self._sleep(None)

    async def _write_chunks(self, batch: list[str]) -> None:
        first = self.written + 1
        last = self.written + len(batch)
        fields = encode_chunks(first, batch)
        backend = self.backend
        result = await self.retry(
            self.stream_id,
            lambda: backend.append(self.stream_id, last, fields),
            on_reconnect=self._renew,
        )
        self.written = last
        if result == "lost":
            await self._lost()
            return
        self.bytes += len(fields[b"d"])
        if self.bytes > self.options["max_bytes"]:
            self._stop(
                "error",
                StreamLimitError(
                    f"stream {self.stream_id!r} exceeded max_bytes={self.options['max_bytes']}",
                    stream_id=self.stream_id,
                ),
            )
            self.pending.clear()

    async def _renew(self) -> None:
        """After a reconnect: renew the lease at once (readers give a reconnect a lease's grace)."""
        options = self.options
        await self.backend.heartbeat(
            [self.stream_id],
            {} if self.conversation_id is None else {self.stream_id: self.conversation_id},
            lease=options["lease"],
            ttl=options["lease"] + options["ttl"],
        )

    async def _lost(self) -> None:
        """The server lost the stream's earlier entries (a restart without its data): the
        stream can no longer be read whole. Recreate its meta, so that readers find it and get
        the typed error, and end it with StreamDataLostError."""
        options = self.options
        log.warning("stream %r: the log's server lost its data; ending it", self.stream_id)
        await self.retry(
            self.stream_id,
            lambda: self.backend.create(
                self.stream_id,
                {**self.meta, "data_lost": "1"},
                conversation_id=self.conversation_id,
                lease=options["lease"],
                ttl=options["lease"] + options["ttl"],
                replace=True,
            ),
        )
        self.pending.clear()
        self._stop(
            "error",
            StreamDataLostError(
                f"the log's server lost the entries of stream {self.stream_id!r} "
                f"(a restart without persistence?) after {self.written} chunks",
                stream_id=self.stream_id,
            ),
        )

    async def _write_end(self, status: Terminal, error: BaseException | None) -> None:
        total = self.written
        fields = encode_end(status, total, error)
        meta = {"status": status, "chunks": str(total), "ended": repr(time.time())}
        if error is not None:
            meta["error_type"] = type(error).__name__
            meta["error_message"] = str(getattr(error, "message", None) or error)
        backend = self.backend
        await self.retry(
            self.stream_id,
            lambda: backend.finish(
                self.stream_id,
                total + 1,
                fields,
                meta,
                conversation_id=self.conversation_id,
                ttl=self.options["ttl"],
            ),
            on_reconnect=self._renew,
        )
