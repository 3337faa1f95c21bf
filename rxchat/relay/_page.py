"""``chat_app``: a small chat page over the relay (``rxchat serve --ui``).

Routes (JSON in, SSE out):

=======================================  =====================================================
``GET /``                                the page (plain HTML and JavaScript, no build step)
``POST /api/chat``                       ``{"messages": [...], "mode": "text" | "structured" |
                                         "tools", "conversation_id"?}`` → ``{"stream_id"}``: the
                                         answer is published into the stream log and runs on
                                         its own, whoever reads it
``GET /api/streams/{id}``                the stream as SSE (``?format=events`` (default),
                                         ``ai-sdk-ui`` or ``openai``), resumed after
                                         ``Last-Event-ID`` / ``?last_event_id=``
``POST /api/streams/{id}/stop``          cancel the generation (from any process sharing the log)
``GET /api/conversations/{id}/active``   ``{"stream_id"}`` of the answer still running, or 404
``POST /api/ai-sdk/chat``                the AI SDK's ``DefaultChatTransport``: answers in the UI
                                         message stream protocol
``GET /api/ai-sdk/chat/{chat_id}/stream``  its ``reconnectToStream`` (204 when nothing runs)
=======================================  =====================================================
"""

from __future__ import annotations

import importlib.resources
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from .._client_async import AsyncClient
from .._log import MemoryStreamLog, StreamLog, StreamNotFoundError
from .._structured import pydantic_function_tool, type_to_response_format_param
from ._aiohttp import aiohttp_response
from ._api import stop
from ._encoders import Format
from ._stream import DisconnectPolicy

__all__ = ["chat_app"]

LOG_KEY = web.AppKey("rxchat_log", StreamLog)
CLIENT_KEY = web.AppKey("rxchat_client", AsyncClient)


class Answer(BaseModel):
    """The structured answer the page asks for in ``structured`` mode."""

    title: str
    points: list[str] = Field(description="three short points")
    confidence: float


class GetWeather(BaseModel):
    """Get the current weather of a city (the page's tool)."""

    city: str
    unit: str = Field(description="celsius or fahrenheit")


_FORMATS: dict[str, Format] = {"openai": "openai", "events": "events", "ai-sdk-ui": "ai-sdk-ui"}
_TOOLS = [pydantic_function_tool(GetWeather, name="get_weather")]


def _page() -> bytes:
    return importlib.resources.files(__package__).joinpath("static/chat.html").read_bytes()


