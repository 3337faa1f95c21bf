"""``buffer_text``: coalesce text deltas into one string per time window (UI frame rates)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable, SingleAssignmentDisposable

from ..types import ChatCompletionChunk
from ._timeouts import time_scheduler

__all__ = ["buffer_text"]


def _text_of(item: object) -> str | None:
    """The text an item carries, ``None`` for items that carry none (other event types)."""
    if type(item) is str:
        return item
    if isinstance(item, ChatCompletionChunk):
        return item.text
    kind = getattr(item, "type", None)
    if kind == "content.delta":
        delta = getattr(item, "delta", None)
        if isinstance(delta, str):
            return delta
        raise TypeError(f"buffer_text: a content.delta event without a str delta: {item!r}")
    if isinstance(kind, str):
        return None  # chunk, content.done, tool_calls.*, ...: no new text
    if isinstance(item, str):
        return str(item)
    raise TypeError(
        "buffer_text takes str deltas, content.delta events or chat-completion chunks, "
        f"not {type(item).__name__}"
    )


def buffer_text(
    seconds: float, *, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[Any]], Observable[str]]:
    """Coalesce text into one ``str`` per time window, to render at a UI frame rate.

    The first text after a quiet period opens a window of ``seconds``; everything that arrives
    until it closes is joined and emitted as one string. Text is never lost, reordered or
    duplicated, and no empty string is emitted. Completion and errors flush the pending text
    first. Accepts ``str`` deltas (``ops.text()``), events (the ``delta`` of ``content.delta``
    events; other event types carry no new text and are skipped) and chunks (``chunk.text``,
    the first choice).

    ::

        source:          -a-b-----c-d-e----|
        buffer_text(3):  ----ab-------cde--|      (one string per window of 3)

    Args:
        seconds: the window length, e.g. ``1 / 30`` for 30 updates per second.
        scheduler: timer scheduler; default: the subscribe scheduler, else the running loop.

    Returns:
        An operator ``Observable[str | event | chunk] -> Observable[str]``.

    Raises:
        TypeError: (``on_error``, after flushing) an item that carries no text of a known kind;
            (at call time) ``seconds`` is not a number.
        ValueError: ``seconds`` is not finite and > 0.

    >>> events.pipe(ops.text(), ops.buffer_text(1 / 30)).subscribe(label.set_text)  # doctest: +SKIP
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"buffer_text: seconds must be a number, not {seconds!r}")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"buffer_text: seconds must be finite and > 0, not {seconds!r}")
    window = float(seconds)

    def operator(source: Observable[Any]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = time_scheduler(scheduler, subscribe_scheduler)
            lock = threading.RLock()
            parts: list[str] = []
            timer = SerialDisposable()
            upstream = SingleAssignmentDisposable()
            stopped = False

            def take() -> str:
                text = "".join(parts)
                parts.clear()
                return text

            def flush(_: abc.SchedulerBase, __: Any = None) -> None:
                with lock:
                    if stopped or not parts:
                        return
                    text = take()
                observer.on_next(text)

            def on_next(item: Any) -> None:
                nonlocal stopped
                try:
                    text = _text_of(item)
                except TypeError as err:
                    upstream.dispose()
                    on_error(err)
                    return
                if not text:
                    return
                with lock:
                    if stopped:
                        return
                    parts.append(text)
                    if len(parts) == 1:  # a new window opens
                        timer.disposable = sched.schedule_relative(window, flush)

            def finish() -> str | None:
                """Stop; the pending text ("" when none), or None when already stopped."""
                nonlocal stopped
                with lock:
                    if stopped:
                        return None
                    stopped = True
                    text = take()
                timer.dispose()
                return text

            def on_error(err: Exception) -> None:
                text = finish()
                if text is None:
                    return
                if text:
                    observer.on_next(text)
                observer.on_error(err)

            def on_completed() -> None:
                text = finish()
                if text is None:
                    return
                if text:
                    observer.on_next(text)
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, timer)

        return Observable(subscribe)

    return operator
