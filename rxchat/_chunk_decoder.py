"""Sans-I/O chunk decoding: response-body bytes -> ChatCompletionChunk models.

The layers below it: :mod:`rxchat._sse` splits the bytes into Server-Sent Events,
:mod:`rxchat._c_builder` builds the models from their JSON (pydantic when it cannot).

One object per response body. It applies the OpenAI streaming conventions on top of the SSE
decoder: ``data: [DONE]`` ends the stream, an ``error`` object (or an ``event: error`` block) in the
middle of the stream is an error, a payload that is not a JSON chunk is an error carrying the raw
text, and a body that ends with neither a finish reason nor ``[DONE]`` is incomplete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn, cast

import orjson
from pydantic import ValidationError

from ._c_builder import build_chunks
from ._compat import json_validator
from ._sse import ServerSentEvent, SSEDecoder
from .errors import (
    IncompleteStreamError,
    InvalidChunkError,
    RxChatError,
    StreamAPIError,
)
from .types import ChatCompletionChunk

__all__ = ["FEED_SIZE", "ChunkDecoder"]

FEED_SIZE = 8192
"""Bytes to decode per ``feed`` at most on hot paths. A read of hundreds of chunks decoded at once
keeps all their models alive together; they then survive garbage-collector passes, which measured
twice the CPU per chunk. Slices of this size keep each batch young."""

_RAW_PREVIEW = 200
# The model's validator itself: model_validate_json adds a Python frame per chunk (~0.5 us).
_validate_chunk_json: Callable[[str], ChatCompletionChunk] = (
    json_validator(ChatCompletionChunk)
)


def _build_with_pydantic(payloads: list[str]) -> list[ChatCompletionChunk]:
    return [_validate_chunk_json(raw) for raw in payloads]


def _build_fast(payloads: list[str]) -> list[ChatCompletionChunk]:
    assert build_chunks is not None
    chunks = build_chunks(payloads)
    if None in chunks:  # what the C builder leaves to pydantic (which may raise)
        for i, chunk in enumerate(chunks):
            if chunk is None:
                chunks[i] = _validate_chunk_json(payloads[i])
    return cast("list[ChatCompletionChunk]", chunks)


_build_all: Callable[[list[str]], list[ChatCompletionChunk]] = (
    _build_with_pydantic if build_chunks is None else _build_fast
)
"""A read's payloads as chunks: the C reader where it is available (the same models, read
straight from the JSON), pydantic for what it leaves. Raises pydantic's ValidationError."""


def _asks_usage(request: Mapping[str, Any] | None) -> bool:
    options = request.get("stream_options") if request is not None else None
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _with_positional_indices(raw: str, err: ValidationError) -> ChatCompletionChunk | None:
    """The chunk, when all that was wrong is choices without ``index`` (some proxies send
    ``{"choices":[{"delta":{...}}]}``): each takes its position in the list. Else None."""
    errors = err.errors()
    if not all(
        e["type"] == "missing" and len(e["loc"]) == 3 and e["loc"][0] == "choices"
        and e["loc"][2] == "index"
        for e in errors
    ):
        return None
    try:
        body = orjson.loads(raw)
        for position, choice in enumerate(body["choices"]):
            if "index" not in choice:
                choice["index"] = position
        return _validate_chunk_json(orjson.dumps(body))  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, ValidationError, TypeError, KeyError):
        return None


def _preview(raw: str) -> str:
    return raw if len(raw) <= _RAW_PREVIEW else raw[:_RAW_PREVIEW] + f"... ({len(raw)} chars)"


def _error_message(body: Any, raw: str) -> str:
    info = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(info, dict):
        message = info.get("message")
        if isinstance(message, str) and message.strip():
            return message
    elif isinstance(info, str) and info.strip():
        return info
    return f"the server sent an error in the stream: {_preview(raw)}"


