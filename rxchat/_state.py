"""Sans-I/O accumulation of chat-completion chunks into typed events and a running completion.

:class:`ChatCompletionStreamState` produces the same events and the same final completion as the
OpenAI SDK's ``ChatCompletionStreamState``, in time linear in the length of the answer:

* text (content, refusal, reasoning, tool arguments) is kept as a list of pieces; the joined
  string is built, and cached, only when someone reads it;
* structured content and tool arguments go through an incremental :class:`PartialJSONParser`
  fed with each delta; the partial *value* is only built when read;
* the running completion (``ChunkEvent.snapshot`` / :attr:`current_completion_snapshot`) is one
  object whose text fields are brought up to date when it is read, never re-serialised.

A delta event's deferred fields (``snapshot``, ``parsed``, ``arguments`` ...) give the value as it
was when the event was emitted, and an event whose fields nobody reads costs O(1). Reading
``parsed`` while the event is the latest one costs a snapshot of the parser's value; reading it
after the parser moved on replays the text up to that event on a second parser (kept, so reading
retained events in order costs linear time overall).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, cast

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import TypeVar

from . import events as ev
from ._compat import extra_of, fields_set_of, set_field, values_of
from ._partial_json import PartialJSONError, PartialJSONParser
from ._structured import ContentFormat, ToolSet, ToolSpec
from .errors import (
    ContentFilterFinishReasonError,
    IncompleteStreamError,
    LengthFinishReasonError,
    RxChatError,
    StructuredOutputError,
    UnknownToolError,
)
from .types import (
    ChatCompletion,
    ChatCompletionAudio,
    ChatCompletionChunk,
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceLogprobs,
    ChunkChoice,
    FunctionCall,
    ParsedChatCompletion,
    ParsedChatCompletionMessage,
    ParsedChoice,
    ParsedFunction,
    ParsedFunctionToolCall,
)

__all__ = ["ChatCompletionStreamState"]

# defaults to None, as in the SDK: ChatCompletionStreamState() is ChatCompletionStreamState[None]
ResponseFormatT = TypeVar("ResponseFormatT", default=None)

_CHUNK_OBJECT = "chat.completion.chunk"


class _Text:
    """Append-only text: a list of pieces and a cached join of a prefix of them."""

    __slots__ = ("joined", "njoined", "nonblank", "nonempty", "parts")

    def __init__(self, first: str) -> None:
        self.parts = [first]
        self.joined = first
        self.njoined = 1
        self.nonempty = bool(first)
        self.nonblank = self.nonempty and not first.isspace()

    def append(self, piece: str) -> None:
        self.parts.append(piece)
        if not self.nonblank and piece:
            self.nonempty = True
            self.nonblank = not piece.isspace()

    def prefix(self, n: int) -> str:
        """The text made of the first ``n`` pieces."""
        njoined = self.njoined
        if n == njoined:
            return self.joined
        if n > njoined:
            parts = self.parts
            text = self.joined
            # Drop our reference first: when nobody else holds the old string, CPython
            # appends in place (amortised O(delta)) instead of copying the whole text.
            self.joined = ""
            text += parts[njoined] if n - njoined == 1 else "".join(parts[njoined:n])
            self.joined = text
            self.njoined = n
            return text
        return "".join(self.parts[:n])

    def value(self) -> str:
        return self.prefix(len(self.parts))

    def __bool__(self) -> bool:
        # "non-empty", as the SDK's truthiness checks on the accumulated string
        return self.nonempty


class _Incremental:
    """A PartialJSONParser over a _Text, fed up to the current piece on demand."""

    __slots__ = ("failed", "fed", "parser", "partial_strings", "replay", "replayed", "text")

    def __init__(self, text: _Text, partial_strings: bool) -> None:
        self.text = text
        self.partial_strings = partial_strings
        self.parser = PartialJSONParser(partial_strings=partial_strings)
        self.fed = 0  # pieces fed
        self.failed = False
        self.replay: PartialJSONParser | None = None  # for values read after the parser moved on
        self.replayed = 0

    def advance(self) -> None:
        """Feed the pieces not fed yet."""
        parts = self.text.parts
        fed = self.fed
        n = len(parts)
        if fed == n:
            return
        try:
            self.parser.feed(parts[fed] if n - fed == 1 else "".join(parts[fed:n]))
        except PartialJSONError:
            self.failed = True
            raise
        self.fed = n

    def current(self) -> Any:
        """The partial value, when the parser is up to date and did not fail (else None)."""
        if self.failed or self.fed != len(self.text.parts):
            return None
        return self.parser.value

    def value_at(self, fed: int) -> Any:
        """The partial value of the first ``fed`` pieces."""
        if fed == self.fed and not self.failed:
            return self.parser.value
        # read after the parser moved on: replay the text up to that point on a second parser
        replay = self.replay
        if replay is None or self.replayed > fed:
            replay = self.replay = PartialJSONParser(partial_strings=self.partial_strings)
            self.replayed = 0
        if self.replayed < fed:
            replay.feed("".join(self.text.parts[self.replayed : fed]))
            self.replayed = fed
        return replay.value


def _value_at(arg: tuple[_Incremental, int]) -> Any:
    return arg[0].value_at(arg[1])


def _list_prefix(arg: tuple[list[Any], int]) -> list[Any]:
    return arg[0][: arg[1]]


class _ToolCall:
    __slots__ = (
        "args",
        "done",
        "extra",
        "function_extra",
        "id",
        "incremental",
        "index",
        "model",
        "name",
        "parsed_done",
        "spec",
        "spec_name",
        "type",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.args: _Text | None = None
        self.incremental: _Incremental | None = None
        self.spec: ToolSpec | None = None
        self.spec_name: str | None = None  # the name `spec` was looked up for
        self.done = False
        self.parsed_done: Any = None
        self.model: ParsedFunctionToolCall | None = None
        # fields rxchat does not model (Gemini's extra_content), merged as the SDK merges them
        self.extra: dict[str, Any] | None = None
        self.function_extra: dict[str, Any] | None = None

    def lookup(self, tools: ToolSet) -> ToolSpec | None:
        if self.spec_name != self.name:
            self.spec_name = self.name
            self.spec = tools.get(self.name)
        return self.spec

    def arguments(self) -> str:
        return self.args.value() if self.args is not None else ""


class _TextField:
    """One text field of a delta, accumulated into the message field of the same name."""

    __slots__ = ("key", "kind", "slot")

    def __init__(self, slot: int, key: str, kind: str) -> None:
        self.slot = slot  # position in _Choice.texts / _Choice.texts_done
        self.key = key  # the delta's and the message's field
        self.kind = kind  # "reasoning", "content" or "refusal": which events it gives


# The text fields, in the order their delta events are emitted: reasoning (under either name a
# server uses) first, then content, then refusal.
_TEXT_FIELDS = (
    _TextField(0, "reasoning_content", "reasoning"),
    _TextField(1, "reasoning", "reasoning"),
    _TextField(2, "content", "content"),
    _TextField(3, "refusal", "refusal"),
)
_REASONING_FIELDS = tuple(f for f in _TEXT_FIELDS if f.kind == "reasoning")
_CONTENT = 2
_REFUSAL = 3


class _Choice:
    __slots__ = (
        "audio",
        "current_tool",
        "cut",
        "dirty",
        "done_tools",
        "extra_texts",
        "fields",
        "finish_reason",
        "function_args",
        "function_name",
        "incremental",
        "index",
        "logprobs",
        "lp_content_done",
        "lp_refusal_done",
        "message",
        "model",
        "parsed_done",
        "reasoning_open",
        "role_set",
        "texts",
        "texts_done",
        "tool_list",
        "tools",
    )

    def __init__(self, index: int, model: ParsedChoice[Any]) -> None:
        self.index = index
        self.model = model
        self.message: ParsedChatCompletionMessage[Any] = model.message
        self.texts: list[_Text | None] = [None] * len(_TEXT_FIELDS)
        self.texts_done = [False] * len(_TEXT_FIELDS)
        self.reasoning_open = False  # reasoning arrived and its done event is still to come
        self.audio: dict[str, Any] | None = None  # delta.audio, merged
        self.fields: dict[str, Any] | None = None  # raw values of message-only fields, merged
        self.incremental: _Incremental | None = None
        self.finish_reason: str | None = None
        self.parsed_done: Any = None
        self.lp_content_done = False
        self.lp_refusal_done = False
        self.logprobs: ChoiceLogprobs | None = None
        self.tools: dict[int, _ToolCall] = {}
        self.tool_list: list[ParsedFunctionToolCall] | None = None
        self.current_tool: int | None = None
        self.done_tools: set[int] = set()
        self.role_set = False
        self.function_name: str | None = None
        self.function_args: _Text | None = None
        self.extra_texts: dict[str, _Text] | None = None
        self.cut = False  # stopped by "length" / "content_filter" while parsing: no parsed value
        self.dirty = False

    @property
    def content(self) -> _Text | None:
        return self.texts[_CONTENT]

    @property
    def refusal(self) -> _Text | None:
        return self.texts[_REFUSAL]

    @property
    def content_done(self) -> bool:
        return self.texts_done[_CONTENT]


class ChatCompletionStreamState(Generic[ResponseFormatT]):
    """Accumulate chat-completion chunks into typed events and a running completion.

    Sans-I/O: feed each chunk to :meth:`handle_chunk` and handle the events it returns; read
    :attr:`current_completion_snapshot` at any time and :meth:`get_final_completion` at the end.
    Events, snapshot and final completion are those of the OpenAI SDK's
    ``ChatCompletionStreamState`` (plus ``choice_index`` on every event and ``reasoning.*``
    events), at a cost per chunk that does not grow with the length of the answer.

    Args:
        response_format: how to parse the content: a pydantic model class (validated into the
            model, partial JSON values on the way, as in the SDKs), another type pydantic can
            validate, ``dict`` for plain JSON without validation, or ``None`` / a
            ``response_format`` parameter dict for no parsing (as in the SDKs).
        tools: the tools of the request: pydantic model classes, :func:`pydantic_function_tool`
            dicts, or tool dicts. Arguments of pydantic and ``strict`` tools are parsed; a call
            to a tool that is not among them raises :class:`~rxchat.errors.UnknownToolError`.
        input_tools: the OpenAI SDK's name of ``tools``.
        partial_strings: include the text so far of an unterminated string in partial values
            (jiter's ``partial_mode="trailing-strings"``).

    Raises:
        TypeError: an unsupported ``response_format`` or tool.

    >>> state = ChatCompletionStreamState()
    >>> for data in ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
    ...              {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}):
    ...     events = state.handle_chunk(ChatCompletionChunk.from_wire(data))
    >>> [e.type for e in events]
    ['chunk', 'content.delta', 'content.done']
    >>> state.current_content(), state.get_final_completion().choices[0].message.content
    ('Hello', 'Hello')
    """

    def __init__(
        self,
        *,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        tools: Iterable[Any] | None = None,
        input_tools: Iterable[Any] | None = None,
        partial_strings: bool = False,
    ) -> None:
        if tools is not None and input_tools is not None:
            raise TypeError("pass tools= or input_tools=, not both")
        self._response_format = response_format
        self._format = ContentFormat.from_response_format(response_format)
        self._tools = ToolSet(tools if tools is not None else input_tools)
        self._partial_strings = partial_strings
        self._parseable = self._format is not None or self._tools.parseable
        self._completion: ParsedChatCompletion[Any] | None = None
        self._choices: dict[int, _Choice] = {}
        self._dirty: list[_Choice] = []
        self._chunks = 0

    # ------------------------------------------------------------------ public API

    @property
    def response_format(self) -> Any:
        """The ``response_format`` option as given."""
        return self._response_format

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools as tool dicts (pydantic models converted)."""
        return self._tools.tools

    @property
    def partial_strings(self) -> bool:
        """Whether partial values include unterminated strings."""
        return self._partial_strings

    @property
    def chunks_handled(self) -> int:
        """Chunks accumulated so far (ignored non-chunk frames not counted)."""
        return self._chunks

    @property
    def current_completion_snapshot(self) -> ParsedChatCompletion[Any]:
        """The completion accumulated so far (one live object, brought up to date when read).

        Raises:
            IncompleteStreamError: no chunk was handled yet.
        """
        return self._snapshot()

    def current_content(self, choice_index: int = 0) -> str:
        """The content of a choice so far (``""`` when there is none)."""
        choice = self._choices.get(choice_index)
        if choice is None or choice.content is None:
            return ""
        return choice.content.value()

    def get_final_completion(self) -> ParsedChatCompletion[ResponseFormatT]:
        """The completion with validated ``parsed`` content and ``parsed_arguments``.

        Call it once the stream has ended; it does not check that the stream is complete.

        Returns:
            A new :class:`~rxchat.types.ParsedChatCompletion` (later chunks do not change it).

        Raises:
            LengthFinishReasonError: a choice finished with ``"length"`` (as in the SDKs).
            ContentFilterFinishReasonError: a choice finished with ``"content_filter"``.
            StructuredOutputError: content or arguments that do not validate.
            UnknownToolError: a call to a tool that is not among the given tools.
            IncompleteStreamError: no chunk was handled.
        """
        snapshot = self._snapshot()
        for choice in self._choices.values():
            if choice.finish_reason == "length":
                raise self._error(LengthFinishReasonError(completion=snapshot))
            if choice.finish_reason == "content_filter":
                raise self._error(ContentFilterFinishReasonError(completion=snapshot))
        choices = [self._final_choice(choice) for choice in self._choices.values()]
        fields = dict(values_of(snapshot))
        fields["choices"] = choices
        return cast(
            ParsedChatCompletion[ResponseFormatT],
            ParsedChatCompletion.model_construct(
                _fields_set=set(snapshot.model_fields_set) | {"choices"},
                **fields,
                **(snapshot.__pydantic_extra__ or {}),
            ),
        )

    def handle_completion(self, completion: ChatCompletion) -> list[ev.ChatCompletionStreamEvent]:
        """Accumulate a whole (non-streamed) completion as if it arrived as one chunk.

        ``parse()`` uses it, so a whole answer is parsed exactly like a streamed one; the
        events are those one chunk carrying every message field gives.

        Raises: as :meth:`handle_chunk`.
        """
        choices = []
        for choice in completion.choices:
            message = choice.message
            delta: dict[str, Any] = dict(message.model_extra or {})
            delta["role"] = message.role
            for name in ("content", "refusal", "reasoning_content"):
                value = getattr(message, name)
                if value is not None:
                    delta[name] = value
            if message.tool_calls:
                delta["tool_calls"] = [
                    {
                        "index": i,
                        "id": call.id,
                        "type": call.type,
                        "function": {
                            "name": call.function.name,
                            "arguments": call.function.arguments,
                        },
                    }
                    for i, call in enumerate(message.tool_calls)
                ]
            if message.function_call is not None:
                delta["function_call"] = message.function_call.to_dict()
            raw: dict[str, Any] = {
                "index": choice.index,
                "delta": delta,
                "finish_reason": choice.finish_reason,
            }
            if choice.logprobs is not None:
                raw["logprobs"] = choice.logprobs.to_dict()
            choices.append(raw)
        data = completion.to_dict()
        data["object"] = _CHUNK_OBJECT
        data["choices"] = choices
        return self.handle_chunk(ChatCompletionChunk.model_validate(data))

    def handle_chunk(self, chunk: ChatCompletionChunk) -> list[ev.ChatCompletionStreamEvent]:
        """Accumulate one chunk; return the events it produces, in order.

        A chunk whose ``object`` is not ``"chat.completion.chunk"`` (Azure's content-filter
        frames) is ignored: no events. A chunk without choices (the final usage chunk) gives only
        the ``chunk`` event.

        Raises:
            LengthFinishReasonError, ContentFilterFinishReasonError: a choice finished that way
                while content or tool arguments are to be parsed (as in the SDKs).
            StructuredOutputError: structured content or tool arguments that are not valid JSON
                (as soon as they cannot become valid) or do not validate (when complete).
            UnknownToolError: a completed call to a tool that is not among the given tools.
        """
        if not isinstance(chunk, ChatCompletionChunk):
            chunk = _coerce_chunk(chunk)
        if chunk.object != _CHUNK_OBJECT:
            return []
        self._chunks += 1
        completion = self._completion
        if completion is None:
            completion = self._completion = _initial_completion(chunk)
        else:
            if chunk.usage is not None:
                completion.usage = chunk.usage
            if chunk.system_fingerprint is not None:
                completion.system_fingerprint = chunk.system_fingerprint
            if chunk.moderation is not None:
                completion.moderation = chunk.moderation
            if chunk.__pydantic_extra__:
                _add_new_keys(completion, chunk.__pydantic_extra__)
        choices = chunk.choices
        events: list[Any] = [ev._build_chunk(chunk, choices[0].index if choices else 0, self)]
        for raw in choices:
            choice = self._choices.get(raw.index)
            if choice is None:
                choice = self._add_choice(raw)
            elif raw.__pydantic_extra__:
                _add_new_keys(choice.model, raw.__pydantic_extra__)
            self._handle_choice(choice, raw, events)
        return events

    # ------------------------------------------------------------------ accumulation

    def _add_choice(self, raw: ChunkChoice) -> _Choice:
        message: ParsedChatCompletionMessage[Any] = ParsedChatCompletionMessage.model_construct()
        extra = {k: v for k, v in (raw.__pydantic_extra__ or {}).items()}
        model: ParsedChoice[Any] = ParsedChoice.model_construct(
            index=raw.index, message=message, finish_reason=None, logprobs=None, **extra
        )
        choice = _Choice(raw.index, model)
        self._choices[raw.index] = choice
        assert self._completion is not None
        # Choices stay in index order, as in a whole completion, whatever order they first
        # arrive in (llama.cpp streams n=2 with choice 1's first chunk before choice 0's).
        choices = self._completion.choices
        position = len(choices)
        while position and choices[position - 1].index > raw.index:
            position -= 1
        choices.insert(position, model)
        if position != len(choices) - 1:
            self._choices = dict(sorted(self._choices.items()))
        return choice

    def _handle_choice(self, choice: _Choice, raw: ChunkChoice, events: list[Any]) -> None:
        if not choice.dirty:
            choice.dirty = True
            self._dirty.append(choice)
        pieces = self._accumulate(choice, raw)
        self._delta_events(choice, raw, pieces, events)
        self._done_events(choice, raw.delta.tool_calls, events)

    def _accumulate(self, choice: _Choice, raw: ChunkChoice) -> list[tuple[_TextField, str]]:
        """Add one chunk's choice to the state; return the text pieces it brought, in table
        order. Raises the finish-reason errors of the SDKs while parsing."""
        delta = raw.delta
        values = values_of(delta)
        pieces: list[tuple[_TextField, str]] = []
        texts = choice.texts
        for field in _TEXT_FIELDS:
            piece = values.get(field.key)
            if piece is not None:
                text = texts[field.slot]
                if text is None:
                    texts[field.slot] = _Text(piece)
                else:
                    text.append(piece)
                pieces.append((field, piece))
        if delta.role is not None and not choice.role_set:
            choice.role_set = True
            choice.message.role = delta.role
        if delta.tool_calls:
            self._accumulate_tools(choice, delta.tool_calls)
        if delta.function_call is not None:
            self._accumulate_function_call(choice, delta.function_call)
        if delta.audio is not None:
            choice.audio = _merge_extra(choice.audio, delta.audio.to_dict())
        if delta.__pydantic_extra__:
            self._accumulate_extra(choice, delta.__pydantic_extra__)
        finish_reason = raw.finish_reason
        if finish_reason:
            choice.finish_reason = finish_reason
            choice.model.finish_reason = finish_reason
            if self._parseable and finish_reason in ("length", "content_filter"):
                choice.cut = True
                if finish_reason == "length":
                    raise self._error(LengthFinishReasonError(completion=self._snapshot()))
                raise self._error(ContentFilterFinishReasonError(completion=self._snapshot()))
        if raw.logprobs is not None:
            self._accumulate_logprobs(choice, raw.logprobs)
        return pieces

    # ------------------------------------------------------------------ delta events

    def _delta_events(
        self,
        choice: _Choice,
        raw: ChunkChoice,
        pieces: list[tuple[_TextField, str]],
        events: list[Any],
    ) -> None:
        index = choice.index
        tool_deltas = raw.delta.tool_calls
        output = False  # whether output (text, tool calls, the end) ends the reasoning
        for field, piece in pieces:
            text = choice.texts[field.slot]
            assert text is not None
            snapshot = (text.prefix, len(text.parts))
            if field.kind == "reasoning":
                choice.reasoning_open = True
                events.append(
                    ev._build_reasoning_delta(
                        {"delta": piece, "choice_index": index, "field": field.key},
                        {"snapshot": snapshot},
                    )
                )
                continue
            if not output:
                output = True
                if choice.reasoning_open and (
                    tool_deltas
                    or raw.finish_reason
                    or any(p for f, p in pieces if f.kind != "reasoning")
                ):
                    self._reasoning_done_events(choice, events)
            if field.slot == _CONTENT:
                incremental = self._content_incremental(choice)
                if incremental is None:
                    events.append(
                        ev._build_content_delta(
                            {"delta": piece, "parsed": None, "choice_index": index},
                            {"snapshot": snapshot},
                        )
                    )
                else:
                    events.append(
                        ev._build_content_delta(
                            {"delta": piece, "choice_index": index},
                            {
                                "snapshot": snapshot,
                                "parsed": (_value_at, (incremental, incremental.fed)),
                            },
                        )
                    )
            else:
                events.append(
                    ev._build_refusal_delta(
                        {"delta": piece, "choice_index": index}, {"snapshot": snapshot}
                    )
                )
        if not output and choice.reasoning_open and (tool_deltas or raw.finish_reason):
            self._reasoning_done_events(choice, events)
        if tool_deltas:
            self._tool_delta_events(choice, tool_deltas, events)
        if raw.logprobs is not None and choice.logprobs is not None:
            self._logprobs_delta_events(choice, raw.logprobs, events)

    def _tool_delta_events(
        self, choice: _Choice, tool_deltas: list[Any], events: list[Any]
    ) -> None:
        index = choice.index
        for tool_delta in tool_deltas:
            call = choice.tools[tool_delta.index]
            function = tool_delta.function
            args = call.args
            assert args is not None
            incremental = self._tool_incremental(call)
            values = {
                "name": call.name or "",
                "index": tool_delta.index,
                "arguments_delta": (function.arguments if function is not None else None) or "",
                "choice_index": index,
            }
            lazy: dict[str, Any] = {"arguments": (args.prefix, len(args.parts))}
            if incremental is None:
                values["parsed_arguments"] = None
            else:
                lazy["parsed_arguments"] = (_value_at, (incremental, incremental.fed))
            events.append(ev._build_tool_delta(values, lazy))

    def _logprobs_delta_events(
        self, choice: _Choice, logprobs: ChoiceLogprobs, events: list[Any]
    ) -> None:
        index = choice.index
        assert choice.logprobs is not None
        if logprobs.content and choice.logprobs.content:
            events.append(
                ev._build_logprobs_content_delta(
                    {"content": logprobs.content, "choice_index": index},
                    {
                        "snapshot": (
                            _list_prefix,
                            (choice.logprobs.content, len(choice.logprobs.content)),
                        )
                    },
                )
            )
        if logprobs.refusal and choice.logprobs.refusal:
            events.append(
                ev._build_logprobs_refusal_delta(
                    {"refusal": logprobs.refusal, "choice_index": index},
                    {
                        "snapshot": (
                            _list_prefix,
                            (choice.logprobs.refusal, len(choice.logprobs.refusal)),
                        )
                    },
                )
            )

    def _reasoning_done_events(self, choice: _Choice, events: list[Any]) -> None:
        choice.reasoning_open = False
        for field in _REASONING_FIELDS:
            text = choice.texts[field.slot]
            if text is not None and not choice.texts_done[field.slot]:
                choice.texts_done[field.slot] = True
                events.append(
                    ev._build_reasoning_done(
                        {"content": text.value(), "choice_index": choice.index, "field": field.key}
                    )
                )

    def _done_events(
        self, choice: _Choice, tool_deltas: list[Any] | None, events: list[Any]
    ) -> None:
        """The done events this chunk completes, in the SDK's order."""
        if choice.finish_reason:
            self._content_done_events(choice, events)
            current = choice.current_tool
            if current is not None and current not in choice.done_tools:
                self._tool_done_event(choice, current, events)
        if tool_deltas:
            for tool_delta in tool_deltas:
                if choice.current_tool != tool_delta.index:
                    self._content_done_events(choice, events)
                    if choice.current_tool is not None:
                        self._tool_done_event(choice, choice.current_tool, events)
                choice.current_tool = tool_delta.index

    def _accumulate_tools(self, choice: _Choice, tool_deltas: list[Any]) -> None:
        for tool_delta in tool_deltas:
            call = choice.tools.get(tool_delta.index)
            if call is None:
                call = choice.tools[tool_delta.index] = _ToolCall(tool_delta.index)
                call.model = ParsedFunctionToolCall.model_construct(
                    id="",
                    type="function",
                    function=ParsedFunction.model_construct(
                        name="", arguments="", parsed_arguments=None
                    ),
                    index=tool_delta.index,
                )
                if choice.tool_list is None:
                    choice.tool_list = []
                choice.tool_list.append(call.model)
            if tool_delta.id:
                call.id = _merge_name(call.id, tool_delta.id)
            if tool_delta.type:
                call.type = tool_delta.type
            if tool_delta.__pydantic_extra__:
                call.extra = _merge_extra(call.extra, tool_delta.__pydantic_extra__)
            function = tool_delta.function
            arguments = None
            if function is not None:
                if function.name:
                    call.name = _merge_name(call.name, function.name)
                arguments = function.arguments
                if function.__pydantic_extra__:
                    call.function_extra = _merge_extra(
                        call.function_extra, function.__pydantic_extra__
                    )
            if call.args is None:
                call.args = _Text(arguments or "")
            elif arguments:
                call.args.append(arguments)

    def _accumulate_function_call(
        self, choice: _Choice, function_call: ChoiceDeltaFunctionCall
    ) -> None:
        if function_call.name:
            choice.function_name = _merge_name(choice.function_name, function_call.name)
        if choice.function_args is None:
            choice.function_args = _Text(function_call.arguments or "")
        elif function_call.arguments:
            choice.function_args.append(function_call.arguments)

    def _accumulate_extra(self, choice: _Choice, extra: dict[str, Any]) -> None:
        # Keys rxchat does not model are merged as the SDK merges deltas: strings appended,
        # numbers added, objects merged, lists of objects by their "index", other lists extended.
        message_extra = extra_of(choice.message)
        for key, value in extra.items():
            if key in _MESSAGE_FIELDS:
                # a message field a delta does not declare (OpenAI's streamed annotations)
                merged = choice.fields = _merge_extra(choice.fields, {key: value})
                set_field(choice.message, key, _message_field(key, merged[key]))
            elif isinstance(value, str):
                texts = choice.extra_texts
                if texts is None:
                    texts = choice.extra_texts = {}
                text = texts.get(key)
                if text is None:
                    texts[key] = _Text(value)
                else:
                    text.append(value)
            else:
                message_extra[key] = _merge_value(message_extra.get(key), value)

    def _accumulate_logprobs(self, choice: _Choice, logprobs: ChoiceLogprobs) -> None:
        snapshot = choice.logprobs
        if snapshot is None:
            snapshot = choice.logprobs = ChoiceLogprobs.model_construct(
                content=list(logprobs.content) if logprobs.content is not None else None,
                refusal=list(logprobs.refusal) if logprobs.refusal is not None else None,
            )
            choice.model.logprobs = snapshot
            return
        if logprobs.content:
            if snapshot.content is None:
                snapshot.content = []
            snapshot.content.extend(logprobs.content)
        if logprobs.refusal:
            if snapshot.refusal is None:
                snapshot.refusal = []
            snapshot.refusal.extend(logprobs.refusal)

    # ------------------------------------------------------------------ partial parsing

    def _parsing_content(self, choice: _Choice) -> bool:
        """Whether the SDK parses the content (partially) at this point."""
        text = choice.content
        return not (
            self._format is None
            or text is None
            or not text.nonblank
            or (choice.refusal is not None and choice.refusal)
        )

    def _content_incremental(self, choice: _Choice) -> _Incremental | None:
        """The content parser, fed up to date, when the SDK would parse the content now."""
        if not self._parsing_content(choice):
            return None
        text = choice.content
        fmt = self._format
        assert text is not None and fmt is not None
        incremental = choice.incremental
        if incremental is None:
            incremental = choice.incremental = _Incremental(text, self._partial_strings)
        try:
            incremental.advance()
        except PartialJSONError as err:
            raise self._error(
                StructuredOutputError(
                    f"the content is not valid JSON for {fmt.name}: {err}",
                    raw=text.value(),
                    completion=self._snapshot(),
                )
            ) from err
        return incremental

    def _tool_incremental(self, call: _ToolCall) -> _Incremental | None:
        """The arguments parser, fed up to date, when the SDK would parse them now."""
        spec = call.lookup(self._tools)
        args = call.args
        if spec is None or spec.kind is None or args is None or not args:
            return None
        incremental = call.incremental
        if incremental is None:
            incremental = call.incremental = _Incremental(args, self._partial_strings)
        try:
            incremental.advance()
        except PartialJSONError as err:
            raise self._error(
                StructuredOutputError(
                    f"the arguments of the call to {call.name!r} are not valid JSON: {err}",
                    raw=args.value(),
                    completion=self._snapshot(),
                )
            ) from err
        return incremental

    # ------------------------------------------------------------------ done events

    def _content_done_events(self, choice: _Choice, events: list[Any]) -> None:
        index = choice.index
        done = choice.texts_done
        content = choice.content
        if content is not None and content and not done[_CONTENT]:
            parsed = self._parse_content(choice)
            done[_CONTENT] = True
            choice.parsed_done = parsed
            events.append(
                ev._build_content_done(
                    {"content": content.value(), "parsed": parsed, "choice_index": index}
                )
            )
        refusal = choice.refusal
        if refusal is not None and not done[_REFUSAL]:
            done[_REFUSAL] = True
            events.append(
                ev._build_refusal_done({"refusal": refusal.value(), "choice_index": index})
            )
        logprobs = choice.logprobs
        if logprobs is not None:
            if logprobs.content is not None and not choice.lp_content_done:
                choice.lp_content_done = True
                events.append(
                    ev._build_logprobs_content_done(
                        {"content": list(logprobs.content), "choice_index": index}
                    )
                )
            if logprobs.refusal is not None and not choice.lp_refusal_done:
                choice.lp_refusal_done = True
                events.append(
                    ev._build_logprobs_refusal_done(
                        {"refusal": list(logprobs.refusal), "choice_index": index}
                    )
                )

    def _parse_content(self, choice: _Choice) -> Any:
        """The validated content (None when the SDK would not parse it)."""
        fmt = self._format
        text = choice.content
        if (
            fmt is None
            or text is None
            or not text
            or (choice.refusal is not None and choice.refusal)
        ):
            return None
        try:
            if fmt.kind == "json":
                return _finish_json(text, choice.incremental, self._partial_strings)
            return fmt.validate(text.value())
        except StructuredOutputError as err:
            raise self._error(err) from err.__cause__
        except PartialJSONError as err:
            raise self._error(
                StructuredOutputError(f"the content is not valid JSON: {err}", raw=text.value())
            ) from err

    def _tool_done_event(self, choice: _Choice, tool_index: int, events: list[Any]) -> None:
        if tool_index in choice.done_tools:
            return
        choice.done_tools.add(tool_index)
        call = choice.tools[tool_index]
        parsed = self._parse_arguments(call)
        call.done = True
        call.parsed_done = parsed
        events.append(
            ev._build_tool_done(
                {
                    "name": call.name or "",
                    "index": tool_index,
                    "arguments": call.arguments(),
                    "parsed_arguments": parsed,
                    "choice_index": choice.index,
                }
            )
        )

    def _parse_arguments(self, call: _ToolCall) -> Any:
        """The validated arguments of a complete call (None for tools that are not parsed)."""
        if call.done:
            return call.parsed_done
        spec = call.lookup(self._tools)
        if spec is None:
            if self._tools:
                raise self._error(UnknownToolError(call.name or ""))
            return None
        if spec.kind is None:
            return None
        args = call.args or _Text("")
        try:
            if spec.kind == "json":
                return _finish_json(args, call.incremental, self._partial_strings)
            return spec.validate(args.value())
        except StructuredOutputError as err:
            raise self._error(err) from err.__cause__
        except PartialJSONError as err:
            raise self._error(
                StructuredOutputError(
                    f"the arguments of the call to {call.name!r} are not valid JSON: {err}",
                    raw=args.value(),
                )
            ) from err

    # ------------------------------------------------------------------ snapshots

    def _error(self, err: RxChatError) -> RxChatError:
        if err.completion is None and self._completion is not None:
            err.completion = self._snapshot()
        err.chunks_received = self._chunks
        return err

    def _snapshot(self) -> ParsedChatCompletion[Any]:
        completion = self._completion
        if completion is None:
            raise IncompleteStreamError("no chunk has been handled yet")
        dirty = self._dirty
        if dirty:
            for choice in dirty:
                self._sync_choice(choice)
                choice.dirty = False
            dirty.clear()
        return completion

    def _sync_choice(self, choice: _Choice) -> None:
        message = choice.message
        values = values_of(message)
        fields_set = fields_set_of(message)
        # each text field is cleared before it is re-read, so the text can grow in place
        texts = choice.texts
        for field in _TEXT_FIELDS:
            text = texts[field.slot]
            if text is not None:
                key = field.key
                values[key] = None
                values[key] = text.value()
                fields_set.add(key)
        if choice.function_args is not None:
            values["function_call"] = FunctionCall.model_construct(
                name=choice.function_name or "", arguments=choice.function_args.value()
            )
            fields_set.add("function_call")
        if choice.audio is not None:
            values["audio"] = ChatCompletionAudio.model_construct(**choice.audio)
            fields_set.add("audio")
        if choice.extra_texts:
            extra = message.__pydantic_extra__
            assert extra is not None
            for key, text in choice.extra_texts.items():
                extra[key] = text.value()
        # parsed: the validated value once the content is done, else the partial value
        if choice.content_done:
            parsed = choice.parsed_done
        elif choice.cut:
            parsed = None
        else:
            incremental = choice.incremental
            parsed = None
            # handle_chunk keeps the parser up to date whenever the content is being parsed
            if incremental is not None and self._parsing_content(choice):
                parsed = incremental.current()
        values["parsed"] = parsed
        fields_set.add("parsed")
        if choice.tool_list is not None:
            values["tool_calls"] = choice.tool_list
            fields_set.add("tool_calls")
            for call in choice.tools.values():
                self._sync_tool(call)

    def _sync_tool(self, call: _ToolCall) -> None:
        model = call.model
        assert model is not None
        model.id = call.id or ""
        model.type = cast(Any, call.type or "function")
        if call.extra:
            _set_extras(model, call.extra)
        function = model.function
        if call.function_extra:
            _set_extras(function, call.function_extra)
        function.name = call.name or ""
        values_of(function)["arguments"] = ""  # cleared first, so the text can grow in place
        function.arguments = call.arguments()
        if call.done:
            function.parsed_arguments = call.parsed_done
        else:
            incremental = call.incremental
            spec = call.lookup(self._tools)
            parsed = None
            if incremental is not None and spec is not None and spec.kind is not None:
                parsed = incremental.current()
            function.parsed_arguments = parsed

    def completed_tool_call(self, choice_index: int, index: int) -> ParsedFunctionToolCall:
        """A copy of a tool call whose ``tool_calls.function.arguments.done`` event was emitted,
        with its parsed arguments (what ``ops.tool_calls()`` emits).

        Raises:
            KeyError: no such choice or tool call.
        """
        call = self._choices[choice_index].tools[index]
        return _tool_call_model(call, self._parse_arguments(call))

    def _final_choice(self, choice: _Choice) -> ParsedChoice[Any]:
        message = choice.message
        fields = dict(values_of(message))
        fields["parsed"] = (
            choice.parsed_done if choice.content_done else self._parse_content(choice)
        )
        tool_calls = None
        if choice.tool_list is not None:
            tool_calls = []
            for call in choice.tools.values():
                tool_calls.append(_tool_call_model(call, self._parse_arguments(call)))
        fields["tool_calls"] = tool_calls
        new_message: ParsedChatCompletionMessage[Any] = ParsedChatCompletionMessage.model_construct(
            _fields_set=set(message.model_fields_set) | {"parsed", "tool_calls"},
            **fields,
            **(message.__pydantic_extra__ or {}),
        )
        model = choice.model
        logprobs = choice.logprobs
        if logprobs is not None:
            logprobs = ChoiceLogprobs.model_construct(
                content=list(logprobs.content) if logprobs.content is not None else None,
                refusal=list(logprobs.refusal) if logprobs.refusal is not None else None,
            )
        choice_fields = dict(values_of(model))
        choice_fields["message"] = new_message
        choice_fields["logprobs"] = logprobs
        return ParsedChoice.model_construct(
            _fields_set=set(model.model_fields_set),
            **choice_fields,
            **(model.__pydantic_extra__ or {}),
        )


