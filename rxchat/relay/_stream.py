"""``SSEStream``: a chunk or event stream as SSE bytes for one HTTP response (framework-free).

The stream subscribes to its source when first iterated, encodes every item as it arrives into a
per-connection buffer of bytes, and yields what has accumulated each time the response writer is
ready for more (so a fast source and a slow network coalesce into few large writes). It adds an
``id:`` to every event, a ``retry:`` when asked, a keep-alive comment after ``keepalive`` idle
seconds, and ends with the format's terminal event: its end (``[DONE]``, ``done``), its error event,
or its abort event.

The buffer is bounded (``max_buffer`` bytes). rxchat's network sources pause reading while it is
full (back-pressure reaches the model server); a source that cannot pause (a shared
``ops.broadcast()``, a stream log read) makes a slow client overflow it: the client is then cut off
with :class:`SlowClientError` as its error event, and the source and the other clients go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeAlias

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .._flow import FLOW_GATE, FlowGate
from .._log import StreamCancelledError
from ._encoders import Encoder, Message
from ._errors import RelayError, SlowClientError, UnknownEventIdError
from ._framing import comment

__all__ = [
    "SSE_HEADERS",
    "DisconnectPolicy",
    "Outcome",
    "SSEStream",
    "parse_last_event_id",
    "response_headers",
]

log = logging.getLogger("rxchat.relay")

DisconnectPolicy: TypeAlias = Literal["cancel", "detach"]
Outcome: TypeAlias = Literal[
    "completed", "error", "aborted", "disconnected", "slow_client", "closed"
]

_KEEPALIVE = comment("keep-alive")

SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    # Proxies (nginx: X-Accel-Buffering) and caches must pass every event on at once.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def response_headers(encoder: Encoder, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of an SSE response in the encoder's format (``extra`` added last)."""
    headers = dict(SSE_HEADERS)
    headers.update(encoder.headers)
    if extra:
        headers.update(extra)
    return headers


DEFAULT_MAX_BUFFER = 1 << 20


def parse_last_event_id(value: str | None) -> int:
    """The ordinal of the last event a client received, from its ``Last-Event-ID`` (0: none).

    Raises:
        UnknownEventIdError: not an event id of this relay.
    """
    if value is None:
        return 0
    value = value.strip()
    if not value:
        return 0
    if not value.isdigit() or len(value) > 18:
        raise UnknownEventIdError(value, "the relay's event ids are decimal event numbers")
    return int(value)


def _cancellation_reason(error: BaseException) -> str | None:
    """The reason, when an error means "the generation was stopped" rather than "it failed"."""
    if isinstance(error, StreamCancelledError):
        return str(error)
    return None


