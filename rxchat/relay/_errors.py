"""Errors of the relay (all :class:`~rxchat.RxChatError` subclasses)."""

from __future__ import annotations

from ..errors import RxChatError

__all__ = ["RelayError", "SlowClientError", "UnknownEventIdError"]


class RelayError(RxChatError, ValueError):
    """Something given to the relay cannot be sent as Server-Sent Events (a bad event name or
    id, an unknown format, an item that is neither a chunk nor an event)."""


class SlowClientError(RxChatError):
    """A browser read more slowly than its stream was produced and its buffer overflowed.

    The connection is closed with this reason (sent as the format's error event when the client
    still reads); the generation and the other clients are not affected.
    """

    def __init__(self, limit: int, buffered: int) -> None:
        super().__init__(
            f"the client read too slowly: {buffered} bytes were waiting for it, more than the "
            f"relay's max_buffer of {limit} bytes; the connection was closed"
        )
        self.limit = limit
        self.buffered = buffered


class UnknownEventIdError(RelayError):
    """A resume asked for an event id that the stream never had (``Last-Event-ID`` from another
    stream, another format, or a forged header)."""

    def __init__(self, last_event_id: str, reason: str) -> None:
        super().__init__(f"cannot resume after event id {last_event_id!r}: {reason}")
        self.last_event_id = last_event_id
