"""rxchat: reactive streams for OpenAI-compatible chat completions.

Sources turn a streamed chat completion into a reactivex ``Observable`` of chunks; the operators
in :mod:`rxchat.operators` turn chunks into typed events; the clients offer the OpenAI / Dedalus /
Edgee SDK surfaces on the same core; :mod:`rxchat.mock` is an embedded OpenAI-compatible server.
"""

import typing as _typing

from . import errors as errors
from . import events as events
from . import operators as operators
from . import types as types
from ._bridge import ObservableIterator as ObservableIterator
from ._bridge import to_async_iterator as to_async_iterator
from ._client import NOT_GIVEN as NOT_GIVEN
from ._client import AsyncClient as AsyncClient
from ._client import Client as Client
from ._client import NotGiven as NotGiven
from ._decode import ChunkDecoder as ChunkDecoder
from ._edgee import InputObject as InputObject
from ._edgee import SendResponse as SendResponse
from ._parsing import pydantic_function_tool as pydantic_function_tool
from ._parsing import to_strict_json_schema as to_strict_json_schema
from ._parsing import type_to_response_format_param as type_to_response_format_param
from ._sources import chat_completion_stream as chat_completion_stream
from ._sources import from_chunks as from_chunks
from ._sources import from_sse_bytes as from_sse_bytes
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from ._state import ChatCompletionStreamState as ChatCompletionStreamState
from ._streams import AsyncChatCompletionStream as AsyncChatCompletionStream
from ._streams import AsyncChatCompletionStreamManager as AsyncChatCompletionStreamManager
from ._streams import AsyncStream as AsyncStream
from ._streams import ChatCompletionStream as ChatCompletionStream
from ._streams import ChatCompletionStreamManager as ChatCompletionStreamManager
from ._streams import Stream as Stream
from ._transport import Timeout as Timeout
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .errors import redact as redact
from .events import ChatCompletionStreamEvent as ChatCompletionStreamEvent
from .types import ChatCompletion as ChatCompletion
from .types import ChatCompletionChunk as ChatCompletionChunk
from .types import ParsedChatCompletion as ParsedChatCompletion
from .types import StreamChunk as StreamChunk

if _typing.TYPE_CHECKING:
    from . import mock as mock

__version__ = "0.1.0"


def __getattr__(name: str) -> _typing.Any:
    # rxchat.mock pulls in aiohttp.web; import it only when someone reaches for it.
    if name == "mock":
        import importlib

        return importlib.import_module(".mock", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (with the lazily imported ``mock``) and the module's dunders; not the
    # private submodules, nor helpers an import hook may add (pytest's assertion rewriting).
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


__all__ = [
    "NOT_GIVEN",
    "AsyncChatCompletionStream",
    "AsyncChatCompletionStreamManager",
    "AsyncClient",
    "AsyncStream",
    "ChatCompletionStream",
    "ChatCompletionStreamManager",
    "NotGiven",
    "ObservableIterator",
    "Stream",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionStreamEvent",
    "ChatCompletionStreamState",
    "ChunkDecoder",
    "Client",
    "InputObject",
    "ParsedChatCompletion",
    "SSEDecoder",
    "SendResponse",
    "ServerSentEvent",
    "StreamChunk",
    "Timeout",
    "__version__",
    "chat_completion_stream",
    "errors",
    "events",
    "from_chunks",
    "from_sse_bytes",
    "mock",
    "operators",
    "pydantic_function_tool",
    "redact",
    "to_async_iterator",
    "to_strict_json_schema",
    "type_to_response_format_param",
    "types",
    *_errors_all,
]
