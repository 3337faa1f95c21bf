"""What the stream log hands out: logged chunks, stream info."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import PrivateAttr

from ..types import ChatCompletionChunk

__all__ = ["LoggedChunk", "StreamInfo", "StreamStatus"]

StreamStatus = Literal["running", "completed", "error", "cancelled", "lost"]
"""``lost``: no terminal entry and the producer's lease expired."""


class LoggedChunk(ChatCompletionChunk):
    """A chunk read back from a stream log, with its place in the log.

    It *is* a :class:`~rxchat.types.ChatCompletionChunk` (the same fields, as the producer
    received them), so ``ops.accumulate()`` and every operator take it unchanged.
    ``position`` is the chunk's 1-based index in its stream: pass the last one you saw as
    ``log.read(stream_id, after=position)`` (or as a browser's ``Last-Event-ID``) to resume
    with no gap and no duplicate.
    """

    _position: int = PrivateAttr(default=0)
    _stream_id: str = PrivateAttr(default="")

    @property
    def position(self) -> int:
        """1-based index of this chunk in its stream."""
        return self._position

    @property
    def stream_id(self) -> str:
        """The stream this chunk was read from."""
        return self._stream_id


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The state of one stream, as ``await log.info(stream_id)`` returns it.

    Attributes:
        stream_id: the stream's id.
        status: ``running``, ``completed``, ``error``, ``cancelled`` or ``lost``.
        chunks: chunks logged so far (the position of the last one).
        metadata: what the producer published with (string values).
        conversation_id: the conversation the stream answers, if it was given.
        created_at: Unix time of ``publish()``.
        ended_at: Unix time of the terminal entry (``None`` while running / lost).
        error_type: for ``error``: the class name of the error.
        error_message: for ``error``: its message.
    """

    stream_id: str
    status: StreamStatus
    chunks: int
    metadata: dict[str, str] = field(default_factory=dict)
    conversation_id: str | None = None
    created_at: float = 0.0
    ended_at: float | None = None
    error_type: str | None = None
    error_message: str | None = None
