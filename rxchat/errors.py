"""Errors raised by rxchat.

Every error derives from one root, :class:`RxChatError`. Names follow the OpenAI SDK where it
has one, so ``except openai.RateLimitError`` becomes ``except rxchat.RateLimitError``::

    RxChatError
    ├── APIError                          .message, .body
    │   ├── APIStatusError                .status_code, .response, .body
    │   │   ├── BadRequestError           400
    │   │   ├── AuthenticationError       401
    │   │   ├── PermissionDeniedError     403
    │   │   ├── NotFoundError             404
    │   │   ├── ConflictError             409
    │   │   ├── UnprocessableEntityError  422
    │   │   ├── RateLimitError            429
    │   │   └── InternalServerError       >= 500
    │   ├── APIConnectionError
    │   │   └── APITimeoutError
    │   │       ├── FirstChunkTimeoutError
    │   │       └── IdleTimeoutError
    │   ├── StreamAPIError                an ``error`` object sent in the middle of a stream
    │   └── APIResponseValidationError    the server broke the protocol
    │       ├── InvalidChunkError         a ``data:`` payload that is not a valid chunk (.raw)
    │       └── EventTooLargeError        one SSE event over ``max_event_bytes``
    ├── IncompleteStreamError             body ended with no finish reason and no ``[DONE]``
    ├── LengthFinishReasonError           finish_reason "length" where a whole answer was needed
    ├── ContentFilterFinishReasonError    finish_reason "content_filter"
    ├── StructuredOutputError             content or tool arguments that do not validate (.raw)
    ├── UnknownToolError                  a tool call to a tool that was not given
    ├── StreamConsumedError               a stream object iterated a second time
    └── BufferOverflowError               a source outran a bounded async bridge

Whatever arrived before an error stays reachable on it: ``.completion`` (alias ``.partial``) is the
accumulated :class:`~rxchat.types.ChatCompletion` snapshot when something accumulated the stream,
and ``.chunks_received`` counts the chunks that were delivered before the error.
The API key never appears in any message: every text an error is built from (server bodies,
headers, aiohttp's messages) is passed through :func:`redact` first.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import ChatCompletion

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BufferOverflowError",
    "ConflictError",
    "ContentFilterFinishReasonError",
    "EventTooLargeError",
    "FirstChunkTimeoutError",
    "IdleTimeoutError",
    "IncompleteStreamError",
    "InternalServerError",
    "InvalidChunkError",
    "LengthFinishReasonError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RxChatError",
    "StreamAPIError",
    "StreamConsumedError",
    "StructuredOutputError",
    "UnknownToolError",
    "UnprocessableEntityError",
]
# Not star-exported: ``redact`` (public as ``rxchat.redact``) and ``status_error_class`` (internal).


@functools.lru_cache(maxsize=64)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The spellings of ``secret`` a server may echo: as is, JSON-escaped, ``\\/``-escaped, URL-quoted."""
    forms = {secret}
    escaped = json.dumps(secret)[1:-1]  # quotes, backslashes, control and non-ASCII characters
    forms.add(escaped)
    forms.add(escaped.replace("/", "\\/"))  # JSON allows "\/" for "/" (PHP, some proxies)
    forms.add(secret.replace("/", "\\/"))
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret, safe=""))
    # Longest first: a form that contains another is replaced whole.
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def redact_values(text: str, *secrets: str | None) -> str:
    """Replace every spelling of each secret in ``text`` with ``***`` (and nothing else).

    Only the given values are removed (see :func:`secret_forms`), never text that merely looks
    like a key, so a server's own words ("Authorization: Bearer YOUR_KEY") stay as they were.
    This is what rxchat applies to every error it builds.
    """
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET:
            for form in secret_forms(secret):
                if form in text:
                    text = text.replace(form, "***")
    return text


_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-]{6,}")


def redact(text: str, *secrets: str | None) -> str:
    """Remove secrets (every spelling of them) and anything that looks like a bearer token or
    ``sk-`` key from text: a broad filter for your own log lines.

    rxchat's errors use :func:`redact_values`, which removes the known values only.
    """
    text = redact_values(text, *secrets)
    text = _BEARER.sub(r"\1***", text)
    return _KEYLIKE.sub(r"\1***", text)


_MIN_SECRET = 4  # shorter "secrets" (a test key "k") would garble every message


