"""HTTP transport: one aiohttp session per client, streamed chat completions as chunk batches.

The transport sends ``POST base_url + path``, maps failures to :mod:`rxchat.errors`, retries
what is safe to retry (only before the status line of a 2xx answer: a stream that began, or an
answer the server may have generated, is never sent again), applies the timeouts of each phase,
bounds every body it reads, and turns a streamed body into lists of
:class:`~rxchat.types.ChatCompletionChunk` — one list per socket read — through the sans-I/O
:class:`~rxchat._decode.ChunkDecoder`.

Seams: :meth:`HTTPTransport._exchange` is the one attempt loop of every request kind (status
errors, retries with the policy of :mod:`rxchat._retry`, re-sending a request that met a pooled
connection the server had closed, redirects); :func:`map_error` is the one table that turns
aiohttp's and the OS's exceptions into rxchat's; errors are built from redacted text
(:mod:`rxchat._redact`); aiohttp internals are reached through :mod:`rxchat._compat` only.

Cancellation closes the TCP connection at once: cancelling the task that reads, ``aclose()``,
leaving ``async with``, or dropping the stream object. Closing the transport wakes every reader
still waiting for bytes with :class:`~rxchat.APIConnectionError`. The API key goes into the
``Authorization`` header and nowhere else (not in errors, reprs or log lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel
from yarl import URL

from . import _retry
from ._chunk_decoder import FEED_SIZE, ChunkDecoder
from ._compat import (
    HTTP_PROCESSING_ERRORS,
    close_connector_now,
    fail_reader,
    on_connection_lost,
    take_buffered,
)
from ._config import DEFAULT_TIMEOUT, BaseURL, QueryValue, Timeout, is_credential_name
from ._inflate import ACCEPT_ENCODING, BodyReader, Inflater, body_reader
from ._lifetime import abandon_session, exiting_loops, track_session
from ._redact import Redactor
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    IdleTimeoutError,
    RxChatError,
    status_error_class,
)
from .types import ChatCompletionChunk

_URL_MASK = "rxchatmaskedvalue"  # stands for a masked query value, never percent-encoded

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_ERROR_BODY",
    "ChunkBatchStream",
    "HTTPTransport",
    "ResponseInfo",
    "Timeout",
    "map_error",
]

log = logging.getLogger("rxchat")

_USER_AGENT = f"rxchat/{__version__}"

MAX_ERROR_BODY = 1 << 20
"""Bytes of an error body (4xx/5xx, or a JSON answer to a streamed request) read and kept."""
DEFAULT_MAX_RESPONSE_BYTES = 32 << 20
"""Bytes of a non-streamed JSON answer (after decompression) read at most by default."""
DEFAULT_MAX_EVENT_BYTES = 64 << 20
"""Bytes of one SSE event at most when ``max_event_bytes`` is not given."""

_MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_MAX_STALE_RESENDS = 10  # re-sends after pooled connections the server had closed, per request

# Kept importable under their historical names.
_retry_after = _retry.parse_retry_after
_MAX_ERROR_BODY = MAX_ERROR_BODY


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What an error keeps of the HTTP response: status, headers (secrets removed) and URL."""

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


# -- the error table ----------------------------------------------------------------------------


class PhaseTimeout(TimeoutError):
    """One of rxchat's own phase deadlines expired (the response head, a whole body)."""

    def __init__(self, phase: str, seconds: float | None) -> None:
        super().__init__(f"{phase} did not arrive within {seconds} s")
        self.phase = phase
        self.seconds = seconds


# aiohttp's parser errors print as "400, message='...'" (str) or "<TransferEncodingError: 400,
# message='...'>" (repr, inside ClientPayloadError's text): the 400 is the parser's, not the
# server's status, so only the message is kept.
_PARSER_REPR = re.compile(r"<\w+: \d{3}, message=(['\"])(.*?)\1>", re.S)
_PARSER_STR = re.compile(r"^\d{3}, message[:=]\s*(.*)$", re.S)

