"""Typed stream events: what ``ops.accumulate()`` and :class:`ChatCompletionStreamState` emit.

The names and fields are those of the OpenAI / Dedalus SDK stream helpers, so code written against
``client.chat.completions.stream(...)`` keeps working; every event also carries ``choice_index``
(the SDKs lose it when ``n > 1``), and reasoning deltas (``delta.reasoning_content`` or
``delta.reasoning``, whichever the server sends; ``field`` says which) surface as
``reasoning.delta`` / ``reasoning.done``.

=========================================  ============================================================
``type``                                   fields
=========================================  ============================================================
``chunk``                                  ``chunk``, ``snapshot`` (the running completion)
``content.delta``                          ``delta``, ``snapshot`` (content so far), ``parsed``
``content.done``                           ``content``, ``parsed`` (validated model / JSON value)
``refusal.delta`` / ``refusal.done``       ``delta``, ``snapshot`` / ``refusal``
``reasoning.delta`` / ``reasoning.done``   ``delta``, ``snapshot`` / ``content``; ``field``
``tool_calls.function.arguments.delta``    ``name``, ``index``, ``arguments``, ``parsed_arguments``,
                                           ``arguments_delta``
``tool_calls.function.arguments.done``     ``name``, ``index``, ``arguments``, ``parsed_arguments``
``logprobs.content.delta`` / ``.done``     ``content``, ``snapshot`` / ``content``
``logprobs.refusal.delta`` / ``.done``     ``refusal``, ``snapshot`` / ``refusal``
=========================================  ============================================================

Events are built for every chunk, so the fields whose value grows with the answer (a delta
event's ``snapshot`` string, the running ``parsed`` value, ``arguments``) are computed when they
are first read, not when the event is built: reading them gives exactly the value at the time the
event was emitted, and an event nobody reads costs O(1). ``ChunkEvent.snapshot`` is, as in the
SDKs, the one live completion object of the stream, brought up to date when it is read.
Serialising, comparing, copying or pickling an event computes its deferred fields first, so an
event behaves like any pydantic model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeAlias, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from ._compat import set_fields_set, set_model_dict, set_model_extra, set_model_private, values_of
from .types import ChatCompletionChunk, ChatCompletionTokenLogprob, ParsedChatCompletion

__all__ = [
    "ChatCompletionStreamEvent",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "FunctionToolCallArgumentsDeltaEvent",
    "FunctionToolCallArgumentsDoneEvent",
    "LogprobsContentDeltaEvent",
    "LogprobsContentDoneEvent",
    "LogprobsRefusalDeltaEvent",
    "LogprobsRefusalDoneEvent",
    "ParsedStreamEvent",
    "ReasoningDeltaEvent",
    "ReasoningDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
]

ContentT = TypeVar("ContentT")

# A deferred field: (function, argument), evaluated as function(argument) on first read.
_Deferred: TypeAlias = tuple[Callable[[Any], Any], Any]


class _Event(BaseModel):
    """Base of every event: deferred fields kept in a slot, resolved on first read."""

    # Slots, not pydantic private attributes: they stay out of equality, copies and schemas.
    __slots__ = ("_rx_lazy", "_rx_origin")
    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    def _rx_resolve(self) -> None:
        lazy = _get_lazy(self)
        if lazy is None:
            return
        _LAZY_SLOT.__set__(self, None)
        values = values_of(self)
        for name, (fn, arg) in lazy.items():
            values[name] = fn(arg)
        # keep the declared field order in dumps and reprs
        order = type(self).model_fields
        _set_dict(self, {name: values[name] for name in order if name in values})

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            lazy = _get_lazy(self)
            if lazy is not None and name in lazy:
                self._rx_resolve()
                return values_of(self)[name]
            return super().__getattr__(name)

    @model_serializer(mode="wrap")
    def _rx_serialize(self, handler: SerializerFunctionWrapHandler) -> Any:
        self._rx_resolve()
        return handler(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Event):
            other._rx_resolve()
        self._rx_resolve()
        return super().__eq__(other)

    def __repr_args__(self) -> Any:
        self._rx_resolve()
        return super().__repr_args__()

    def __iter__(self) -> Any:
        self._rx_resolve()
        return super().__iter__()

    def __copy__(self) -> Any:
        self._rx_resolve()
        return super().__copy__()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        self._rx_resolve()
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        self._rx_resolve()
        return super().__getstate__()


_LAZY_SLOT = _Event.__dict__["_rx_lazy"]
_ORIGIN_SLOT = _Event.__dict__["_rx_origin"]
_set_dict = set_model_dict
_set_fields = set_fields_set
_set_extra = set_model_extra
_set_private = set_model_private
_new = object.__new__


def _get_lazy(event: _Event) -> dict[str, _Deferred] | None:
    try:
        return _LAZY_SLOT.__get__(event)  # type: ignore[no-any-return]
    except AttributeError:  # built by pydantic (validation / model_construct): nothing deferred
        return None


def _origin(event: object) -> Any:
    """The ChatCompletionStreamState that produced a ``chunk`` event (None if unknown)."""
    try:
        return _ORIGIN_SLOT.__get__(event)
    except (AttributeError, TypeError):
        return None


class ChunkEvent(_Event):
    """Emitted first for every chunk; ``snapshot`` is the running completion (one live object)."""

    type: Literal["chunk"] = "chunk"
    chunk: ChatCompletionChunk
    snapshot: ParsedChatCompletion[Any]
    choice_index: int = 0
    """Index of the chunk's first choice (0 for a chunk without choices)."""