def _user_messages(body: Any) -> list[dict[str, Any]]:
    """Chat messages from the page (``content`` strings) or the AI SDK (``parts``)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise web.HTTPBadRequest(text='expected {"messages": [...]}')
    messages = []
    for message in body["messages"]:
        if not isinstance(message, dict) or message.get("role") not in (
            "user",
            "assistant",
            "system",
        ):
            raise web.HTTPBadRequest(text="each message needs a role: user, assistant or system")
        content = message.get("content")
        if content is None and isinstance(message.get("parts"), list):  # an AI SDK UIMessage
            content = "".join(
                p.get("text", "")
                for p in message["parts"]
                if isinstance(p, dict) and p.get("type") == "text"
            )
        if not isinstance(content, str):
            raise web.HTTPBadRequest(text="each message needs text content")
        messages.append({"role": message["role"], "content": content})
    if not messages:
        raise web.HTTPBadRequest(text="no messages")
    return messages


def chat_app(
    *,
    base_url: str,
    model: str = "mock",
    api_key: str | None = None,
    log: StreamLog | None = None,
    keepalive: float | None = 15.0,
    on_disconnect: DisconnectPolicy = "detach",
) -> web.Application:
    """The chat page and its API as an aiohttp application.

    Answers are published into ``log`` (a new :class:`~rxchat.MemoryStreamLog` by default; a
    ``RedisStreamLog`` shared by several processes makes every route work from any of them) and
    relayed from it, so a reload in the middle of an answer resumes it and the stop button
    cancels it wherever it runs.

    Args:
        base_url: the OpenAI-compatible API root (``http://127.0.0.1:PORT/v1``).
        model: the model name to ask for.
        api_key: the API key of that server.
        log: the stream log (owned by the caller; the default one is closed with the app).
        keepalive: seconds between keep-alive comments.
        on_disconnect: ``"detach"`` (default: a reload resumes) or ``"cancel"``.

    Returns:
        The ``web.Application``; serve it with ``web.run_app`` or an ``AppRunner``.
    """
    app = web.Application()
    own_log = log is None
    app[LOG_KEY] = log if log is not None else MemoryStreamLog()
    app[CLIENT_KEY] = AsyncClient(base_url=base_url, api_key=api_key or "sk-unused", max_retries=0)
    relay_options: dict[str, Any] = {"keepalive": keepalive, "on_disconnect": on_disconnect}

    async def cleanup(app: web.Application) -> None:
        await app[CLIENT_KEY].close()
        if own_log:
            await app[LOG_KEY].aclose()

    app.on_cleanup.append(cleanup)

    def request_for(mode: str, messages: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
        params: dict[str, Any] = {"model": model, "messages": messages}
        encoder_options: dict[str, Any] = {}
        if mode == "structured":
            params["response_format"] = type_to_response_format_param(Answer)
            encoder_options["response_format"] = dict
        elif mode == "tools":
            params["tools"] = _TOOLS
            params["tool_choice"] = "required"
            encoder_options["tools"] = _TOOLS
        elif mode != "text":
            raise web.HTTPBadRequest(text="mode is text, structured or tools")
        return app[CLIENT_KEY].chat.completions.observe(**params), encoder_options

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=_page(), content_type="text/html", charset="utf-8")

    async def start(request: web.Request) -> web.Response:
        body = await request.json()
        mode = body.get("mode", "text")
        source, _ = request_for(mode, _user_messages(body))
        conversation = body.get("conversation_id")
        handle = await app[LOG_KEY].publish(
            source, conversation_id=conversation, metadata={"mode": mode}
        )
        return web.json_response({"stream_id": handle.stream_id})

    async def stream(request: web.Request) -> web.StreamResponse:
        stream_id = request.match_info["stream_id"]
        format = _FORMATS.get(request.query.get("format", "events"))
        if format is None:
            raise web.HTTPBadRequest(text="format is openai, events or ai-sdk-ui")
        log = app[LOG_KEY]
        try:
            info = await log.info(stream_id)
        except (StreamNotFoundError, ValueError):
            raise web.HTTPNotFound(text=f"no stream {stream_id!r}") from None
        _, encoder_options = request_for(info.metadata.get("mode", "text"), [])
        if format != "events":
            encoder_options = {}
        return await aiohttp_response(
            request,
            log=log,
            stream_id=stream_id,
            format=format,
            **relay_options,
            **encoder_options,
        )

    async def stop_stream(request: web.Request) -> web.Response:
        stopped = await stop(request.match_info["stream_id"], log=app[LOG_KEY])
        return web.json_response({"stopped": stopped})

    async def active(request: web.Request) -> web.Response:
        info = await app[LOG_KEY].find_active(request.match_info["conversation_id"])
        if info is None:
            raise web.HTTPNotFound(text="no answer is running")
        return web.json_response({"stream_id": info.stream_id})

    async def ai_sdk_chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat_id = body.get("id")
        source, _ = request_for("text", _user_messages(body))
        handle = await app[LOG_KEY].publish(
            source, conversation_id=chat_id if isinstance(chat_id, str) else None
        )
        return await aiohttp_response(
            request,
            log=app[LOG_KEY],
            stream_id=handle.stream_id,
            format="ai-sdk-ui",
            **relay_options,
        )

    async def ai_sdk_reconnect(request: web.Request) -> web.StreamResponse:
        info = await app[LOG_KEY].find_active(request.match_info["chat_id"])
        if info is None:
            return web.Response(status=204)
        return await aiohttp_response(
            request,
            log=app[LOG_KEY],
            stream_id=info.stream_id,
            format="ai-sdk-ui",
            **relay_options,
        )

    app.router.add_get("/", index)
    app.router.add_post("/api/chat", start)
    app.router.add_get("/api/streams/{stream_id}", stream)
    app.router.add_post("/api/streams/{stream_id}/stop", stop_stream)
    app.router.add_get("/api/conversations/{conversation_id}/active", active)
    app.router.add_post("/api/ai-sdk/chat", ai_sdk_chat)
    app.router.add_get("/api/ai-sdk/chat/{chat_id}/stream", ai_sdk_reconnect)
    return app
