"""``asgi_response``: relay a stream as an ASGI response (Starlette, FastAPI, any ASGI server).

The response is a ``starlette.responses.Response`` (so a FastAPI endpoint can return it) that
runs its own ASGI ``__call__``: it listens for ``http.disconnect`` while it writes, so a client
that goes away is noticed at once. Starlette is imported only here (``pip install rxchat[asgi]``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from reactivex import Observable

from .._log import StreamLog, StreamNotFoundError
from ._api import sse
from ._encoders import Encoder, Format, encoder_for
from ._errors import RelayError, SlowClientError, UnknownEventIdError
from ._stream import DEFAULT_MAX_BUFFER, DisconnectPolicy, SSEStream, response_headers

__all__ = ["asgi_response"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_RESPONSE_CLASS: type[Any] | None = None


def _response_class() -> type[Any]:
    global _RESPONSE_CLASS
    if _RESPONSE_CLASS is not None:
        return _RESPONSE_CLASS
    try:
        from starlette.responses import Response
    except ImportError:
        raise ImportError(
            "rxchat.relay.asgi_response needs Starlette: pip install 'rxchat[asgi]'"
        ) from None

    class SSEResponse(Response):
        """An SSE response that relays an rxchat stream (see :func:`asgi_response`)."""

        def __init__(
            self,
            make_stream: Callable[[str | None], SSEStream],
            *,
            status_code: int,
            headers: Mapping[str, str],
            overflow_grace: float,
            resume: bool,
            log: StreamLog | None,
            stream_id: str | None,
        ) -> None:
            self._log = log
            self._stream_id = stream_id
            self.status_code = status_code
            self.background = None
            self._make_stream = make_stream
            self._overflow_grace = overflow_grace
            self._resume = resume
            self.init_headers(dict(headers))  # before .body exists: no Content-Length
            self.body = b""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            last_event_id = None
            if self._resume:
                query = _query(scope)
                last_event_id = _header(scope, b"last-event-id") or query.get("last_event_id")
            try:
                stream = self._make_stream(last_event_id)
            except UnknownEventIdError as err:
                await _plain(send, 400, str(err))
                return
            if self._log is not None:
                try:
                    await self._log.info(self._stream_id or "")
                except (StreamNotFoundError, ValueError):
                    stream.close()
                    await _plain(send, 404, f"no stream {self._stream_id!r}")
                    return
            await _run(stream, scope, receive, send, self, self._overflow_grace)

    _RESPONSE_CLASS = SSEResponse
    return SSEResponse


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def _run(
    stream: SSEStream, scope: Scope, receive: Receive, send: Send, response: Any, grace: float
) -> None:
    loop = asyncio.get_running_loop()
    writer: asyncio.Task[None] | None = None

    def on_overflow(error: SlowClientError) -> None:
        def cut_off() -> None:
            if writer is not None and not writer.done():
                writer.cancel()  # the server closes a connection whose response did not finish

        loop.call_later(grace, cut_off)

    stream.on_overflow = on_overflow

    async def write() -> None:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        async for data in stream:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def listen() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                stream.close()
                return

    writer = loop.create_task(write())
    listener = loop.create_task(listen())
    try:
        await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stream.close()
        for task in (writer, listener):
            if not task.done():
                task.cancel()
        for task in (writer, listener):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
    # A failed write (other than the client leaving) is the server's to report.
    if not writer.cancelled():
        error = writer.exception()
        if error is not None and not isinstance(error, OSError):
            raise error


def asgi_response(
    source: Observable[Any] | AsyncIterable[Any] | Iterable[Any] | None = None,
    format: Format | Encoder = "events",
    *,
    log: StreamLog | None = None,
    stream_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    status_code: int = 200,
    keepalive: float | None = 15.0,
    retry: int | None = None,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    on_disconnect: DisconnectPolicy = "cancel",
    overflow_grace: float = 5.0,
    **encoder_options: Any,
) -> Any:
    """An ASGI response (a ``starlette.responses.Response``) relaying ``source`` as SSE.

    The same behaviour as :func:`rxchat.relay.aiohttp_response`: the no-buffering headers, every
    event with an id, keep-alives, the format's error event, resume by ``Last-Event-ID`` (or
    ``?last_event_id=``) with a log, the disconnect policy (``http.disconnect`` is noticed at
    once), and slow clients cut off after ``overflow_grace`` seconds.

    Returns:
        A ``starlette.responses.Response`` to return from a Starlette or FastAPI endpoint (or
        to call as an ASGI app: ``await response(scope, receive, send)``).

    Raises:
        ImportError: Starlette is not installed (``pip install 'rxchat[asgi]'``).
        RelayError: bad arguments.

    >>> @app.post("/chat")  # doctest: +SKIP
    ... async def chat(body: dict):
    ...     return rxchat.relay.asgi_response(client.chat.completions.observe(...), "ai-sdk-ui")
    """
    cls = _response_class()
    options: dict[str, Any] = {
        "log": log,
        "stream_id": stream_id,
        "keepalive": keepalive,
        "retry": retry,
        "max_buffer": max_buffer,
        "on_disconnect": on_disconnect,
        **encoder_options,
    }
    # Check the arguments now (an error before the response exists is the endpoint's error);
    # the stream itself is made when the response runs, with the client's Last-Event-ID.
    if (source is None) == (log is None):
        raise RelayError("give either a source or a log (with its stream_id)")
    encoder = encoder_for(format, **encoder_options)
    SSEStream(
        (),
        encoder,
        keepalive=keepalive,
        retry=retry,
        max_buffer=max_buffer,
        on_disconnect=on_disconnect,
    )

    def make_stream(last_event_id: str | None) -> SSEStream:
        return sse(source, format, last_event_id=last_event_id, **options)

    return cls(
        make_stream,
        status_code=status_code,
        headers=response_headers(encoder, headers),
        overflow_grace=overflow_grace,
        resume=log is not None,
        log=log,
        stream_id=stream_id,
    )
