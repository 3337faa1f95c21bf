"""``accumulate``: chunks -> typed events, over one ChatCompletionStreamState per subscription.

Also home of what the other event operators share: the observable ``accumulate`` returns
remembers its upstream and options, so ``parse_structured`` / ``extract_tool_calls`` applied
right after it re-configure it (one state, one parse) instead of parsing the events again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reactivex import Observable, abc

from .._state import ChatCompletionStreamState
from ..errors import RxChatError
from ..events import ChatCompletionStreamEvent, ChunkEvent, _Event, _origin
from ..types import ChatCompletionChunk

__all__ = ["AccumulatedObservable", "accumulate"]

KEEP: Any = object()


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
        options = dict(self.options)
        if response_format is not KEEP:
            options["response_format"] = response_format
        if tools is not KEEP:
            options["tools"] = tools
        if partial_strings is not KEEP:
            options["partial_strings"] = partial_strings
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
                observer.on_error(_not_a_chunk("accumulate", item))
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


def accumulate(
    *,
    response_format: Any = None,
    tools: Iterable[Any] | None = None,
    partial_strings: bool = False,
) -> Callable[[Observable[Any]], Observable[ChatCompletionStreamEvent]]:
    """Turn chunks into typed stream events (the OpenAI SDK's stream events, plus more).

    For every chunk: a ``chunk`` event (with the running ``snapshot``), then the chunk's
    ``content.delta``, ``refusal.delta``, ``reasoning.delta``, ``tool_calls.function.arguments.delta``
    and ``logprobs.*.delta`` events, then the ``*.done`` events the chunk completes. Each event
    carries ``choice_index``; choices of an ``n > 1`` stream are tracked independently.
    Each subscription accumulates on its own (a cold source is requested again: use
    ``ops.broadcast()`` to share one request).

    ::

        chunks:  --c1--------c2-------------c3(finish)----------|
        events:  --chunk,δ---chunk,δ--------chunk,content.done--|

    Args:
        response_format: parse the content (see :class:`~rxchat.ChatCompletionStreamState`);
            usually given through ``ops.parse_structured(Model)`` instead.
        tools: the request's tools, for parsed tool arguments; usually given through
            ``ops.extract_tool_calls(tools)`` instead.
        partial_strings: include unterminated strings in partial values.

    Returns:
        An operator from chunks (``ChatCompletionChunk`` or chunk dicts) to events.

    Raises:
        (as ``on_error``) what :meth:`ChatCompletionStreamState.handle_chunk` raises, and every
        upstream error, with ``.completion`` set to the snapshot so far when it had none;
        ``TypeError`` for an item that is not a chunk.

    >>> import rxchat
    >>> from rxchat import operators as ops
    >>> chunks = [{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}]
    >>> rxchat.from_chunks(chunks).pipe(ops.accumulate()).subscribe(
    ...     lambda e: print(e.type))  # doctest: +SKIP
    chunk
    content.delta
    content.done
    """
    options = {
        "response_format": response_format,
        "tools": list(tools) if tools is not None else None,
        "partial_strings": partial_strings,
    }
    ChatCompletionStreamState(**options)  # reject bad options now, not at subscription

    def _accumulate(source: Observable[Any]) -> Observable[ChatCompletionStreamEvent]:
        return AccumulatedObservable(source, options)

    return _accumulate


def with_completion(err: Exception, state: ChatCompletionStreamState[Any] | None) -> Exception:
    """Attach the snapshot so far to an rxchat error that has none (nothing is lost)."""
    if isinstance(err, RxChatError) and state is not None and state.chunks_handled:
        if err.completion is None:
            err.completion = state.current_completion_snapshot
        if not err.chunks_received:
            err.chunks_received = state.chunks_handled
    return err


def _not_a_chunk(operator: str, item: object) -> TypeError:
    kind = getattr(item, "type", None) if isinstance(item, _Event) else None
    hint = f" (a {kind!r} event: {operator}() takes chunks)" if kind else ""
    return TypeError(
        f"{operator}() expects ChatCompletionChunk items, got {type(item).__name__}{hint}"
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
            base: ChatCompletionStreamState[Any] | None = None
            if isinstance(item, ChunkEvent):
                chunk: Any = item.chunk
                base = _origin(item)
            elif isinstance(item, ChatCompletionChunk | Mapping):
                chunk = item
            elif isinstance(item, _Event):
                if state is None:
                    fail(
                        TypeError(
                            f"{operator}() received a {getattr(item, 'type', '?')!r} event before any "
                            "'chunk' "
                            "event: it re-derives events from the chunks, so apply it to "
                            "chunks or to ops.accumulate() output before filtering"
                        )
                    )
                # superseded by the events derived from the chunk events
                return
            else:
                fail(_not_a_chunk(operator, item))
                return
            if state is None:
                try:
                    state = ChatCompletionStreamState(
                        **_merged_options(base, response_format, tools, partial_strings)
                    )
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


def _merged_options(
    base: ChatCompletionStreamState[Any] | None,
    response_format: Any,
    tools: Any,
    partial_strings: Any,
) -> dict[str, Any]:
    options: dict[str, Any] = {"response_format": None, "tools": None, "partial_strings": False}
    if base is not None:
        options["response_format"] = base.response_format
        options["tools"] = base.tools if base.tools else None
        options["partial_strings"] = base.partial_strings
    if response_format is not KEEP:
        options["response_format"] = response_format
    if tools is not KEEP:
        options["tools"] = tools
    if partial_strings is not KEEP:
        options["partial_strings"] = partial_strings
    return options


def state_of(item: object) -> ChatCompletionStreamState[Any] | None:
    """The state that produced a ``chunk`` event (None for other items)."""
    state = _origin(item) if isinstance(item, ChunkEvent) else None
    return state if isinstance(state, ChatCompletionStreamState) else None


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
        if isinstance(item, _Event):
            if isinstance(item, ChunkEvent):
                self.state = state_of(item) or self.state
            return [item]  # type: ignore[list-item]
        if isinstance(item, ChatCompletionChunk | Mapping):
            if self.state is None:
                self.state, self.own = ChatCompletionStreamState(), True
            elif not self.own:
                raise TypeError(f"{self.name}() got both chunks and events")
            return self.state.handle_chunk(item)  # type: ignore[arg-type]
        raise TypeError(f"{self.name}() expects events or chunks, got {type(item).__name__}")
