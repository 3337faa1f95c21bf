"""Running tools: python functions as tools, and the loop that streams, calls them and goes on.

The loop is the openai SDK's tool runner (``runTools`` / ``ChatCompletionStreamingRunner``) as an
Observable of step events: for each turn it streams the model's answer (the usual stream events),
runs the tool calls it asked for (concurrently when there are several), appends the assistant
message and one ``tool`` message per call to the conversation, and streams the next turn, until
the model answers in text or ``max_turns`` requests were made. A tool that raises, bad argument
JSON, arguments that do not validate and a call to an unknown tool all go back to the model as
the tool's result (as the SDK does) and are reported in the events; they never end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

import orjson
import pydantic
from pydantic import BaseModel
from reactivex import Observable

from ._async_iter import to_async_iterator
from ._flow import FLOW_GATE
from ._sources import TaskRun, task_observable
from ._state import ChatCompletionStreamState
from ._structured import to_strict_json_schema
from .errors import IncompleteStreamError, RxChatError
from .events import ChatCompletionStreamEvent
from .operators._support import with_completion
from .types import ChatCompletionChunk, ParsedChatCompletion, ParsedChatCompletionMessage

__all__ = [
    "FinalEvent",
    "FunctionTool",
    "MaxTurnsExceededError",
    "ToolCallFinishedEvent",
    "ToolCallStartedEvent",
    "ToolRunnerEvent",
    "TurnDoneEvent",
    "TurnStartedEvent",
    "function_tool",
    "run_tools",
    "tool_message",
]

ResponseFormatT = TypeVar("ResponseFormatT")

DEFAULT_MAX_TURNS = 10


class MaxTurnsExceededError(RxChatError):
    """The model still asked for tools after ``max_turns`` requests of a tool loop.

    The calls of the last turn were run: ``messages`` is a valid conversation to continue
    (send it again with a higher limit).

    Attributes:
        messages: the conversation so far (the request messages, then each assistant message
            and its tool results).
        turns: the number of requests made.
        completion: the last turn's completion.
    """

    def __init__(
        self,
        max_turns: int,
        *,
        messages: list[dict[str, Any]],
        completion: ParsedChatCompletion[Any],
    ) -> None:
        super().__init__(
            f"the model still called tools after {max_turns} turns (max_turns={max_turns})",
            completion=completion,
        )
        self.messages = messages
        self.turns = max_turns


# -- tools ---------------------------------------------------------------------------------


def _result_text(result: Any) -> str:
    """A tool's return value as the ``content`` of its ``tool`` message."""
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    try:
        return orjson.dumps(result, default=_json_default).decode()
    except TypeError:
        return str(result)


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError


def tool_message(tool_call_id: str, result: Any) -> dict[str, Any]:
    """A ``tool`` request message carrying ``result`` as the answer to one tool call.

    Args:
        tool_call_id: the ``id`` of the assistant's tool call.
        result: a ``str`` (sent as is), a pydantic model (its JSON) or any JSON-serialisable
            value (its JSON; other objects their ``str()``).

    Returns:
        ``{"role": "tool", "tool_call_id": ..., "content": ...}``.

    >>> tool_message("call_1", {"temp": 18})
    {'role': 'tool', 'tool_call_id': 'call_1', 'content': '{"temp":18}'}
    """
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise TypeError(f"tool_call_id must be a non-empty str, got {tool_call_id!r}")
    return {"role": "tool", "tool_call_id": tool_call_id, "content": _result_text(result)}


