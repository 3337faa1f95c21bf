"""HTTP transport: one aiohttp session per client, streamed chat completions as chunk batches.

The transport sends ``POST base_url + path``, maps failures to :mod:`rxchat.errors`, retries
what is safe to retry (only before the first byte of the body: a stream that produced output is
never replayed), applies connect / read / total timeouts, and turns the body into lists of
:class:`~rxchat.types.ChatCompletionChunk` — one list per socket read — through the sans-I/O
:class:`~rxchat._decode.ChunkDecoder`.

Cancellation closes the TCP connection at once: cancelling the task that reads, ``aclose()``,
leaving ``async with``, or dropping the stream object. The API key goes into the
``Authorization`` header and nowhere else (not in errors, reprs or log lines).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel
from yarl import URL

from ._decode import FEED_SIZE, ChunkDecoder
from ._lifetime import abandon_session, track_session
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    IdleTimeoutError,
    RxChatError,
    redact,
    status_error_class,
)
from .types import ChatCompletionChunk

__all__ = [
    "DEFAULT_TIMEOUT",
    "ChunkBatchStream",
    "HTTPTransport",
    "ResponseInfo",
    "Timeout",
]

log = logging.getLogger("rxchat")

_USER_AGENT = "rxchat/0.1.0"
_RETRY_STATUSES = frozenset((408, 409, 429))
_MAX_RETRY_AFTER = 60.0  # seconds; a longer server hint is ignored in favour of our backoff
_MAX_ERROR_BODY = 1 << 20  # bytes of an error body we read and keep


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Timeout.{name} must be a number of seconds or None, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Timeout.{name} must be a finite number > 0 or None, not {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts of one request, in seconds; ``None`` disables one.

    Attributes:
        connect: TCP connect plus TLS handshake of a new connection.
        read: the longest silence allowed between two reads of the response, including the wait
            for the status line and for the first byte of the body. Any bytes reset it, SSE
            keep-alive comments included (use ``ops.idle_timeout`` to time model output).
        total: the whole request — retries, backoff and the streamed body included.
        idle: the longest wait for model output once the body has begun: time without a
            chunk. Keep-alive comments do NOT reset it, so a server that keeps the connection
            warm while the model is stuck raises :class:`~rxchat.IdleTimeoutError`.

    >>> Timeout.coerce(30)
    Timeout(connect=30, read=30, total=None, idle=None)
    >>> Timeout(read=5).total is None
    True
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    total: float | None = None
    idle: float | None = None

    def __post_init__(self) -> None:
        _check_seconds("connect", self.connect)
        _check_seconds("read", self.read)
        _check_seconds("total", self.total)
        _check_seconds("idle", self.idle)

    @classmethod
    def coerce(cls, value: float | Timeout | None) -> Timeout:
        """Normalise a user's ``timeout=`` argument.

        As in the OpenAI SDK, a number sets the connect and read timeouts (a long healthy stream
        is never cut off by it) and ``None`` disables every timeout.

        Args:
            value: a number of seconds, a :class:`Timeout`, or ``None``.

        Returns:
            The :class:`Timeout` to apply.

        Raises:
            TypeError: ``value`` is not a number, a Timeout or None.
            ValueError: a number that is not finite and > 0.
        """
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, total=None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(
                f"timeout must be a number of seconds, a Timeout or None, not {value!r}"
            )
        return cls(connect=value, read=value, total=None)


DEFAULT_TIMEOUT = Timeout()
"""10 s to connect, 60 s of silence at most, no limit on the whole stream."""


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What an error keeps of the HTTP response: status, headers and URL (no request headers)."""

    status: int
    headers: Mapping[str, str]
    url: str


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_body(body: Mapping[str, Any]) -> bytes:
    """Serialise a request body (pydantic models inside it are dumped as JSON)."""
    return orjson.dumps(body, default=_json_default)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's retry hint in seconds, when it is given and reasonable (0 to 60 s)."""
    value: float | None = None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = None
    if value is None:
        raw = headers.get("retry-after")
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(raw)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    value = when.timestamp() - time.time()
    if value is None or not math.isfinite(value):
        return None
    if value < 0:
        value = 0.0  # a date in the past: retry now
    return value if value <= _MAX_RETRY_AFTER else None


