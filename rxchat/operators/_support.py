"""What the operators share: items of "events or chunks" streams, the accumulation behind them,
errors that carry the snapshot so far, timer schedulers and ``seconds`` arguments.

* :func:`kind_of` — the one dispatcher for operators that take events (``ops.accumulate()``
  output) or chunks (``ChatCompletionChunk`` or chunk dicts): which of the two an item is, or
  the ``TypeError`` every such operator raises for anything else.
* :class:`AccumulatedObservable` / :func:`rederive` — ``ops.accumulate(...)`` remembers its
  upstream and options, so ``parse_structured`` / ``extract_tool_calls`` applied right after it
  re-configure it (one state, one parse) instead of parsing the events again.
* :class:`StateFollower` — the accumulating state behind a stream of events or chunks.
* :func:`with_completion` — attach the snapshot so far to an error (nothing is lost).
* :func:`time_scheduler` / :func:`clock_of` / :func:`check_seconds` — for operators with timers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from reactivex import Observable, abc
from reactivex.scheduler import CurrentThreadScheduler, ImmediateScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .._compat import scheduler_loop
from .._state import ChatCompletionStreamState
from ..errors import RxChatError
from ..events import ChatCompletionStreamEvent, ChunkEvent, _Event, _origin
from ..types import ChatCompletionChunk

__all__ = [
    "CHUNK",
    "CHUNK_EVENT",
    "EVENT",
    "KEEP",
    "AccumulatedObservable",
    "StateFollower",
    "as_chunk",
    "check_seconds",
    "clock_of",
    "kind_of",
    "not_a_chunk",
    "rederive",
    "state_of",
    "time_scheduler",
    "with_completion",
]

KEEP: Any = object()
"""An option left as the upstream accumulation has it."""

# -- items: events or chunks ---------------------------------------------------------------------

EVENT: Final = 0
"""An event other than ``chunk``."""
CHUNK_EVENT: Final = 1
"""A ``chunk`` event (it carries the chunk and the state that accumulated it)."""
CHUNK: Final = 2
"""A chunk: a ``ChatCompletionChunk`` or its dict."""


def kind_of(item: object, operator: str) -> int:
    """:data:`EVENT`, :data:`CHUNK_EVENT` or :data:`CHUNK`.

    Raises:
        TypeError: ``item`` is neither an event nor a chunk (the message names ``operator``).
    """
    if isinstance(item, _Event):
        return CHUNK_EVENT if isinstance(item, ChunkEvent) else EVENT
    if isinstance(item, ChatCompletionChunk | Mapping):
        return CHUNK
    raise TypeError(f"{operator}() expects events or chunks, got {type(item).__name__}")


def as_chunk(item: Any) -> ChatCompletionChunk:
    """A :data:`CHUNK` item as a model (a dict is validated into a copy: the item stays as sent)."""
    if isinstance(item, ChatCompletionChunk):
        return item
    return ChatCompletionChunk.model_validate(item)


def not_a_chunk(operator: str, item: object) -> TypeError:
    """The error of an operator that takes chunks only (``accumulate``)."""
    kind = getattr(item, "type", None) if isinstance(item, _Event) else None
    hint = f" (a {kind!r} event: {operator}() takes chunks)" if kind else ""
    return TypeError(
        f"{operator}() expects ChatCompletionChunk items, got {type(item).__name__}{hint}"
    )


def state_of(item: object) -> ChatCompletionStreamState[Any] | None:
    """The state that produced a ``chunk`` event (None for other items)."""
    state = _origin(item) if isinstance(item, ChunkEvent) else None
    return state if isinstance(state, ChatCompletionStreamState) else None


def with_completion(err: Exception, state: ChatCompletionStreamState[Any] | None) -> Exception:
    """Attach the snapshot so far to an rxchat error that has none (nothing is lost)."""
    if isinstance(err, RxChatError) and state is not None and state.chunks_handled:
        if err.completion is None:
            err.completion = state.current_completion_snapshot
        if not err.chunks_received:
            err.chunks_received = state.chunks_handled
    return err


# -- the accumulation ----------------------------------------------------------------------------


class AccumulatedObservable(Observable[ChatCompletionStreamEvent]):
    """The events of ``ops.accumulate(...)`` over an upstream of chunks.

    Each subscription subscribes to the upstream with a fresh :class:`ChatCompletionStreamState`.
    ``upstream`` and ``options`` let later operators re-configure the accumulation.
    """

    def __init__(self, upstream: Observable[Any], options: dict[str, Any]) -> None:
        self.upstream = upstream
        self.options = options
        super().__init__(self._subscribe_state)

    def reconfigured(
        self,
        *,
        response_format: Any = KEEP,
        tools: Any = KEEP,
        partial_strings: Any = KEEP,
    ) -> AccumulatedObservable:
        """The same accumulation with some options replaced."""
        options = _replaced(dict(self.options), response_format, tools, partial_strings)
        return AccumulatedObservable(self.upstream, options)

    def _subscribe_state(
        self,
        observer: abc.ObserverBase[ChatCompletionStreamEvent],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(**self.options)
        stopped = False

        def on_next(item: Any) -> None:
            nonlocal stopped
            if stopped:
                return
            if not isinstance(item, ChatCompletionChunk | Mapping):
                stopped = True
                observer.on_error(not_a_chunk("accumulate", item))
                return
            try:
                events = state.handle_chunk(item)  # type: ignore[arg-type]
            except Exception as err:
                stopped = True
                observer.on_error(with_completion(err, state))
                return
            for event in events:
                observer.on_next(event)

        def on_error(err: Exception) -> None:
            observer.on_error(with_completion(err, state))

        return self.upstream.subscribe(
            on_next, on_error, observer.on_completed, scheduler=scheduler
        )


def rederive(
    source: Observable[Any],
    operator: str,
    *,
    response_format: Any = KEEP,
    tools: Any = KEEP,
    partial_strings: Any = KEEP,
) -> Observable[ChatCompletionStreamEvent]:
    """Events of ``source`` (chunks or events) re-derived with some options replaced.

    Right after ``accumulate`` this re-configures it. Otherwise the events are derived again
    from the ``chunk`` events (or the chunks) with a state configured like the upstream one,
    options replaced; the upstream's other events are superseded.
    """
    if isinstance(source, AccumulatedObservable):
        return source.reconfigured(
            response_format=response_format, tools=tools, partial_strings=partial_strings
        )

    def subscribe(
        observer: abc.ObserverBase[ChatCompletionStreamEvent],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        state: ChatCompletionStreamState[Any] | None = None
        stopped = False

        def fail(err: Exception) -> None:
            nonlocal stopped
            stopped = True
            observer.on_error(err)

        def on_next(item: Any) -> None:
            nonlocal state
            if stopped:
                return
            try:
                kind = kind_of(item, operator)
            except TypeError as err:
                fail(err)
                return
            if kind == EVENT:
                if state is None:
                    fail(
                        TypeError(
                            f"{operator}() received a {getattr(item, 'type', '?')!r} event "
                            "before any 'chunk' event: it re-derives events from the chunks, "
                            "so apply it to chunks or to ops.accumulate() output before "
                            "filtering"
                        )
                    )
                # superseded by the events derived from the chunk events
                return
            chunk: Any = item.chunk if kind == CHUNK_EVENT else item
            if state is None:
                options = _replaced(
                    _options_of(state_of(item)), response_format, tools, partial_strings
                )
                try:
                    state = ChatCompletionStreamState(**options)
                except Exception as err:
                    fail(err)
                    return
            try:
                events = state.handle_chunk(chunk)
            except Exception as err:
                fail(with_completion(err, state))
                return
            for event in events:
                observer.on_next(event)

        def on_error(err: Exception) -> None:
            observer.on_error(with_completion(err, state))

        return source.subscribe(on_next, on_error, observer.on_completed, scheduler=scheduler)

    return Observable(subscribe)


def _options_of(base: ChatCompletionStreamState[Any] | None) -> dict[str, Any]:
    if base is None:
        return {"response_format": None, "tools": None, "partial_strings": False}
    return {
        "response_format": base.response_format,
        "tools": base.tools if base.tools else None,
        "partial_strings": base.partial_strings,
    }


def _replaced(
    options: dict[str, Any], response_format: Any, tools: Any, partial_strings: Any
) -> dict[str, Any]:
    if response_format is not KEEP:
        options["response_format"] = response_format
    if tools is not KEEP:
        options["tools"] = tools
    if partial_strings is not KEEP:
        options["partial_strings"] = partial_strings
    return options


class StateFollower:
    """The accumulating state behind a stream of events or chunks, for operators that ask it.

    On events it is the state of the upstream ``ops.accumulate()`` (read from ``chunk``
    events); on chunks it accumulates them itself. Mixing the two is an error.
    """

    __slots__ = ("name", "own", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: ChatCompletionStreamState[Any] | None = None
        self.own = False

    def follow(self, item: Any) -> list[ChatCompletionStreamEvent]:
        """The events ``item`` stands for: itself when it is an event, the events it produced
        when it is a chunk accumulated here.

        Raises:
            TypeError: an item that is neither, or chunks after events.
            Exception: what the accumulation of a chunk raises.
        """
        kind = kind_of(item, self.name)
        if kind == CHUNK:
            if self.state is None:
                self.state, self.own = ChatCompletionStreamState(), True
            elif not self.own:
                raise TypeError(f"{self.name}() got both chunks and events")
            return self.state.handle_chunk(item)
        if kind == CHUNK_EVENT:
            self.state = state_of(item) or self.state
        return [item]


# -- timers --------------------------------------------------------------------------------------


def time_scheduler(
    scheduler: abc.SchedulerBase | None, subscribe_scheduler: abc.SchedulerBase | None
) -> abc.SchedulerBase:
    """The scheduler for an operator's timers.

    The operator's own ``scheduler=``, else the one given to ``subscribe`` (unless it is a
    trampoline, whose relative timers would block), else an ``AsyncIOScheduler`` on the running
    loop — never a thread pool, so callbacks stay on the loop that reads the socket.
    """
    if scheduler is not None:
        return scheduler
    if subscribe_scheduler is not None and not isinstance(
        subscribe_scheduler, CurrentThreadScheduler | ImmediateScheduler
    ):
        return subscribe_scheduler
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "this rxchat operator needs a timer: subscribe inside a running asyncio loop, or "
            "pass scheduler= (an AsyncIOScheduler, or a TestScheduler in tests)"
        ) from None
    return AsyncIOScheduler(loop)


def clock_of(scheduler: abc.SchedulerBase) -> Callable[[], float]:
    """A cheap seconds clock that agrees with the scheduler's relative timers."""
    if isinstance(scheduler, AsyncIOScheduler):
        return scheduler_loop(scheduler).time
    clock = getattr(scheduler, "clock", None)
    if isinstance(clock, int | float):  # virtual time (TestScheduler): read it live
        return lambda: float(scheduler.clock)  # type: ignore[attr-defined]

    def now() -> float:
        value: datetime = scheduler.now
        return value.timestamp()

    return now


def check_seconds(name: str, seconds: float) -> float:
    """``seconds`` as a float.

    Raises:
        TypeError: not a number (``bool`` included).
        ValueError: not finite and > 0.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{name}: seconds must be a number, not {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name}: seconds must be finite and > 0, not {seconds!r}")
    return float(seconds)
