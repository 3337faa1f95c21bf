"""A request log for the mock server (``rxchat serve``): one line when a request arrives, one
when it ends.

::

    rxchat serve: req_000001 POST /v1/chat/completions model=gpt-4o stream n=1 options: tokens=5 faults: drop_after=3
    rxchat serve: req_000001 200 dropped by the drop_after fault after 3 chunks (0.02 s)

The lines carry the model, the request's main parameters, the mock options and faults it asked
for, the status and how the response ended: completed (with its chunk count), client
disconnected after N chunks, or the error message. Credentials are never written: headers are
not logged, and every line is redacted of the server's key and the request's bearer token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import orjson
from aiohttp import web

from ..errors import redact
from ._app import STATE_KEY, current_request_id
from ._options import MockOptions, OptionError, parse_options, split_model

__all__ = ["request_log"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Options that inject a fault (the rest shape a normal answer).
_FAULTS = frozenset(
    {
        "drop_after",
        "stall_headers",
        "stall_first",
        "stall_between",
        "stall_after",
        "keepalive",
        "status",
        "retry_after",
        "retry_after_ms",
        "fail_times",
        "bad_json_after",
        "error_after",
        "event_error_after",
        "unknown_shape_after",
        "invalid_utf8_after",
        "big_event",
        "no_done",
        "drip",
        "drip_delay",
    }
)
_OUTCOMES = {
    "completed": "completed",
    "disconnected": "client disconnected",
    "dropped": "dropped by the drop_after fault",
    "error_frame": "ended with an error frame (fault)",
    "no_done": "ended without [DONE] (no_done fault)",
}
_DEFAULTS = MockOptions()


def _describe_request(request: web.Request, body: Any) -> str:
    parts = [request.method, request.path]
    if not isinstance(body, dict):
        return " ".join(parts)
    model = body.get("model")
    query = ""
    if isinstance(model, str):
        name, query = split_model(model)
        parts.append(f"model={name}")
    if body.get("stream") is True:
        parts.append("stream")
    for key in ("n", "max_tokens", "max_completion_tokens", "temperature", "seed"):
        if body.get(key) is not None:
            parts.append(f"{key}={body[key]}")
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        parts.append(f"tools={len(tools)}")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and "type" in response_format:
        parts.append(f"response_format={response_format['type']}")
    try:
        opts = parse_options(query, request.headers.items())
    except OptionError:
        return " ".join(parts)  # the handler answers 400; the end line says why
    changed = {
        f.name: getattr(opts, f.name)
        for f in dataclasses.fields(opts)
        if getattr(opts, f.name) != getattr(_DEFAULTS, f.name)
    }
    options = [f"{k}={v}" for k, v in changed.items() if k not in _FAULTS]
    faults = [f"{k}={v}" for k, v in changed.items() if k in _FAULTS]
    if options:
        parts.append("options: " + " ".join(options))
    if faults:
        parts.append("faults: " + " ".join(faults))
    return " ".join(parts)


def _error_message(resp: web.StreamResponse) -> str:
    body = resp.body if isinstance(resp, web.Response) else None
    if isinstance(body, bytes | bytearray):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message", ""))
    return ""


_LOGGED: Any = (
    web.RequestKey("rxchat_mock_logged", bool)
    if hasattr(web, "RequestKey")
    else "rxchat_mock_logged"
)


def request_log(stream: TextIO, *, api_key: str | None = None) -> tuple[Any, Any]:
    """aiohttp middlewares that log each request and its outcome to ``stream``.

    Returns:
        ``(outer, inner)``: put ``outer`` first in the app's middlewares (it logs requests the app
        refuses before handling them: a missing or wrong API key) and ``inner`` last (it logs
        each handled request when it arrives, with its id, and again when it ends).

    Args:
        stream: where the lines go (``sys.stderr`` for ``rxchat serve``).
        api_key: the server's key, redacted from every line (with the request's bearer token).
    """

    def write(request: web.Request, line: str) -> None:
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth.startswith("Bearer ") else None
        stream.write(redact(f"rxchat serve: {line}", api_key, bearer) + "\n")
        stream.flush()

    async def describe(request: web.Request) -> str:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        return _describe_request(request, body)

    def stream_of(request: web.Request, rid: str) -> Any:
        state = request.app[STATE_KEY]
        return next((s for s in reversed(state.streams) if s.request_id == rid), None)

    @web.middleware
    async def outer(request: web.Request, handler: _Handler) -> web.StreamResponse:
        started = time.monotonic()
        resp = await handler(request)
        if not request.get(_LOGGED, False):
            rid = resp.headers.get("x-request-id", "-")
            write(request, f"{rid} {await describe(request)}")
            message = _error_message(resp)
            took = time.monotonic() - started
            write(request, f"{rid} {resp.status} error: {message} ({took:.2f} s)")
        return resp

    @web.middleware
    async def inner(request: web.Request, handler: _Handler) -> web.StreamResponse:
        request[_LOGGED] = True
        started = time.monotonic()
        rid = current_request_id() or "-"
        write(request, f"{rid} {await describe(request)}")

        def end(text: str) -> None:
            write(request, f"{rid} {text} ({time.monotonic() - started:.2f} s)")

        try:
            resp = await handler(request)
        except asyncio.CancelledError:
            rec = stream_of(request, rid)
            end(f"client disconnected after {rec.chunks if rec is not None else 0} chunks")
            raise
        except web.HTTPException as exc:
            end(f"{exc.status} error: {exc.reason}")
            raise
        except Exception as exc:
            end(f"500 error: {type(exc).__name__}: {exc}")
            raise
        rec = stream_of(request, rid)
        if resp.status >= 400:
            end(f"{resp.status} error: {_error_message(resp)}")
        elif rec is not None:
            outcome = _OUTCOMES.get(rec.outcome or "", rec.outcome or "ended")
            end(f"{resp.status} {outcome} after {rec.chunks} chunks")
        else:
            end(f"{resp.status} completed")
        return resp

    return outer, inner
