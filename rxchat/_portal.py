"""The background event loop that drives the async core for the synchronous ``Client``.

One daemon thread per process runs one asyncio loop; every sync ``Client`` submits its work
there (the anyio "blocking portal" idea). Logic lives once, in the async classes: the sync
classes call :func:`portal_call` with a coroutine and wait for its result.

Streams do not pay one cross-thread round trip per chunk: a pump task on the loop reads whole
per-socket-read batches and hands them to the consuming thread through a :class:`BatchBridge`,
a bounded queue. When the consumer falls behind, the pump waits (back-pressure reaches the
socket instead of memory growing).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["BatchBridge", "Portal", "get_portal", "portal_call"]

T = TypeVar("T")


class Portal:
    """An asyncio loop running forever in a daemon thread.

    Use :func:`get_portal` for the shared one; creating more is possible (tests) but each costs a
    thread.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="rxchat-portal", daemon=True
        )
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop (runs in another thread: use thread-safe calls only)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        """The thread that runs the loop."""
        return self._thread

    def in_portal_thread(self) -> bool:
        """Whether the caller runs on the portal's own thread."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on the loop and block until it finishes; its exception is re-raised here.

        An interrupt (``KeyboardInterrupt``) while waiting cancels the task and waits for it to
        unwind, so the connection it held is closed before the interrupt propagates.

        Raises:
            RuntimeError: called from the portal thread itself (it would deadlock), e.g. from
                an ``observe()`` callback of a synchronous client.
        """
        if self.in_portal_thread():
            raise RuntimeError(
                "a synchronous rxchat Client was called from its own event-loop thread "
                "(e.g. inside an observe() callback); use AsyncClient there"
            )

        finished = threading.Event()
        started = threading.Event()

        async def run() -> T:
            started.set()
            try:
                return await fn()
            finally:
                finished.set()

        future = self.submit(run())
        try:
            return future.result()
        except BaseException:
            if not future.done() or not finished.is_set():
                future.cancel()
                if started.is_set():
                    # Wait for the cancelled task to unwind: it closes the connection it held.
                    finished.wait(5.0)
            raise

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callback on the loop from any thread."""
        self._loop.call_soon_threadsafe(callback, *args)

    def stop(self) -> None:
        """Stop the loop and join its thread (tests; the shared portal lives as long as the process)."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.in_portal_thread():
            self._thread.join(5.0)


_lock = threading.Lock()
_portal: Portal | None = None
_portal_pid: int | None = None


def get_portal() -> Portal:
    """The process-wide portal, started on first use (and again in a forked child)."""
    global _portal, _portal_pid
    portal = _portal
    if portal is not None and _portal_pid == os.getpid():
        return portal
    with _lock:
        if _portal is None or _portal_pid != os.getpid():
            # After fork() the parent's loop thread does not exist in the child: start anew.
            _portal = Portal()
            _portal_pid = os.getpid()
        return _portal


def portal_call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn()`` on the shared portal and wait for the result (see :meth:`Portal.call`)."""
    return get_portal().call(fn)


_END: Any = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class BatchBridge(Generic[T]):
    """A bounded hand-over of batches from a pump task on the portal loop to one consumer thread.

    The pump (:meth:`run`) iterates an async iterator of batches and puts each one here; when
    ``maxsize`` batches are waiting it awaits until the consumer takes one. The consumer calls
    :meth:`get` (blocking), which returns the next batch, raises the source's error, or raises
    ``StopIteration`` at the end. Cost per batch: one lock round and, only when the pump is
    waiting for room or the consumer for data, one wake-up.
    """

    __slots__ = ("_cond", "_items", "_loop", "_maxsize", "_space", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, *, maxsize: int = 8) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._loop = loop
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._space: asyncio.Future[None] | None = None
        self.closed = False

    async def run(self, source: AsyncIterator[T]) -> None:
        """Pump ``source`` into the bridge until it ends, fails, or the task is cancelled."""
        try:
            async for batch in source:
                await self._put(batch)
        except asyncio.CancelledError:
            self._push(_Failure(asyncio.CancelledError()))
            raise
        except BaseException as err:  # delivered to the consumer, not lost in the task
            self._push(_Failure(err))
            return
        self._push(_END)

    def _push(self, item: Any) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    async def _put(self, batch: T) -> None:
        with self._cond:
            self._items.append(batch)
            self._cond.notify()
            if len(self._items) < self._maxsize or self.closed:
                return
            space = self._space = self._loop.create_future()
        await space

    def get(self) -> T:
        """Take the next batch (blocking).

        Raises:
            StopIteration: the source ended.
            BaseException: whatever the source raised.
        """
        with self._cond:
            items = self._items
            while not items:
                self._cond.wait()
            item = items.popleft()
            space = self._space
            if space is not None and len(items) < self._maxsize:
                self._space = None
            else:
                space = None
        if space is not None:
            self._loop.call_soon_threadsafe(_wake, space)
        if item is _END:
            with self._cond:
                items.appendleft(_END)  # stay at the end for repeated calls
            raise StopIteration
        if type(item) is _Failure:
            with self._cond:
                items.appendleft(item)
            raise item.error
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release a pump waiting for room (called before the pump task is cancelled)."""
        with self._cond:
            self.closed = True
            space, self._space = self._space, None
        if space is not None:
            self._loop.call_soon_threadsafe(_wake, space)