def _summary(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class ToolArgumentsError(ValueError):
    """Arguments a tool cannot be called with (the message goes back to the model)."""


class FunctionTool:
    """A python function (sync or async) the model may call, with its JSON schema.

    Made by :func:`function_tool`, or implicitly from the functions and pydantic tool classes
    given to ``run_tools``.

    Attributes:
        name: the function name the model sees.
        description: its description (the docstring by default).
        parameters: the JSON schema of the arguments.
        strict: whether the definition says ``"strict": true``.
        model: the pydantic model the arguments validate into.
    """

    __slots__ = (
        "_call",
        "_spread",
        "description",
        "function",
        "model",
        "name",
        "parameters",
        "strict",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        model: type[BaseModel],
        name: str,
        description: str | None,
        strict: bool,
        spread: bool,
    ) -> None:
        self.function = function
        self.model = model
        self.name = name
        self.description = description
        self.strict = strict
        self._spread = spread  # call with the fields as keyword arguments (else the instance)
        if strict:
            self.parameters = to_strict_json_schema(model)
        else:
            self.parameters = model.model_json_schema()
            self.parameters.pop("title", None)

    def definition(self) -> dict[str, Any]:
        """The tool as a request's ``tools`` entry."""
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters
        if self.strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    def parse(self, arguments: str) -> BaseModel:
        """Validate the arguments text.

        Raises:
            ToolArgumentsError: not JSON, or it does not validate.
        """
        try:
            data = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError as err:
            raise ToolArgumentsError(
                f"the arguments are not valid JSON ({err}): {arguments[:200]!r}"
            ) from None
        try:
            return self.model.model_validate(data)
        except pydantic.ValidationError as err:
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {_summary(err)}"
            ) from None

    async def call(self, parsed: BaseModel) -> Any:
        """Run the function with validated arguments (a sync function runs in a worker thread)."""
        fn = self.function
        if self._spread:
            kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
            call = functools.partial(fn, **kwargs)
        else:
            call = functools.partial(fn, parsed)
        if _is_async(fn):
            return await call()
        result = await asyncio.to_thread(call)
        if inspect.isawaitable(result):
            return await result
        return result

    def __repr__(self) -> str:
        return f"FunctionTool(name={self.name!r}, strict={self.strict})"


