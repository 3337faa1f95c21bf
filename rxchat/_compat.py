"""Every use of an aiohttp internal, in one place.

rxchat needs a few things aiohttp has no public API for. Each one is a small function here, and
``tests/test_compat.py`` exercises each against a real connection, so an aiohttp upgrade that
renames or changes one fails that test loudly instead of breaking rxchat quietly.
:func:`self_check` verifies the attributes exist (called by the test, cheap enough to call at
start-up).

* :func:`take_buffered` — the bytes a ``StreamReader`` received but has not handed out yet
  (``_buffer`` / ``_buffer_offset``): aiohttp raises a broken connection's error before those.
* :func:`fail_reader` — wake a reader blocked on a response body with an error
  (``StreamReader.set_exception``, used by aiohttp's own protocol; not documented).
* :func:`on_connection_lost` — call back when the TCP connection of a response is lost
  (``ResponseHandler.closed``): aiohttp drops a response's reader without waking it when the
  connection is closed under it (``ResponseHandler.close()`` sets ``_payload = None``) and, with
  the C parser, after a malformed chunked body.
* :func:`close_connector_now` — close a connector synchronously (``BaseConnector._close``), for
  a finalizer that cannot await ``ClientSession.close()``.
* :data:`HTTP_PROCESSING_ERRORS` — the parser's exceptions (``aiohttp.http_exceptions``), which
  the pure-Python parser lets escape from body reads although they are not ``ClientError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import http_exceptions

__all__ = [
    "HTTP_PROCESSING_ERRORS",
    "close_connector_now",
    "fail_reader",
    "on_connection_lost",
    "self_check",
    "take_buffered",
]

HTTP_PROCESSING_ERRORS: tuple[type[Exception], ...] = (http_exceptions.HttpProcessingError,)


def take_buffered(content: aiohttp.StreamReader) -> bytes:
    """The body bytes ``content`` received but had not handed out yet (empty when none)."""
    buffer = getattr(content, "_buffer", None)  # a deque of received bytes
    if not buffer:
        return b""
    offset: int = getattr(content, "_buffer_offset", 0)
    data = b"".join(buffer)[offset:]
    buffer.clear()
    if offset:
        content._buffer_offset = 0
    return data


def fail_reader(content: aiohttp.StreamReader, error: BaseException) -> None:
    """Make the current and every later read of ``content`` raise ``error`` (wakes a waiter)."""
    content.set_exception(error)


def on_connection_lost(
    resp: aiohttp.ClientResponse, callback: Callable[[], None]
) -> Callable[[], None] | None:
    """Call ``callback()`` (on the loop) once the TCP connection of ``resp`` is lost.

    Returns a function that removes the callback again (call it when the response is done
    with: a pooled connection outlives it), or None when the connection cannot be watched.
    """
    connection = resp.connection
    protocol = None if connection is None else connection.protocol
    closed: asyncio.Future[None] | None = getattr(protocol, "closed", None)
    if closed is None or not isinstance(closed, asyncio.Future):
        return None

    def done(fut: asyncio.Future[None]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved: a lost connection is not an unhandled error
        callback()

    def unwatch() -> None:
        closed.remove_done_callback(done)

    closed.add_done_callback(done)
    return unwatch


def close_connector_now(connector: Any) -> bool:
    """Close an aiohttp connector without awaiting; False when that is not possible."""
    close_now = getattr(connector, "_close", None)
    if close_now is None:
        return False
    close_now()
    return True


def self_check() -> list[str]:
    """What is missing from the installed aiohttp (an empty list when everything is there)."""
    problems: list[str] = []
    reader_slots = set(getattr(aiohttp.StreamReader, "__slots__", ()))
    for name in ("_buffer", "_buffer_offset"):
        if name not in reader_slots and not hasattr(aiohttp.StreamReader, name):
            problems.append(f"aiohttp.StreamReader.{name}")
    if not callable(getattr(aiohttp.StreamReader, "set_exception", None)):
        problems.append("aiohttp.StreamReader.set_exception")
    if not callable(getattr(aiohttp.BaseConnector, "_close", None)):
        problems.append("aiohttp.BaseConnector._close")
    from aiohttp.client_proto import ResponseHandler

    if not isinstance(getattr(ResponseHandler, "closed", None), property):
        problems.append("aiohttp.client_proto.ResponseHandler.closed")
    if not issubclass(http_exceptions.TransferEncodingError, http_exceptions.HttpProcessingError):
        problems.append("aiohttp.http_exceptions.TransferEncodingError")
    return problems
