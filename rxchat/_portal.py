"""The background event loop that drives the async core for the synchronous ``Client``.

One daemon thread per process runs one asyncio loop; every sync ``Client`` submits its work
there (the anyio "blocking portal" idea). Logic lives once, in the async classes: the sync
classes call :meth:`Portal.call` (on :func:`get_portal`) with a coroutine function and wait for
its result.

Streams do not pay one cross-thread round trip per chunk: a pump task on the loop reads whole
per-socket-read batches and hands them to the consuming thread through a :class:`BatchBridge`,
a bounded queue. When the consumer falls behind, the pump waits (back-pressure reaches the
socket instead of memory growing).

Two moments need care, both handled here and in :mod:`rxchat._lifetime`:

* **Interpreter exit.** The loop thread is a daemon thread, frozen once the interpreter starts
  finalizing; anything that waited for it then (a half-read stream closed by the garbage
  collector, say) would wait forever. An ``atexit`` handler therefore shuts the shared portal
  down while its thread still runs: it cancels the tasks left on the loop, closes the sessions
  bound to it and stops it. Afterwards closing is a no-op and a new call raises
  :class:`~rxchat.APIConnectionError`.
* **fork().** The child has a copy of the loop but not its thread. It starts a portal of its own
  on first use; the parent's portal (and what was opened on it) is never touched in the child:
  using it raises :class:`~rxchat.APIConnectionError`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ._lifetime import exiting_loops, inherit, sessions_of
from .errors import APIConnectionError

__all__ = ["BatchBridge", "Portal", "get_portal"]

T = TypeVar("T")


class Portal:
    """An asyncio loop running forever in a daemon thread.

    Use :func:`get_portal` for the shared one; creating more is possible (tests) but each costs a
    thread.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._closing = False
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

    @property
    def usable(self) -> bool:
        """Whether calls can run: this process started the loop and it was not shut down."""
        return self._pid == os.getpid() and not self._closing and not sys.is_finalizing()

    def check(self) -> None:
        """Raise the error that says why no call can run now (when none can).

        Raises:
            APIConnectionError: the portal belongs to the parent of this forked process, or it
                was shut down because the interpreter is exiting.
        """
        if self._pid != os.getpid():
            raise APIConnectionError(
                "this stream was opened in the parent process, before os.fork(): its "
                "connection belongs to the parent. Make a new request in the child (a client "
                "made before the fork works there, with connections of its own)"
            )
        if self._closing or sys.is_finalizing():
            raise _shut_down()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; returns a concurrent future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` on the loop and block until it finishes; its exception is re-raised here.

        An interrupt (``KeyboardInterrupt``) while waiting cancels the task and waits for it to
        unwind, so the connection it held is closed before the interrupt propagates.

        Raises:
            APIConnectionError: the portal cannot run calls (see :meth:`check`), or it shut down
                while this call waited.
            RuntimeError: called from the portal thread itself (it would deadlock), e.g. from
                an ``observe()`` callback of a synchronous client.
        """
        self.check()
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
        except concurrent.futures.CancelledError:
            if not self._closing:
                raise
            if self._loop in _exiting_loops:
                # Only a daemon thread can wait here at exit; like any daemon thread blocked
                # in I/O it stays blocked until the interpreter stops it (no traceback).
                threading.Event().wait()
            raise _shut_down() from None
        except BaseException:
            if not future.done() or not finished.is_set():
                future.cancel()
                if started.is_set():
                    # Wait for the cancelled task to unwind: it closes the connection it held.
                    finished.wait(5.0)
            raise

    def shutdown(self, timeout: float = 1.0, *, at_exit: bool = False) -> None:
        """Cancel what still runs on the loop, close its sessions, stop it, join it (idempotent).

        Called for the shared portal at interpreter exit (``at_exit=True``). Tasks get
        ``timeout`` seconds to unwind after their cancellation; whatever ignores it is abandoned
        with the daemon thread, so the process still exits. Afterwards :meth:`call` raises and
        closing is a no-op. Threads waiting for a call or a stream get
        :class:`~rxchat.APIConnectionError`, except at exit: only daemon threads are left then,
        and they stay blocked, as in any other I/O, until the interpreter stops them.
        """
        if self._closing or self._pid != os.getpid():
            return
        self._closing = True
        if at_exit:
            _exiting_loops.add(self._loop)
        loop = self._loop
        if loop.is_closed() or not self._thread.is_alive():
            return
        if self.in_portal_thread():
            loop.stop()
            return
        try:
            # On a timeout (a task ignored its cancellation) the loop is stopped all the same.
            with contextlib.suppress(concurrent.futures.TimeoutError):
                self.submit(self._close_all(timeout)).result(timeout + 1.0)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)

    async def _close_all(self, timeout: float) -> None:
        loop = self._loop
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for task in tasks:  # as asyncio.run() does: report real failures, not cancellations
            if task.done() and not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler(
                    {
                        "message": "unhandled exception in a task at rxchat's shutdown",
                        "exception": task.exception(),
                        "task": task,
                    }
                )
        for holder in sessions_of(loop):
            try:
                await holder.aclose()
            except Exception as err:  # reported like the tasks' failures; the others still close
                loop.call_exception_handler(
                    {"message": "closing a session at rxchat's shutdown failed", "exception": err}
                )
        await loop.shutdown_asyncgens()

    def stop(self) -> None:
        """Shut the portal down (see :meth:`shutdown`; the shared one lives as long as the process)."""
        self.shutdown()


_lock = threading.Lock()
_portal: Portal | None = None
_exiting_loops = exiting_loops  # shared with the transport (rxchat._lifetime)
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


def _shut_down() -> APIConnectionError:
    return APIConnectionError(
        "rxchat's background event loop has shut down because the interpreter is exiting; "
        "no request can run now (close streams and clients before the end of the program, "
        "or register the atexit handler that uses them after importing rxchat)"
    )


def _shutdown_at_exit() -> None:
    portal = _portal
    if portal is not None:
        portal.shutdown(at_exit=True)


def _no_op() -> None:
    pass


def _after_fork_in_child() -> None:
    global _portal, _lock
    _lock = threading.Lock()  # another thread of the parent may have held it
    if _portal is not None:
        inherit(_portal)  # never closed here: its loop and sockets belong to the parent
        _portal = None


# Registered at import: atexit runs handlers last-in first-out, so handlers that a program
# registers after importing rxchat still find the portal running.
# weakref.finalize registers its own atexit handler when the first finalizer of the process is
# made, and the clients' finalizers close their transports at exit: make it register now, before
# ours, so that it runs after ours. Otherwise a client created after importing rxchat closed its
# transport at exit before the portal was marked as exiting, and woke a daemon thread's reader
# with an error (a traceback on stderr at exit, about 1 run in 10).
weakref.finalize(_shutdown_at_exit, _no_op)  # a module function: never collected, never fires early
atexit.register(_shutdown_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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

    __slots__ = ("_cond", "_items", "_loop", "_maxsize", "_pid", "_space", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, *, maxsize: int = 8) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._loop = loop
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._space: asyncio.Future[None] | None = None
        self._pid = os.getpid()
        self.closed = False

    async def run(self, source: AsyncIterator[T]) -> None:
        """Pump ``source`` into the bridge until it ends, fails, or the task is cancelled."""
        try:
            async for batch in source:
                await self._put(batch)
        except asyncio.CancelledError:
            if self._loop not in _exiting_loops:  # at exit the reader stays blocked: see shutdown()
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
            APIConnectionError: called in a forked child (the pump runs in the parent).
            BaseException: whatever the source raised.
        """
        if self._pid != os.getpid():
            # The lock may be held by a thread that does not exist here, and no pump will come.
            raise APIConnectionError(
                "this stream was opened in the parent process, before os.fork(); make a new "
                "request in the child"
            )
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
        if space is not None and not self._loop.is_closed():
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
        if space is not None and not self._loop.is_closed():  # closed: nobody waits any more
            self._loop.call_soon_threadsafe(_wake, space)
