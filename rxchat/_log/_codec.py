"""Log entries as field maps (the same bytes in memory and in Redis), and errors as JSON.

A stream is a sequence of entries, each a map of short fields:

* chunks: ``t=c``, ``f`` = position of its first chunk, ``d`` = the chunks as compact JSON, one
  per line (JSON text never holds a raw newline), exactly as received (fields the server did not
  send left out). Its entry id is the position of its last chunk.
* terminal: ``t=e``, ``s`` = ``completed`` / ``error`` / ``cancelled``, ``n`` = chunks in the
  stream, ``e`` = the error as JSON (class, message, attributes). Its entry id is ``n + 1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .. import errors as _errors
from .._c_builder import build_chunks
from .._compat import json_validator
from ..errors import RxChatError
from ..types import ChatCompletion, ChatCompletionChunk
from . import _errors as _log_errors
from ._errors import RemoteStreamError
from ._models import as_logged, plain
from ._types import LoggedChunk

__all__ = [
    "ChunkEntry",
    "EndEntry",
    "Fields",
    "decode_entry",
    "encode_chunk",
    "encode_chunks",
    "encode_end",
    "error_from_json",
    "error_to_json",
    "is_end",
    "load_chunks",
]

Fields = dict[bytes, bytes]
_validate_json = json_validator(ChatCompletionChunk)
_SLICE = 32
Terminal = Literal["completed", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class ChunkEntry:
    first: int
    last: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EndEntry:
    status: Terminal
    total: int
    error: dict[str, Any] | None


def encode_chunk(chunk: ChatCompletionChunk) -> bytes:
    """One chunk as compact JSON, the fields that were set (``model_dump_json(exclude_unset=True)``
    gives the same object)."""
    return orjson.dumps(chunk, default=plain)


def encode_chunks(first: int, payloads: list[str]) -> Fields:
    """One chunk entry of chunks' JSON texts (the caller adds it under id
    ``first + len(payloads) - 1``).

    A text as received may hold newlines (an SSE event of several ``data`` lines). In a JSON text
    that parsed (every chunk did) they can only be whitespace between tokens — a string holds
    ``\\n``, never a raw newline — so they become spaces: the same JSON, one chunk per line."""
    data = "\n".join(payloads)
    if data.count("\n") != len(payloads) - 1:
        data = "\n".join(text.replace("\n", " ") for text in payloads)
    return {b"t": b"c", b"f": b"%d" % first, b"d": data.encode()}


def encode_end(status: Terminal, total: int, error: BaseException | None = None) -> Fields:
    """The terminal entry (id ``total + 1``)."""
    fields: Fields = {b"t": b"e", b"s": status.encode(), b"n": b"%d" % total}
    if error is not None:
        fields[b"e"] = orjson.dumps(error_to_json(error))
    return fields


def is_end(fields: dict[bytes, bytes]) -> bool:
    """Whether these are a terminal entry's fields."""
    return fields.get(b"t") == b"e"


def decode_entry(entry_id: int, fields: dict[bytes, bytes]) -> ChunkEntry | EndEntry:
    """Raises ValueError on an entry rxchat did not write."""
    kind = fields.get(b"t")
    if kind == b"c":
        return ChunkEntry(int(fields[b"f"]), entry_id, fields[b"d"])
    if kind == b"e":
        status = fields[b"s"].decode()
        if status not in ("completed", "error", "cancelled"):
            raise ValueError(f"unknown terminal status {status!r}")
        raw = fields.get(b"e")
        return EndEntry(status, int(fields[b"n"]), orjson.loads(raw) if raw else None)  # type: ignore[arg-type]
    raise ValueError(f"not an rxchat log entry: {sorted(fields)!r}")


def load_chunks(entry: ChunkEntry, stream_id: str, after: int) -> Iterator[LoggedChunk]:
    """The entry's chunks past position ``after``, each told its position.

    Built a slice at a time (``_SLICE`` chunks): a whole entry's models alive at once would
    survive garbage-collector passes (measured: twice the CPU per chunk for 256 at once).

    Raises:
        ValueError: the entry is not what rxchat writes (pydantic's ValidationError is one);
            the count is checked before the first chunk, a payload when its slice is built.
    """
    payloads = entry.data.decode().split("\n")
    if len(payloads) != entry.last - entry.first + 1:
        raise ValueError(
            f"entry {entry.last} holds {len(payloads)} chunks, not {entry.last - entry.first + 1}"
        )
    skip = max(0, after - entry.first + 1)
    position = entry.first + skip
    for start in range(skip, len(payloads), _SLICE):
        part = payloads[start : start + _SLICE]
        # The decoder's fast reader where it is built; pydantic for what it leaves (None).
        built: list[Any] = build_chunks(part) if build_chunks is not None else [None] * len(part)
        for i, chunk in enumerate(built):
            yield as_logged(_validate_json(part[i]) if chunk is None else chunk, position, stream_id)
            position += 1


# -- errors -----------------------------------------------------------------------------------

# What an error carries besides its message, when JSON can hold it.
_ATTRIBUTES = (
    "status_code",
    "body",
    "code",
    "param",
    "type",
    "request_id",
    "raw",
    "limit",
    "name",
    "error_type",
    "chunks_received",
)


def _error_classes() -> dict[str, type[RxChatError]]:
    classes: dict[str, type[RxChatError]] = {}
    for module in (_errors, _log_errors):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, RxChatError):
                classes[name] = value
    return classes


_CLASSES = _error_classes()


def error_to_json(error: BaseException) -> dict[str, Any]:
    """An error as a JSON-ready dict: class, message and the attributes JSON can hold."""
    cls = type(error)
    known = _CLASSES.get(cls.__name__) is cls
    data: dict[str, Any] = {
        "class": cls.__name__ if known else f"{cls.__module__}.{cls.__qualname__}",
        "message": getattr(error, "message", None) or str(error) or cls.__name__,
    }
    attributes: dict[str, Any] = {}
    for name in _ATTRIBUTES:
        value = getattr(error, name, None)
        if value is None:
            continue
        try:
            orjson.dumps(value)
        except TypeError:
            continue
        attributes[name] = value
    if attributes:
        data["attributes"] = attributes
    return data


def error_from_json(
    data: dict[str, Any], *, stream_id: str, completion: ChatCompletion | None
) -> RxChatError:
    """The error a terminal entry describes, as the same rxchat class (RemoteStreamError for
    anything else), with ``completion`` = what the log holds."""
    name = str(data.get("class", ""))
    message = str(data.get("message", ""))
    attributes = data.get("attributes") or {}
    cls = _CLASSES.get(name)
    if cls is None:
        error: RxChatError = RemoteStreamError(
            f"the stream's producer failed: {name}: {message}",
            error_type=name,
            stream_id=stream_id,
            completion=completion,
        )
        error.chunks_received = int(attributes.get("chunks_received", 0))
        return error
    # Rebuilt without calling the class's own __init__, whose signature varies by class: the
    # state of an rxchat error is its message and the attributes listed above.
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.message = message
    error.completion = completion
    error.chunks_received = 0
    if issubclass(cls, _errors.APIError):
        for name in ("body", "code", "param", "type"):
            setattr(error, name, None)
    if issubclass(cls, _errors.APIStatusError):
        setattr(error, "response", None)  # noqa: B010 - on the class, not RxChatError
        setattr(error, "request_id", None)  # noqa: B010
    if issubclass(cls, _log_errors.StreamLogError):
        setattr(error, "stream_id", stream_id)  # noqa: B010
    for key, value in attributes.items():
        if key in _ATTRIBUTES:
            setattr(error, key, value)
    return error
