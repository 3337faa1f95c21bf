"""``accumulate``: chunks -> typed events, over one ChatCompletionStreamState per subscription.

The observable it returns (:class:`~rxchat.operators._support.AccumulatedObservable`) remembers
its upstream and options, so ``parse_structured`` / ``extract_tool_calls`` applied right after it
re-configure it (one state, one parse) instead of parsing the events again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reactivex import Observable

from .._state import ChatCompletionStreamState
from ..events import ChatCompletionStreamEvent
from ._support import AccumulatedObservable

__all__ = ["AccumulatedObservable", "accumulate"]


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