def _status_message(status: int, reason: str | None, body: object, text: str) -> str:
    if isinstance(body, dict):
        info = body.get("error", body)
        if isinstance(info, dict):
            message = info.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(info, str) and info:
            return info
    text = text.strip()
    if text:
        return text if len(text) <= 500 else text[:500] + f"... ({len(text)} chars)"
    return f"HTTP {status} {reason or ''}".rstrip()


class HTTPTransport:
    """The HTTP layer of one client: a lazily created aiohttp session, retries and timeouts.

    The session is created on the event loop that first uses the transport and stays bound to
    it. Close the transport with :meth:`aclose` (or ``async with``).

    Args:
        base_url: the API root including ``/v1``, e.g. ``"http://127.0.0.1:8000/v1"``.
        api_key: sent as ``Authorization: Bearer ...``; ``None`` sends no Authorization header.
        timeout: default :class:`Timeout` of each request.
        max_retries: retries of a request that failed before its body began (connection errors,
            timeouts, 408, 409, 429, 5xx).
        default_headers: extra headers sent with every request.
        verify_ssl: verify TLS certificates (keep it on; ``False`` is an explicit opt-out).
        max_event_bytes: bound the memory of one SSE event (``EventTooLargeError`` beyond).
        backoff_base: first retry delay in seconds (doubled per retry, with jitter).
        backoff_max: cap of the retry delay in seconds.
        connection_limit: simultaneous connections of the session (0 = unlimited).
        trust_env: honour proxy settings from the environment (``HTTPS_PROXY``, ...).

    >>> transport = HTTPTransport(base_url="http://127.0.0.1:8000/v1", api_key="sk-secret",
    ...                           timeout=Timeout())
    >>> "sk-secret" in repr(transport)
    False
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        timeout: Timeout,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        verify_ssl: bool = True,
        max_event_bytes: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        connection_limit: int = 1000,
        trust_env: bool = False,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"base_url must be an absolute http(s) URL such as 'http://127.0.0.1:8000/v1', "
                f"not {redact(str(url.with_user(None) if url.is_absolute() else url), api_key)!r}"
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, not {max_retries!r}")
        if api_key and (url.user is not None or url.password is not None):
            # aiohttp would refuse at request time: one request cannot carry both credentials.
            raise ValueError(
                "base_url carries user:password credentials and an api_key is set as well; "
                "give one of them (the key goes in an 'Authorization: Bearer' header)"
            )
        if not isinstance(timeout, Timeout):
            raise TypeError(f"timeout must be a Timeout, not {timeout!r}; use Timeout.coerce()")
        if max_event_bytes is not None and max_event_bytes <= 0:
            raise ValueError(f"max_event_bytes must be > 0 or None, not {max_event_bytes!r}")
        self._base = str(url).rstrip("/")
        self._safe_base = redact(str(url.with_user(None)).rstrip("/"), api_key)
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self._default_headers = dict(default_headers or {})
        self._verify_ssl = verify_ssl
        self.max_event_bytes = max_event_bytes
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._connection_limit = connection_limit
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def base_url(self) -> str:
        """The API root, credentials in the URL left out."""
        return self._safe_base

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def __repr__(self) -> str:
        return (
            f"HTTPTransport(base_url={self._safe_base!r}, timeout={self.timeout!r}, "
            f"max_retries={self.max_retries})"
        )

    async def __aenter__(self) -> HTTPTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and every connection it holds (idempotent)."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use on the running loop."""
        if self._closed:
            raise RuntimeError("this rxchat transport (or its client) is closed")
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None:
            if self._loop is not loop:
                raise RuntimeError(
                    "this rxchat transport is bound to another event loop; create one client "
                    "per event loop"
                )
            return session
        connector = aiohttp.TCPConnector(
            limit=self._connection_limit,
            ssl=self._verify_ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=self._trust_env,
            auto_decompress=True,
            raise_for_status=False,
        )
        self._session = session
        self._loop = loop
        track_session(self, loop)  # closed at interpreter exit, forgotten after fork()
        return session

    def forget_inherited_session(self) -> None:
        """In a forked child: drop the parent's session without closing it (:mod:`rxchat._lifetime`)."""
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            abandon_session(session)

    def url(self, path: str) -> str:
        """``base_url + path``."""
        return self._base + (path if path.startswith("/") else "/" + path)

    def headers(self, extra: Mapping[str, str] | None, *, accept: str) -> dict[str, str]:
        """Request headers: ours, then ``default_headers``, then per-request ones."""
        headers = {
            "Accept": accept,
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self._default_headers)
        if extra:
            headers.update(extra)
        return headers

    def redact(self, text: str) -> str:
        """Remove the API key (and anything key-like) from a text."""
        return redact(text, self._api_key)

    def backoff(self, retry: int, headers: Mapping[str, str] | None) -> float:
        """Delay before retry number ``retry`` (0-based): the server's hint, else backoff."""
        if headers is not None:
            hint = _retry_after(headers)
            if hint is not None:
                return hint
        delay = min(self.backoff_max, self.backoff_base * (2.0**retry))
        return delay * (1.0 - 0.25 * random.random())

    def stream(
        self,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
    ) -> ChunkBatchStream:
        """A streamed request: nothing is sent until the stream is started or iterated.

        Args:
            path: appended to ``base_url`` (``"/chat/completions"``).
            body: the JSON body (``stream: true`` is the caller's business).
            headers: extra headers of this request.
            timeout: overrides the transport's timeout for this request.

        Returns:
            A :class:`ChunkBatchStream`.
        """
        return ChunkBatchStream(self, path, body, headers=headers, timeout=timeout or self.timeout)

    async def post_json(
        self,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
    ) -> dict[str, Any]:
        """A non-streamed request; returns the parsed JSON object of the response.

        Retries like :meth:`stream` (the whole exchange happens before any output exists).

        Raises:
            APIStatusError: (a subclass per status) the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached or the connection broke.
            APITimeoutError: a timeout expired.
            APIResponseValidationError: the answer is not a JSON object.
        """
        t = timeout or self.timeout
        url = self.url(path)
        payload = dumps_body(body)
        deadline = _deadline(t)
        retry = 0
        while True:
            error: RxChatError
            retry_headers: Mapping[str, str] | None = None
            try:
                session = self.session()
                async with session.post(
                    url,
                    data=payload,
                    headers=self._attempt_headers(headers, "application/json", retry),
                    timeout=_client_timeout(t, deadline),
                ) as resp:
                    log.debug(
                        "POST %s -> %d (attempt %d)", self._safe_url(path), resp.status, retry + 1
                    )
                    if resp.status >= 300:
                        error, retryable = await self._status_error(resp)
                        retry_headers = resp.headers
                    else:
                        raw = await resp.read()
                        try:
                            data = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            data = None
                        if not isinstance(data, dict):
                            text = raw[:500].decode("utf-8", "replace")
                            raise APIResponseValidationError(
                                f"the server's answer is not a JSON object: {self.redact(text)!r}",
                                body=text,
                            )
                        return data
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                error, retryable = self._connection_error(err, t, deadline, chunks=0)
            if not await self._before_retry(retryable, retry, error, retry_headers, deadline, path):
                raise error
            retry += 1

    # -- shared by post_json and ChunkBatchStream ------------------------------------------

    def _safe_url(self, path: str) -> str:
        return self._safe_base + (path if path.startswith("/") else "/" + path)

    def _attempt_headers(
        self, extra: Mapping[str, str] | None, accept: str, retry: int
    ) -> dict[str, str]:
        headers = self.headers(extra, accept=accept)
        headers["x-rxchat-retry-count"] = str(retry)
        return headers

    async def _status_error(self, resp: aiohttp.ClientResponse) -> tuple[APIStatusError, bool]:
        """Read (a bounded part of) an error body and build the typed error."""
        raw = bytearray()
        try:
            while len(raw) < _MAX_ERROR_BODY:
                part = await resp.content.readany()
                if not part:
                    break
                raw += part
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # the status is the error; a broken error body does not hide it
        text = self.redact(bytes(raw[:_MAX_ERROR_BODY]).decode("utf-8", "replace"))
        body: object
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = text or None
        status = resp.status
        cls = status_error_class(status)
        error = cls(
            self.redact(_status_message(status, resp.reason, body, text)),
            status_code=status,
            response=ResponseInfo(
                status=status,
                headers=resp.headers,
                url=self.redact(str(resp.url.with_user(None))),
            ),
            body=body,
            request_id=resp.headers.get("x-request-id"),
        )
        should = resp.headers.get("x-should-retry")
        if should == "true":
            retryable = True
        elif should == "false":
            retryable = False
        else:
            retryable = status in _RETRY_STATUSES or status >= 500
        return error, retryable

    def _connection_error(
        self, err: BaseException, t: Timeout, deadline: float | None, *, chunks: int
    ) -> tuple[APIConnectionError, bool]:
        """Map an aiohttp / OS error to ours; the bool says whether a retry may help."""
        after = f" after {chunks} chunks" if chunks else ""
        error: APIConnectionError
        if isinstance(err, aiohttp.ConnectionTimeoutError):
            error = APITimeoutError(f"connect timeout: no connection within {t.connect} s")
        elif isinstance(err, aiohttp.ServerTimeoutError):
            error = APITimeoutError(f"read timeout: the server sent nothing for {t.read} s{after}")
        elif isinstance(err, TimeoutError):
            if deadline is not None and time.monotonic() >= deadline - 0.001:
                error = APITimeoutError(f"total timeout of {t.total} s expired{after}")
            else:
                error = APITimeoutError(f"request timed out{after}")
        else:
            detail = self.redact(str(err)) or type(err).__name__
            if chunks:
                message = f"the connection broke{after}: {detail}"
            else:
                message = f"connection error ({self._safe_base}): {detail}"
            error = APIConnectionError(message)
        error.chunks_received = chunks
        error.__cause__ = err
        retryable = not isinstance(
            err, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError
        )
        return error, retryable

    async def _before_retry(
        self,
        retryable: bool,
        retry: int,
        error: RxChatError,
        headers: Mapping[str, str] | None,
        deadline: float | None,
        path: str,
    ) -> bool:
        """Sleep before the next attempt and return True, or return False to give up."""
        if not retryable or retry >= self.max_retries or self._closed:
            return False
        delay = self.backoff(retry, headers)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return False
        log.debug(
            "POST %s failed (%s: %s); retry %d of %d in %.3f s",
            self._safe_url(path),
            type(error).__name__,
            error.message,
            retry + 1,
            self.max_retries,
            delay,
        )
        await asyncio.sleep(delay)
        return True


