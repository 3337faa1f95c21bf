"""Errors of the stream log (all :class:`~rxchat.RxChatError` subclasses)::

    RxChatError
    └── StreamLogError                  .stream_id
        ├── StreamNotFoundError         no such stream (never existed, or expired)
        ├── StreamExistsError           publish() under an id that is already taken
        ├── StreamCancelledError        the stream was cancelled (.completion: what arrived)
        ├── ProducerLostError           the producer's lease expired without a terminal entry
        ├── StreamDataLostError         the log lost entries (a Redis restart without them)
        ├── StreamLimitError            the stream outgrew max_chunks / max_bytes
        ├── StreamLogUnavailableError   the log's server stayed unreachable too long
        └── RemoteStreamError           the producer's source failed with a non-rxchat error

An rxchat error raised by the producer's source (``RateLimitError``, ``IncompleteStreamError``, ...)
is re-raised on every reader as the same class, not wrapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import RxChatError

if TYPE_CHECKING:
    from ..types import ChatCompletion

__all__ = [
    "ProducerLostError",
    "RemoteStreamError",
    "StreamCancelledError",
    "StreamDataLostError",
    "StreamExistsError",
    "StreamLimitError",
    "StreamLogError",
    "StreamLogUnavailableError",
    "StreamNotFoundError",
]


class StreamLogError(RxChatError):
    """Root of the stream log's errors.

    Attributes:
        stream_id: the stream concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        stream_id: str = "",
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)
        self.stream_id = stream_id


class StreamNotFoundError(StreamLogError):
    """No stream has this id: it never existed, or its TTL after the end expired."""


class StreamExistsError(StreamLogError):
    """``publish(..., stream_id=X)`` where a stream X already exists."""


class StreamCancelledError(StreamLogError):
    """The stream was cancelled (``log.cancel(stream_id)`` from any process).

    ``.completion`` holds what the log received before the cancel.
    """


class ProducerLostError(StreamLogError):
    """The producer stopped renewing its lease before writing a terminal entry.

    Its process died or lost the log for longer than the lease; ``.completion`` holds what was
    logged.
    """


class StreamDataLostError(StreamLogError):
    """The log no longer has entries it had (a Redis restart that lost data): a gap is reported,
    never skipped."""


class StreamLimitError(StreamLogError):
    """The stream outgrew the log's ``max_chunks`` or ``max_bytes``; the producer stopped it."""


class StreamLogUnavailableError(StreamLogError):
    """The log's server stayed unreachable for longer than the configured time.

    Raised to the producer's caller (``await handle.wait()``) when it gives up writing, and to a
    reader that cannot reconnect.
    """


class RemoteStreamError(StreamLogError):
    """The producer's source failed with an exception that is not an rxchat error.

    Attributes:
        error_type: the qualified class name of the original exception.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "",
        stream_id: str = "",
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(
            message, stream_id=stream_id, completion=completion, chunks_received=chunks_received
        )
        self.error_type = error_type