class ContentDeltaEvent(_Event):
    """A piece of message content arrived."""

    type: Literal["content.delta"] = "content.delta"
    delta: str
    snapshot: str
    """All the content of this choice so far."""
    parsed: object | None = None
    """With a structured ``response_format``: the partial JSON value of the content so far."""
    choice_index: int = 0


class ContentDoneEvent(_Event, Generic[ContentT]):
    """The content of a choice is complete (finish reason, or tool calls started)."""

    type: Literal["content.done"] = "content.done"
    content: str
    parsed: ContentT | None = None
    """With a structured ``response_format``: the validated model (or JSON value)."""
    choice_index: int = 0


class RefusalDeltaEvent(_Event):
    """A piece of a refusal arrived."""

    type: Literal["refusal.delta"] = "refusal.delta"
    delta: str
    snapshot: str
    choice_index: int = 0


class RefusalDoneEvent(_Event):
    """The refusal of a choice is complete."""

    type: Literal["refusal.done"] = "refusal.done"
    refusal: str
    choice_index: int = 0


ReasoningField: TypeAlias = Literal["reasoning_content", "reasoning"]


class ReasoningDeltaEvent(_Event):
    """A piece of reasoning arrived: ``delta.reasoning_content`` (llama.cpp, DeepSeek) or
    ``delta.reasoning`` (vLLM, OpenRouter); ``field`` says which."""

    type: Literal["reasoning.delta"] = "reasoning.delta"
    delta: str
    snapshot: str
    choice_index: int = 0
    field: ReasoningField = "reasoning_content"
    """The delta field the server sent the reasoning in (the message field it accumulates in)."""


class ReasoningDoneEvent(_Event):
    """The reasoning of a choice is complete (output started, or the choice finished)."""

    type: Literal["reasoning.done"] = "reasoning.done"
    content: str
    choice_index: int = 0
    field: ReasoningField = "reasoning_content"
    """The message field that holds the reasoning (``reasoning_content`` or ``reasoning``)."""


class FunctionToolCallArgumentsDeltaEvent(_Event):
    """A piece of a tool call's arguments arrived."""

    type: Literal["tool_calls.function.arguments.delta"] = "tool_calls.function.arguments.delta"
    name: str
    index: int
    arguments: str
    """The arguments JSON text so far."""
    parsed_arguments: object = None
    """For pydantic / ``strict`` tools: the partial JSON value of the arguments so far."""
    arguments_delta: str
    choice_index: int = 0


class FunctionToolCallArgumentsDoneEvent(_Event):
    """A tool call is complete (the next call started, or the choice finished)."""

    type: Literal["tool_calls.function.arguments.done"] = "tool_calls.function.arguments.done"
    name: str
    index: int
    arguments: str
    parsed_arguments: object = None
    """For pydantic tools the validated model, for ``strict`` dict tools the JSON value."""
    choice_index: int = 0


class LogprobsContentDeltaEvent(_Event):
    """Log probabilities of content tokens arrived."""

    type: Literal["logprobs.content.delta"] = "logprobs.content.delta"
    content: list[ChatCompletionTokenLogprob]
    snapshot: list[ChatCompletionTokenLogprob]
    choice_index: int = 0


class LogprobsContentDoneEvent(_Event):
    """All log probabilities of the content."""

    type: Literal["logprobs.content.done"] = "logprobs.content.done"
    content: list[ChatCompletionTokenLogprob]
    choice_index: int = 0


