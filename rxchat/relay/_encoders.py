"""Encoders: a chunk or event stream to the messages of one SSE wire format (sans-I/O).

An encoder turns each item of a stream into zero or more *messages* ``(event, data)``: ``event`` is
the ``event:`` field (``None`` for the default type) and ``data`` one line of JSON (orjson never
writes a raw line break, so each message is exactly one ``data:`` line). The writer in
:mod:`._writer` numbers the messages and frames them. Encoders are deterministic: the same items
give the same messages, which is what makes event ids stable across a resume (see ``_writer``).

=============  ============================================================================
format         wire
=============  ============================================================================
``openai``     ``data: {chunk}`` per chunk, then ``data: [DONE]`` (OpenAI's own stream)
``events``     ``event: content.delta`` + ``data: {...}`` per rxchat event, then ``event: done``
``ai-sdk-ui``  the Vercel AI SDK UI message stream (v1): ``start``, ``text-*``, ``reasoning-*``,
               ``tool-input-*``, ``finish``, then ``data: [DONE]``
=============  ============================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeAlias

import orjson
import pydantic
from pydantic import BaseModel

from .. import events as ev
from .._compat import values_of
from .._state import ChatCompletionStreamState
from ..errors import APIStatusError
from ..types import ChatCompletionChunk
from ._errors import RelayError

__all__ = [
    "FORMATS",
    "Encoder",
    "EventsEncoder",
    "Format",
    "Message",
    "OpenAIEncoder",
    "UIMessageStreamEncoder",
    "encoder_for",
]

Message: TypeAlias = tuple[bytes | None, bytes]
"""``(event type or None, one line of data)``."""

Format: TypeAlias = Literal["openai", "events", "ai-sdk-ui"]

_DONE: Message = (None, b"[DONE]")
_EVENT_TYPES = {
    cls.model_fields["type"].default: cls
    for cls in (
        ev.ChunkEvent,
        ev.ContentDeltaEvent,
        ev.ContentDoneEvent,
        ev.RefusalDeltaEvent,
        ev.RefusalDoneEvent,
        ev.ReasoningDeltaEvent,
        ev.ReasoningDoneEvent,
        ev.FunctionToolCallArgumentsDeltaEvent,
        ev.FunctionToolCallArgumentsDoneEvent,
        ev.LogprobsContentDeltaEvent,
        ev.LogprobsContentDoneEvent,
        ev.LogprobsRefusalDeltaEvent,
        ev.LogprobsRefusalDoneEvent,
    )
}


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


# One chunk relayed to many browsers (an ops.broadcast(), a hot Observable) reaches every
# connection's encoder in turn: the last chunk's JSON is kept (with the chunk, so its id stays its
# own) and serialised once for all of them.
_last_chunk: tuple[Any, bytes] = (None, b"")


def _chunk_json(chunk: ChatCompletionChunk) -> bytes:
    # The fields the server sent (unknown ones included), as bytes, in one pass.
    global _last_chunk
    last = _last_chunk  # one read and one write of a tuple: safe across loop threads
    if last[0] is chunk:
        return last[1]
    data = type(chunk).__pydantic_serializer__.to_json(chunk, exclude_unset=True)
    _last_chunk = (chunk, data)
    return data


def error_body(error: BaseException) -> dict[str, Any]:
    """What a client is told about an error: its type, its (already redacted) message and, for
    an HTTP error of the model server, the status code."""
    body: dict[str, Any] = {
        "type": type(error).__name__,
        "message": str(error) or type(error).__name__,
    }
    if isinstance(error, APIStatusError):
        body["status_code"] = error.status_code
    return body


def as_chunk(item: Any) -> ChatCompletionChunk | None:
    """The chunk an item carries: a chunk, a ``chunk`` event's chunk, a chunk dict; ``None`` for
    the other rxchat events (derived from chunks, nothing to add)."""
    if isinstance(item, ChatCompletionChunk):
        return item
    if isinstance(item, ev.ChunkEvent):
        return item.chunk
    if isinstance(item, Mapping):
        try:
            return ChatCompletionChunk.model_validate(dict(item))
        except pydantic.ValidationError as err:
            raise RelayError(f"a dict that is not a chat-completion chunk: {err}") from None
    if isinstance(item, ev._Event):
        return None
    chunk = getattr(item, "chunk", None)  # a stream-log entry (LoggedChunk) carries its chunk
    if isinstance(chunk, ChatCompletionChunk):
        return chunk
    raise RelayError(
        f"cannot relay a {type(item).__name__}: expected chat-completion chunks or rxchat events"
    )


class Encoder:
    """Base of the encoders: one per stream (they keep state), fed in order.

    ``encode(item)`` for every item, then exactly one of ``close()`` (the stream completed),
    ``fail(error)`` (it failed) or ``abort(reason)`` (it was cancelled or stopped).
    """

    format: ClassVar[str]
    headers: ClassVar[Mapping[str, str]] = {}
    """Response headers the format needs (beyond ``Content-Type`` and the no-buffering ones)."""

    def encode(self, item: Any) -> list[Message]:
        raise NotImplementedError

    def close(self) -> list[Message]:
        raise NotImplementedError

    def fail(self, error: BaseException) -> list[Message]:
        raise NotImplementedError

    def abort(self, reason: str) -> list[Message]:
        raise NotImplementedError


# -- OpenAI chunks -----------------------------------------------------------------------------


class OpenAIEncoder(Encoder):
    """OpenAI's own stream: ``data: {chunk}`` per chunk, ``data: [DONE]`` at the end.

    An error becomes ``data: {"error": {"message", "type", "param", "code"}}`` (what OpenAI sends
    in the middle of a stream, which the OpenAI SDKs and rxchat raise as an API error), without
    ``[DONE]``, so that no client takes the cut answer for a complete one.
    """

    format = "openai"

    def encode(self, item: Any) -> list[Message]:
        chunk = as_chunk(item)
        if chunk is None:
            return []
        return [(None, _chunk_json(chunk))]

    def close(self) -> list[Message]:
        return [_DONE]

    def fail(self, error: BaseException) -> list[Message]:
        body = error_body(error)
        code = body.get("status_code")
        payload = {"message": body["message"], "type": body["type"], "param": None, "code": code}
        return [(None, _json({"error": payload}))]

    def abort(self, reason: str) -> list[Message]:
        payload = {"message": reason, "type": "cancelled", "param": None, "code": None}
        return [(None, _json({"error": payload}))]


# -- rxchat events -----------------------------------------------------------------------------

_NOT_SET = object()


def _deferred(event: Any, name: str) -> Any:
    # A value computed at build time is in the field values; a deferred one is computed on first read.
    value = values_of(event).get(name, _NOT_SET)
    return getattr(event, name) if value is _NOT_SET else value


def _content_delta(event: Any) -> dict[str, Any]:
    data = {"type": "content.delta", "delta": event.delta, "choice_index": event.choice_index}
    parsed = _deferred(event, "parsed")
    if parsed is not None:
        data["parsed"] = parsed
    return data


def _text_delta(event: Any) -> dict[str, Any]:
    return {"type": event.type, "delta": event.delta, "choice_index": event.choice_index}


def _tool_delta(event: Any) -> dict[str, Any]:
    data = {
        "type": "tool_calls.function.arguments.delta",
        "name": event.name,
        "index": event.index,
        "arguments_delta": event.arguments_delta,
        "choice_index": event.choice_index,
    }
    parsed = _deferred(event, "parsed_arguments")
    if parsed is not None:
        data["parsed_arguments"] = parsed
    return data


def _generic(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"snapshot"})  # type: ignore[no-any-return]


_EVENT_BODIES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "content.delta": _content_delta,
    "refusal.delta": _text_delta,
    "reasoning.delta": _text_delta,
    "tool_calls.function.arguments.delta": _tool_delta,
}
_EVENT_NAMES = {name: name.encode() for name in _EVENT_TYPES}


class EventsEncoder(Encoder):
    """rxchat's events as JSON: ``event: <type>`` and ``data: {"type": ..., ...}``.

    Delta events carry the delta, not the running snapshot (which would repeat the whole answer in
    every event): ``content.delta`` has ``delta``, ``choice_index`` and, for structured output, the
    partial value ``parsed``; ``tool_calls.function.arguments.delta`` has ``name``, ``index``,
    ``arguments_delta`` and the partial ``parsed_arguments``. Done events are the events' own
    fields (``content.done`` with the validated ``parsed`` value, the tool call's complete
    ``arguments``). ``chunk`` events are left out unless ``chunks=True``. The stream ends with
    ``event: done`` (``choices``: each choice's finish reason, ``usage``), or ``event: error``
    (``type``, ``message``, ``status_code`` for HTTP errors), or ``event: abort`` (``reason``).

    Fed chunks, it accumulates them itself (with ``response_format`` / ``tools`` for partial
    structured values and tool arguments); fed events (``ops.accumulate()``, ``ops.parse_structured``
    ...), it sends them as they are.
    """

    format = "events"

    def __init__(
        self,
        *,
        response_format: Any = None,
        tools: Iterable[Any] | None = None,
        chunks: bool = False,
    ) -> None:
        self._state: ChatCompletionStreamState[Any] | None = None
        self._response_format = response_format
        self._tools = tools
        self._chunks = chunks
        self._finish: dict[int, str] = {}
        self._usage: Any = None

    def encode(self, item: Any) -> list[Message]:
        if isinstance(item, ev._Event):
            return self._event(item)
        chunk = as_chunk(item)
        assert chunk is not None
        state = self._state
        if state is None:
            state = self._state = ChatCompletionStreamState(
                response_format=self._response_format, tools=self._tools
            )
        out: list[Message] = []
        for event in state.handle_chunk(chunk):
            out += self._event(event)
        return out

    def _event(self, event: Any) -> list[Message]:
        kind = event.type
        if kind == "content.delta" and values_of(event).get("parsed", _NOT_SET) is None:
            # the event of nearly every chunk of a text answer: written directly
            data = b'{"type":"content.delta","delta":%s,"choice_index":%d}' % (
                orjson.dumps(event.delta),
                event.choice_index,
            )
            return [(b"content.delta", data)]
        if kind == "chunk":
            chunk = event.chunk
            for choice in chunk.choices:
                reason = choice.finish_reason
                if reason is not None:
                    self._finish[choice.index] = reason
            if chunk.usage is not None:
                self._usage = chunk.usage
            if not self._chunks:
                return []
            data = b'{"type":"chunk","choice_index":%d,"chunk":%s}' % (
                event.choice_index,
                _chunk_json(chunk),
            )
            return [(b"chunk", data)]
        body = _EVENT_BODIES.get(kind, _generic)
        name = _EVENT_NAMES.get(kind) or kind.encode()
        return [(name, _json(body(event)))]

    def close(self) -> list[Message]:
        choices = [{"index": i, "finish_reason": r} for i, r in sorted(self._finish.items())]
        return [(b"done", _json({"type": "done", "choices": choices, "usage": self._usage}))]

    def fail(self, error: BaseException) -> list[Message]:
        return [(b"error", _json({"type": "error", "error": error_body(error)}))]

    def abort(self, reason: str) -> list[Message]:
        return [(b"abort", _json({"type": "abort", "reason": reason}))]


# -- Vercel AI SDK UI message stream -----------------------------------------------------------

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
}


class _ToolCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []


class UIMessageStreamEncoder(Encoder):
    """The Vercel AI SDK UI message stream protocol, v1 (``useChat``, ``readUIMessageStream``).

    One assistant message from the first choice of the chunks: ``start`` (``messageId``), then
    ``start-step``, text as ``text-start`` / ``text-delta`` / ``text-end``, ``delta.reasoning_content``
    as ``reasoning-start`` / ``reasoning-delta`` / ``reasoning-end``, a refusal as text, each tool
    call as ``tool-input-start`` / ``tool-input-delta`` (the arguments text as it streams) /
    ``tool-input-available`` (the parsed arguments; ``tool-input-error`` when they are not JSON),
    then ``finish-step``, ``finish`` (``finishReason``) and ``data: [DONE]``. An error becomes
    ``{"type": "error", "errorText"}``, a cancellation ``{"type": "abort", "reason"}``, each then
    ``[DONE]``. Part ids are derived from the stream (``text-0``, ``reasoning-0``; tool calls keep
    the model's call ids), so a replayed stream gives the same parts.

    Args:
        message_id: the ``messageId`` of ``start`` (default: the chunks' completion id).
        dynamic_tools: mark tool calls ``dynamic`` (the SDK's ``dynamic-tool`` parts, for tools
            the front end does not declare); by default they are ``tool-<name>`` parts.
    """

    format = "ai-sdk-ui"
    headers: ClassVar[Mapping[str, str]] = {"x-vercel-ai-ui-message-stream": "v1"}

    def __init__(self, *, message_id: str | None = None, dynamic_tools: bool = False) -> None:
        self._message_id = message_id
        self._dynamic = dynamic_tools
        self._started = False
        self._text: str | None = None  # id of the open text part
        self._text_json = b""
        self._reasoning: str | None = None  # id of the open reasoning part
        self._parts = 0
        self._calls: dict[int, _ToolCall] = {}
        self._open_call: _ToolCall | None = None
        self._finish: str | None = None

    def _start(self, out: list[Message], chunk: ChatCompletionChunk | None) -> None:
        self._started = True
        message_id = self._message_id
        if message_id is None and chunk is not None and chunk.id:
            message_id = chunk.id
        start: dict[str, Any] = {"type": "start"}
        if message_id is not None:
            start["messageId"] = message_id
        out.append((None, _json(start)))
        out.append((None, b'{"type":"start-step"}'))

    def _end_text(self, out: list[Message]) -> None:
        if self._text is not None:
            out.append((None, b'{"type":"text-end","id":%s}' % _json(self._text)))
            self._text = None

    def _end_reasoning(self, out: list[Message]) -> None:
        if self._reasoning is not None:
            out.append((None, b'{"type":"reasoning-end","id":%s}' % _json(self._reasoning)))
            self._reasoning = None

    def _end_call(self, out: list[Message]) -> None:
        call, self._open_call = self._open_call, None
        if call is None:
            return
        text = "".join(call.arguments)
        common: dict[str, Any] = {"toolCallId": call.id, "toolName": call.name}
        if self._dynamic:
            common["dynamic"] = True
        try:
            value = orjson.loads(text) if text.strip() else {}
        except orjson.JSONDecodeError as err:
            error = {
                "type": "tool-input-error",
                **common,
                "input": text,
                "errorText": f"the arguments are not JSON: {err}",
            }
            out.append((None, _json(error)))
            return
        out.append((None, _json({"type": "tool-input-available", **common, "input": value})))

    def _new_part(self, kind: str) -> str:
        part = f"{kind}-{self._parts}"
        self._parts += 1
        return part

    def encode(self, item: Any) -> list[Message]:
        chunk = item if type(item) is ChatCompletionChunk else as_chunk(item)
        if chunk is None:
            return []
        choices = chunk.choices
        if self._text is not None and len(choices) == 1:
            # Most chunks: more text for the open text part (which means no reasoning part and
            # no tool call is open), nothing else.
            choice = choices[0]
            delta = choice.delta
            content = delta.content
            if (
                content
                and choice.index == 0
                and choice.finish_reason is None
                and delta.reasoning_content is None
                and delta.refusal is None
                and delta.tool_calls is None
            ):
                data = b'{"type":"text-delta","id":%s,"delta":%s}' % (
                    self._text_json,
                    orjson.dumps(content),
                )
                return [(None, data)]
        out: list[Message] = []
        if not self._started:
            self._start(out, chunk)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            reasoning = delta.reasoning_content
            if reasoning:
                self._end_text(out)
                if self._reasoning is None:
                    self._reasoning = self._new_part("reasoning")
                    out.append(
                        (None, b'{"type":"reasoning-start","id":%s}' % _json(self._reasoning))
                    )
                out.append(
                    (
                        None,
                        _json(
                            {"type": "reasoning-delta", "id": self._reasoning, "delta": reasoning}
                        ),
                    )
                )
            for text in (delta.content, delta.refusal):
                if text:
                    if self._reasoning is not None:
                        self._end_reasoning(out)
                    if self._open_call is not None:
                        self._end_call(out)
                    if self._text is None:
                        self._text = self._new_part("text")
                        self._text_json = _json(self._text)
                        out.append((None, b'{"type":"text-start","id":%s}' % self._text_json))
                    out.append(
                        (
                            None,
                            b'{"type":"text-delta","id":%s,"delta":%s}'
                            % (self._text_json, orjson.dumps(text)),
                        )
                    )
            if delta.tool_calls:
                self._end_reasoning(out)
                self._end_text(out)
                for call_delta in delta.tool_calls:
                    self._tool_delta(out, call_delta)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._end_parts(out)
        return out

    def _tool_delta(self, out: list[Message], call_delta: Any) -> None:
        call = self._calls.get(call_delta.index)
        function = call_delta.function
        if call is None:
            self._end_call(out)
            name = (function.name if function is not None else None) or ""
            call = _ToolCall(call_delta.id or f"call_{call_delta.index}", name)
            self._calls[call_delta.index] = call
            self._open_call = call
            start: dict[str, Any] = {
                "type": "tool-input-start",
                "toolCallId": call.id,
                "toolName": name,
            }
            if self._dynamic:
                start["dynamic"] = True
            out.append((None, _json(start)))
        arguments = function.arguments if function is not None else None
        if arguments:
            call.arguments.append(arguments)
            out.append(
                (
                    None,
                    _json(
                        {
                            "type": "tool-input-delta",
                            "toolCallId": call.id,
                            "inputTextDelta": arguments,
                        }
                    ),
                )
            )

    def _end_parts(self, out: list[Message]) -> None:
        self._end_reasoning(out)
        self._end_text(out)
        self._end_call(out)

    def close(self) -> list[Message]:
        out: list[Message] = []
        if not self._started:
            self._start(out, None)
        self._end_parts(out)
        out.append((None, b'{"type":"finish-step"}'))
        finish: dict[str, Any] = {"type": "finish"}
        if self._finish is not None:
            finish["finishReason"] = _FINISH_REASONS.get(self._finish, "other")
        out.append((None, _json(finish)))
        out.append(_DONE)
        return out

    def fail(self, error: BaseException) -> list[Message]:
        body = error_body(error)
        return [
            (None, _json({"type": "error", "errorText": f"{body['type']}: {body['message']}"})),
            _DONE,
        ]

    def abort(self, reason: str) -> list[Message]:
        return [(None, _json({"type": "abort", "reason": reason})), _DONE]


FORMATS: dict[str, type[Encoder]] = {
    "openai": OpenAIEncoder,
    "events": EventsEncoder,
    "ai-sdk-ui": UIMessageStreamEncoder,
}


def encoder_for(format: str | Encoder, **options: Any) -> Encoder:
    """An encoder instance for a format name (options go to its constructor), or the encoder
    given.

    Raises:
        RelayError: an unknown format name, or options for a format that takes none.
    """
    if isinstance(format, Encoder):
        if options:
            raise RelayError(f"options {sorted(options)} given with an encoder instance")
        return format
    cls = FORMATS.get(format)
    if cls is None:
        raise RelayError(f"unknown SSE format {format!r}; expected one of {sorted(FORMATS)}")
    try:
        return cls(**options)
    except TypeError as err:
        raise RelayError(f"format {format!r}: {err}") from None
