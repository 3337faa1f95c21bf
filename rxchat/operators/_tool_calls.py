"""``tool_calls``: each completed tool call, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc

from ..events import FunctionToolCallArgumentsDoneEvent
from ..types import ParsedFunctionToolCall
from ._support import StateFollower, with_completion

__all__ = ["tool_calls"]


def tool_calls() -> Callable[[Observable[Any]], Observable[ParsedFunctionToolCall]]:
    """Each tool call of the stream, once, as soon as it is complete.

    A call is complete when the next call starts or its choice finishes (the
    ``tool_calls.function.arguments.done`` event). The emitted
    :class:`~rxchat.types.ParsedFunctionToolCall` has ``id``, ``function.name``,
    ``function.arguments`` and ``function.parsed_arguments`` (the validated model for pydantic
    tools given to ``ops.extract_tool_calls``, the JSON value for strict dict tools, else None).
    Works on events and on chunks (accumulated here, no tools: arguments not parsed).

    ::

        events:  --δ(0)--δ(0)--δ(1)/done(0)--δ(1)--chunk(finish)/done(1)--|
        result:  ---------------call 0-------------------call 1-------------|

    Returns:
        An operator from events or chunks to ``ParsedFunctionToolCall``.

    Raises:
        (as ``on_error``) what the accumulation raises (``UnknownToolError``,
        ``StructuredOutputError`` ...); upstream errors pass through.

    >>> events.pipe(ops.extract_tool_calls([GetWeather]), ops.tool_calls()).subscribe(
    ...     lambda call: run_tool(call.function.name, call.function.parsed_arguments)
    ... )  # doctest: +SKIP
    """

    def _tool_calls(source: Observable[Any]) -> Observable[ParsedFunctionToolCall]:
        def subscribe(
            observer: abc.ObserverBase[ParsedFunctionToolCall],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            follower = StateFollower("tool_calls")
            stopped = False

            def on_next(item: Any) -> None:
                nonlocal stopped
                if stopped:
                    return
                try:
                    done = [
                        event
                        for event in follower.follow(item)
                        if isinstance(event, FunctionToolCallArgumentsDoneEvent)
                    ]
                    state = follower.state
                    if done and state is None:
                        raise TypeError("tool_calls() got a tool-call event before any chunk event")
                    calls = [
                        state.completed_tool_call(event.choice_index, event.index)  # type: ignore[union-attr]
                        for event in done
                    ]
                except Exception as err:
                    stopped = True
                    observer.on_error(with_completion(err, follower.state))
                    return
                for call in calls:
                    observer.on_next(call)

            def on_error(err: Exception) -> None:
                observer.on_error(with_completion(err, follower.state))

            return source.subscribe(on_next, on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _tool_calls