class LogprobsRefusalDeltaEvent(_Event):
    """Log probabilities of refusal tokens arrived."""

    type: Literal["logprobs.refusal.delta"] = "logprobs.refusal.delta"
    refusal: list[ChatCompletionTokenLogprob]
    snapshot: list[ChatCompletionTokenLogprob]
    choice_index: int = 0


class LogprobsRefusalDoneEvent(_Event):
    """All log probabilities of the refusal."""

    type: Literal["logprobs.refusal.done"] = "logprobs.refusal.done"
    refusal: list[ChatCompletionTokenLogprob]
    choice_index: int = 0


ChatCompletionStreamEvent: TypeAlias = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs the explicit Union inside Annotated
        ChunkEvent,
        ContentDeltaEvent,
        ContentDoneEvent[Any],
        RefusalDeltaEvent,
        RefusalDoneEvent,
        ReasoningDeltaEvent,
        ReasoningDoneEvent,
        FunctionToolCallArgumentsDeltaEvent,
        FunctionToolCallArgumentsDoneEvent,
        LogprobsContentDeltaEvent,
        LogprobsContentDoneEvent,
        LogprobsRefusalDeltaEvent,
        LogprobsRefusalDoneEvent,
    ],
    Field(discriminator="type"),
]
"""Any event of a chat-completion stream, discriminated by ``type``."""

ParsedStreamEvent: TypeAlias = Union[  # noqa: UP007 - a generic alias over the event classes
    ChunkEvent,
    ContentDeltaEvent,
    ContentDoneEvent[ContentT],
    RefusalDeltaEvent,
    RefusalDoneEvent,
    ReasoningDeltaEvent,
    ReasoningDoneEvent,
    FunctionToolCallArgumentsDeltaEvent,
    FunctionToolCallArgumentsDoneEvent,
    LogprobsContentDeltaEvent,
    LogprobsContentDoneEvent,
    LogprobsRefusalDeltaEvent,
    LogprobsRefusalDoneEvent,
]
"""For type checkers: the events of a stream whose content parses as ``ContentT``
(``ops.parse_structured(City)`` gives ``Observable[ParsedStreamEvent[City]]``, and
``ops.final_completion()`` then a ``ParsedChatCompletion[City]``)."""


# -- fast construction (used by the stream state; no validation pass) -----------------------


def _builder(cls: type[_Event]) -> Callable[..., Any]:
    # Every field is set, so one fields-set per class can be shared (pydantic only adds to it).
    fields = set(cls.model_fields)
    type_value = cls.model_fields["type"].default

    def build(values: dict[str, Any], lazy: dict[str, _Deferred] | None = None) -> Any:
        event = _new(cls)
        _set_dict(event, {"type": type_value, **values})
        _set_fields(event, fields)
        _set_extra(event, None)
        _set_private(event, None)
        if lazy is not None:
            _LAZY_SLOT.__set__(event, lazy)
        return event

    return build


_build_content_done = _builder(ContentDoneEvent)
_build_refusal_delta = _builder(RefusalDeltaEvent)
_build_refusal_done = _builder(RefusalDoneEvent)
_build_reasoning_done = _builder(ReasoningDoneEvent)
_build_tool_done = _builder(FunctionToolCallArgumentsDoneEvent)
_build_logprobs_content_delta = _builder(LogprobsContentDeltaEvent)
_build_logprobs_content_done = _builder(LogprobsContentDoneEvent)
_build_logprobs_refusal_delta = _builder(LogprobsRefusalDeltaEvent)
_build_logprobs_refusal_done = _builder(LogprobsRefusalDoneEvent)

_build_content_delta = _builder(ContentDeltaEvent)
_build_reasoning_delta = _builder(ReasoningDeltaEvent)
_build_tool_delta = _builder(FunctionToolCallArgumentsDeltaEvent)

# The chunk event also remembers the state that produced it (its snapshot is the state's).
_CHUNK_FIELDS = set(ChunkEvent.model_fields)


def _build_chunk(chunk: ChatCompletionChunk, choice_index: int, state: Any) -> ChunkEvent:
    """A chunk event whose snapshot is ``state.current_completion_snapshot``, read when first
    accessed."""
    event = _new(ChunkEvent)
    _set_dict(event, {"type": "chunk", "chunk": chunk, "choice_index": choice_index})
    _set_fields(event, _CHUNK_FIELDS)
    _set_extra(event, None)
    _set_private(event, None)
    _LAZY_SLOT.__set__(event, {"snapshot": (_live_snapshot, state)})
    _ORIGIN_SLOT.__set__(event, state)
    return event


def _live_snapshot(state: Any) -> Any:
    return state.current_completion_snapshot
