"""The last hop: rxchat streams to browsers and browser SDKs as Server-Sent Events.

Three wire formats (``format=``): ``"openai"`` (chunks passthrough, ``data: [DONE]``: rxchat as a
proxy in front of any OpenAI-compatible client), ``"events"`` (rxchat's events as JSON,
``event: content.delta``, with partial structured values and tool-call arguments) and
``"ai-sdk-ui"`` (the Vercel AI SDK UI message stream protocol v1, for ``useChat``).

* :func:`sse` — any chunk or event stream (or a stream log's stream) as an async iterator of SSE
  bytes: ids on every event, keep-alives, the format's error event, resume after a
  ``Last-Event-ID``, a bounded buffer per client, a disconnect policy.
* :func:`aiohttp_response` — the same as an aiohttp.web response.
* :func:`asgi_response` — the same as a Starlette / FastAPI response (``rxchat[asgi]``).
* :func:`stop` — stop a stream by id (a stop button), across processes with a stream log.
* :func:`frame` / :func:`comment` — correct SSE framing for anything else.
* :func:`chat_app` — the aiohttp app of ``rxchat serve --ui``: a chat page over the relay.
"""

from typing import TYPE_CHECKING, Any

from ._api import sse as sse
from ._api import stop as stop
from ._encoders import FORMATS as FORMATS
from ._encoders import Encoder as Encoder
from ._encoders import EventsEncoder as EventsEncoder
from ._encoders import OpenAIEncoder as OpenAIEncoder
from ._encoders import UIMessageStreamEncoder as UIMessageStreamEncoder
from ._errors import RelayError as RelayError
from ._errors import SlowClientError as SlowClientError
from ._errors import UnknownEventIdError as UnknownEventIdError
from ._framing import comment as comment
from ._framing import frame as frame
from ._stream import SSE_HEADERS as SSE_HEADERS
from ._stream import SSEStream as SSEStream

if TYPE_CHECKING:
    from ._aiohttp import STREAM_KEY as STREAM_KEY
    from ._aiohttp import aiohttp_response as aiohttp_response
    from ._asgi import asgi_response as asgi_response
    from ._page import chat_app as chat_app

_LAZY = {
    "STREAM_KEY": "._aiohttp",
    "aiohttp_response": "._aiohttp",
    "asgi_response": "._asgi",
    "chat_app": "._page",
}


def __getattr__(name: str) -> Any:
    # aiohttp.web and Starlette are imported when a response is first asked for.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "FORMATS",
    "SSE_HEADERS",
    "STREAM_KEY",
    "Encoder",
    "EventsEncoder",
    "OpenAIEncoder",
    "RelayError",
    "SSEStream",
    "SlowClientError",
    "UIMessageStreamEncoder",
    "UnknownEventIdError",
    "aiohttp_response",
    "asgi_response",
    "chat_app",
    "comment",
    "frame",
    "sse",
    "stop",
]
