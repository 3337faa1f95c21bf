"""Wire types: pydantic v2 models of chat-completion chunks and completions.

Field names follow the OpenAI API. Every model keeps fields it does not know (``extra="allow"``):
a server's additions (``reasoning_content``, ``prompt_filter_results``, ...) reach you unchanged.

Chunks arrive thousands of times a second, so :meth:`ChatCompletionChunk.from_wire` builds the
common shapes without a validation pass (after explicit type checks) and falls back to full
pydantic validation for everything else; both give equal models.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionUsage",
    "Function",
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "ParsedFunction",
    "ParsedFunctionToolCall",
    "StreamChunk",
    "TopLogprob",
]

ContentT = TypeVar("ContentT")


class _Wire(BaseModel):
    """Base of every wire model: unknown fields are kept."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        """The model as a JSON-ready dict, fields that were never set left out."""
        return self.model_dump(mode="json", exclude_unset=True)

    def to_json(self) -> str:
        """The model as compact JSON, fields that were never set left out."""
        return self.model_dump_json(exclude_unset=True)


# -- logprobs ------------------------------------------------------------------------------


class TopLogprob(_Wire):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(_Wire):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(_Wire):
    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


# -- usage ---------------------------------------------------------------------------------


class CompletionUsage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: dict[str, Any] | None = None
    prompt_tokens_details: dict[str, Any] | None = None


# -- chunks --------------------------------------------------------------------------------


class ChoiceDeltaToolCallFunction(_Wire):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(_Wire):
    index: int
    id: str | None = None
    type: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None


class ChoiceDeltaFunctionCall(_Wire):
    name: str | None = None
    arguments: str | None = None


class ChoiceDelta(_Wire):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    function_call: ChoiceDeltaFunctionCall | None = None


class ChunkChoice(_Wire):
    index: int
    delta: ChoiceDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Wire):
    """One ``data:`` payload of a streamed chat completion.

    ``text``, ``role`` and ``finish_reason`` are shortcuts to the first choice (``None`` when the
    chunk has no choice, as the final usage-only chunk).

    >>> chunk = ChatCompletionChunk.from_wire(
    ...     {"id": "c1", "created": 0, "model": "m",
    ...      "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
    >>> chunk.text
    'Hi'
    """

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None

    @property
    def text(self) -> str | None:
        """Content delta of the first choice."""
        choices = self.choices
        return choices[0].delta.content if choices else None

    @property
    def role(self) -> str | None:
        """Role of the first choice's delta."""
        choices = self.choices
        return choices[0].delta.role if choices else None

    @property
    def finish_reason(self) -> str | None:
        """Finish reason of the first choice."""
        choices = self.choices
        return choices[0].finish_reason if choices else None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChatCompletionChunk:
        """Build a chunk from a decoded JSON payload (the dict is taken over, not copied).

        Raises:
            pydantic.ValidationError: the payload is not a chat-completion chunk.
        """
        chunk = _fast_chunk(data)
        if chunk is None:
            return cls.model_validate(data)
        return chunk

    @classmethod
    def from_json(cls, payload: str | bytes) -> ChatCompletionChunk:
        """Parse and build a chunk from a JSON payload."""
        data = orjson.loads(payload)
        if not isinstance(data, dict):
            raise ValueError("a chunk must be a JSON object")
        return cls.from_wire(data)


StreamChunk = ChatCompletionChunk
"""Edgee-style name of :class:`ChatCompletionChunk`."""


# -- completions ---------------------------------------------------------------------------


class Function(_Wire):
    name: str
    arguments: str


class ChatCompletionMessageToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: Function


class ChatCompletionMessage(_Wire):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: ChoiceDeltaFunctionCall | None = None


class Choice(_Wire):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(_Wire):
    """A whole (non-streamed, or accumulated) chat completion."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    service_tier: str | None = None
    choices: list[Choice]
    usage: CompletionUsage | None = None

    @property
    def text(self) -> str | None:
        """Content of the first choice."""
        return self.choices[0].message.content if self.choices else None


class ParsedFunction(Function):
    parsed_arguments: Any = None


class ParsedFunctionToolCall(ChatCompletionMessageToolCall):
    function: ParsedFunction


class ParsedChatCompletionMessage(ChatCompletionMessage, Generic[ContentT]):
    parsed: ContentT | None = None
    tool_calls: list[ParsedFunctionToolCall] | None = None  # type: ignore[assignment]


class ParsedChoice(Choice, Generic[ContentT]):
    message: ParsedChatCompletionMessage[ContentT]


class ParsedChatCompletion(ChatCompletion, Generic[ContentT]):
    """A completion whose messages carry ``parsed`` content and ``parsed_arguments``."""

    choices: list[ParsedChoice[ContentT]]  # type: ignore[assignment]


# -- the fast path -------------------------------------------------------------------------
# Building pydantic models through validation costs ~1 µs per object; a chunk is three objects.
# For the shapes that make up nearly every stream (content / role / refusal / reasoning deltas,
# finish reasons) we check the types ourselves and fill the instances directly. Anything else
# (tool calls, logprobs, usage, unknown keys, wrong types) goes through model_validate, which
# either builds the same model or raises ValidationError.

_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
_new = object.__new__

_DELTA_DEFAULTS: dict[str, Any] = {
    "role": None,
    "content": None,
    "refusal": None,
    "reasoning_content": None,
    "tool_calls": None,
    "function_call": None,
}
_DELTA_FAST = frozenset(("role", "content", "refusal", "reasoning_content"))
_CHOICE_FAST = frozenset(("index", "delta", "logprobs", "finish_reason"))
_CHUNK_FAST = frozenset(
    ("id", "object", "created", "model", "system_fingerprint", "service_tier", "choices", "usage")
)
_CHUNK_DEFAULTS: dict[str, Any] = {
    "id": "",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "",
    "system_fingerprint": None,
    "service_tier": None,
    "usage": None,
}
_STR_OR_NONE = frozenset((str, type(None)))


def _fast_chunk(data: dict[str, Any]) -> ChatCompletionChunk | None:
    keys = data.keys()
    raw_choices = data.get("choices")
    if type(raw_choices) is not list or not keys <= _CHUNK_FAST:
        return None
    fields = _CHUNK_DEFAULTS.copy()
    fields.update(data)
    if (
        fields["usage"] is not None
        or type(fields["id"]) is not str
        or type(fields["created"]) is not int
        or type(fields["model"]) is not str
        or type(fields["object"]) is not str
        or type(fields["system_fingerprint"]) not in _STR_OR_NONE
        or type(fields["service_tier"]) not in _STR_OR_NONE
    ):
        return None
    # Check every choice before building any, so a fallback sees the payload untouched.
    for raw in raw_choices:
        if type(raw) is not dict:
            return None
        delta = raw.get("delta")
        if (
            type(delta) is not dict
            or not raw.keys() <= _CHOICE_FAST
            or not delta.keys() <= _DELTA_FAST
            or type(raw["index"] if "index" in raw else None) is not int
            or raw.get("logprobs") is not None
            or type(raw.get("finish_reason")) not in _STR_OR_NONE
        ):
            return None
        for value in delta.values():
            if type(value) not in _STR_OR_NONE:
                return None
    choices: list[ChunkChoice] = []
    for raw in raw_choices:
        delta = raw["delta"]
        delta_model = _new(ChoiceDelta)
        delta_fields = _DELTA_DEFAULTS.copy()
        delta_fields.update(delta)
        _set_dict(delta_model, delta_fields)
        _set_fields(delta_model, set(delta))
        _set_extra(delta_model, {})
        _set_private(delta_model, None)
        choice = _new(ChunkChoice)
        choice_fields = {
            "index": raw["index"],
            "delta": delta_model,
            "logprobs": None,
            "finish_reason": raw.get("finish_reason"),
        }
        _set_dict(choice, choice_fields)
        _set_fields(choice, set(raw))
        _set_extra(choice, {})
        _set_private(choice, None)
        choices.append(choice)
    fields["choices"] = choices
    chunk = _new(ChatCompletionChunk)
    _set_dict(chunk, fields)
    _set_fields(chunk, set(keys))
    _set_extra(chunk, {})
    _set_private(chunk, None)
    return chunk


def is_validation_error(err: BaseException) -> bool:
    """True for pydantic's ValidationError (kept here so callers need not import pydantic)."""
    return isinstance(err, ValidationError)
