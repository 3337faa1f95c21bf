"""rxchat: reactive streams for OpenAI-compatible chat completions."""

from ._decode import ChunkDecoder as ChunkDecoder
from ._sse import ServerSentEvent as ServerSentEvent
from ._sse import SSEDecoder as SSEDecoder
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .types import ChatCompletion as ChatCompletion
from .types import ChatCompletionChunk as ChatCompletionChunk
from .types import ParsedChatCompletion as ParsedChatCompletion
from .types import StreamChunk as StreamChunk

__version__ = "0.1.0"

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChunkDecoder",
    "ParsedChatCompletion",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamChunk",
    "__version__",
    *_errors_all,
]
