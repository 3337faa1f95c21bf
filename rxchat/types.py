"""Wire types: pydantic v2 models of chat-completion chunks and completions.

Field names follow the OpenAI API. Every model keeps fields it does not know (``extra="allow"``):
a server's additions (``reasoning_content``, ``prompt_filter_results``, ...) reach you unchanged.

Chunks arrive thousands of times a second. The stream decoder builds them with a C reader
(``rxchat._speedups``, see ``rxchat/_c_builder.py``) that reads each payload's JSON once into
these models and leaves anything needing conversion or rejection to pydantic's
``validate_json``; the models are the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Annotation",
    "AnnotationURLCitation",
    "ChatCompletion",
    "ChatCompletionAudio",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaAudio",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "CompletionUsage",
    "Custom",
    "Function",
    "FunctionCall",
    "Moderation",
    "ModerationResult",
    "ModerationVerdict",
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "ParsedFunction",
    "ParsedFunctionToolCall",
    "PromptTokensDetails",
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


class _Details(_Wire):
    """Token counts that were plain dicts before: equal to the dict of the fields sent, and
    readable by key (``details["cached_tokens"]``), so code written for either form works."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return super().__eq__(other)

    def __getitem__(self, key: str) -> Any:
        value = self.to_dict()
        return value[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The count of ``key`` when the server sent it, else ``default`` (as ``dict.get``)."""
        return self.to_dict().get(key, default)


class CompletionTokensDetails(_Details):
    """Breakdown of ``completion_tokens`` (fields a server does not send are ``None``)."""

    accepted_prediction_tokens: int | None = None
    audio_tokens: int | None = None
    reasoning_tokens: int | None = None
    rejected_prediction_tokens: int | None = None
    text_tokens: int | None = None


class PromptTokensDetails(_Details):
    """Breakdown of ``prompt_tokens`` (fields a server does not send are ``None``)."""

    audio_tokens: int | None = None
    cache_write_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None
    text_tokens: int | None = None


class CompletionUsage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


# -- moderation (OpenAI's moderated completions) ------------------------------------------


class ModerationResult(_Wire):
    categories: dict[str, bool] = {}
    category_applied_input_types: dict[str, list[str]] = {}
    category_scores: dict[str, float] = {}
    flagged: bool = False
    model: str = ""
    type: str = "moderation_result"


class ModerationVerdict(_Wire):
    """Moderation of the input or the output: ``results``, or ``code`` / ``message`` on error."""

    type: str = ""
    model: str | None = None
    results: list[ModerationResult] | None = None
    code: str | None = None
    message: str | None = None


class Moderation(_Wire):
    input: ModerationVerdict | None = None
    output: ModerationVerdict | None = None


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


class ChoiceDeltaAudio(_Wire):
    id: str | None = None
    data: str | None = None
    expires_at: int | None = None
    transcript: str | None = None


class ChoiceDelta(_Wire):
    """What a chunk adds to a choice's message.

    Reasoning arrives as ``reasoning_content`` (llama.cpp, DeepSeek) or ``reasoning`` (vLLM,
    OpenRouter), whichever the server uses.
    """

    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    function_call: ChoiceDeltaFunctionCall | None = None
    audio: ChoiceDeltaAudio | None = None


class ChunkChoice(_Wire):
    """A choice of a chunk. ``delta`` is empty when the server sent none (Azure's content-filter
    chunks carry only ``content_filter_results`` / ``content_filter_offsets``, kept as extras)."""

    index: int
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
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
    obfuscation: str | None = None
    moderation: Moderation | None = None

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
        """Build (validate) a chunk from a decoded JSON payload; the dict is left as it is.

        Raises:
            pydantic.ValidationError: the payload is not a chat-completion chunk.
        """
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, payload: str | bytes) -> ChatCompletionChunk:
        """Parse and build a chunk from a JSON payload in one pass (pydantic-core's parser).

        Raises:
            pydantic.ValidationError: not JSON, or not a chat-completion chunk.
        """
        return cls.model_validate_json(payload)


StreamChunk = ChatCompletionChunk
"""Edgee-style name of :class:`ChatCompletionChunk`."""


# -- completions ---------------------------------------------------------------------------


class Function(_Wire):
    name: str
    arguments: str


class FunctionCall(_Wire):
    """The deprecated ``function_call`` of a message."""

    name: str = ""
    arguments: str = ""


class Custom(_Wire):
    """The call of a custom (free-form input) tool."""

    name: str = ""
    input: str = ""


class ChatCompletionMessageToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: Function
    custom: Custom | None = None

    def to_param(self) -> dict[str, Any]:
        """The tool call as a request's ``tool_calls`` entry (see :meth:`ChatCompletionMessage.to_param`)."""
        return _tool_call_param(self)


class AnnotationURLCitation(_Wire):
    end_index: int = 0
    start_index: int = 0
    title: str = ""
    url: str = ""


class Annotation(_Wire):
    type: str = "url_citation"
    url_citation: AnnotationURLCitation | None = None


class ChatCompletionAudio(_Wire):
    id: str = ""
    data: str = ""
    expires_at: int = 0
    transcript: str = ""


class ChatCompletionMessage(_Wire):
    """The message of a choice. Reasoning is under the name the server used: ``reasoning_content``
    (llama.cpp, DeepSeek) or ``reasoning`` (vLLM, OpenRouter)."""

    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: FunctionCall | None = None
    annotations: list[Annotation] | None = None
    audio: ChatCompletionAudio | None = None

    def to_param(self, *, reasoning: bool = True) -> dict[str, Any]:
        """The message as a request message, to send it back on the next turn.

        Keeps what a server needs to continue the conversation: ``role``, ``content``,
        ``refusal``, ``tool_calls`` (``id``, ``type``, ``function`` and every field a server added,
        such as Gemini's ``extra_content`` with its ``thought_signature``), ``function_call``,
        ``audio`` (its ``id``, as the API takes it) and unknown fields of the message (OpenRouter's
        ``reasoning_details``). Leaves out what rxchat adds (``parsed``, ``parsed_arguments``,
        ``index`` on tool calls), ``annotations`` (output only) and fields that are ``None``
        (``content`` is always sent, ``null`` beside tool calls).

        Args:
            reasoning: keep the reasoning text (``reasoning_content`` or ``reasoning``, under the
                name the server used). Pass ``False`` for servers that refuse it in a request
                (DeepSeek's ``deepseek-reasoner`` answers 400).

        >>> message = ChatCompletionMessage.model_validate(
        ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1",
        ...      "function": {"name": "f", "arguments": "{}"}, "index": 0,
        ...      "extra_content": {"google": {"thought_signature": "sig"}}}]})
        >>> message.to_param()["tool_calls"][0]
        {'id': 'c1', 'type': 'function', 'function': {'name': 'f', 'arguments': '{}'}, 'extra_content': {'google': {'thought_signature': 'sig'}}}
        """
        data = self.model_dump(mode="json", exclude=_MESSAGE_PARAM_EXCLUDE)
        param: dict[str, Any] = {"role": data.pop("role", None) or "assistant"}
        param["content"] = data.pop("content", None)
        if not reasoning:
            data.pop("reasoning_content", None)
            data.pop("reasoning", None)
        audio = data.pop("audio", None)
        if isinstance(audio, dict) and audio.get("id") is not None:
            param["audio"] = {"id": audio["id"]}
        data.pop("tool_calls", None)
        for key, value in data.items():
            if value is not None:
                param[key] = value
        if self.tool_calls:
            param["tool_calls"] = [_tool_call_param(call) for call in self.tool_calls]
        return param


# rxchat-only or output-only fields of a message, never sent back (see to_param)
_MESSAGE_PARAM_EXCLUDE: set[str] = {"parsed", "annotations"}
_TOOL_CALL_PARAM_EXCLUDE: dict[str, Any] = {"index": True, "function": {"parsed_arguments"}}


def _tool_call_param(call: ChatCompletionMessageToolCall) -> dict[str, Any]:
    data = call.model_dump(mode="json", exclude=_TOOL_CALL_PARAM_EXCLUDE)
    param: dict[str, Any] = {
        "id": data.pop("id"),
        "type": data.pop("type", None) or "function",
        "function": data.pop("function"),
    }
    for key, value in data.items():
        if value is not None:
            param[key] = value
    return param


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
    metadata: dict[str, str] | None = None
    moderation: Moderation | None = None

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
