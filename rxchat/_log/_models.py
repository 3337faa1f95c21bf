"""The two places where the stream log reaches into pydantic's instance state, kept together
(``tests/log/test_log_models.py`` checks both against pydantic, so an upgrade that changes them
fails there).

* ``plain``: a model as the dict pydantic's ``model_dump(exclude_unset=True)`` gives, without
  pydantic's serializer, which costs several times more per chunk than the whole source. Read
  from ``__dict__``, ``__pydantic_fields_set__`` and ``__pydantic_extra__``.
* ``as_logged``: a chunk built by the decoder's fast reader becomes a :class:`LoggedChunk` in
  place (its class is a subclass with the same layout; its private state is set), instead of a
  second, slower validation into the subclass.
"""

from __future__ import annotations

from typing import Any

from ..types import ChatCompletionChunk
from ._types import LoggedChunk

__all__ = ["as_logged", "plain"]

_set_class = object.__setattr__


def plain(model: Any) -> dict[str, Any]:
    """``orjson.dumps(..., default=plain)``: the fields that were set, then the extra ones.

    Keys come in the order of the set of fields that were set: JSON objects are unordered."""
    try:
        fields_set = model.__pydantic_fields_set__
        values = model.__dict__
    except AttributeError:
        raise TypeError(f"cannot log a {type(model).__name__} inside a chunk") from None
    out = {k: values[k] for k in fields_set if k in values}
    extra = model.__pydantic_extra__
    if extra:
        out.update(extra)
    return out


def as_logged(chunk: ChatCompletionChunk, position: int, stream_id: str) -> LoggedChunk:
    """The same object, now a LoggedChunk that knows its position."""
    _set_class(chunk, "__class__", LoggedChunk)
    _set_class(chunk, "__pydantic_private__", {"_position": position, "_stream_id": stream_id})
    return chunk  # type: ignore[return-value]
