"""``tool_calls``: each completed tool call, once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reactivex import Observable, abc

from .._state import ChatCompletionStreamState
from ..events import ChunkEvent, FunctionToolCallArgumentsDoneEvent, _Event
from ..types import ChatCompletionChunk, ParsedFunctionToolCall
from ._accumulate import state_of, with_completion

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
            state: ChatCompletionStreamState[Any] | None = None
            own = False
            stopped = False

            def fail(err: Exception) -> None:
                nonlocal stopped
                stopped = True
                observer.on_error(err)

            def on_next(item: Any) -> None:
                nonlocal state, own
                if stopped:
                    return
                if isinstance(item, ChunkEvent):
                    state = state_of(item) or state
                elif isinstance(item, FunctionToolCallArgumentsDoneEvent):
                    if state is None:
                        fail(TypeError("tool_calls() got a tool-call event before any chunk event"))
                        return
                    try:
                        call = state._completed_tool_call(item.choice_index, item.index)
                    except Exception as err:
                        fail(with_completion(err, state))
                        return
                    observer.on_next(call)
                elif isinstance(item, ChatCompletionChunk | Mapping):
                    if state is None:
                        state, own = ChatCompletionStreamState(), True
                    elif not own:
                        fail(TypeError("tool_calls() got both chunks and events"))
                        return
                    try:
                        events = state.handle_chunk(item)  # type: ignore[arg-type]
                        calls = [
                            state._completed_tool_call(event.choice_index, event.index)
                            for event in events
                            if isinstance(event, FunctionToolCallArgumentsDoneEvent)
                        ]
                    except Exception as err:
                        fail(with_completion(err, state))
                        return
                    for call in calls:
                        observer.on_next(call)
                elif not isinstance(item, _Event):
                    fail(
                        TypeError(
                            f"tool_calls() expects events or chunks, got {type(item).__name__}"
                        )
                    )

            def on_error(err: Exception) -> None:
                observer.on_error(with_completion(err, state))

            return source.subscribe(on_next, on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _tool_calls
