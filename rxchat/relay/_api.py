"""``sse()``, the stream registry behind ``stop()``, and what the responses share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Iterable
from typing import Any

from reactivex import Observable

from .._log import StreamLog
from ._encoders import Encoder, Format, encoder_for
from ._errors import RelayError
from ._stream import (
    DEFAULT_MAX_BUFFER,
    SSE_HEADERS,
    DisconnectPolicy,
    SSEStream,
    response_headers,
)

__all__ = ["SSE_HEADERS", "response_headers", "sse", "stop"]

log = logging.getLogger("rxchat.relay")


# Streams relayed in this process under a stream id: what stop() reaches, and the readers the
# "cancel" policy counts before it cancels a logged generation.
_LIVE: dict[str, set[SSEStream]] = {}


class _Registered(SSEStream):
    """An SSEStream known by its stream id (for ``stop()`` and the ``cancel`` policy)."""

    def __init__(self, *args: Any, stream_id: str, log: StreamLog | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream_id = stream_id
        self.log = log
        _LIVE.setdefault(stream_id, set()).add(self)

    def _unregister(self) -> None:
        streams = _LIVE.get(self.stream_id)
        if streams is not None:
            streams.discard(self)
            if not streams:
                del _LIVE[self.stream_id]

    def _terminate(self, *args: Any, **kwargs: Any) -> None:
        super()._terminate(*args, **kwargs)
        self._unregister()

    def close(self) -> None:
        running = not self._ended and self._started
        super().close()
        self._unregister()
        if (
            running
            and self.on_disconnect == "cancel"
            and self.log is not None
            and self.stream_id not in _LIVE
        ):
            # The last reader in this process left: stop the logged generation.
            task = asyncio.get_running_loop().create_task(self._cancel_logged())
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _cancel_logged(self) -> None:
        assert self.log is not None
        try:
            await self.log.cancel(self.stream_id)
        except Exception as err:  # already finished, or the log is unreachable: nothing to stop
            log.debug("rxchat relay: cancelling %s: %s", self.stream_id, err)

    def stop(self, reason: str) -> None:
        if not self._ended:
            self._dispose()
            self._terminate("aborted", None, self.encoder.abort(reason))


_BACKGROUND: set[asyncio.Task[None]] = set()


def sse(
    source: Observable[Any] | AsyncIterable[Any] | Iterable[Any] | None = None,
    format: Format | Encoder = "openai",
    *,
    log: StreamLog | None = None,
    stream_id: str | None = None,
    last_event_id: str | int | None = None,
    keepalive: float | None = 15.0,
    retry: int | None = None,
    max_buffer: int = DEFAULT_MAX_BUFFER,
    on_disconnect: DisconnectPolicy = "cancel",
    **encoder_options: Any,
) -> SSEStream:
    """Relay a chunk or event stream as Server-Sent Events: an async iterator of bytes.

    Every event gets an ``id:`` (its number in the stream: 1, 2, ...). Given a stream log and a
    stream id instead of a source, the stream is read from the log from its start and the events up
    to ``last_event_id`` (a browser's ``Last-Event-ID``) are left out: a client that reconnects gets
    exactly what it missed, from any process that reads the same log, also after the answer
    finished. Without a log, ``last_event_id`` is for a replayable source only (a recorded stream).

    Args:
        source: an Observable (``client.chat.completions.observe(...)``, ``ops.broadcast()``ed,
            ``.pipe(ops.accumulate(), ops.parse_structured(M))``), an async iterable or an iterable
            of chunks (or chunk dicts) or rxchat events.
        format: ``"openai"`` (chunks passthrough, ``[DONE]``), ``"events"`` (rxchat events as
            JSON) or ``"ai-sdk-ui"`` (the Vercel AI SDK UI message stream), or an encoder.
        log: a stream log to read ``stream_id`` from (instead of ``source``).
        stream_id: the stream's id; with a source, :func:`stop` can reach it in this process.
        last_event_id: the last event id the client has (``None``: from the start).
        keepalive: seconds without output before a ``: keep-alive`` comment (``None``: never).
        retry: a ``retry:`` (milliseconds) for the browser's reconnection delay, sent first.
        max_buffer: bytes waiting for a slow client before it is cut off (:class:`SlowClientError`).
        on_disconnect: when the client goes away: ``"cancel"`` stops the generation (disposes
            the subscription; with a log, cancels the logged stream once no reader is left in this
            process), ``"detach"`` lets it run on (into the log, to be resumed).
        **encoder_options: for the format's encoder: ``response_format=`` / ``tools=`` /
            ``chunks=`` (events), ``message_id=`` / ``dynamic_tools=`` (ai-sdk-ui).

    Returns:
        An :class:`SSEStream`: ``async for data in stream`` gives the bytes to write.

    Raises:
        RelayError: an unknown format or option, a bad ``keepalive`` / ``retry`` / ``max_buffer``,
            neither or both of ``source`` and ``log``, or a ``last_event_id`` that is no event id.

    >>> async def handler(request):  # doctest: +SKIP
    ...     body = rxchat.relay.sse(client.chat.completions.observe(...), "ai-sdk-ui")
    ...     return StreamingResponse(body, headers=body.headers)
    """
    if (source is None) == (log is None):
        raise RelayError("give either a source or a log (with its stream_id)")
    if log is not None:
        if not stream_id:
            raise RelayError("reading from a stream log needs the stream_id")
        source = log.read(stream_id)
    assert source is not None
    encoder = encoder_for(format, **encoder_options)
    options: dict[str, Any] = {
        "keepalive": keepalive,
        "retry": retry,
        "last_event_id": last_event_id,
        "max_buffer": max_buffer,
        "on_disconnect": on_disconnect,
    }
    if stream_id is not None:
        return _Registered(source, encoder, stream_id=stream_id, log=log, **options)
    return SSEStream(source, encoder, **options)


async def stop(stream_id: str, *, log: StreamLog | None = None, reason: str = "stopped") -> bool:
    """Stop a stream by its id: a stop button's endpoint.

    With a stream log, the logged generation is cancelled from whichever process runs it (its
    readers everywhere end with the format's abort event); without, the streams relayed in this
    process under ``stream_id`` end with the abort event and their sources are disposed (the
    model server's connection is closed).

    Returns:
        Whether a running stream was stopped (False: unknown, or it had already ended).

    Raises:
        StreamLogError: the log could not be reached (``StreamLogUnavailableError``).
    """
    stopped = False
    for stream in list(_LIVE.get(stream_id, ())):
        if isinstance(stream, _Registered):
            stream.stop(reason)
            stopped = True
    if log is not None:
        try:
            await log.cancel(stream_id)
        except Exception as err:
            if (
                not isinstance(err, LookupError | RelayError)
                and "NotFound" not in type(err).__name__
            ):
                raise
        else:
            stopped = True
    return stopped
