"""Reactive operators over chat-completion streams, used like ``reactivex.operators``.

>>> from rxchat import operators as ops
>>> # source.pipe(ops.accumulate(), ops.parse_structured(Location), ops.raise_on_length())
"""

from ._accumulate import accumulate as accumulate
from ._broadcast import broadcast as broadcast
from ._buffer_text import buffer_text as buffer_text
from ._extract_tool_calls import extract_tool_calls as extract_tool_calls
from ._final_completion import final_completion as final_completion
from ._parse_structured import parse_structured as parse_structured
from ._partial_objects import partial_objects as partial_objects
from ._raise_on_length import raise_on_length as raise_on_length
from ._text import text as text
from ._timeouts import first_chunk_timeout as first_chunk_timeout
from ._timeouts import idle_timeout as idle_timeout
from ._tool_calls import tool_calls as tool_calls

__all__ = [
    "accumulate",
    "broadcast",
    "buffer_text",
    "extract_tool_calls",
    "final_completion",
    "first_chunk_timeout",
    "idle_timeout",
    "parse_structured",
    "partial_objects",
    "raise_on_length",
    "text",
    "tool_calls",
]
