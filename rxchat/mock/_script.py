"""Scripted answers: per-request mock options queued by a test, applied by a middleware.

A scripted answer is a set of the mock's per-request options (``text``, ``tokens``, faults such as
``drop_after`` or ``status``) given to the next request, as if it had sent them in ``X-Mock-*``
headers — the mock's own per-request mechanism, so every option means exactly what it means
there. The code under test sends its usual requests, unchanged.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from ._options import parse_options

__all__ = ["SCRIPTED_OPTIONS", "Answer", "Script"]

#: Where the middleware leaves a request's scripted options (as ``X-Mock-*`` headers) for the
#: chat handler, which applies them after the request's own headers. (``web.RequestKey`` is
#: aiohttp 3.13+; older versions take a plain string key.)
SCRIPTED_OPTIONS: Any = (
    web.RequestKey("rxchat_mock_scripted_options", dict)
    if hasattr(web, "RequestKey")
    else "rxchat_mock_scripted_options"
)

#: One scripted answer: the text to stream, or a mapping of mock options (``{"status": 429}``).
Answer = str | Mapping[str, Any]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _header_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        return str(value)
    raise TypeError(f"mock option {key!r}: expected a str, number or bool, not {value!r}")


def _headers(options: Mapping[str, Any]) -> dict[str, str]:
    """Options as ``X-Mock-*`` headers, checked the way the server will read them."""
    headers = {f"X-Mock-{key}": _header_value(key, value) for key, value in options.items()}
    parse_options("", headers)  # raises OptionError (a ValueError) naming a bad key or value
    return headers


class Script:
    """Options for every chat request, and a queue of answers taken one per request, in order.

    Thread-safe: a test thread scripts while the server's loop thread serves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._always: dict[str, str] = {}
        self._queue: deque[dict[str, str]] = deque()

    def set_options(self, **options: Any) -> None:
        """Options for every following chat request (a scripted answer's own options win)."""
        headers = _headers(options)
        with self._lock:
            self._always = headers

    def add(self, *answers: Answer) -> None:
        """Queue answers: the next requests take them in order, then the defaults apply again."""
        queued = [_headers({"text": a} if isinstance(a, str) else a) for a in answers]
        with self._lock:
            self._queue.extend(queued)

    def reset(self) -> None:
        """Forget the options and the queued answers."""
        with self._lock:
            self._always = {}
            self._queue.clear()

    @property
    def pending(self) -> int:
        """Queued answers not taken yet."""
        with self._lock:
            return len(self._queue)

    def _take(self) -> dict[str, str]:
        with self._lock:
            answer = self._queue.popleft() if self._queue else {}
            return {**self._always, **answer}

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """An aiohttp middleware: chat requests get the next scripted options as headers."""
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return await handler(request)
        extra = self._take()
        if extra:
            request[SCRIPTED_OPTIONS] = extra
        return await handler(request)
