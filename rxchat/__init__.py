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
from ._async_iter import ObservableIterator as ObservableIterator
from ._async_iter import to_async_iterator as to_async_iterator
from ._chunk_decoder import ChunkDecoder as ChunkDecoder
from ._client_async import AsyncChat as AsyncChat
from ._client_async import AsyncClient as AsyncClient
from ._client_async import AsyncCompletions as AsyncCompletions
from ._client_sync import Chat as Chat
from ._client_sync import Client as Client
from ._client_sync import Completions as Completions
from ._edgee import InputObject as InputObject
from ._edgee import SendResponse as SendResponse
from ._log import LoggedChunk as LoggedChunk
from ._log import LogOptions as LogOptions
from ._log import MemoryStreamLog as MemoryStreamLog
from ._log import ProducerLostError as ProducerLostError
from ._log import RemoteStreamError as RemoteStreamError
from ._log import StreamCancelledError as StreamCancelledError
from ._log import StreamDataLostError as StreamDataLostError
from ._log import StreamExistsError as StreamExistsError
from ._log import StreamHandle as StreamHandle
from ._log import StreamInfo as StreamInfo
from ._log import StreamLimitError as StreamLimitError
from ._log import StreamLog as StreamLog
from ._log import StreamLogError as StreamLogError
from ._log import StreamLogUnavailableError as StreamLogUnavailableError
from ._log import StreamNotFoundError as StreamNotFoundError
from ._log import StreamReader as StreamReader
from ._params import NOT_GIVEN as NOT_GIVEN
from ._params import ChatCompletionParams as ChatCompletionParams
from ._params import CompletionCreateParams as CompletionCreateParams
from ._params import NotGiven as NotGiven
from ._params import RequestOptions as RequestOptions
from ._params import SourceParams as SourceParams
from ._params import ToolRunnerParams as ToolRunnerParams
from ._partial import Partial as Partial
from ._partial import PartialObjectParser as PartialObjectParser
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
from ._structured import pydantic_function_tool as pydantic_function_tool
from ._structured import to_strict_json_schema as to_strict_json_schema
from ._structured import type_to_response_format_param as type_to_response_format_param
from ._tools import AsyncToolRunner as AsyncToolRunner
from ._tools import FinalEvent as FinalEvent
from ._tools import FunctionTool as FunctionTool
from ._tools import MaxTurnsExceededError as MaxTurnsExceededError
from ._tools import ToolCallFinishedEvent as ToolCallFinishedEvent
from ._tools import ToolCallStartedEvent as ToolCallStartedEvent
from ._tools import ToolRunner as ToolRunner
from ._tools import ToolRunnerEvent as ToolRunnerEvent
from ._tools import TurnDoneEvent as TurnDoneEvent
from ._tools import TurnStartedEvent as TurnStartedEvent
from ._tools import function_tool as function_tool
from ._tools import run_tools as run_tools
from ._tools import tool_message as tool_message
from ._transport import ChunkBatchStream as ChunkBatchStream
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
    from . import redis as redis

from ._version import __version__ as __version__


def __getattr__(name: str) -> _typing.Any:
    # rxchat.mock pulls in aiohttp.web; import it only when someone reaches for it.
    if name in ("mock", "redis"):  # rxchat.redis needs the rxchat[redis] extra
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (with the lazily imported ``mock``) and the module's dunders; not the
    # private submodules, nor helpers an import hook may add (pytest's assertion rewriting).
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


__all__ = [
    "NOT_GIVEN",
    "AsyncChat",
    "AsyncCompletions",
    "Chat",
    "ChatCompletionParams",
    "ChunkBatchStream",
    "CompletionCreateParams",
    "Completions",
    "RequestOptions",
    "SourceParams",
    "ToolRunnerParams",
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
    "LogOptions",
    "LoggedChunk",
    "MemoryStreamLog",
    "ProducerLostError",
    "RemoteStreamError",
    "StreamCancelledError",
    "StreamDataLostError",
    "StreamExistsError",
    "StreamHandle",
    "StreamInfo",
    "StreamLimitError",
    "StreamLog",
    "StreamLogError",
    "StreamLogUnavailableError",
    "StreamNotFoundError",
    "StreamReader",
    "pydantic_function_tool",
    "redact",
    "to_async_iterator",
    "to_strict_json_schema",
    "type_to_response_format_param",
    "types",
    "AsyncToolRunner",
    "FinalEvent",
    "FunctionTool",
    "MaxTurnsExceededError",
    "ToolCallFinishedEvent",
    "ToolCallStartedEvent",
    "ToolRunner",
    "ToolRunnerEvent",
    "TurnDoneEvent",
    "TurnStartedEvent",
    "function_tool",
    "run_tools",
    "tool_message",
    "Partial",
    "PartialObjectParser",
    *_errors_all,
]