# kind, whether retrying may help. The first matching class wins: subclasses first.
_ERROR_TABLE: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], str, bool], ...
] = (
    (PhaseTimeout, "phase-timeout", True),
    (aiohttp.ConnectionTimeoutError, "connect-timeout", True),
    (aiohttp.ServerTimeoutError, "read-timeout", True),
    (TimeoutError, "timeout", True),
    (aiohttp.ClientConnectorCertificateError, "tls", False),
    (aiohttp.ClientSSLError, "tls", False),
    (aiohttp.ClientConnectorError, "connect", True),
    (aiohttp.ServerDisconnectedError, "disconnected", True),
    (aiohttp.ClientPayloadError, "payload", True),
    (aiohttp.TooManyRedirects, "malformed-head", False),
    (aiohttp.ClientResponseError, "malformed-head", True),
    (HTTP_PROCESSING_ERRORS, "malformed", True),
    (aiohttp.ClientOSError, "os", True),
    (aiohttp.ClientConnectionError, "connection", True),
    (aiohttp.ClientError, "client", True),
    (OSError, "os", True),
)

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    aiohttp.ClientError,
    OSError,
    *HTTP_PROCESSING_ERRORS,
)
"""What a request or a read can raise that :func:`map_error` turns into an rxchat error."""


def _kind(err: BaseException) -> tuple[str, bool]:
    for cls, kind, retryable in _ERROR_TABLE:
        if isinstance(err, cls):
            return kind, retryable
    return "client", True


def _detail(err: BaseException) -> str:
    """What went wrong, in aiohttp's words, without the "400, message=" of a parser error.

    aiohttp reports a malformed response as an ``HttpProcessingError`` whose ``str`` starts
    with a status (``"400, message='Not enough data...'"``) although the server may have
    answered 200: that status is the parser's, never the server's.
    """
    message = getattr(err, "message", None)
    if isinstance(err, (aiohttp.ClientResponseError, *HTTP_PROCESSING_ERRORS)) and isinstance(
        message, str
    ):
        text = message
    elif isinstance(err, aiohttp.ServerDisconnectedError):
        text = "the server closed the connection"
        if not isinstance(message, str) and message is not None:
            text += " in the middle of the response head"
    else:
        text = _PARSER_REPR.sub(lambda m: m.group(2), str(err))
    found = _PARSER_STR.match(text)
    if found:
        text = found.group(1).strip().strip("'\"")
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:300] + f"... ({len(text)} chars)"
    return text or type(err).__name__


def map_error(
    err: BaseException,
    *,
    timeout: Timeout,
    deadline: float | None,
    chunks: int,
    where: str,
    redactor: Redactor,
) -> tuple[APIConnectionError, bool]:
    """aiohttp's / the OS's ``err`` as an rxchat error (already redacted), and whether a retry may help.

    ``where`` names the request for a message (the base URL without credentials). The error's
    ``__cause__`` is ``err``, scrubbed of secrets in place (its ``request_info`` keeps the
    request headers).
    """
    kind, retryable = _kind(err)
    after = f" after {chunks} chunks" if chunks else ""
    error: APIConnectionError
    if kind == "phase-timeout":
        assert isinstance(err, PhaseTimeout)
        error = APITimeoutError(
            f"read timeout: {err.phase} did not arrive within {err.seconds} s{after}"
        )
    elif kind == "connect-timeout":
        error = APITimeoutError(f"connect timeout: no connection within {timeout.connect} s")
    elif kind == "read-timeout":
        error = APITimeoutError(
            f"read timeout: the server sent nothing for {timeout.read} s{after}"
        )
    elif kind == "timeout":
        if deadline is not None and time.monotonic() >= deadline - 0.001:
            error = APITimeoutError(f"total timeout of {timeout.total} s expired{after}")
        else:
            error = APITimeoutError(f"request timed out{after}")
    else:
        detail = redactor.text(_detail(err))
        if kind in ("malformed", "payload") and not chunks:
            detail = f"malformed response body: {detail}"
        elif kind == "malformed-head":
            detail = f"malformed response head: {detail}"
        if chunks:
            message = f"the connection broke{after}: {detail}"
        else:
            message = f"connection error ({where}): {detail}"
        error = APIConnectionError(message)
    error.chunks_received = chunks
    redactor.scrub(err)
    error.__cause__ = err
    return error, retryable


def _stale(err: BaseException) -> bool:
    """Whether ``err``, met on a reused connection before any response byte, means "closed idle".

    The server closed a pooled keep-alive connection (llama.cpp's server does after each
    answer) and the request went out on it: the write fails, or the read sees the FIN with
    nothing before it. A partial status line (``ServerDisconnectedError.message`` holding the
    parsed part) is an answer, not a stale connection.
    """
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return err.message is None or isinstance(err.message, str)
    return isinstance(err, aiohttp.ClientOSError | ConnectionError) and not isinstance(
        err, aiohttp.ClientConnectorError
    )


