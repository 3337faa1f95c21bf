"""``parse_structured``: structured content, partial values on the way, validated at the end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from reactivex import Observable

from .._structured import ContentFormat
from ..events import ParsedStreamEvent
from ._support import KEEP, rederive

__all__ = ["parse_structured"]

ContentT = TypeVar("ContentT")


@overload
def parse_structured(
    response_format: type[ContentT], *, partial_strings: bool | None = None
) -> Callable[[Observable[Any]], Observable[ParsedStreamEvent[ContentT]]]: ...


@overload
def parse_structured(
    response_format: Mapping[str, Any] | None = None, *, partial_strings: bool | None = None
) -> Callable[[Observable[Any]], Observable[ParsedStreamEvent[Any]]]: ...


def parse_structured(
    response_format: Any = None, *, partial_strings: bool | None = None
) -> Callable[[Observable[Any]], Observable[ParsedStreamEvent[Any]]]:
    """Parse the content as JSON while it streams; validate it when it is complete.

    ``content.delta`` events get ``parsed`` = the partial value of the content so far (exactly
    what ``jiter.from_json(prefix, partial_mode=True)`` gives, computed incrementally: the cost per
    delta is proportional to the delta); ``content.done`` gets the validated model; the snapshot's
    ``message.parsed`` follows. Content that only holds whitespace so far, and content of a choice
    that refused, are not parsed (``parsed`` is ``None``), as in the SDKs.

    Applied right after ``ops.accumulate()`` it re-configures that accumulation (nothing is parsed
    twice); applied to chunks it accumulates them; applied to other event streams it derives the
    events again from the ``chunk`` events (so apply it before filtering events out).

    ::

        content:  '{"ci'   'ty": "Pa'   'ris"}'    (finish)
        parsed:    {}       {}           {"city": "Paris"}   content.done: City(city="Paris")

    Args:
        response_format: a pydantic model class (or another type pydantic validates) to
            validate into; ``dict`` or ``None`` (or a ``response_format`` parameter dict) for
            plain JSON, any value, no validation.
        partial_strings: include the text so far of an unterminated string in partial values
            (jiter's ``partial_mode="trailing-strings"``); ``None`` keeps the upstream's setting
            (default off).

    Returns:
        An operator from chunks or events to events. For type checkers the events are
        ``ParsedStreamEvent[Model]``, so that ``ops.final_completion()`` after it gives a
        ``ParsedChatCompletion[Model]`` (``message.parsed: Model | None``).

    Raises:
        (as ``on_error``) :class:`~rxchat.errors.StructuredOutputError` with ``.raw`` (the content)
        and ``.completion`` as soon as the content cannot be JSON any more, or when the complete
        content does not validate; :class:`~rxchat.errors.LengthFinishReasonError` /
        :class:`~rxchat.errors.ContentFilterFinishReasonError` when the answer was cut (as in the
        SDKs); ``TypeError`` for an unsupported ``response_format`` (at call time).

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    >>> events.pipe(ops.parse_structured(City), rx.filter(lambda e: e.type == "content.done")
    ...             ).subscribe(lambda e: print(e.parsed))  # doctest: +SKIP
    name='Paris'
    """
    if response_format is None or isinstance(response_format, Mapping):
        response_format = dict
    ContentFormat.from_response_format(response_format)  # reject bad formats now

    def _parse_structured(source: Observable[Any]) -> Observable[ParsedStreamEvent[Any]]:
        return rederive(
            source,
            "parse_structured",
            response_format=response_format,
            partial_strings=KEEP if partial_strings is None else partial_strings,
        )

    return _parse_structured
