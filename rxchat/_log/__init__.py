"""The stream log: where a stream outlives its request (publish, read, resume, cancel)."""

from ._core import LogOptions as LogOptions
from ._core import StreamHandle as StreamHandle
from ._core import StreamLog as StreamLog
from ._core import StreamReader as StreamReader
from ._errors import ProducerLostError as ProducerLostError
from ._errors import RemoteStreamError as RemoteStreamError
from ._errors import StreamCancelledError as StreamCancelledError
from ._errors import StreamDataLostError as StreamDataLostError
from ._errors import StreamExistsError as StreamExistsError
from ._errors import StreamLimitError as StreamLimitError
from ._errors import StreamLogError as StreamLogError
from ._errors import StreamLogUnavailableError as StreamLogUnavailableError
from ._errors import StreamNotFoundError as StreamNotFoundError
from ._memory import MemoryStreamLog as MemoryStreamLog
from ._types import LoggedChunk as LoggedChunk
from ._types import StreamInfo as StreamInfo
from ._types import StreamStatus as StreamStatus

__all__ = [
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
    "StreamStatus",
]