def _deadline(t: Timeout) -> float | None:
    return None if t.total is None else time.monotonic() + t.total


def _client_timeout(t: Timeout, deadline: float | None) -> aiohttp.ClientTimeout:
    total = None
    if deadline is not None:
        total = deadline - time.monotonic()
        if total <= 0:
            raise TimeoutError("the total timeout expired")
    return aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=t.read)


def _redact_value(value: Any, redact_text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v, redact_text) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, redact_text) for v in value]
    return value


def _redact_error(err: RxChatError, redact_text: Callable[[str], str]) -> None:
    """Remove the API key from an error built out of the body (a server may echo the key)."""
    err.message = redact_text(err.message)
    err.args = (err.message,)
    raw = getattr(err, "raw", None)
    if isinstance(raw, str):
        err.raw = redact_text(raw)  # type: ignore[attr-defined]
    if isinstance(err, APIError) and err.body is not None:
        err.body = _redact_value(err.body, redact_text)
        info = err.body.get("error", err.body) if isinstance(err.body, dict) else None
        info = info if isinstance(info, dict) else {}
        err.code, err.param, err.type = info.get("code"), info.get("param"), info.get("type")


def _take_buffered(resp: aiohttp.ClientResponse) -> bytes:
    """The body bytes aiohttp received but had not handed out yet (empty when none)."""
    content = resp.content
    buffer = getattr(content, "_buffer", None)  # StreamReader's deque of received bytes
    if not buffer:
        return b""
    offset = getattr(content, "_buffer_offset", 0)
    data = b"".join(buffer)[offset:]
    buffer.clear()
    if offset:
        content._buffer_offset = 0
    return data