async def _mark_reused(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    attempt = getattr(context, "trace_request_ctx", None)
    if isinstance(attempt, _Attempt):
        attempt.reused = True


class _Attempt:
    """Per-attempt facts gathered by aiohttp's tracing (public API): was the connection pooled."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


def _same_origin(a: URL, b: URL) -> bool:
    return a.scheme == b.scheme and a.host == b.host and a.port == b.port


async def _read_bounded(content: BodyReader, limit: int) -> tuple[bytearray, bool]:
    """Read a body to its end but no more than ``limit`` bytes: (data, whether it was cut).

    One growing buffer (no list of parts joined at the end): the peak memory stays near the
    limit even when a compressed body inflates far past it.
    """
    data = bytearray()
    while True:
        part = await content.readany()
        if not part:
            return data, False
        room = limit - len(data)
        if len(part) > room:
            data += part[:room]
            return data, True
        data += part


def _deadline(t: Timeout) -> float | None:
    return None if t.total is None else time.monotonic() + t.total


def _client_timeout(t: Timeout, deadline: float | None) -> aiohttp.ClientTimeout:
    total = None
    if deadline is not None:
        total = deadline - time.monotonic()
        if total <= 0:
            raise TimeoutError("the total timeout expired")
    return aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=t.read)


def _head_seconds(t: Timeout) -> float | None:
    """The bound of connecting + waiting for the whole response head (status line, headers)."""
    if t.read is None:
        return None
    return t.read + (t.connect or 0.0)


class HTTPTransport:
    """The HTTP layer of one client: a lazily created aiohttp session, retries and timeouts.

    The session is created on the event loop that first uses the transport and stays bound to
    it. Close the transport with :meth:`aclose` (or ``async with``): streams still reading then
    raise :class:`~rxchat.APIConnectionError` at once.

    Args:
        base_url: the API root including ``/v1``, e.g. ``"http://127.0.0.1:8000/v1"``; a query
            (Azure's ``?api-version=...``) is kept and sent with every request.
        api_key: sent as ``Authorization: Bearer ...``; ``None`` sends no Authorization header.
        timeout: default :class:`Timeout` of each request.
        max_retries: retries of a request that failed before the status line of a 2xx answer
            (connection errors, timeouts, 408, 409, 429, 5xx).
        default_headers: extra headers sent with every request.
        default_query: query parameters added to every request's URL (as in the OpenAI SDK).
        verify_ssl: verify TLS certificates (keep it on; ``False`` is an explicit opt-out).
        max_event_bytes: bound on one SSE event (``EventTooLargeError`` beyond); default 64 MiB.
        max_response_bytes: bound on a non-streamed JSON answer; default 32 MiB.
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
        default_query: Mapping[str, QueryValue] | None = None,
        verify_ssl: bool = True,
        max_event_bytes: int | None = None,
        max_response_bytes: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        connection_limit: int = 1000,
        trust_env: bool = False,
    ) -> None:
        try:
            base = BaseURL.parse(base_url, default_query)
        except ValueError as err:
            # The message shows the URL: take every secret out of it first.
            raise ValueError(Redactor([api_key, *_url_secrets(base_url)]).text(str(err))) from None
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, not {max_retries!r}")
        if api_key and (base.user is not None or base.password is not None):
            # aiohttp would refuse at request time: one request cannot carry both credentials.
            raise ValueError(
                "base_url carries user:password credentials and an api_key is set as well; "
                "give one of them (the key goes in an 'Authorization: Bearer' header)"
            )
        if not isinstance(timeout, Timeout):
            raise TypeError(f"timeout must be a Timeout, not {timeout!r}; use Timeout.coerce()")
        for name, limit in (
            ("max_event_bytes", max_event_bytes),
            ("max_response_bytes", max_response_bytes),
        ):
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0
            ):
                raise ValueError(f"{name} must be an integer > 0 or None, not {limit!r}")
        self._url = base
        self._api_key = api_key
        self._default_headers = dict(default_headers or {})
        self._redactor = Redactor.for_transport(
            api_key=api_key,
            user=base.user,
            password=base.password,
            headers=self._default_headers,
            extra=base.secrets(),
        )
        self._safe_base = base.safe()
        self.timeout = timeout
        self.max_retries = max_retries
        self._verify_ssl = verify_ssl
        self.max_event_bytes = (
            DEFAULT_MAX_EVENT_BYTES if max_event_bytes is None else max_event_bytes
        )
        self.max_response_bytes = (
            DEFAULT_MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes
        )
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._connection_limit = connection_limit
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._open: weakref.WeakSet[ChunkBatchStream] = weakref.WeakSet()
        self._reading: set[aiohttp.ClientResponse] = set()  # whole bodies being read

    @property
    def base_url(self) -> str:
        """The API root, credentials in the URL left out."""
        return self._safe_base

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the session is bound to (``None`` before the first request)."""
        return self._loop

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
        """Close the session and every connection it holds (idempotent).

        A stream still reading raises :class:`~rxchat.APIConnectionError` at once (after the
        chunks already received), whichever task or thread closed the transport.
        """
        self._closed = True
        self._interrupt_streams()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def close_now(self) -> None:
        """Close synchronously, without awaiting (a finalizer's close; prefer :meth:`aclose`).

        Call it on the transport's loop or when that loop no longer runs.
        """
        self._closed = True
        self._interrupt_streams()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            if not close_connector_now(session.connector):
                loop = self._loop
                if loop is not None and not loop.is_closed():
                    loop.create_task(session.close())

    def close_nowait(self) -> None:
        """Close from any thread without awaiting: the finalizer of an unclosed client.

        ``ClientSession.close()`` is a coroutine, and a finalizer may run after its loop
        stopped: this closes synchronously (:meth:`close_now`) when called on the transport's
        loop or when that loop no longer runs, else on the loop, leaving no unclosed-session or
        unclosed-connector warning behind.
        """
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or running is loop or not loop.is_running():
            self.close_now()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.close_now)

    def _interrupt_streams(self) -> None:
        if self._loop is not None and self._loop in exiting_loops:
            return  # interpreter exit: waiting readers stay blocked quietly (rxchat._lifetime)
        for resp in list(self._reading):
            fail_reader(resp.content, self._closed_error())
        for stream in list(self._open):
            stream.interrupt(
                APIConnectionError(
                    "the client was closed while the stream was waiting for data "
                    f"(after {stream.chunks_received} chunks)",
                    chunks_received=stream.chunks_received,
                )
            )

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use on the running loop.

        Raises:
            APIConnectionError: the transport (its client) is closed.
        """
        if self._closed:
            raise APIConnectionError("this rxchat transport (or its client) is closed")
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
        trace = aiohttp.TraceConfig()
        trace.on_connection_reuseconn.append(_mark_reused)
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=self._trust_env,
            # Bodies are inflated by rxchat in bounded pieces (rxchat._inflate), never by
            # aiohttp in one go: a small gzip bomb could otherwise fill memory before any limit.
            auto_decompress=False,
            raise_for_status=False,
            trace_configs=[trace],
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
        """``base_url + path`` (with the base URL's query and ``default_query``)."""
        return str(self._url.url(path))

    def headers(self, extra: Mapping[str, str] | None, *, accept: str) -> dict[str, str]:
        """Request headers: ours, then ``default_headers``, then per-request ones."""
        headers = {
            "Accept": accept,
            "Accept-Encoding": ACCEPT_ENCODING,
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
        """Remove every spelling of the transport's secrets (API key, URL password) from a text."""
        return self._redactor.text(text)

    def backoff(self, retry: int, headers: Mapping[str, str] | None) -> float:
        """Delay before retry number ``retry`` (0-based): the server's hint, else backoff."""
        return _retry.delay(retry, headers, base=self.backoff_base, cap=self.backoff_max)

    def stream(
        self,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
        query: Mapping[str, str] | None = None,
    ) -> ChunkBatchStream:
        """A streamed request: nothing is sent until the stream is started or iterated.

        Args:
            path: appended to ``base_url`` (``"/chat/completions"``).
            body: the JSON body (``stream: true`` is the caller's business).
            headers: extra headers of this request.
            timeout: overrides the transport's timeout for this request.
            query: extra query parameters of this request (after ``default_query``).

        Returns:
            A :class:`ChunkBatchStream`.
        """
        return ChunkBatchStream(
            self, path, body, headers=headers, timeout=timeout or self.timeout, query=query
        )

    async def post_json(
        self,
        path: str,
        body: dict[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A non-streamed request; returns the parsed JSON object of the response.

        Retries like :meth:`stream`, until the status line of a 2xx answer arrived; the body is
        then read whole within the read timeout and ``max_response_bytes``, never re-sent.

        Raises:
            APIStatusError: (a subclass per status) the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached or the connection broke.
            APITimeoutError: a timeout expired.
            APIResponseValidationError: the answer is not a JSON object, or is too large.
        """
        t = timeout or self.timeout
        deadline = _deadline(t)
        resp, _ = await self._exchange(
            path, body, headers, "application/json", t, deadline, query
        )
        try:
            raw, cut = await self._read_whole(resp, self.max_response_bytes, t, "the JSON answer")
        except BaseException as err:
            resp.close()
            if isinstance(err, NETWORK_ERRORS):
                raise self._map(err, t, deadline)[0] from err
            raise
        resp.release()
        if cut:
            raise APIResponseValidationError(
                f"the server's answer is larger than max_response_bytes={self.max_response_bytes}"
                " (after decompression); reading stopped there",
                body=None,
            )
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            text = self.redact(raw[:500].decode("utf-8", "replace"))
            raise APIResponseValidationError(
                f"the server's answer is not a JSON object: {text!r}", body=text
            )
        return data

    # -- the attempt loop, shared by post_json and ChunkBatchStream ---------------------------

    async def _exchange(
        self,
        path: str,
        body: Mapping[str, Any],
        extra_headers: Mapping[str, str] | None,
        accept: str,
        t: Timeout,
        deadline: float | None,
        query: Mapping[str, str] | None = None,
    ) -> tuple[aiohttp.ClientResponse, int]:
        """Send until a 2xx status line and headers arrived; returns the response and the retries.

        * A 4xx/5xx answer is read (bounded) into its typed error, retried when the policy says
          so (:mod:`rxchat._retry`), else raised.
        * A failure before the status line — connecting, sending, waiting for the head — is
          retried up to ``max_retries`` times with backoff; not one that happened after it.
        * A failure on a *reused* pooled connection before any response byte (the server had
          closed it while idle) is re-sent at once on another connection: no backoff, not
          counted as a retry.
        * A 307/308 redirect within the same origin (scheme, host, port) is followed with the
          same method and body (5 at most); any other redirect is raised as an
          :class:`~rxchat.APIStatusError`, so nothing is ever sent to another origin.
        """
        url = self._url.url(path, query)
        payload = dumps_body(body)
        retry = resends = redirects = 0
        while True:
            error: RxChatError
            retryable = True
            retry_headers: Mapping[str, str] | None = None
            attempt = _Attempt()
            try:
                resp = await self._send(
                    url, payload, extra_headers, accept, retry, t, deadline, attempt
                )
            except NETWORK_ERRORS as err:
                if self._closed:
                    raise self._closed_error() from None
                if attempt.reused and resends < _MAX_STALE_RESENDS and _stale(err):
                    resends += 1
                    log.debug(
                        "POST %s: the pooled connection was closed by the server (%s); "
                        "sending again on another connection",
                        self._safe_url(path),
                        type(err).__name__,
                    )
                    continue
                error, retryable = self._map(err, t, deadline)
            else:
                status = resp.status
                log.debug(
                    "POST %s -> %d (attempt %d%s)",
                    self._safe_url(path),
                    status,
                    retry + 1,
                    ", stream" if accept == "text/event-stream" else "",
                )
                if status < 300:
                    return resp, retry
                if status in _REDIRECT_STATUSES:
                    target = self._redirect_target(resp, url)
                    resp.release()
                    if target is not None and status in (307, 308) and redirects < _MAX_REDIRECTS:
                        redirects += 1
                        url = target
                        continue
                    raise self._redirect_error(resp, target, redirects)
                try:
                    error, retryable = await self._status_error(resp, t)
                finally:
                    resp.release()
                retry_headers = resp.headers
            if not await self._before_retry(retryable, retry, error, retry_headers, deadline, path):
                raise error
            retry += 1

    async def _send(
        self,
        url: URL,
        payload: bytes,
        extra_headers: Mapping[str, str] | None,
        accept: str,
        retry: int,
        t: Timeout,
        deadline: float | None,
        attempt: _Attempt,
    ) -> aiohttp.ClientResponse:
        """One attempt, up to a complete response head within the head bound."""
        session = self.session()
        request = session.post(
            url,
            data=payload,
            headers=self._attempt_headers(extra_headers, accept, retry),
            timeout=_client_timeout(t, deadline),
            allow_redirects=False,
            trace_request_ctx=attempt,
        )
        seconds = _head_seconds(t)
        cm = asyncio.timeout(seconds)
        try:
            async with cm:
                return await request
        except TimeoutError as err:
            if cm.expired():
                raise PhaseTimeout("the response head (status line and headers)", t.read) from err
            raise
        except asyncio.CancelledError:
            # aiohttp cancels the requests waiting for a free connection when the client is
            # closed: that is not a cancellation of the caller's task, and must not look like one.
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                raise self._closed_error() from None
            raise

    async def _read_whole(
        self, resp: aiohttp.ClientResponse, limit: int, t: Timeout, what: str
    ) -> tuple[bytearray, bool]:
        """A whole body, within the read timeout (the whole body, not between bytes) and ``limit``.

        Closing the transport, or losing the connection without aiohttp waking the reader,
        raises :class:`~rxchat.APIConnectionError` here at once.
        """
        content = resp.content
        reader = body_reader(resp)  # APIResponseValidationError: an encoding we do not decode

        def lost() -> None:
            if not content.is_eof() and content.exception() is None:
                fail_reader(
                    content, APIConnectionError(f"the connection was lost while reading {what}")
                )

        self._reading.add(resp)
        unwatch = on_connection_lost(resp, lost)
        cm = asyncio.timeout(t.read)
        try:
            async with cm:
                return await _read_bounded(reader, limit)
        except TimeoutError as err:
            if cm.expired():
                raise PhaseTimeout(what, t.read) from err
            raise
        finally:
            self._reading.discard(resp)
            if unwatch is not None:
                unwatch()

    def _map(
        self, err: BaseException, t: Timeout, deadline: float | None, *, chunks: int = 0
    ) -> tuple[APIConnectionError, bool]:
        return map_error(
            err,
            timeout=t,
            deadline=deadline,
            chunks=chunks,
            where=self._safe_base,
            redactor=self._redactor,
        )

    def _closed_error(self) -> APIConnectionError:
        return APIConnectionError("the client was closed before the answer arrived")

    def _safe_url(self, path: str) -> str:
        return self._url.safe(path)

    def _attempt_headers(
        self, extra: Mapping[str, str] | None, accept: str, retry: int
    ) -> dict[str, str]:
        headers = self.headers(extra, accept=accept)
        headers["x-rxchat-retry-count"] = str(retry)
        return headers

    def _redirect_target(self, resp: aiohttp.ClientResponse, url: URL) -> URL | None:
        """Where a redirect points, when it stays in the origin of ``url`` (else None)."""
        location = resp.headers.get("Location")
        if not location:
            return None
        try:
            target = url.join(URL(location))
        except (ValueError, TypeError):
            return None
        return target if _same_origin(url, target) else None

    def _redirect_error(
        self, resp: aiohttp.ClientResponse, target: URL | None, redirects: int
    ) -> APIStatusError:
        location = resp.headers.get("Location") or ""
        try:
            where = resp.url.join(URL(location)) if location else None
            shown = "nowhere" if where is None else str(where.with_user(None).with_query(None))
        except (ValueError, TypeError):
            shown = "an invalid location"
        if redirects >= _MAX_REDIRECTS and target is not None:
            why = f"more than {_MAX_REDIRECTS} redirects"
        elif target is None and location:
            why = "rxchat does not follow redirects to another origin (scheme, host and port)"
        else:
            why = "rxchat follows only 307/308 redirects, which keep the method and the body"
        message = self.redact(
            f"the server redirected ({resp.status}) to {shown}: {why}, so that the request and "
            "its credentials never go elsewhere; set base_url to the address that answers"
        )
        status = resp.status
        return status_error_class(status)(
            message,
            status_code=status,
            response=self._response_info(resp),
            body=None,
            request_id=resp.headers.get("x-request-id"),
        )

    def _response_info(self, resp: aiohttp.ClientResponse) -> ResponseInfo:
        return ResponseInfo(
            status=resp.status,
            headers=self._redactor.headers(resp.headers),
            url=self._shown_url(resp.url),
        )

    def _shown_url(self, url: URL) -> str:
        """A response URL as errors show it: no user info, credential-like query values masked
        (a per-call ``extra_query`` can hold one the transport does not know)."""
        url = url.with_user(None)
        if any(is_credential_name(name) for name in url.query):
            url = url.with_query(
                [(k, _URL_MASK if is_credential_name(k) else v) for k, v in url.query.items()]
            )
        return self.redact(str(url)).replace(_URL_MASK, "***")

    async def _status_error(
        self, resp: aiohttp.ClientResponse, t: Timeout
    ) -> tuple[APIStatusError, bool]:
        """Read (a bounded part of) an error body, within the read timeout, into the typed error."""
        try:
            raw, _ = await self._read_whole(resp, MAX_ERROR_BODY, t, "the error body")
        except _ERROR_BODY_ERRORS:
            raw = bytearray()  # the status is the error; a broken or endless body does not hide it
        text = self.redact(raw.decode("utf-8", "replace"))
        body: object
        try:
            body = self._redactor.value(orjson.loads(text))
        except orjson.JSONDecodeError:
            body = text or None
        status = resp.status
        cls = status_error_class(status)
        error = cls(
            self.redact(_status_message(status, resp.reason, body, text)),
            status_code=status,
            response=self._response_info(resp),
            body=body,
            request_id=resp.headers.get("x-request-id"),
        )
        return error, _retry.should_retry_status(status, resp.headers)

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


def _url_secrets(base_url: str) -> list[str]:
    try:
        url = URL(base_url)
    except (ValueError, TypeError):
        return []
    return [url.password] if url.password else []


def _redact_error(err: RxChatError, redactor: Redactor) -> None:
    """Remove the secrets from an error the decoder built out of the body (a server may echo them)."""
    if not redactor:
        return
    err.message = redactor.text(err.message)
    err.args = (err.message,)
    raw = getattr(err, "raw", None)
    if isinstance(raw, str):
        err.raw = redactor.text(raw)  # type: ignore[attr-defined]
    if isinstance(err, APIError) and err.body is not None:
        err.body = redactor.value(err.body)
        info = err.body.get("error", err.body) if isinstance(err.body, dict) else None
        info = info if isinstance(info, dict) else {}
        err.code, err.param, err.type = info.get("code"), info.get("param"), info.get("type")
    redactor.scrub(err.__cause__)
    redactor.scrub(err.__context__)


_NEW, _OPEN, _ENDED = 0, 1, 2
_FEED_SIZE = FEED_SIZE  # bytes decoded per batch at most
_READ_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, APIConnectionError)
# An error body that breaks off, never ends or comes in an encoding rxchat does not decode: the
# status is the error, the body is left out.
_ERROR_BODY_ERRORS: tuple[type[BaseException], ...] = (*NETWORK_ERRORS, APIResponseValidationError)


class ChunkBatchStream:
    """One streamed request, read as lists of chunks (one list per read, never empty).

    An async iterator and an async context manager. Entering the context (or the first
    ``__anext__``) sends the request, retrying failures that happen before the status line of
    a 2xx answer; status errors are raised there. Then each iteration returns the chunks
    decoded from one read of the socket (a read larger than 8 KiB is decoded in 8 KiB slices,
    one list each). A fault in the body (invalid JSON, an ``error`` frame, a broken connection,
    a body without ``[DONE]`` or finish reason) first delivers the chunks decoded before it,
    then raises on the next iteration. ``data: [DONE]`` ends the iteration and the reading.

    :meth:`aclose` (also on leaving ``async with``, on cancellation of the reading task, and when
    the object is garbage collected) closes the TCP connection at once. Closing the transport,
    or the connection dropping under a reader that aiohttp would not wake, raises
    :class:`~rxchat.APIConnectionError` in the waiting reader.

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
        "_lost_watch",
        "_path",
        "_pending_error",
        "_pos",
        "_query",
        "_reader",
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
        query: Mapping[str, str] | None = None,
    ) -> None:
        self._transport = transport
        self._path = path
        self._body = body
        self._extra_headers = headers
        self._query = query
        self._timeout = timeout
        self._decoder = ChunkDecoder(max_event_bytes=transport.max_event_bytes, request=body)
        self._resp: aiohttp.ClientResponse | None = None
        self._state = _NEW
        self._rest: bytes | None = None  # received, not decoded yet (from self._pos on)
        self._reader: BodyReader | None = None  # the body, inflated when it is compressed
        self._pos = 0
        self._pending_error: BaseException | None = None
        self._deadline: float | None = None
        self._idle_deadline: float | None = None  # model output must arrive before this
        self._lost_watch: Callable[[], None] | None = None
        self.response_headers: Mapping[str, str] | None = None
        self.status_code: int | None = None
        self.retries = 0

    @property
    def chunks_received(self) -> int:
        """Chunks decoded and delivered so far."""
        return self._decoder.chunks_received

    @property
    def payloads(self) -> list[str | None]:
        """The JSON text of each chunk of the batch last returned, exactly as the server sent it
        (``None`` for a chunk the decoder amended); see :attr:`ChunkDecoder.payloads`."""
        return self._decoder.payloads

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
        deadline = self._deadline = _deadline(t)
        resp, self.retries = await tr._exchange(
            self._path, self._body, self._extra_headers, "text/event-stream", t, deadline, self._query
        )
        # From here on the request is never sent again: the server answered 2xx.
        self._resp = resp
        self.status_code = resp.status
        self.response_headers = resp.headers
        tr._open.add(self)  # from here on, closing the client wakes this stream's reader
        self._watch_connection(resp)
        try:
            ctype = resp.headers.get("content-type", "")
            if ctype.lower().lstrip().startswith("application/json"):
                await self._json_instead_of_stream(resp)
            # Read the first bytes here: start() returns once the body has begun.
            reader = self._reader = body_reader(resp)
            first = await reader.readany()
        except NETWORK_ERRORS as err:
            raise tr._map(err, t, deadline)[0] from err
        self._rest = first  # decoded by the first __anext__
        self._pos = 0
        self._state = _OPEN
        if t.idle is not None:
            self._idle_deadline = asyncio.get_running_loop().time() + t.idle

    def _watch_connection(self, resp: aiohttp.ClientResponse) -> None:
        """Wake the reader when the connection is lost and aiohttp did not (C parser, close)."""
        ref = weakref.ref(self)

        def lost() -> None:
            stream = ref()
            if stream is not None and stream._resp is resp:
                stream._lost()

        self._lost_watch = on_connection_lost(resp, lost)

    def _lost(self) -> None:
        resp = self._resp
        if resp is None or self._state == _ENDED:
            return
        content = resp.content
        if content.is_eof() or content.exception() is not None:
            return  # aiohttp woke the reader itself (end of body, or its own error)
        n = self.chunks_received
        fail_reader(
            content,
            APIConnectionError(
                f"the connection was closed in the middle of the body after {n} chunks "
                "(the server sent a malformed body or closed the connection)",
                chunks_received=n,
            ),
        )

    def interrupt(self, error: APIConnectionError) -> None:
        """Make a read waiting for bytes (and every later one) raise ``error`` (any task)."""
        resp = self._resp
        if resp is not None and self._state != _ENDED:
            fail_reader(resp.content, error)

    async def _json_instead_of_stream(self, resp: aiohttp.ClientResponse) -> None:
        """A 2xx JSON answer to a streamed request: an error object, or a protocol break."""
        tr = self._transport
        raw, _ = await tr._read_whole(resp, MAX_ERROR_BODY, self._timeout, "the JSON answer")
        text = tr.redact(raw.decode("utf-8", "replace"))
        try:
            body: object = tr._redactor.value(orjson.loads(text))
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
        reader = self._reader
        assert reader is not None
        read = reader.readany if self._idle_deadline is None else self._read_before_idle
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
        except _READ_ERRORS as err:
            return self._broken(resp, err)
        except BaseException:
            # Cancellation, a decoder error, StopAsyncIteration: the connection goes now.
            self._end(close=True)
            raise

    def _broken(
        self, resp: aiohttp.ClientResponse, err: BaseException
    ) -> list[ChatCompletionChunk]:
        """The body broke off: deliver what was received, then raise the mapped error."""
        # aiohttp raises a broken connection's error before handing out the bytes it had
        # already buffered (a FIN right behind the last chunks, read while the consumer was
        # busy): decode them first, so nothing that was received is lost.
        decoder = self._decoder
        rest = take_buffered(resp.content)
        self._end(close=True)
        chunks = self._decode_rest(rest) if rest else []
        if decoder.done or decoder.error is not None:
            return self._last_batch(chunks)
        n = decoder.chunks_received
        error: APIConnectionError
        if isinstance(err, APIConnectionError):  # ours: idle timeout, closed client, lost
            error = err
            error.chunks_received = n
        else:
            error = self._transport._map(err, self._timeout, self._deadline, chunks=n)[0]
        if chunks:
            if error is not err:
                error.__cause__ = err
            self._pending_error = error
            return chunks
        if error is err:
            raise error
        raise error from err

    def _decode_rest(self, rest: bytes) -> list[ChatCompletionChunk]:
        """Decode the raw bytes left in a broken connection's buffer (inflated piece by piece)."""
        decoder = self._decoder
        reader = self._reader
        if not isinstance(reader, Inflater):
            return decoder.feed(rest)
        chunks: list[ChatCompletionChunk] = []
        payloads: list[str | None] = []
        try:
            for piece in reader.drain(rest):
                chunks += decoder.feed(piece)
                payloads += decoder.payloads
                if decoder.done or decoder.error is not None:
                    break
        except aiohttp.ClientPayloadError:
            pass  # the connection broke inside the compressed data: its error is raised next
        decoder.payloads = payloads  # the texts of this batch: every piece's, in order
        return chunks

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
                assert self._reader is not None
                return await self._reader.readany()
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
            _redact_error(error, self._transport._redactor)
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
            self._transport._open.discard(self)
            unwatch, self._lost_watch = self._lost_watch, None
            if unwatch is not None:
                unwatch()
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