def _tool_call_model(call: _ToolCall, parsed: Any) -> ParsedFunctionToolCall:
    return ParsedFunctionToolCall.model_construct(
        id=call.id or "",
        type=cast(Any, call.type or "function"),
        function=ParsedFunction.model_construct(
            name=call.name or "",
            arguments=call.arguments(),
            parsed_arguments=parsed,
            **_copy_value(call.function_extra or {}),
        ),
        index=call.index,
        **_copy_value(call.extra or {}),
    )


# Message fields a delta does not declare; a delta's unknown key of that name fills them.
_MESSAGE_FIELDS = frozenset(ParsedChatCompletionMessage.model_fields) - frozenset(
    ChoiceDelta.model_fields
)
_FIELD_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _message_field(key: str, value: Any) -> Any:
    """A message field's value from its merged JSON (left as it is when it does not validate)."""
    adapter = _FIELD_ADAPTERS.get(key)
    if adapter is None:
        annotation = ParsedChatCompletionMessage.model_fields[key].annotation
        assert annotation is not None  # every field of the message model is annotated
        adapter = _FIELD_ADAPTERS[key] = TypeAdapter(annotation)
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return _copy_value(value)


def _set_extras(model: BaseModel, extra: dict[str, Any]) -> None:
    """Make a live snapshot model's unknown fields those accumulated so far."""
    extra_of(model).update(extra)
    fields_set_of(model).update(extra)