_NEW, _OPEN, _ENDED = 0, 1, 2
_FEED_SIZE = FEED_SIZE  # bytes decoded per batch at most


class ChunkBatchStream:
    """One streamed request, read as lists of chunks (one list per read, never empty).

    An async iterator and an async context manager. Entering the context (or the first
    ``__anext__``) sends the request, retrying failures that happen before the body begins;
    status errors are raised there. Then each iteration returns the chunks decoded from one read
    of the socket (a read larger than 8 KiB is decoded in 8 KiB slices, one list each). A fault
    in the body (invalid JSON, an ``error`` frame, a broken connection, a
    body without ``[DONE]`` or finish reason) first delivers the chunks decoded before it, then
    raises on the next iteration. ``data: [DONE]`` ends the iteration and the reading.

    :meth:`aclose` (also on leaving ``async with``, on cancellation of the reading task, and when
    the object is garbage collected) closes the TCP connection at once.

    Attributes:
        chunks_received: chunks delivered so far.
        response_headers: headers of the response once started, else ``None``.
        status_code: HTTP status once started, else ``None``.
        retries: how many retries the request needed.
    """

    __slots__ = (
        "__weakref__",
        "_body",
        "_deadline",
        "_decoder",
        "_extra_headers",
        "_idle_deadline",
        "_path",
        "_pending_error",
        "_pos",
        "_resp",
        "_rest",
        "_state",
        "_timeout",
        "_transport",
        "response_headers",
        "retries",
        "status_code",
    )

    def __init__(
        self,
        transport: HTTPTransport,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None,
        timeout: Timeout,
    ) -> None:
        self._transport = transport
        self._path = path
        self._body = body
        self._extra_headers = headers
        self._timeout = timeout
        self._decoder = ChunkDecoder(max_event_bytes=transport.max_event_bytes, request=body)
        self._resp: aiohttp.ClientResponse | None = None
        self._state = _NEW
        self._rest: bytes | None = None  # received, not decoded yet (from self._pos on)
        self._pos = 0
        self._pending_error: BaseException | None = None
        self._deadline: float | None = None
        self._idle_deadline: float | None = None  # model output must arrive before this
        self.response_headers: Mapping[str, str] | None = None
        self.status_code: int | None = None
        self.retries = 0

    @property
    def chunks_received(self) -> int:
        """Chunks decoded and delivered so far."""
        return self._decoder.chunks_received

    @property
    def keepalive_comments(self) -> int:
        """SSE comment lines (keep-alives) seen in the body so far."""
        return self._decoder.comments

    @property
    def request_id(self) -> str | None:
        """The ``x-request-id`` response header, when the server sent one."""
        headers = self.response_headers
        return None if headers is None else headers.get("x-request-id")

    def __repr__(self) -> str:
        state = ("new", "open", "ended")[self._state]
        return (
            f"<ChunkBatchStream POST {self._transport._safe_url(self._path)} {state} "
            f"chunks={self.chunks_received}>"
        )

    async def __aenter__(self) -> ChunkBatchStream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ChunkBatchStream:
        return self

    async def start(self) -> None:
        """Send the request (idempotent); returns once the body has begun.

        Raises:
            APIStatusError: the server answered 4xx/5xx (after the allowed retries).
            APIConnectionError: the server could not be reached.
            APITimeoutError: a connect, read or total timeout expired.
        """
        if self._state != _NEW:
            return
        try:
            await self._open()
        except BaseException:
            self._end(close=True)
            raise

    async def _open(self) -> None:
        tr = self._transport
        t = self._timeout
        path = self._path
        url = tr.url(path)
        payload = dumps_body(self._body)
        deadline = self._deadline = _deadline(t)
        retry = 0
        while True:
            error: RxChatError
            retryable = True
            retry_headers: Mapping[str, str] | None = None
            resp: aiohttp.ClientResponse | None = None
            try:
                session = tr.session()
                resp = await session.post(
                    url,
                    data=payload,
                    headers=tr._attempt_headers(self._extra_headers, "text/event-stream", retry),
                    timeout=_client_timeout(t, deadline),
                )
                log.debug(
                    "POST %s -> %d (attempt %d, stream)", tr._safe_url(path), resp.status, retry + 1
                )
                if resp.status >= 300:
                    try:
                        error, retryable = await tr._status_error(resp)
                    finally:
                        resp.release()
                    retry_headers = resp.headers
                else:
                    ctype = resp.headers.get("content-type", "")
                    if ctype.startswith("application/json"):
                        try:
                            await self._json_instead_of_stream(resp)
                        finally:
                            resp.close()
                    # Read the first bytes here: until the body has begun, a failure may be
                    # retried; afterwards never (the stream would be replayed).
                    first = await resp.content.readany()
                    self._resp = resp
                    self._rest = first  # decoded by the first __anext__
                    self._pos = 0
                    self._state = _OPEN
                    if t.idle is not None:
                        self._idle_deadline = asyncio.get_running_loop().time() + t.idle
                    self.status_code = resp.status
                    self.response_headers = resp.headers
                    self.retries = retry
                    return
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                if resp is not None:
                    resp.close()
                error, retryable = tr._connection_error(err, t, deadline, chunks=0)
            except BaseException:
                if resp is not None:
                    resp.close()
                raise
            if not await tr._before_retry(retryable, retry, error, retry_headers, deadline, path):
                raise error
            retry += 1

    async def _json_instead_of_stream(self, resp: aiohttp.ClientResponse) -> None:
        """A 2xx JSON answer to a streamed request: an error object, or a protocol break."""
        tr = self._transport
        raw = await resp.read()
        text = tr.redact(raw[:_MAX_ERROR_BODY].decode("utf-8", "replace"))
        try:
            body: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = text
        if isinstance(body, dict) and "error" in body:
            raise APIError(
                tr.redact(_status_message(resp.status, resp.reason, body, text)), body=body
            )
        raise APIResponseValidationError(
            "expected a text/event-stream body for a streamed request, got application/json: "
            + (text if len(text) <= 200 else text[:200] + "..."),
            body=body,
        )

    async def __anext__(self) -> list[ChatCompletionChunk]:
        if self._state != _OPEN:
            if self._state == _NEW:
                await self.start()
            else:
                err = self._pending_error
                if err is not None:
                    self._pending_error = None
                    raise err
                raise StopAsyncIteration
        resp = self._resp
        assert resp is not None
        decoder = self._decoder
        read = resp.content.readany if self._idle_deadline is None else self._read_before_idle
        try:
            while True:
                data = self._rest
                if data is None:
                    data = await read()
                    if len(data) > _FEED_SIZE:
                        self._rest = data
                        self._pos = 0
                if self._rest is not None:
                    # A large read is decoded in slices: each batch stays small, so its chunk
                    # objects die young instead of surviving garbage-collector passes
                    # (measured: about half the CPU per chunk on fast streams).
                    pos = self._pos
                    end = pos + _FEED_SIZE
                    if end >= len(data):
                        self._rest = None
                        if pos:
                            data = data[pos:]
                    else:
                        self._pos = end
                        data = data[pos:end]
                if not data:  # end of body
                    self._end(close=False)
                    decoder.close()  # raises IncompleteStreamError on a truncated stream
                    raise StopAsyncIteration
                chunks = decoder.feed(data)
                if decoder.done or decoder.error is not None:
                    return self._last_batch(chunks)
                if chunks:
                    if self._idle_deadline is not None:
                        # The next wait for output starts when we next wait on the network:
                        # the consumer's own time between batches is not the model's silence.
                        self._idle_deadline = -1.0
                    return chunks
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            # aiohttp raises a broken connection's error before handing out the bytes it had
            # already buffered (a FIN right behind the last chunks, read while the consumer was
            # busy): decode them first, so nothing that was received is lost.
            rest = _take_buffered(resp)
            self._end(close=True)
            chunks = decoder.feed(rest) if rest else []
            if decoder.done or decoder.error is not None:
                return self._last_batch(chunks)
            error, _ = self._transport._connection_error(
                err, self._timeout, self._deadline, chunks=decoder.chunks_received
            )
            if chunks:
                error.__cause__ = err
                self._pending_error = error
                return chunks
            raise error from err
        except RuntimeError as err:  # aiohttp: "Connection closed." (the client was closed)
            self._end(close=True)
            if isinstance(err, RxChatError):  # ours derive from RuntimeError too
                raise
            n = decoder.chunks_received
            raise APIConnectionError(
                f"the connection was closed after {n} chunks: {err}", chunks_received=n
            ) from err
        except BaseException:
            # Cancellation, a decoder error, StopAsyncIteration: the connection goes now.
            self._end(close=True)
            raise

    async def _read_before_idle(self) -> bytes:
        """Read on, but no longer than the idle deadline: only chunks move it, not keep-alives."""
        resp = self._resp
        deadline = self._idle_deadline
        idle = self._timeout.idle
        assert resp is not None and deadline is not None and idle is not None
        if deadline < 0:
            deadline = self._idle_deadline = asyncio.get_running_loop().time() + idle
        try:
            async with asyncio.timeout_at(deadline):
                return await resp.content.readany()
        except TimeoutError:
            n = self._decoder.chunks_received
            raise IdleTimeoutError(
                f"no model output for {idle} s after {n} chunks "
                f"({self._decoder.comments} keep-alive comments do not count)",
                chunks_received=n,
            ) from None

    def _last_batch(self, chunks: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        decoder = self._decoder
        error = decoder.error
        # [DONE] cleanly: the connection may go back to the pool when the body has ended.
        self._end(close=error is not None)
        if error is not None:
            _redact_error(error, self._transport.redact)
            if not chunks:
                raise error
            self._pending_error = error
        if not chunks:
            raise StopAsyncIteration
        return chunks

    def _end(self, *, close: bool) -> None:
        self._state = _ENDED
        self._rest = None
        resp, self._resp = self._resp, None
        if resp is not None:
            if close:
                resp.close()
            else:
                resp.release()

    def abort(self) -> None:
        """Close the connection now, synchronously (for disposal callbacks)."""
        if self._state != _ENDED:
            self._pending_error = None
            self._end(close=True)

    async def aclose(self) -> None:
        """Stop reading and close the connection at once (idempotent)."""
        self.abort()

    def __del__(self) -> None:
        resp = self._resp
        if resp is None:
            return
        self._resp = None
        try:
            loop = self._transport._loop
            if loop is None or loop.is_closed():
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                resp.close()
            else:
                loop.call_soon_threadsafe(resp.close)
        except Exception:  # a finalizer must not raise
            pass