class RxChatError(RuntimeError):
    """Root of every error rxchat raises.

    It derives from ``RuntimeError``, which is what the Edgee SDK raises for API errors, so
    Edgee code that catches ``RuntimeError`` keeps working.

    Attributes:
        completion: the accumulated completion snapshot at the time of the error, when an
            accumulating stage (``ops.accumulate()``, ``client.chat.completions.stream``) saw the
            stream; ``None`` otherwise.
        chunks_received: chunks delivered before the error.
    """

    completion: ChatCompletion | None
    chunks_received: int

    def __init__(
        self,
        message: str,
        *,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.completion = completion
        self.chunks_received = chunks_received

    @property
    def partial(self) -> ChatCompletion | None:
        """Alias of :attr:`completion`: what arrived before the error."""
        return self.completion

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class APIError(RxChatError):
    """An error reported by, or while talking to, the API server."""

    def __init__(
        self,
        message: str,
        *,
        body: object | None = None,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)
        self.body = body
        info = body.get("error", body) if isinstance(body, dict) else None
        info = info if isinstance(info, dict) else {}
        self.code: Any = info.get("code")
        self.param: Any = info.get("param")
        self.type: Any = info.get("type")


class APIStatusError(APIError):
    """The server answered with a 4xx or 5xx status before streaming began."""

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        response: Any = None,
        body: object | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, body=body)
        self.status_code = status_code
        self.response = response
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404: wrong base URL or unknown model."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422."""


class RateLimitError(APIStatusError):
    """HTTP 429."""


class InternalServerError(APIStatusError):
    """HTTP 5xx."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The :class:`APIStatusError` subclass for an HTTP status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke."""

    def __init__(
        self,
        message: str = "Connection error.",
        *,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)


class APITimeoutError(APIConnectionError):
    """A connect, read or total timeout expired."""

    def __init__(
        self,
        message: str = "Request timed out.",
        *,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)


class FirstChunkTimeoutError(APITimeoutError):
    """No model output arrived within the first-chunk timeout."""


class IdleTimeoutError(APITimeoutError):
    """The model stopped producing output for longer than the idle timeout.

    Keep-alive comments do not count as output.
    """


class StreamAPIError(APIError):
    """The server sent an ``error`` object in the middle of a stream."""


class APIResponseValidationError(APIError):
    """The server's response broke the protocol."""


class InvalidChunkError(APIResponseValidationError):
    """A ``data:`` payload that is not JSON, or not a chat-completion chunk.

    Attributes:
        raw: the payload text as received (never skipped silently).
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)
        self.raw = raw


class EventTooLargeError(APIResponseValidationError):
    """A single SSE event grew beyond the configured ``max_event_bytes``."""

    def __init__(self, limit: int, *, chunks_received: int = 0) -> None:
        super().__init__(
            f"an SSE event exceeded max_event_bytes={limit}", chunks_received=chunks_received
        )
        self.limit = limit


class IncompleteStreamError(RxChatError):
    """The body ended before any finish reason and without ``data: [DONE]``.

    A truncated answer never looks like success: ``.completion`` holds what arrived.
    """


class LengthFinishReasonError(RxChatError):
    """The answer stopped at the token limit (finish_reason ``"length"``)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        usage = getattr(completion, "usage", None)
        text = message or (
            "Could not parse response content as the length limit was reached"
            + (f" - {usage!r}" if usage is not None else "")
        )
        super().__init__(text, completion=completion, chunks_received=chunks_received)


class ContentFilterFinishReasonError(RxChatError):
    """The answer was stopped by the content filter (finish_reason ``"content_filter"``)."""

    def __init__(
        self,
        message: str | None = None,
        *,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(
            message
            or "Could not parse response content as the request was rejected by the content filter",
            completion=completion,
            chunks_received=chunks_received,
        )


class StructuredOutputError(RxChatError):
    """Content or tool-call arguments that are not valid JSON or do not validate.

    Attributes:
        raw: the complete raw text that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str,
        completion: ChatCompletion | None = None,
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, completion=completion, chunks_received=chunks_received)
        self.raw = raw


class UnknownToolError(RxChatError):
    """The model called a tool that was not in ``tools``."""

    def __init__(
        self, name: str, *, completion: ChatCompletion | None = None, chunks_received: int = 0
    ) -> None:
        super().__init__(
            f"the model called tool {name!r}, which is not among the given tools",
            completion=completion,
            chunks_received=chunks_received,
        )
        self.name = name


class StreamConsumedError(RxChatError):
    """A stream object was iterated a second time; a stream can be consumed once."""


class BufferOverflowError(RxChatError):
    """A source pushed more items into ``rxchat.to_async_iterator`` than its bound allows.

    rxchat's network sources pause reading instead; a source that cannot be paused (a
    synchronous replay, a hot Observable) ends the iteration with this error.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"more than {limit} items were waiting in to_async_iterator(): the source does not "
            "slow down for a slow consumer; raise max_buffered or consume faster"
        )
        self.limit = limit