def _add_new_keys(model: BaseModel, extra: dict[str, Any]) -> None:
    """Add the unknown fields a model does not have yet; the first value of a key is kept (the
    SDK keeps a choice's and a completion's fields from their first chunk)."""
    current = extra_of(model)
    fields_set = fields_set_of(model)
    for key, value in extra.items():
        if key not in current:
            current[key] = value
            fields_set.add(key)


def _copy_value(value: Any) -> Any:
    """A copy of a JSON-like value deep enough that merging later deltas does not change it."""
    if isinstance(value, dict):
        return {key: _copy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_value(item) for item in value]
    return value


def _merge_extra(current: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields of a delta merged into those accumulated (see _merge_value)."""
    if current is None:
        return _copy_value(extra)  # type: ignore[no-any-return]
    for key, value in extra.items():
        current[key] = _merge_value(current.get(key), value, key)
    return current


def _finish_json(text: _Text, incremental: _Incremental | None, partial_strings: bool) -> Any:
    """The complete JSON value of a text, reusing its incremental parser when there is one."""
    if incremental is None:
        incremental = _Incremental(text, partial_strings)
    incremental.advance()
    return incremental.parser.finish()


def _merge_name(current: str | None, piece: str) -> str:
    # The SDK appends every piece; servers that repeat the whole id / name on every delta
    # would then get "call_1call_1": an identical repeat is kept once.
    if not current:
        return piece
    if piece == current:
        return current
    return current + piece


def _merge_value(current: Any, value: Any, key: str | None = None) -> Any:
    """The SDK's merge of an unknown delta field (``accumulate_delta``): strings appended,
    numbers added, objects merged key by key, lists of objects merged by their ``index``, other
    lists extended; ``index`` and ``type`` are replaced, not accumulated."""
    if current is None or key in ("index", "type"):
        return _copy_value(value)
    if isinstance(current, dict) and isinstance(value, dict):
        merged = dict(current)
        for name, item in value.items():
            merged[name] = _merge_value(merged.get(name), item, name)
        return merged
    if isinstance(current, list) and isinstance(value, list):
        if all(isinstance(item, dict) and type(item.get("index")) is int for item in value):
            merged_list = list(current)
            for item in value:
                position = item["index"]
                if position < len(merged_list) and isinstance(merged_list[position], dict):
                    merged_list[position] = _merge_value(merged_list[position], item)
                else:
                    merged_list.insert(min(position, len(merged_list)), _copy_value(item))
            return merged_list
        return [*current, *_copy_value(value)]
    if isinstance(current, str) and isinstance(value, str):
        return current + value
    if (
        isinstance(current, int | float)
        and isinstance(value, int | float)
        and not isinstance(current, bool)
        and not isinstance(value, bool)
    ):
        return current + value
    return value


def _initial_completion(chunk: ChatCompletionChunk) -> ParsedChatCompletion[Any]:
    return ParsedChatCompletion.model_construct(
        id=chunk.id,
        object="chat.completion",
        created=chunk.created,
        model=chunk.model,
        system_fingerprint=chunk.system_fingerprint,
        service_tier=chunk.service_tier,
        choices=[],
        usage=chunk.usage,
        moderation=chunk.moderation,
        **(chunk.__pydantic_extra__ or {}),
    )


def _coerce_chunk(chunk: Any) -> ChatCompletionChunk:
    if isinstance(chunk, Mapping):
        return ChatCompletionChunk.model_validate(chunk)  # not from_wire: it takes the dict over
    if isinstance(chunk, BaseModel):
        return ChatCompletionChunk.from_wire(chunk.model_dump(mode="json", exclude_unset=True))
    raise TypeError(
        f"handle_chunk() expects a ChatCompletionChunk (or its dict), got {type(chunk).__name__}"
    )
