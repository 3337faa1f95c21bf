"""The two places where the stream log builds or reads pydantic instance state without pydantic's
serializer or validator. The pydantic internals they use are in :mod:`rxchat._compat` (checked
by ``tests/test_compat.py``); ``tests/log/test_log_models.py`` checks these two against pydantic
itself, so an upgrade that changes them fails there.

* ``plain``: a model as the dict pydantic's ``model_dump(exclude_unset=True)`` gives, without
  pydantic's serializer, which costs several times more per chunk than the whole source.
* ``as_logged``: a chunk built by the decoder's fast reader becomes a :class:`LoggedChunk` in
  place (its class is a subclass with the same layout; its private state is set), instead of a
  second, slower validation into the subclass.
"""

from __future__ import annotations

from typing import Any

from .._compat import retype, set_fields_dump
from ..types import ChatCompletionChunk
from ._types import LoggedChunk

__all__ = ["as_logged", "plain"]


def plain(model: Any) -> dict[str, Any]:
    """``orjson.dumps(..., default=plain)``: the fields that were set, then the extra ones.

    Keys come in the order of the set of fields that were set: JSON objects are unordered."""
    try:
        return set_fields_dump(model)
    except AttributeError:
        raise TypeError(f"cannot log a {type(model).__name__} inside a chunk") from None


def as_logged(chunk: ChatCompletionChunk, position: int, stream_id: str) -> LoggedChunk:
    """The same object, now a LoggedChunk that knows its position."""
    retype(chunk, LoggedChunk, {"_position": position, "_stream_id": stream_id})
    return chunk  # type: ignore[return-value]
