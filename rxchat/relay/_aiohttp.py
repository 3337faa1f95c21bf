"""``aiohttp_response``: relay a stream as the SSE response of an aiohttp.web handler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from aiohttp import web
from reactivex import Observable

from .._log import StreamLog, StreamNotFoundError
from ._api import sse
from ._encoders import Encoder, Format
from ._errors import SlowClientError, UnknownEventIdError
from ._stream import DEFAULT_MAX_BUFFER, DisconnectPolicy, SSEStream, parse_last_event_id

__all__ = ["STREAM_KEY", "aiohttp_response", "last_event_id_of"]

# How the relay ended, for the app's logging: response[STREAM_KEY].outcome
STREAM_KEY: Any = (
    web.ResponseKey("rxchat.relay.stream", SSEStream)
    if hasattr(web, "ResponseKey")  # aiohttp >= 3.12
    else "rxchat.relay.stream"
)


def last_event_id_of(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The client's last event id: the ``Last-Event-ID`` header (an ``EventSource`` that
    reconnects) or a ``last_event_id`` query parameter (a page that resumes after a reload)."""
    value = headers.get("Last-Event-ID")
    if value is None:
        value = query.get("last_event_id")
    return value


def _disconnected(request: web.BaseRequest) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _watch(request: web.BaseRequest, stream: SSEStream, poll: float) -> None:
    # aiohttp tells a handler nothing when its client leaves (unless the server was started with
    # handler_cancellation=True, which cancels the handler): look at the transport now and then.
    while True:
        await asyncio.sleep(poll)
        if _disconnected(request):
            stream.close()
            return


async def aiohttp_response(
    request: web.BaseRequest,
    source: Observable[Any] | AsyncIterable[Any] | Iterable[Any] | None = None,
    format: Format | Encoder = "events",
    *,
    log: StreamLog | None = None,
    stream_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    status: int = 200,
    keepalive: float | None = 15.0,
    retry: int | None = None,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    on_disconnect: DisconnectPolicy = "cancel",
    disconnect_poll: float = 1.0,
    overflow_grace: float = 5.0,
    **encoder_options: Any,
) -> web.StreamResponse:
    """Stream ``source`` (or the stream ``stream_id`` of ``log``) to the client as SSE.

    Sends the headers at once (``Content-Type: text/event-stream``, ``Cache-Control: no-cache``,
    ``X-Accel-Buffering: no`` and the format's own), writes the events as they come, and returns
    the finished response for the handler to return. With a log, the client's ``Last-Event-ID``
    header (or ``?last_event_id=``) resumes after the events it has. A client that goes away is
    noticed within ``disconnect_poll`` seconds (at once when the server cancels handlers) and
    handled by ``on_disconnect``; a client too slow for ``max_buffer`` gets the error event and
    is cut off, after ``overflow_grace`` seconds at most.

    Args:
        request: the handler's request.
        source, format, log, stream_id, keepalive, retry, max_buffer, on_disconnect,
            **encoder_options: as for :func:`rxchat.relay.sse`.
        headers: more response headers.
        status: the HTTP status.
        disconnect_poll: seconds between two looks at the connection while waiting.
        overflow_grace: seconds a cut-off slow client gets to read its error event.

    Returns:
        The prepared and finished ``web.StreamResponse``; ``response[rxchat.relay.STREAM_KEY]``
        is the :class:`SSEStream`, whose ``outcome`` says how it ended.

    Raises:
        RelayError: bad arguments (before anything is sent).
        aiohttp.web.HTTPNotFound: with a log, no stream ``stream_id`` (or it expired).
        aiohttp.web.HTTPBadRequest: with a log, a ``Last-Event-ID`` that is no event id.

    >>> async def chat(request):  # doctest: +SKIP
    ...     chunks = client.chat.completions.observe(model="m", messages=[...])
    ...     return await rxchat.relay.aiohttp_response(request, chunks, "ai-sdk-ui")
    """
    last_event_id = None
    if log is not None:
        last_event_id = last_event_id_of(request.headers, request.query)
        try:
            await log.info(stream_id or "")
        except (StreamNotFoundError, ValueError):
            raise web.HTTPNotFound(text=f"no stream {stream_id!r}") from None
    if last_event_id is not None:
        try:
            parse_last_event_id(last_event_id)
        except UnknownEventIdError as err:
            raise web.HTTPBadRequest(text=str(err)) from None
    stream = sse(
        source,
        format,
        log=log,
        stream_id=stream_id,
        last_event_id=last_event_id,
        keepalive=keepalive,
        retry=retry,
        max_buffer=max_buffer,
        on_disconnect=on_disconnect,
        **encoder_options,
    )
    loop = asyncio.get_running_loop()

    def on_overflow(error: SlowClientError) -> None:
        def cut_off() -> None:
            if not stream.finished or stream.buffered:
                transport = request.transport
                if transport is not None:
                    transport.abort()

        loop.call_later(overflow_grace, cut_off)

    stream.on_overflow = on_overflow
    response = web.StreamResponse(status=status, headers=stream.headers | dict(headers or {}))
    response[STREAM_KEY] = stream  # how the relay ended: response[STREAM_KEY].outcome
    watcher = None
    try:
        await response.prepare(request)
        watcher = loop.create_task(_watch(request, stream, disconnect_poll))
        async for data in stream:
            await response.write(data)
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError) as err:
        # The client went away (a write to a closed connection, or the server cancelled the
        # handler): the disconnect policy applies; a CancelledError goes on up.
        stream.close()
        if isinstance(err, asyncio.CancelledError):
            raise
    finally:
        stream.close()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return response
