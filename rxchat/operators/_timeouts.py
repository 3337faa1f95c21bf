"""``idle_timeout`` and ``first_chunk_timeout``: time the model's output, not the socket's bytes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable, SingleAssignmentDisposable

from ..errors import APITimeoutError, FirstChunkTimeoutError, IdleTimeoutError
from ._support import check_seconds, clock_of, time_scheduler

__all__ = ["first_chunk_timeout", "idle_timeout"]

_T = TypeVar("_T")
# Generic over the Observable (not its items): mypy then chains it with generic operators.
_ObservableT = TypeVar("_ObservableT", bound=Observable[Any])


def idle_timeout(
    seconds: float,
    *,
    first: float | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[_ObservableT], _ObservableT]:
    """Fail when no item arrives for ``seconds`` (the model stopped producing output).

    The timer starts at subscription and restarts at every item. SSE keep-alive comments never
    become items, so a server that keeps the connection alive while the model is stuck still
    times out here (the transport's read timeout, which any byte resets, would not).
    On timeout the upstream subscription is disposed — a live request is cancelled and its
    connection closed — and :class:`~rxchat.IdleTimeoutError` is sent to ``on_error``.

    ::

        source:   --a--b---------------c--|
        idle(5):  --a--b-----X                 X = IdleTimeoutError, 5 after b

    The wait for the first item is timed too: with ``seconds`` by default, or with ``first``
    (a model's time to first token is often much longer than its gaps), in which case a timeout
    there raises :class:`~rxchat.FirstChunkTimeoutError`. ``first`` applies to the first item
    only: from the first item on, every gap is limited by ``seconds``.

    ::

        source:               ------a--b-----------c--|
        idle(5, first=60):    ------a--b-----X          X = IdleTimeoutError, 5 after b

    Args:
        seconds: the longest gap allowed between items (and before the first one, unless
            ``first`` is given).
        first: the longest wait for the first item, if it differs from ``seconds``.
        scheduler: timer scheduler; default: the subscribe scheduler, else the running loop.

    Returns:
        An operator ``Observable[T] -> Observable[T]`` passing items through unchanged.

    Raises:
        IdleTimeoutError: (``on_error``) ``chunks_received`` counts the items seen before.
        FirstChunkTimeoutError: (``on_error``) no first item within ``first`` seconds.
        TypeError, ValueError: ``seconds`` or ``first`` is not a finite number > 0.

    >>> chunks.pipe(ops.idle_timeout(10, first=60))  # doctest: +SKIP
    """
    limit = check_seconds("idle_timeout", seconds)
    first_limit = limit if first is None else check_seconds("idle_timeout(first=)", first)

    def make_error(count: int) -> APITimeoutError:
        if count == 0:
            if first is not None:
                return FirstChunkTimeoutError(f"no output within {first_limit:g} s of the request")
            return IdleTimeoutError(f"no output for {limit:g} s (before the first item)")
        return IdleTimeoutError(
            f"no output for {limit:g} s (after {count} items)", chunks_received=count
        )

    return _timeout_operator(limit, first_limit, scheduler, make_error, idle=True)


def first_chunk_timeout(
    seconds: float, *, scheduler: abc.SchedulerBase | None = None
) -> Callable[[_ObservableT], _ObservableT]:
    """Fail when the first item does not arrive within ``seconds`` of subscribing.

    Use it for the model's time to first token alone; for a first-token limit together with a
    limit on the gaps, use ``idle_timeout(gap, first=...)`` (an ``idle_timeout`` placed after
    this operator would also time the wait for the first item). Keep-alive comments do not
    count. On timeout the upstream is disposed (the request cancelled) and
    :class:`~rxchat.FirstChunkTimeoutError` goes to ``on_error``; after the first item the
    operator only passes items through.

    ::

        source:          ----------a--b--|
        first_chunk(5):  -----X                 X = FirstChunkTimeoutError at 5

    Args:
        seconds: the longest wait for the first item.
        scheduler: timer scheduler; default: the subscribe scheduler, else the running loop.

    Returns:
        An operator ``Observable[T] -> Observable[T]`` passing items through unchanged.

    Raises:
        FirstChunkTimeoutError: (``on_error``).
        TypeError, ValueError: ``seconds`` is not a finite number > 0.

    >>> chunks.pipe(ops.first_chunk_timeout(60))  # doctest: +SKIP
    """
    limit = check_seconds("first_chunk_timeout", seconds)

    def make_error(count: int) -> APITimeoutError:
        return FirstChunkTimeoutError(f"no output within {limit:g} s of the request")

    return _timeout_operator(limit, limit, scheduler, make_error, idle=False)


def _timeout_operator(
    limit: float,
    first_limit: float,
    scheduler: abc.SchedulerBase | None,
    make_error: Callable[[int], APITimeoutError],
    *,
    idle: bool,
) -> Callable[[_ObservableT], _ObservableT]:
    def operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = time_scheduler(scheduler, subscribe_scheduler)
            now = clock_of(sched)
            lock = threading.RLock()
            timer = SerialDisposable()
            upstream = SingleAssignmentDisposable()
            # One timer, re-armed lazily: an item only records its time; when the timer fires
            # early it re-arms for the rest. No timer churn per item. The one exception is the
            # first item under a longer ``first`` allowance: the pending timer is due at
            # ``first_limit``, later than the gap limit allows, so it is replaced by one due
            # ``limit`` after that item.
            count = 0
            last = now()
            stopped = False

            def fire(_: abc.SchedulerBase, __: Any = None) -> None:
                nonlocal stopped
                with lock:
                    if stopped:
                        return
                    if idle and count:
                        remaining = limit - (now() - last)
                        if remaining > 1e-9:
                            timer.disposable = sched.schedule_relative(remaining, fire)
                            return
                    stopped = True
                upstream.dispose()
                observer.on_error(make_error(count))

            def on_next(value: _T) -> None:
                nonlocal count, last
                with lock:
                    if stopped:
                        return
                    if idle:
                        last = now()
                        if count == 0 and first_limit > limit:
                            timer.disposable = sched.schedule_relative(limit, fire)
                    elif count == 0:
                        timer.dispose()
                    count += 1
                observer.on_next(value)

            def on_error(err: Exception) -> None:
                nonlocal stopped
                with lock:
                    if stopped:
                        return
                    stopped = True
                timer.dispose()
                observer.on_error(err)

            def on_completed() -> None:
                nonlocal stopped
                with lock:
                    if stopped:
                        return
                    stopped = True
                timer.dispose()
                observer.on_completed()

            timer.disposable = sched.schedule_relative(first_limit, fire)
            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, timer)

        return Observable(subscribe)

    return cast(Callable[[_ObservableT], _ObservableT], operator)
