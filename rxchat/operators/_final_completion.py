"""``final_completion``: the one completed, validated ParsedChatCompletion, at the end."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from reactivex import Observable, abc

from ..errors import IncompleteStreamError
from ..events import ParsedStreamEvent
from ..types import ChatCompletionChunk, ParsedChatCompletion
from ._support import StateFollower, with_completion

__all__ = ["FinalCompletionOperator", "final_completion"]

ContentT = TypeVar("ContentT")


class FinalCompletionOperator(Protocol):
    """The operator ``final_completion()`` returns, typed by what flows into it.

    After ``ops.parse_structured(City)`` (``Observable[ParsedStreamEvent[City]]``) it gives
    ``Observable[ParsedChatCompletion[City]]``; after plain events ``ParsedChatCompletion[Any]``;
    on chunks, which carry no parsed content, ``ParsedChatCompletion[Never]``.
    """

    def __call__(
        self,
        source: Observable[ParsedStreamEvent[ContentT] | ChatCompletionChunk | Mapping[str, Any]],
    ) -> Observable[ParsedChatCompletion[ContentT]]: ...


def final_completion() -> FinalCompletionOperator:
    """Emit the final :class:`~rxchat.types.ParsedChatCompletion` once the stream completes.

    On events it asks the accumulating state (so ``parsed`` / ``parsed_arguments`` are those of
    ``ops.parse_structured`` / ``ops.extract_tool_calls`` upstream); on chunks it accumulates
    them itself. Equal to the OpenAI SDK's ``stream.get_final_completion()``.

    ::

        events:  --chunk--δ--chunk--δ--done--|
        result:  ----------------------------(completion)|

    Returns:
        An operator from events or chunks to one ``ParsedChatCompletion`` (typed
        ``ParsedChatCompletion[Model]`` after ``ops.parse_structured(Model)``).

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
            follower = StateFollower("final_completion")
            stopped = False

            def on_next(item: Any) -> None:
                nonlocal stopped
                if stopped:
                    return
                try:
                    follower.follow(item)
                except Exception as err:
                    stopped = True
                    observer.on_error(with_completion(err, follower.state))

            def on_error(err: Exception) -> None:
                observer.on_error(with_completion(err, follower.state))

            def on_completed() -> None:
                if stopped:
                    return
                state = follower.state
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
