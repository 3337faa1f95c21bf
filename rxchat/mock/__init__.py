"""Embedded, deterministic OpenAI-compatible mock server (aiohttp.web, 127.0.0.1).

Routes: ``POST /v1/chat/completions`` (SSE when ``"stream": true``, else one
``chat.completion``), ``GET /v1/models``, ``GET /v1/models/{id}``. Anything else is a 404
with OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``.

The same request always gives the same bytes: ids, ``created`` and the text are derived
from the request. The answer honours ``max_tokens`` / ``max_completion_tokens``
(``finish_reason: "length"``), ``n`` (choices interleaved round-robin), ``logprobs`` /
``top_logprobs``, ``stream_options.include_usage``, ``response_format`` (``json_schema``:
content validates against the schema; ``json_object``), ``tools`` / ``tool_choice`` /
``parallel_tool_calls`` (arguments validate against the tool's ``parameters``), and
``seed``. A last user message containing "anthrax" gets a refusal. The conversation is
validated as the API does (``tool`` messages must answer the preceding assistant's
``tool_calls``, each call must get its result, ...: a 400 otherwise); after tool results the
answer is text quoting them, and the text depends on the whole conversation.

Per-request options go in a query suffix on the model name (``model="mock?tokens=500&delay=0.01"``;
the echoed model is the part before ``?``) or in ``X-Mock-<Key>`` headers (``X-Mock-Tokens: 500``,
``X-Mock-Drop-After: 3``; headers win). Faults can also be listed in one key:
``fault=drop_after:3,stall_first:0.5`` / ``X-Mock-Fault: drop_after:3``.

======================  =================================================================
key                     meaning
======================  =================================================================
tokens=N                content tokens to generate (default 24, at most 1,000,000)
delay=S                 seconds between chunks (overrides the server's ``token_delay``)
reasoning=N             stream N ``delta.reasoning_content`` tokens before the answer
refusal=1               answer with a refusal (``delta.refusal`` chunks)
parallel_tools=K        with tools and ``tool_choice`` auto/required: call the first K tools
tool_turns=N            with ``tool_choice`` auto: N tool-calling rounds, then a text answer (1)
text=...                stream exactly this text (split into word tokens)
key=...                 counter key for ``fail_times`` (default: the full model string)
drop_after=N            close the TCP connection after N chunks (no ``[DONE]``)
stall_headers=S         sleep S seconds before sending the response headers
stall_first=S           sleep S seconds before the first chunk (headers already sent)
stall_between=S         sleep S seconds between chunks (every gap, or once: see stall_after)
stall_after=N           apply ``stall_between`` once, after chunk N only
keepalive=I             while sleeping, send ``: keep-alive`` comments every I seconds
status=CODE             answer with HTTP CODE and an OpenAI error body (429, 500, 503, ...)
retry_after=S           with ``status``: a ``Retry-After: S`` header
retry_after_ms=MS       with ``status``: a ``retry-after-ms: MS`` header
fail_times=K            only the first K requests with the same key fail (``status``, default 500)
bad_json_after=N        after N chunks, a ``data: {not json`` frame (the stream goes on)
error_after=N           after N chunks, a ``data: {"error": {...}}`` frame, then the body ends
event_error_after=N     the same as ``event: error`` + ``data: {...}``
unknown_shape_after=N   after N chunks, a chunk whose shape is unexpected (goes on)
invalid_utf8_after=N    after N chunks, a frame with invalid UTF-8 in a JSON string (goes on)
big_event=BYTES         the first content piece is BYTES long (spaces inside JSON modes)
no_done=1               end the body cleanly without finish-reason, usage and ``[DONE]``
drip=1                  write the body one byte at a time (``drip_delay=S`` between bytes)
======================  =================================================================

"After N chunks" counts ``data:`` chunk frames; an N beyond the stream's length applies just
before ``[DONE]``. Non-streaming requests honour ``status``/``fail_times``, ``stall_headers``,
``stall_first`` (a delay) and ``drop_after`` (the connection closes without a response).

Example:
    >>> async def main():
    ...     async with rxchat.mock.serve() as url:      # "http://127.0.0.1:PORT/v1"
    ...         ...                                     # url.server.requests, .disconnects, ...

For synchronous code and tests, ``serve_in_thread()`` / ``ThreadedMockServer`` run the same server
on their own thread, with answers and faults scripted per request (``server.script(...)``); the
``rxchat_mock`` pytest fixture (installed with rxchat) gives each test one.
"""

from ._app import create_app
from ._options import MockOptions, OptionError
from ._records import DisconnectRecord, MockState, RequestRecord, StreamRecord
from ._schema import SchemaError, generate_instance
from ._server import MockServer, ServerURL, run, serve
from ._threaded import ThreadedMockServer, ThreadedServerURL, serve_in_thread

__all__ = [
    "DisconnectRecord",
    "MockOptions",
    "MockServer",
    "MockState",
    "OptionError",
    "RequestRecord",
    "SchemaError",
    "ServerURL",
    "StreamRecord",
    "ThreadedMockServer",
    "ThreadedServerURL",
    "create_app",
    "generate_instance",
    "run",
    "serve",
    "serve_in_thread",
]
