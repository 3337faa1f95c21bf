"""``extract_tool_calls``: parsed tool-call arguments, partial on the way, validated when done."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reactivex import Observable

from .._structured import ToolSet
from ..events import ChatCompletionStreamEvent
from ._support import KEEP, rederive

__all__ = ["extract_tool_calls"]


def extract_tool_calls(
    tools: Iterable[Any], *, partial_strings: bool | None = None
) -> Callable[[Observable[Any]], Observable[ChatCompletionStreamEvent]]:
    """Parse tool-call arguments against the request's tools.

    For pydantic tools and ``strict: true`` tool dicts, ``tool_calls.function.arguments.delta``
    events get ``parsed_arguments`` = the partial JSON value so far (incremental), and
    ``tool_calls.function.arguments.done`` gets the validated model (pydantic tools) or the JSON
    value (strict dict tools); non-strict dict tools are not parsed, as in the SDKs. Parallel
    calls (several indices) each get their own ``done``. The snapshot's tool calls follow.

    Applied right after ``ops.accumulate()`` (or ``ops.parse_structured``) it re-configures that
    accumulation; applied to chunks it accumulates them; applied to other event streams it derives
    the events again from the ``chunk`` events.

    Args:
        tools: pydantic model classes, :func:`~rxchat.pydantic_function_tool` dicts (rxchat's or
            the OpenAI SDK's), or tool dicts: the ``tools`` of the request.
        partial_strings: include unterminated strings in partial values; ``None`` keeps the
            upstream's setting (default off).

    Returns:
        An operator from chunks or events to events.

    Raises:
        (as ``on_error``) :class:`~rxchat.errors.UnknownToolError` for a completed call to a tool
        not in ``tools``; :class:`~rxchat.errors.StructuredOutputError` (``.raw`` = the arguments)
        for arguments that are not valid JSON or do not validate;
        :class:`~rxchat.errors.LengthFinishReasonError` when the answer was cut (as in the SDKs);
        ``TypeError`` for an unsupported tool (at call time).

    >>> from pydantic import BaseModel
    >>> class GetWeather(BaseModel):
    ...     city: str
    >>> events.pipe(ops.extract_tool_calls([GetWeather]), ops.tool_calls()).subscribe(
    ...     lambda call: print(call.function.parsed_arguments))  # doctest: +SKIP
    city='Paris'
    """
    tool_list = list(tools)
    ToolSet(tool_list)  # reject bad tools now

    def _extract_tool_calls(source: Observable[Any]) -> Observable[ChatCompletionStreamEvent]:
        return rederive(
            source,
            "extract_tool_calls",
            tools=tool_list,
            partial_strings=KEEP if partial_strings is None else partial_strings,
        )

    return _extract_tool_calls