def _is_async(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _signature_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot read the signature of tool {name!r}: {err}") from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    fields: dict[str, Any] = {}
    for pname, p in signature.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise TypeError(
                f"tool {name!r}: parameter {pname!r} must be a normal or keyword-only parameter"
            )
        annotation = hints.get(pname, p.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (annotation, default)
    model = pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)
    return cast(type[BaseModel], model)


def function_tool(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    model: type[BaseModel] | None = None,
) -> FunctionTool:
    """Make a python function (sync or async) a tool the model can call.

    Args:
        function: the function. Its parameters (with their annotations and defaults) are the
            tool's arguments, unless ``model`` is given; then it receives one validated
            ``model`` instance.
        name: the tool name (default: the function's ``__name__``).
        description: the description (default: the docstring).
        strict: send ``"strict": true`` with a strict schema (all fields required, no extra).
        model: a pydantic model describing the arguments.

    Returns:
        A :class:`FunctionTool`.

    Raises:
        TypeError: the function takes ``*args`` / ``**kwargs`` / positional-only parameters,
            or is not callable.

    >>> def get_weather(city: str, units: str = "c") -> dict:
    ...     "Current weather of a city."
    ...     return {"city": city, "temp": 18}
    >>> function_tool(get_weather).definition()["function"]["parameters"]["required"]
    ['city']
    """
    if not callable(function):
        raise TypeError(f"a tool must be callable, got {function!r}")
    tool_name = name or getattr(function, "__name__", None)
    if not isinstance(tool_name, str) or not tool_name or tool_name == "<lambda>":
        raise TypeError(f"give the tool a name: function_tool(fn, name=...) for {function!r}")
    doc = description if description is not None else inspect.getdoc(function)
    if model is not None:
        if not (inspect.isclass(model) and issubclass(model, BaseModel)):
            raise TypeError(f"model must be a pydantic model class, got {model!r}")
        return FunctionTool(
            function, model=model, name=tool_name, description=doc, strict=strict, spread=False
        )
    return FunctionTool(
        function,
        model=_signature_model(function, tool_name),
        name=tool_name,
        description=doc,
        strict=strict,
        spread=True,
    )


def _model_tool(cls: type[BaseModel]) -> FunctionTool:
    if "__call__" not in {n for c in cls.__mro__ if c is not BaseModel for n in vars(c)}:
        raise TypeError(
            f"the pydantic tool {cls.__name__} has no __call__: define `def __call__(self)` "
            "(sync or async) returning the result, or use function_tool(handler, model=...)"
        )

    def run(instance: BaseModel) -> Any:
        return instance()  # type: ignore[operator]

    is_async = inspect.iscoroutinefunction(cls.__call__)

    async def run_async(instance: BaseModel) -> Any:
        return await instance()  # type: ignore[operator]

    return FunctionTool(
        run_async if is_async else run,
        model=cls,
        name=cls.__name__,
        description=inspect.getdoc(cls) if cls.__doc__ else None,
        strict=False,
        spread=False,
    )


def as_function_tools(tools: Iterable[Any]) -> list[FunctionTool]:
    """Normalise ``run_tools``'s ``tools``: functions, pydantic tool classes, FunctionTools.

    Raises:
        TypeError: an item that is none of these, or two tools with one name.
    """
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
        raise TypeError(f"tools must be a list of functions or tools, got {type(tools).__name__}")
    out: list[FunctionTool] = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            out.append(tool)
        elif inspect.isclass(tool) and issubclass(tool, BaseModel):
            out.append(_model_tool(tool))
        elif isinstance(tool, Mapping):
            raise TypeError(
                "run_tools needs tools it can run: a function, a pydantic model class with "
                "__call__, or function_tool(handler, model=...), not a tool dict "
                f"({tool.get('function', {}).get('name', tool)!r})"
            )
        elif callable(tool):
            out.append(function_tool(tool))
        else:
            raise TypeError(f"a tool must be a function or a pydantic model class, got {tool!r}")
    names = [t.name for t in out]
    for n in names:
        if names.count(n) > 1:
            raise TypeError(f"two tools are named {n!r}")
    if not out:
        raise TypeError("run_tools needs at least one tool")
    return out


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnStartedEvent:
    """A request of the loop is about to be sent (``turn`` counts from 1)."""

    type: Literal["turn.started"] = "turn.started"
    turn: int
    messages: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallStartedEvent:
    """A tool call of the model is about to run."""

    type: Literal["tool_call.started"] = "tool_call.started"
    turn: int
    call_id: str
    name: str
    arguments: str
    parsed_arguments: Any = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCallFinishedEvent:
    """A tool call ended: ``result`` (what the function returned) or ``error``.

    ``error`` is the exception the function raised, a ``ValueError`` for arguments that are
    not JSON or do not validate, or ``LookupError`` for an unknown tool; ``message`` is the
    ``tool`` message sent back to the model either way (an error's text as its content).
    """

    type: Literal["tool_call.finished"] = "tool_call.finished"
    turn: int
    call_id: str
    name: str
    result: Any = None
    error: BaseException | None = None
    message: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        """The text sent back to the model."""
        return cast(str, self.message.get("content", ""))


@dataclass(frozen=True, kw_only=True, slots=True)
class TurnDoneEvent(Generic[ResponseFormatT]):
    """A turn's answer is complete (and its tool calls, if any, ran)."""

    type: Literal["turn.done"] = "turn.done"
    turn: int
    completion: ParsedChatCompletion[ResponseFormatT]
    tool_calls: int

    @property
    def message(self) -> ParsedChatCompletionMessage[ResponseFormatT]:
        return self.completion.choices[0].message


@dataclass(frozen=True, kw_only=True, slots=True)
class FinalEvent(Generic[ResponseFormatT]):
    """The model answered without tool calls: the loop's result (the last event)."""

    type: Literal["final"] = "final"
    turns: int
    completion: ParsedChatCompletion[ResponseFormatT]
    messages: list[dict[str, Any]]

    @property
    def message(self) -> ParsedChatCompletionMessage[ResponseFormatT]:
        """The final assistant message."""
        return self.completion.choices[0].message

    @property
    def content(self) -> str | None:
        """The final answer's text."""
        return self.message.content


ToolRunnerEvent = (
    TurnStartedEvent
    | ChatCompletionStreamEvent
    | ToolCallStartedEvent
    | ToolCallFinishedEvent
    | TurnDoneEvent[Any]
    | FinalEvent[Any]
)
"""What ``run_tools`` emits, discriminated by ``type``."""


# -- the loop ------------------------------------------------------------------------------


class ChunkRequest(Protocol):
    """Makes one turn's request: the conversation so far and the tool definitions."""

    def __call__(
        self, *, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> Observable[ChatCompletionChunk]: ...


def request_message(message: Any) -> dict[str, Any]:
    """A message of the initial conversation as a plain request dict."""
    if isinstance(message, Mapping):
        return dict(message)
    to_param = getattr(message, "to_param", None)
    if callable(to_param):
        return cast(dict[str, Any], to_param())
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"a message must be a dict or a message model, got {type(message).__name__}")


def _error_text(err: BaseException) -> str:
    if isinstance(err, ToolArgumentsError | LookupError):
        return f"Error: {err}"
    return f"Error: {type(err).__name__}: {err}"


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str


async def _run_call(
    run: TaskRun, by_name: dict[str, FunctionTool], call: _Call, turn: int
) -> dict[str, Any]:
    emit = run.observer.on_next
    if run.disposed:
        return {}
    tool = by_name.get(call.name)
    parsed: BaseModel | None = None
    error: BaseException | None = None
    result: Any = None
    if tool is None:
        error = LookupError(f"no tool named {call.name!r}; the tools are: {', '.join(by_name)}")
    else:
        try:
            parsed = tool.parse(call.arguments)
        except ToolArgumentsError as err:
            error = err
    emit(
        ToolCallStartedEvent(
            turn=turn,
            call_id=call.call_id,
            name=call.name,
            arguments=call.arguments,
            parsed_arguments=parsed,
        )
    )
    if tool is not None and parsed is not None:
        try:
            result = await tool.call(parsed)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # goes back to the model, as the SDK's runner does
            error = err
    if error is not None:
        message = {"role": "tool", "tool_call_id": call.call_id, "content": _error_text(error)}
    else:
        message = tool_message(call.call_id, result)
    if not run.disposed:
        emit(
            ToolCallFinishedEvent(
                turn=turn,
                call_id=call.call_id,
                name=call.name,
                result=result,
                error=error,
                message=message,
            )
        )
    return message


def run_tools(
    request: ChunkRequest | Callable[..., Observable[ChatCompletionChunk]],
    *,
    messages: Iterable[Any],
    tools: Sequence[Any],
    max_turns: int = DEFAULT_MAX_TURNS,
    response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
) -> Observable[ToolRunnerEvent]:
    """A tool loop as a cold Observable of step events (each subscription runs the loop once).

    Per turn: ``turn.started``, the turn's stream events (``chunk``, ``content.delta``,
    ``tool_calls.function.arguments.delta``, ... as ``ops.accumulate()`` gives them), then for
    each tool call ``tool_call.started`` and ``tool_call.finished`` (calls of one turn run
    concurrently; a sync function in a worker thread), then ``turn.done``. When a turn has no
    tool call, ``final`` follows and the Observable completes.

    ::

        turn.started(1)--chunk,δ..--tool_call.started--tool_call.finished--turn.done(1)--
        turn.started(2)--chunk,content.delta..content.done--turn.done(2)--final|

    Args:
        request: makes each turn's request, called as ``request(messages=..., tools=...)``
            with the conversation so far and the tool definitions, returning an Observable of
            chunks: e.g. ``functools.partial(client.chat.completions.observe, model="gpt-4o")``.
        messages: the conversation to start from (dicts or message models).
        tools: python functions (sync or async), pydantic model classes with a ``__call__``,
            or :func:`function_tool` tools.
        max_turns: the most requests the loop makes.
        response_format: parse the final content (as ``ops.parse_structured``); the request
            callable must send the matching ``response_format`` itself.

    Returns:
        ``Observable[ToolRunnerEvent]``.

    Raises:
        (as ``on_error``) :class:`MaxTurnsExceededError` (with ``.messages``) when turn
        ``max_turns`` still called tools; the errors of a turn's stream, as they come;
        ``TypeError`` for bad tools or messages (at call time).

    >>> events = rxchat.run_tools(  # doctest: +SKIP
    ...     functools.partial(client.chat.completions.observe, model="gpt-4o"),
    ...     messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[get_weather])
    """
    function_tools = as_function_tools(tools)
    if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 1:
        raise TypeError(f"max_turns must be an int >= 1, got {max_turns!r}")
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise TypeError(f"messages must be a list of message dicts, got {type(messages).__name__}")
    start = [request_message(m) for m in messages]
    ChatCompletionStreamState(response_format=response_format)  # reject a bad format now
    definitions = [t.definition() for t in function_tools]
    by_name = {t.name: t for t in function_tools}

    async def body(run: TaskRun) -> None:
        emit = run.observer.on_next
        # A bounded consumer downstream (``async for``) closes this gate when its buffer is full:
        # waiting here stops reading the turn's stream, whose own bridge then pauses the socket.
        gate = FLOW_GATE.get()
        conversation = list(start)
        for turn in range(1, max_turns + 1):
            emit(TurnStartedEvent(turn=turn, messages=list(conversation)))
            if run.disposed:
                return
            state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(
                response_format=response_format
            )
            chunks = request(messages=list(conversation), tools=definitions)
            try:
                async with to_async_iterator(chunks) as iterator:
                    async for chunk in iterator:
                        for event in state.handle_chunk(chunk):
                            emit(event)
                            if run.disposed:
                                return
                        if gate is not None and gate.closed:
                            await gate.wait_open()
            except RxChatError as err:
                with_completion(err, state)  # the turn so far stays reachable on the error
                raise
            if not state.chunks_handled:
                raise IncompleteStreamError(f"turn {turn}: the stream completed without any chunk")
            completion = state.get_final_completion()
            if not completion.choices:
                raise IncompleteStreamError(
                    f"turn {turn}: the answer has no choice", completion=completion
                )
            message = completion.choices[0].message
            conversation.append(message.to_param())
            calls = [
                _Call(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
            ]
            if calls:
                results = await asyncio.gather(*(_run_call(run, by_name, c, turn) for c in calls))
                if run.disposed:
                    return
                conversation.extend(results)
            emit(TurnDoneEvent(turn=turn, completion=completion, tool_calls=len(calls)))
            if run.disposed:
                return
            if not calls:
                emit(FinalEvent(turns=turn, completion=completion, messages=conversation))
                return
        raise MaxTurnsExceededError(max_turns, messages=conversation, completion=completion)

    return cast(Observable[ToolRunnerEvent], task_observable(body))


# -- the clients' runners -------------------------------------------------------------------


class _RunnerBase(Generic[ResponseFormatT]):
    __slots__ = ("_final", "_messages")

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self._messages = messages
        self._final: FinalEvent[ResponseFormatT] | None = None

    def _seen(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "turn.started":
            self._messages = event.messages
        elif kind == "final":
            self._final = event
            self._messages = event.messages

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (complete after the ``final`` event)."""
        return list(self._messages)

    @property
    def final(self) -> FinalEvent[ResponseFormatT] | None:
        """The ``final`` event, once it came."""
        return self._final

    def _result(self) -> ParsedChatCompletion[ResponseFormatT]:
        if self._final is None:
            raise IncompleteStreamError("the tool loop ended without a final answer")
        return self._final.completion


class AsyncToolRunner(_RunnerBase[ResponseFormatT]):
    """A running tool loop (``client.chat.completions.run_tools(...)``): ``async for`` its events.

    Iterable once. ``await runner.until_done()`` runs it to the end and returns the final
    completion; ``runner.messages`` is the conversation so far. Leaving ``async with`` or
    :meth:`close` stops the loop (the open request is closed, running tools cancelled).
    """

    __slots__ = ("_iterator", "_source", "_started")

    def __init__(self, source: Observable[ToolRunnerEvent], messages: list[dict[str, Any]]) -> None:
        super().__init__(messages)
        self._source = source
        self._iterator: Any = None
        self._started = False

    @property
    def started(self) -> bool:
        """Whether the loop was started (by iterating) or closed: a runner runs once."""
        return self._started

    def __aiter__(self) -> AsyncToolRunner[ResponseFormatT]:
        return self

    async def __anext__(self) -> ToolRunnerEvent:
        if self._iterator is None:
            if self._started:
                raise StopAsyncIteration
            self._started = True
            self._iterator = to_async_iterator(self._source)
        try:
            event = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._iterator = None
            raise
        self._seen(event)
        return cast(ToolRunnerEvent, event)

    async def until_done(self) -> ParsedChatCompletion[ResponseFormatT]:
        """Run the loop to the end (the rest of the events are dropped); the final completion.

        Raises:
            MaxTurnsExceededError: the turn limit was hit.
            IncompleteStreamError: the loop was closed before its final answer.
        """
        async for _ in self:
            pass
        return self._result()

    get_final_completion = until_done

    async def close(self) -> None:
        """Stop the loop (idempotent)."""
        self._started = True
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            await iterator.aclose()

    async def __aenter__(self) -> AsyncToolRunner[ResponseFormatT]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ToolRunner(_RunnerBase[ResponseFormatT]):
    """The synchronous :class:`AsyncToolRunner`: ``for event in runner``, ``runner.until_done()``.

    The loop runs on rxchat's background event loop (async tools there, sync tools in worker
    threads); events reach the calling thread through a bounded queue.
    """

    __slots__ = ("_async", "_bridge", "_closed", "_portal", "_pump")

    def __init__(self, runner: AsyncToolRunner[ResponseFormatT], portal: Any) -> None:
        super().__init__(runner.messages)
        self._async = runner
        self._portal = portal
        self._bridge: Any = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    def __iter__(self) -> ToolRunner[ResponseFormatT]:
        return self

    def __next__(self) -> ToolRunnerEvent:
        from ._portal import BatchBridge

        if self._bridge is None:
            if self._closed or self._async.started:
                raise StopIteration
            runner = self._async

            async def start() -> Any:
                bridge: BatchBridge[Any] = BatchBridge(asyncio.get_running_loop(), maxsize=256)
                self._pump = asyncio.create_task(bridge.run(runner))
                return bridge

            self._bridge = self._portal.call(start)
        event = self._bridge.get()
        self._seen(event)
        return cast(ToolRunnerEvent, event)

    def until_done(self) -> ParsedChatCompletion[ResponseFormatT]:
        """Run the loop to the end; the final completion (see :meth:`AsyncToolRunner.until_done`)."""
        for _ in self:
            pass
        return self._result()

    get_final_completion = until_done

    def close(self) -> None:
        """Stop the loop (idempotent)."""
        bridge, pump = self._bridge, self._pump
        if bridge is not None:
            bridge.close()
        runner = self._async

        async def stop() -> None:
            if pump is not None and not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):  # the pump's own
                    await pump
            await runner.close()

        if not self._portal.loop.is_closed():
            self._portal.call(stop)
        self._closed = True

    def __enter__(self) -> ToolRunner[ResponseFormatT]:
        return self

    def __del__(self) -> None:
        # Dropped mid-loop (a `break` without `with`): stop the loop without blocking the collector.
        pump = getattr(self, "_pump", None)
        if pump is None or pump.done():
            return
        try:
            self._bridge.close()
            runner = self._async

            async def stop() -> None:
                pump.cancel()
                await runner.close()

            loop = self._portal.loop
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(stop(), loop)
        except Exception:  # finalizers must not raise
            pass

    def __exit__(self, *exc_info: object) -> None:
        self.close()
