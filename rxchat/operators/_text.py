"""``text``: the content deltas of one choice, as plain strings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc

from ..events import ContentDeltaEvent, _Event
from ._support import as_chunk, kind_of

__all__ = ["text"]


def text(choice_index: int = 0) -> Callable[[Observable[Any]], Observable[str]]:
    """The content of a choice as ``str`` deltas, in order (empty deltas left out).

    Works on events (``content.delta``; other events are skipped) and directly on chunks
    (``delta.content`` of a ``ChatCompletionChunk`` or a chunk dict), so
    ``chunks.pipe(ops.text())`` needs no accumulation.

    ::

        events:  --chunk--content.delta("Hel")--chunk--content.delta("lo")--content.done--|
        result:  ---------"Hel"-----------------------"lo"-------------------------------|

    Args:
        choice_index: which choice of an ``n > 1`` stream.

    Returns:
        An operator from events or chunks to ``str``.

    Raises:
        (as ``on_error``) ``TypeError`` for an item that is neither an event nor a chunk;
        upstream errors pass through.

    >>> import rxchat
    >>> from rxchat import operators as ops
    >>> chunks = [{"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    ...           {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}]
    >>> rxchat.from_chunks(chunks).pipe(ops.text()).subscribe(print)  # doctest: +SKIP
    Hel
    lo
    """

    def _text(source: Observable[Any]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            stopped = False

            def on_next(item: Any) -> None:
                nonlocal stopped
                if stopped:
                    return
                if isinstance(item, ContentDeltaEvent):
                    delta = item.delta
                    if delta and item.choice_index == choice_index:
                        observer.on_next(delta)
                    return
                if isinstance(item, _Event):
                    return  # another event: no new text (checked first: the hot path)
                try:
                    kind_of(item, "text")  # a chunk, or the TypeError for anything else
                    chunk = as_chunk(item)
                except Exception as err:
                    stopped = True
                    observer.on_error(err)
                    return
                for choice in chunk.choices:
                    content = choice.delta.content
                    if content and choice.index == choice_index:
                        observer.on_next(content)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return _text
