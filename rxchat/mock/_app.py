"""The aiohttp.web application: routes, auth, OpenAI error bodies, request handling."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from ._options import MockOptions, OptionError, parse_options, split_model
from ._plan import CREATED, Plan, RequestError, build_plan
from ._records import MockState, RequestRecord
from ._script import SCRIPTED_OPTIONS
from ._stream import ClientGone, completion_body, write_stream

__all__ = ["STATE_KEY", "create_app", "current_request_id"]

STATE_KEY: web.AppKey[MockState] = web.AppKey("rxchat_mock_state", MockState)
_CONFIG_KEY: web.AppKey[dict[str, Any]] = web.AppKey("rxchat_mock_config", dict)
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rxchat_mock_request_id")

# Credentials are never recorded (Azure-style and proxy key headers too).
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})

MODELS = ("mock", "gpt-4o", "gpt-4o-mini", "o3-mini")

_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request (mock fault).", "invalid_request_error", None),
    401: ("Incorrect API key provided (mock fault).", "invalid_request_error", "invalid_api_key"),
    403: (
        "You are not allowed to access this resource (mock fault).",
        "invalid_request_error",
        None,
    ),
    404: (
        "The model does not exist or you do not have access to it (mock fault).",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out (mock fault).", "timeout", None),
    409: (
        "Conflict: the request conflicts with another (mock fault).",
        "invalid_request_error",
        "conflict",
    ),
    422: ("Unprocessable entity (mock fault).", "invalid_request_error", None),
    429: ("Rate limit reached for requests (mock fault).", "requests", "rate_limit_exceeded"),
    500: (
        "The server had an error while processing your request (mock fault).",
        "server_error",
        None,
    ),
    502: ("Bad gateway (mock fault).", "server_error", None),
    503: (
        "The engine is currently overloaded, please try again later (mock fault).",
        "server_error",
        "overloaded",
    ),
}


def current_request_id() -> str | None:
    """The id of the request being handled in this task (``req_000001``), if any."""
    return _REQUEST_ID.get(None)


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(obj), status=status, content_type="application/json", headers=headers
    )


def _error(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return _json(error_body(message, type_, param, code), status, headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    config = request.app[_CONFIG_KEY]
    rid = state.next_request_id()
    _REQUEST_ID.set(rid)
    raw = await request.read()
    body: Any = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SECRET_HEADERS}
    state.add_request(RequestRecord(rid, request.method, request.path, body, headers))
    extra = {"x-request-id": rid}
    api_key: str | None = config["api_key"]
    if api_key is not None:
        auth = request.headers.get("Authorization")
        if auth is None or not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                headers=extra,
            )
        if not hmac.compare_digest(auth[7:].strip().encode(), api_key.encode()):
            return _error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                code="invalid_api_key",
                headers=extra,
            )
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"Unknown request URL: {request.method} {request.path}."
            return _error(404, message, "invalid_request_error", code="unknown_url", headers=extra)
        return _error(exc.status, exc.reason, "invalid_request_error", headers=extra)
    if not resp.prepared:
        resp.headers.setdefault("x-request-id", rid)
    return resp


async def _models(request: web.Request) -> web.StreamResponse:
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "rxchat"} for m in MODELS]
    return _json({"object": "list", "data": data})


async def _model(request: web.Request) -> web.StreamResponse:
    name = request.match_info["model"]
    return _json(
        {"id": split_model(name)[0], "object": "model", "created": CREATED, "owned_by": "rxchat"}
    )


def _status_response(opts: MockOptions, rid: str) -> web.Response:
    status = opts.status or 500
    message, type_, code = _STATUS_ERRORS.get(
        status,
        (
            f"Mock fault: HTTP {status}.",
            "server_error" if status >= 500 else "invalid_request_error",
            None,
        ),
    )
    headers = {"x-request-id": rid}
    if opts.retry_after is not None:
        headers["Retry-After"] = opts.retry_after
    if opts.retry_after_ms is not None:
        headers["retry-after-ms"] = str(opts.retry_after_ms)
    return _error(status, message, type_, code=code, headers=headers)


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    config = request.app[_CONFIG_KEY]
    rid = _REQUEST_ID.get()
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return _error(
            400, f"We could not parse the JSON body of your request: {err}", "invalid_request_error"
        )
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.", "invalid_request_error")
    model = body.get("model")
    if "model" not in body:
        return _error(400, "Missing required parameter: 'model'.", "invalid_request_error", "model")
    if not isinstance(model, str) or not split_model(model)[0]:
        return _error(
            400, "Invalid 'model': expected a non-empty string.", "invalid_request_error", "model"
        )
    name, query = split_model(model)
    try:
        # Options a test scripted for this request (``_script.py``) win over the client's.
        scripted = request.get(SCRIPTED_OPTIONS, {})
        headers = [*request.headers.items(), *scripted.items()]
        opts = parse_options(query, headers, defaults=config["defaults"])
    except OptionError as err:
        return _error(400, str(err), "invalid_request_error", "model", "invalid_mock_option")
    try:
        plan = build_plan(body, opts, model_name=name)
    except RequestError as err:
        return _error(err.status, err.message, err.type, err.param, err.code)

    if opts.stall_headers > 0:
        await asyncio.sleep(opts.stall_headers)
    if opts.status is not None or opts.fail_times is not None:
        count = state.bump(plan.counter_key)
        if opts.fail_times is None or count <= opts.fail_times:
            return _status_response(opts, rid)
    delay = opts.delay if opts.delay is not None else config["token_delay"]
    if not plan.stream:
        return await _complete(request, plan, rid)
    return await _stream(request, plan, rid, state, delay)


async def _complete(request: web.Request, plan: Plan, rid: str) -> web.StreamResponse:
    opts = plan.options
    if opts.stall_first > 0:
        await asyncio.sleep(opts.stall_first)
    if opts.drop_after is not None and request.transport is not None:
        request.transport.close()
        return web.Response(status=200)
    return _json(completion_body(plan), headers={"x-request-id": rid})


async def _stream(
    request: web.Request, plan: Plan, rid: str, state: MockState, delay: float
) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "x-request-id": rid,
        },
    )
    rec = state.start_stream(rid, plan.choices)
    try:
        await resp.prepare(request)
        await write_stream(request, resp, plan, rec, state, delay)
    except (ClientGone, ConnectionError):
        rec.finish("disconnected")
    except asyncio.CancelledError:
        rec.finish("disconnected")
        raise
    finally:
        state.end_stream(rec)
    return resp


def create_app(
    *,
    api_key: str | None = None,
    token_delay: float = 0.0,
    state: MockState | None = None,
    defaults: MockOptions | None = None,
) -> web.Application:
    """Build the mock OpenAI-compatible aiohttp application.

    Args:
        api_key: when set, every request needs ``Authorization: Bearer <api_key>`` (401 otherwise).
        token_delay: default seconds between streamed chunks (per-request ``delay`` overrides it).
        state: where requests and stream outcomes are recorded (a new ``MockState`` by default).
        defaults: default per-request options (e.g. ``MockOptions(tokens=100)``).

    Returns:
        The application; run it with ``MockServer`` / ``serve()`` or any aiohttp runner.
        Runners created without ``handler_cancellation=True`` still detect disconnects,
        by polling the transport every 5 ms while the handler sleeps.

    Raises:
        ValueError: ``token_delay`` is negative.

    Example:
        >>> app = create_app(api_key="sk-test")
    """
    if token_delay < 0:
        raise ValueError("token_delay must be >= 0")
    app = web.Application(middlewares=[_middleware], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state if state is not None else MockState()
    app[_CONFIG_KEY] = {
        "api_key": api_key,
        "token_delay": token_delay,
        "defaults": defaults or MockOptions(),
    }
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/v1/models/{model}", _model)
    return app