class ChunkDecoder:
    """Decode a streamed chat-completion body, read by read.

    A body that ends without ``data: [DONE]`` is complete only when every choice that appeared
    finished and, when ``request`` (the request body) asked for
    ``stream_options.include_usage``, the usage chunk arrived; else :meth:`close` raises
    :class:`IncompleteStreamError`.

    ``feed`` returns the chunks completed by a read. When a read contains something invalid, the
    chunks before it are still returned and :attr:`error` is set; the caller delivers the chunks,
    then raises the error. Nothing that arrived before a fault is lost.

    After each ``feed``, :attr:`payloads` holds the JSON text of each returned chunk, exactly as
    the server sent it (``None`` for a chunk the decoder had to amend), for consumers that store
    or forward chunks verbatim instead of serializing the models again.

    >>> decoder = ChunkDecoder()
    >>> [c.text for c in decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\\n\\n')]
    ['Hi']
    >>> decoder.feed(b"data: [DONE]\\n\\n"), decoder.done
    ([], True)
    """

    __slots__ = (
        "_closed",
        "_expect_usage",
        "_open",
        "_sse",
        "_usage_seen",
        "chunks_received",
        "done",
        "error",
        "finished",
        "payloads",
    )

    def __init__(
        self,
        *,
        max_event_bytes: int | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        self._sse = SSEDecoder(max_event_bytes=max_event_bytes)
        self.done = False  # "data: [DONE]" seen
        self.finished = False  # some choice reported a finish reason
        self.error: RxChatError | None = None
        self.chunks_received = 0
        self.payloads: list[str | None] = []
        """The JSON text of each chunk the last ``feed`` returned, as received (``None`` where
        the decoder amended the chunk: a choice without ``index`` given its position)."""
        self._open: set[int] = set()  # choices seen that have not finished
        self._closed: set[int] = set()  # choices that finished
        self._usage_seen = False
        self._expect_usage = _asks_usage(request)

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) set by the last ``retry:`` field of the body, or None."""
        return self._sse.retry

    @property
    def comments(self) -> int:
        """Keep-alive comment lines seen so far (they are not model output)."""
        return self._sse.comments

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Decode one read of the body; see the class docstring for errors."""
        if self.error is not None:
            raise self.error
        self.payloads = []
        if self.done:
            return []
        sse = self._sse
        try:
            items = sse.feed_payloads(data)
        except RxChatError as err:
            self._fail(err)
            return []
        if sse.all_payloads and "[DONE]" not in items:
            # The common read: plain data payloads, no [DONE]. All built in one comprehension;
            # on any failure the general loop below redoes the read to say which one failed.
            try:
                chunks = _build_all(cast("list[str]", items))
            except ValidationError:
                pass
            else:
                self._track(chunks)
                self.chunks_received += len(chunks)
                self.payloads = cast("list[str | None]", items)
                if sse.error is not None:
                    self._fail(sse.error)  # an oversized event after these chunks
                return chunks
        chunks = []
        payloads = self.payloads
        for item in items:
            try:
                chunk, payload = self._decode(item)
            except RxChatError as err:
                self.chunks_received += len(chunks)
                self._fail(err)
                return chunks
            if chunk is None:  # [DONE]
                break
            chunks.append(chunk)
            payloads.append(payload)
        self._track(chunks)
        self.chunks_received += len(chunks)
        if sse.error is not None and not self.done:
            # The read also held an oversized event after these chunks: deliver them, then fail.
            self._fail(sse.error)
        return chunks

    def _track(self, chunks: list[ChatCompletionChunk]) -> None:
        """Note which choices appeared and finished, and whether usage arrived."""
        open_ = self._open
        closed = self._closed
        for chunk in chunks:
            if chunk.usage is not None:
                self._usage_seen = True
            for choice in chunk.choices:
                index = choice.index
                if choice.finish_reason is not None:
                    closed.add(index)
                    open_.discard(index)
                    self.finished = True
                elif index not in closed:
                    open_.add(index)

    @property
    def complete(self) -> bool:
        """Whether the body so far is a whole answer: ``[DONE]`` arrived, or every choice that
        appeared finished and, when the request asked for it, the usage chunk arrived."""
        if self.done:
            return True
        return (
            bool(self._closed)
            and not self._open
            and (self._usage_seen or not self._expect_usage)
        )

    def _missing(self) -> str:
        if not self._closed and not self._open:
            return "before any finish reason"
        if self._open:
            pending = ", ".join(str(i) for i in sorted(self._open))
            plural = "s" if len(self._open) > 1 else ""
            return f"before choice{plural} {pending} finished"
        return "before the usage chunk the request asked for (stream_options.include_usage)"

    def close(self) -> None:
        """The body ended. Raises :class:`IncompleteStreamError` when it ended too early."""
        if self.error is not None:
            raise self.error
        self._sse.flush()
        if self.complete:
            return
        lost = self._sse.discarded_chars
        detail = f"; an unterminated event of {lost} characters was discarded" if lost else ""
        self._fail(
            IncompleteStreamError(
                f"the stream ended {self._missing()} and without [DONE] "
                f"after {self.chunks_received} chunks{detail}"
            )
        )
        raise self.error  # type: ignore[misc]

    def _fail(self, err: RxChatError) -> None:
        err.chunks_received = self.chunks_received
        self.error = err

    def _decode(
        self, event: str | ServerSentEvent
    ) -> tuple[ChatCompletionChunk | None, str | None]:
        """The chunk of one event (None for ``[DONE]``), and its JSON text when the chunk is
        exactly what that text says (None when it had to be amended)."""
        raw = event if isinstance(event, str) else event.data
        if raw == "[DONE]":
            self.done = True
            return None, None
        if not isinstance(event, str) and event.event == "error":
            self._reject(raw, None, event)
        # The happy path parses once, in Rust, straight into the models; anything that fails
        # is parsed again with orjson only to say precisely what was wrong with it.
        try:
            return _validate_chunk_json(raw), raw
        except ValidationError as err:
            chunk = _with_positional_indices(raw, err)
            if chunk is not None:
                return chunk, None
            self._reject(raw, err, event)

    @staticmethod
    def _reject(
        raw: str, err: ValidationError | None, event: str | ServerSentEvent
    ) -> NoReturn:
        is_error_event = not isinstance(event, str) and event.event == "error"
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as json_err:
            if is_error_event:
                raise StreamAPIError(f"the server sent an error event: {_preview(raw)}") from None
            raise InvalidChunkError(
                f"a data payload is not valid JSON ({json_err}): {_preview(raw)}", raw=raw
            ) from None
        if is_error_event or (isinstance(body, dict) and "error" in body):
            raise StreamAPIError(_error_message(body, raw), body=body) from None
        if type(body) is not dict:
            raise InvalidChunkError(
                f"a data payload is not a JSON object: {_preview(raw)}", raw=raw
            ) from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in (err.errors()[:3] if err is not None else [])
        )
        # from None: pydantic's error repeats the whole payload; the message sums it up.
        raise InvalidChunkError(
            f"a data payload is not a chat-completion chunk ({problems}): {_preview(raw)}",
            raw=raw,
        ) from None
