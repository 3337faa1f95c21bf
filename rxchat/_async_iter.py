"""A bounded bridge from an Observable into ``async for`` (:func:`to_async_iterator`).

Not the thread bridge of the sync client: that is :class:`rxchat._portal.BatchBridge`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler

from ._flow import FLOW_GATE, FlowGate
from .errors import BufferOverflowError

__all__ = ["ObservableIterator", "to_async_iterator"]

T = TypeVar("T")

# What one network read can add after the gate closed: the reading task stops between reads,
# and one read (8 KiB of SSE) carries at most a few hundred chunks, each a few events.
_READ_ALLOWANCE = 4096


class _Sink(Generic[T]):
    """The subscriber side: buffer, gate and end state. The subscription references this, never
    the iterator, so dropping the iterator (``break``) frees it at once and disposal follows."""

    __slots__ = (
        "closed",
        "done",
        "error",
        "gate",
        "high_water",
        "items",
        "limit",
        "maximum",
        "subscription",
        "waiter",
    )

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum + _READ_ALLOWANCE
        self.items: deque[T] = deque()
        self.gate = FlowGate()
        self.subscription: abc.DisposableBase | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.closed = False
        self.high_water = 0

    def stop(self) -> None:
        self.closed = True
        self.items.clear()
        self.gate.open()
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            subscription.dispose()
        self.wake()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_next(self, item: T) -> None:
        if self.closed or self.done:
            return
        items = self.items
        items.append(item)
        size = len(items)
        if size > self.high_water:
            self.high_water = size
        if size >= self.maximum:
            self.gate.close()
            if size > self.limit:
                # The items already here are still delivered, then the error.
                self.done = True
                self.error = BufferOverflowError(self.limit)
                self.gate.open()
                subscription, self.subscription = self.subscription, None
                if subscription is not None:
                    subscription.dispose()
        self.wake()

    def on_error(self, error: Exception) -> None:
        if not self.done and not self.closed:
            self.done = True
            self.error = error
            self.wake()

    def on_completed(self) -> None:
        if not self.done:
            self.done = True
            self.wake()


class ObservableIterator(AsyncIterator[T], Generic[T]):
    """``async for`` over an Observable, with a bounded buffer; see :func:`to_async_iterator`."""

    def __init__(self, source: Observable[T], *, max_buffered: int = 1024) -> None:
        if isinstance(max_buffered, bool) or not isinstance(max_buffered, int) or max_buffered < 1:
            raise ValueError(f"max_buffered must be an integer >= 1, not {max_buffered!r}")
        self._source = source
        self._sink: _Sink[T] = _Sink(max_buffered)
        self._started = False

    @property
    def buffered(self) -> int:
        """Items received and not yet consumed."""
        return len(self._sink.items)

    @property
    def high_water(self) -> int:
        """The most items that were ever waiting in the buffer."""
        return self._sink.high_water

    def __aiter__(self) -> ObservableIterator[T]:
        return self

    async def __anext__(self) -> T:
        sink = self._sink
        if not self._started:
            self._started = True
            if not sink.closed:
                self._subscribe()
        items = sink.items
        while not items:
            if sink.done or sink.closed:
                error, sink.error = sink.error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            sink.waiter = asyncio.get_running_loop().create_future()
            try:
                await sink.waiter
            finally:
                sink.waiter = None
        item = items.popleft()
        if sink.gate.closed and len(items) <= sink.maximum // 2:
            sink.gate.open()
        return item

    async def aclose(self) -> None:
        """Stop: dispose the subscription (an HTTP request is cancelled at once)."""
        self._sink.stop()

    async def __aenter__(self) -> ObservableIterator[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sink.stop()

    def __del__(self) -> None:
        # `async for ...: break` drops the iterator without aclose(): stop the spend anyway.
        sink = getattr(self, "_sink", None)
        if sink is not None and not sink.closed:
            sink.stop()

    def _subscribe(self) -> None:
        sink = self._sink
        loop = asyncio.get_running_loop()
        token = FLOW_GATE.set(sink.gate)  # inherited by the task that will read the socket
        try:
            subscription = self._source.subscribe(
                sink.on_next, sink.on_error, sink.on_completed, scheduler=AsyncIOScheduler(loop)
            )
        finally:
            FLOW_GATE.reset(token)
        if sink.done or sink.closed:  # ended (or overflowed) while subscribing: a sync source
            subscription.dispose()
        else:
            sink.subscription = subscription


def to_async_iterator(source: Observable[T], *, max_buffered: int = 1024) -> ObservableIterator[T]:
    """Consume an Observable with ``async for``, holding a bounded number of items.

    The subscription starts at the first ``__anext__``, on the running loop. When
    ``max_buffered`` items are waiting, rxchat's network sources (``chat_completion_stream``,
    ``client.chat.completions.observe``) stop reading the socket until the consumer has taken
    half of them: back-pressure reaches the connection, memory stays bounded. A source that
    cannot pause (a synchronous replay, a hot Observable, ``ops.broadcast()``, which never lets
    one consumer slow the others) may exceed the bound by what one network read brings; past
    ``max_buffered + 4096`` items the iteration ends with :class:`~rxchat.BufferOverflowError`.
    Leaving the loop early (``break``, an exception, ``aclose()``, ``async with``) disposes the
    subscription, which closes the connection.

    Args:
        source: any Observable, e.g. ``chunks.pipe(ops.accumulate(), ops.text())``.
        max_buffered: items held before the source is asked to pause (>= 1).

    Returns:
        An async iterator (also an async context manager) of the source's items; the source's
        error is raised from ``__anext__`` after the items that preceded it.

    Raises:
        ValueError: ``max_buffered`` is not an integer >= 1.
        BufferOverflowError: (while iterating) a source that cannot pause outran the bound.

    >>> async for text in rxchat.to_async_iterator(events.pipe(ops.text())):  # doctest: +SKIP
    ...     await websocket.send(text)
    """
    return ObservableIterator(source, max_buffered=max_buffered)
