"""``raise_on_length``: a truncated answer becomes an error that carries what arrived."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from reactivex import Observable, abc

from .._state import ChatCompletionStreamState
from ..errors import ContentFilterFinishReasonError, LengthFinishReasonError
from ..types import ChatCompletionChunk
from ._support import CHUNK, CHUNK_EVENT, as_chunk, kind_of, state_of, with_completion

__all__ = ["raise_on_length"]

_T = TypeVar("_T")
# Generic over the Observable (not its items): mypy then chains it with generic operators.
_ObservableT = TypeVar("_ObservableT", bound=Observable[Any])


def raise_on_length(*, content_filter: bool = False) -> Callable[[_ObservableT], _ObservableT]:
    """Fail the stream when a choice stops at the token limit (finish reason ``"length"``).

    Everything up to the end of the truncated choice passes through (its ``*.done`` events and a
    usage-only chunk included); then, at the next chunk that carries choices or at the end of
    the stream, the stream fails with :class:`~rxchat.errors.LengthFinishReasonError` whose
    ``.completion`` is the snapshot of everything received. Works on events (after
    ``ops.accumulate()``) and on chunks (accumulated here for the error's snapshot).

    ::

        events:  --chunk,δ--chunk(finish=length),content.done--chunk(usage)--|
        result:  --chunk,δ--chunk,content.done-----------------chunk---------X LengthFinishReasonError

    Args:
        content_filter: also fail with :class:`~rxchat.errors.ContentFilterFinishReasonError`
            when a choice was stopped by the content filter.

    Returns:
        An operator that passes items through unchanged.

    Raises:
        (as ``on_error``) ``LengthFinishReasonError`` / ``ContentFilterFinishReasonError``;
        upstream errors pass through.

    >>> events.pipe(ops.raise_on_length()).subscribe(
    ...     on_error=lambda err: print(type(err).__name__, err.completion.choices[0].message.content)
    ... )  # doctest: +SKIP
    LengthFinishReasonError The answer was cut he
    """

    def _raise_on_length(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            own: ChatCompletionStreamState[Any] | None = None  # accumulates plain chunks
            state: ChatCompletionStreamState[Any] | None = None
            pending: type[LengthFinishReasonError | ContentFilterFinishReasonError] | None = None
            stopped = False
            chunks = 0

            def fail() -> None:
                nonlocal stopped
                stopped = True
                assert pending is not None
                completion = state.current_completion_snapshot if state is not None else None
                observer.on_error(pending(completion=completion, chunks_received=chunks))

            def on_next(item: _T) -> None:
                nonlocal own, state, pending, chunks, stopped
                if stopped:
                    return
                chunk: ChatCompletionChunk | None = None
                try:
                    kind = kind_of(item, "raise_on_length")
                except TypeError as err:
                    stopped = True
                    observer.on_error(err)
                    return
                if kind == CHUNK_EVENT:
                    chunk = item.chunk  # type: ignore[attr-defined]
                    state = state_of(item) or state
                elif kind == CHUNK:
                    if own is None:
                        own = state = ChatCompletionStreamState()
                    try:
                        chunk = as_chunk(item)
                        own.handle_chunk(chunk)
                    except Exception as err:
                        stopped = True
                        observer.on_error(with_completion(err, own))
                        return
                if chunk is not None:
                    if chunk.object != "chat.completion.chunk":
                        observer.on_next(item)
                        return
                    chunks += 1
                    if pending is not None and chunk.choices:
                        fail()
                        return
                    for choice in chunk.choices:
                        if choice.finish_reason == "length":
                            pending = LengthFinishReasonError
                        elif choice.finish_reason == "content_filter" and content_filter:
                            pending = pending or ContentFilterFinishReasonError
                observer.on_next(item)

            def on_error(err: Exception) -> None:
                observer.on_error(with_completion(err, state))

            def on_completed() -> None:
                if stopped:
                    return
                if pending is not None:
                    fail()
                    return
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return cast(Callable[[_ObservableT], _ObservableT], _raise_on_length)