class SSEStream(AsyncIterator[bytes]):
    """A source relayed as SSE bytes; iterate it to get what to write, in order.

    Made by :func:`rxchat.relay.sse`; the aiohttp and ASGI responses iterate it for you. Iterating
    subscribes on the running loop; ``aclose()`` (or leaving ``async with``, or a ``break``) ends
    it: with ``on_disconnect="cancel"`` the subscription is disposed (an rxchat source closes its
    HTTP request; an ``ops.broadcast()`` does when its last subscriber leaves), with ``"detach"``
    the source runs on to its end with nobody listening (a stream log keeps what it produces).

    Attributes:
        outcome: ``None`` while running, then ``"completed"``, ``"error"``, ``"aborted"``,
            ``"slow_client"``, ``"disconnected"`` (``aclose()`` before the end, the client went
            away) or ``"closed"`` (``aclose()`` after the end).
        error: the source's error, or the :class:`SlowClientError`.
    """

    def __init__(
        self,
        source: Observable[Any] | AsyncIterable[Any] | Iterable[Any],
        encoder: Encoder,
        *,
        keepalive: float | None = 15.0,
        retry: int | None = None,
        last_event_id: str | int | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        on_disconnect: DisconnectPolicy = "cancel",
        on_overflow: Callable[[SlowClientError], None] | None = None,
    ) -> None:
        if keepalive is not None and not keepalive > 0:
            raise RelayError(
                f"keepalive must be a positive number of seconds or None, not {keepalive!r}"
            )
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < 0
        ):
            raise RelayError(f"retry must be a non-negative integer of milliseconds, not {retry!r}")
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise RelayError(f"max_buffer must be a positive number of bytes, not {max_buffer!r}")
        if on_disconnect not in ("cancel", "detach"):
            raise RelayError(f"on_disconnect must be 'cancel' or 'detach', not {on_disconnect!r}")
        self._source = source
        self.encoder = encoder
        self.keepalive = keepalive
        self.max_buffer = max_buffer
        self.on_disconnect: DisconnectPolicy = on_disconnect
        self.on_overflow = on_overflow
        """Called with the :class:`SlowClientError` when the buffer overflows (the responses set
        it to cut the connection off after a grace period)."""
        self._encode = encoder.encode
        self._half_buffer = max_buffer // 2
        skip = (
            last_event_id if isinstance(last_event_id, int) else parse_last_event_id(last_event_id)
        )
        self._skip = skip
        """Events the client already has (a resume): encoded again, counted, not sent."""
        self._next_id = 1
        self._pending: list[bytes] = []
        # retry: goes with the first event (a lone retry: frame is dispatched as an empty
        # event by some parsers, httpx-sse among them).
        self._retry = b"retry: %d\n" % retry if retry is not None else b""
        self._size = 0
        self._gate = FlowGate()
        self._armed = False  # the gate has been closed for more than the current turn
        self._subscription: abc.DisposableBase | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._started = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_write = 0.0
        self._ended = False  # the terminal messages are in the buffer
        self._finished = False  # everything was handed out
        self._detached = False
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.sent_events = 0

    # -- what the source does ---------------------------------------------------------------

    def _frames(self, messages: list[Message]) -> None:
        n = self._next_id
        skip = self._skip
        parts = []
        for event, data in messages:
            if n > skip:
                if event is None:
                    parts.append(b"id: %d\ndata: %s\n\n" % (n, data))
                else:
                    parts.append(b"id: %d\nevent: %s\ndata: %s\n\n" % (n, event, data))
            n += 1
        self._next_id = n
        if parts:
            if self._retry:
                parts[0] = self._retry + parts[0]
                self._retry = b""
            chunk = b"".join(parts)
            self._pending.append(chunk)
            self._size += len(chunk)
            self._wake()

    def _on_next(self, item: Any) -> None:
        if self._ended or self._detached:
            return
        try:
            messages = self._encode(item)
        except Exception as err:  # a bad item: the stream ends with the format's error event
            self._end_error(err)
            return
        n = self._next_id
        if len(messages) == 1 and n > self._skip and not self._retry:
            # one event, past the resume point: the common case, framed here
            event, data = messages[0]
            if event is None:
                frame = b"id: %d\ndata: %s\n\n" % (n, data)
            else:
                frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (n, event, data)
            self._next_id = n + 1
            self._pending.append(frame)
            size = self._size = self._size + len(frame)
            if self._waiter is not None:
                self._wake()
        else:
            self._frames(messages)
            size = self._size
        if size >= self._half_buffer:
            gate = self._gate
            if not gate.closed:
                # rxchat's sources (a model server's stream, a stream log) stop reading at
                # their next read until the buffer drains; what one read brings is accepted.
                gate.close()
                self._armed = False
                asyncio.get_running_loop().call_soon(self._arm)
            elif size > self.max_buffer and self._armed:
                # Items came in a later turn although the gate is closed: this source cannot
                # pause (ops.broadcast(), a hot Observable), and the client is not keeping up.
                self._overflow(size)

    def _arm(self) -> None:
        self._armed = self._gate.closed

    def _overflow(self, size: int) -> None:
        error = SlowClientError(self.max_buffer, size)
        log.warning("rxchat relay: %s", error)
        self._dispose()
        self._terminate("slow_client", error, self.encoder.fail(error))
        if self.on_overflow is not None:
            self.on_overflow(error)

    def _on_error(self, error: BaseException) -> None:
        if self._ended or self._detached:
            return
        self._end_error(error)

    def _end_error(self, error: BaseException) -> None:
        self._dispose()
        reason = _cancellation_reason(error)
        if reason is not None:
            self._terminate("aborted", error, self.encoder.abort(reason))
        else:
            self._terminate("error", error, self.encoder.fail(error))

    def _on_completed(self) -> None:
        if self._ended or self._detached:
            return
        self._terminate("completed", None, self.encoder.close())

    def _terminate(
        self, outcome: Outcome, error: BaseException | None, messages: list[Message]
    ) -> None:
        if self._ended:
            return
        self._frames(messages)
        self._ended = True
        self.outcome = outcome
        self.error = error
        if outcome != "slow_client" and self._skip >= self._next_id:
            # The client claimed to have events this stream never produced.
            self._pending.clear()
            self._size = 0
            self.outcome = "error"
            error = self.error = UnknownEventIdError(
                str(self._skip), f"the stream has {self._next_id - 1} events"
            )
            self._skip = 0
            self._frames(self.encoder.fail(error))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- subscribing --------------------------------------------------------------------------

    def _subscribe(self) -> None:
        loop = asyncio.get_running_loop()
        source = self._source
        token = FLOW_GATE.set(self._gate)  # inherited by the task that will read the socket
        try:
            if isinstance(source, Observable):
                subscription = source.subscribe(
                    self._on_next,
                    self._on_error,
                    self._on_completed,
                    scheduler=AsyncIOScheduler(loop),
                )
                if self._ended:
                    subscription.dispose()
                else:
                    self._subscription = subscription
            elif isinstance(source, AsyncIterable | Iterable):
                self._task = loop.create_task(self._pull(source))
            else:
                raise RelayError(
                    f"cannot relay a {type(source).__name__}: expected an Observable, an async "
                    "iterable or an iterable of chunks or events"
                )
        finally:
            FLOW_GATE.reset(token)

    async def _pull(self, source: AsyncIterable[Any] | Iterable[Any]) -> None:
        gate = self._gate
        try:
            if isinstance(source, AsyncIterable):
                async for item in source:
                    self._on_next(item)
                    if self._ended:
                        return
                    if gate.closed:
                        await gate.wait_open()
            else:
                for item in source:
                    self._on_next(item)
                    if self._ended:
                        return
                    if gate.closed:
                        await gate.wait_open()
                    else:
                        await asyncio.sleep(0)  # let the writer and the loop run
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self._on_error(err)
        else:
            self._on_completed()

    def _dispose(self) -> None:
        self._gate.open()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # -- the writer's side ----------------------------------------------------------------------

    def __aiter__(self) -> SSEStream:
        return self

    async def __anext__(self) -> bytes:
        if not self._started:
            self._started = True
            self._last_write = asyncio.get_running_loop().time()
            if not self._ended:
                self._subscribe()
        while not self._pending:
            if self._ended or self._finished:
                self._finished = True
                self._stop_timer()
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            if self.keepalive is not None and self._timer is None:
                # One timer per stream, moved on only when it fires: no timer per event.
                self._timer = loop.call_at(self._last_write + self.keepalive, self._keepalive_due)
            try:
                await waiter
            finally:
                self._waiter = None
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if self.keepalive is not None:
            self._last_write = asyncio.get_running_loop().time()
        self.sent_events = self._next_id - 1
        self._size = 0
        if self._gate.closed and not self._ended:
            self._armed = False
            self._gate.open()
        return data

    def _keepalive_due(self) -> None:
        self._timer = None
        if self._ended or self._finished or self.keepalive is None:
            return
        loop = asyncio.get_running_loop()
        due = self._last_write + self.keepalive
        if loop.time() < due or self._pending or self._waiter is None:
            # written meanwhile (or the writer is busy): look again a keep-alive after the write
            self._timer = loop.call_at(max(due, loop.time() + 0.001), self._keepalive_due)
            return
        self._pending.append(_KEEPALIVE)
        self._last_write = loop.time()
        self._wake()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    @property
    def headers(self) -> dict[str, str]:
        """The response headers for this stream (``Content-Type``, no buffering, the format's)."""
        return response_headers(self.encoder)

    @property
    def finished(self) -> bool:
        """Whether every frame was handed out (the stream ended and was read to its end)."""
        return self._finished

    @property
    def buffered(self) -> int:
        """Bytes encoded and not yet handed to the writer."""
        return self._size

    async def aclose(self) -> None:
        """Stop: the client went away or the response is done (see ``on_disconnect``)."""
        self.close()

    def close(self) -> None:
        """``aclose()`` without awaiting (for callbacks)."""
        if self._finished and self.outcome is not None and not self._pending:
            return
        self._finished = True
        self._pending.clear()
        self._stop_timer()
        if not self._ended:
            self.outcome = "disconnected"
            if self.on_disconnect == "detach" and self._started:
                self._detached = True  # the source runs on; nothing is encoded any more
                self._gate.open()
            else:
                self._ended = True
                self._dispose()
        self._wake()

    async def __aenter__(self) -> SSEStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
