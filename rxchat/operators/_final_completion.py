"""``final_completion``: the one completed, validated ParsedChatCompletion, at the end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reactivex import Observable, abc

from .._state import ChatCompletionStreamState
from ..errors import IncompleteStreamError
from ..events import ChunkEvent, _Event
from ..types import ChatCompletionChunk, ParsedChatCompletion
from ._accumulate import state_of, with_completion

__all__ = ["final_completion"]


def final_completion() -> Callable[[Observable[Any]], Observable[ParsedChatCompletion[Any]]]:
    """Emit the final :class:`~rxchat.types.ParsedChatCompletion` once the stream completes.

    On events it asks the accumulating state (so ``parsed`` / ``parsed_arguments`` are those of
    ``ops.parse_structured`` / ``ops.extract_tool_calls`` upstream); on chunks it accumulates
    them itself. Equal to the OpenAI SDK's ``stream.get_final_completion()``.

    ::

        events:  --chunk--δ--chunk--δ--done--|
        result:  ----------------------------(completion)|

    Returns:
        An operator from events or chunks to one ``ParsedChatCompletion``.

    Raises:
        (as ``on_error``) what :meth:`ChatCompletionStreamState.get_final_completion` raises
        (``LengthFinishReasonError`` / ``ContentFilterFinishReasonError`` for a cut answer, as in
        the SDKs, ``StructuredOutputError``, ``UnknownToolError``);
        :class:`~rxchat.errors.IncompleteStreamError` when the stream completed without a chunk;
        upstream errors pass through with ``.completion`` set.

    >>> completion = await events.pipe(ops.final_completion())  # doctest: +SKIP
    >>> completion.choices[0].message.parsed  # doctest: +SKIP
    Location(city='Paris', temperature=18.0, units='c')
    """

    def _final_completion(source: Observable[Any]) -> Observable[ParsedChatCompletion[Any]]:
        def subscribe(
            observer: abc.ObserverBase[ParsedChatCompletion[Any]],
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
                elif isinstance(item, ChatCompletionChunk | Mapping):
                    if state is None:
                        state, own = ChatCompletionStreamState(), True
                    elif not own:
                        fail(TypeError("final_completion() got both chunks and events"))
                        return
                    try:
                        state.handle_chunk(item)  # type: ignore[arg-type]
                    except Exception as err:
                        fail(with_completion(err, state))
                elif not isinstance(item, _Event):
                    fail(
                        TypeError(
                            "final_completion() expects events or chunks, "
                            f"got {type(item).__name__}"
                        )
                    )

            def on_error(err: Exception) -> None:
                observer.on_error(with_completion(err, state))

            def on_completed() -> None:
                if stopped:
                    return
                if state is None or not state.chunks_handled:
                    observer.on_error(
                        IncompleteStreamError("the stream completed without any chunk")
                    )
                    return
                try:
                    completion = state.get_final_completion()
                except Exception as err:
                    observer.on_error(err)
                    return
                observer.on_next(completion)
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _final_completion
