"""``AsyncClient`` and ``Client``: the OpenAI / Dedalus / Edgee-style facades over the core.

``AsyncClient`` holds the logic; ``Client`` forwards each call to an ``AsyncClient`` that lives on
rxchat's background event loop (:mod:`rxchat._portal`), so no behaviour is written twice.
The sync and async methods take the same parameters (a test compares their signatures).

Configuration (first match wins):

* API key: ``api_key=``, ``$RXCHAT_API_KEY``, ``$OPENAI_API_KEY``. A missing key is allowed — local
  servers (``rxchat serve``, llama.cpp, vLLM, Ollama) need none; no ``Authorization`` header is
  sent and a server that wants a key answers 401 (:class:`~rxchat.AuthenticationError`).
* Base URL (the API root including ``/v1``): ``base_url=``, ``$RXCHAT_BASE_URL``,
  ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1`` as in the OpenAI SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, overload

from pydantic import BaseModel
from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler, AsyncIOThreadSafeScheduler
from typing_extensions import TypeVar

from ._config import DEFAULT_TIMEOUT, QueryValue, Timeout, resolve_api_key, resolve_base_url
from ._edgee import InputObject, SendResponse, edgee_request
from ._parsing import type_to_response_format_param
from ._portal import Portal, get_portal
from ._sources import observable_from_batches
from ._state import ChatCompletionStreamState
from ._streams import (
    AsyncChatCompletionStream,
    AsyncChatCompletionStreamManager,
    AsyncStream,
    ChatCompletionStream,
    ChatCompletionStreamManager,
    Stream,
)
from ._tools import (
    DEFAULT_MAX_TURNS,
    AsyncToolRunner,
    ToolRunner,
    as_function_tools,
    request_message,
    run_tools,
)
from ._transport import HTTPTransport
from .errors import APIResponseValidationError
from .types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

__all__ = ["NOT_GIVEN", "AsyncClient", "Client", "NotGiven"]

_PATH = "/chat/completions"

# Defaults to None so that ``stream(...)`` without response_format needs no annotation.
ResponseFormatT = TypeVar("ResponseFormatT", default=None)


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "argument left out" where ``None`` means something."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()
"""Default of per-call ``timeout=``: use the client's timeout (``None`` disables timeouts)."""

TimeoutArg = float | Timeout | None | NotGiven
Message = Mapping[str, Any] | BaseModel


def _omit_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _messages(messages: Iterable[Message]) -> list[Message]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise TypeError(
            "messages must be a list of message dicts like "
            f"[{{'role': 'user', 'content': '...'}}], got {type(messages).__name__}"
        )
    out = list(messages)
    for i, message in enumerate(out):
        if not isinstance(message, Mapping | BaseModel):
            raise TypeError(
                f"messages[{i}] must be a dict (or a message model), got {type(message).__name__}"
            )
    return out


def _response_format(value: Any) -> Any:
    if value is None or isinstance(value, Mapping):
        return value
    if not isinstance(value, type) and getattr(value, "__origin__", None) is None:
        raise TypeError(
            "response_format must be a pydantic model class (or another type) or a dict such as "
            f"{{'type': 'json_object'}}, got {value!r}"
        )
    return type_to_response_format_param(value)


def _build_body(
    named: Mapping[str, Any], params: Mapping[str, Any], *, stream: bool
) -> tuple[dict[str, Any], dict[str, str] | None, Timeout | None]:
    """The request body, extra headers and timeout of one chat-completions call."""
    named = dict(named)
    model = named.pop("model")
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a non-empty str, got {model!r}")
    messages = _messages(named.pop("messages"))
    extra_headers = named.pop("extra_headers", None)
    extra_body = named.pop("extra_body", None)
    timeout = named.pop("timeout", NOT_GIVEN)
    named.pop("stream", None)
    body: dict[str, Any] = {"model": model, "messages": messages}
    if "response_format" in named:
        named["response_format"] = _response_format(named["response_format"])
    if named.get("tools") is not None:
        tools = named["tools"]
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
            raise TypeError(f"tools must be a list of tool dicts, got {type(tools).__name__}")
        named["tools"] = list(tools)
    body.update(_omit_none(named))
    body.update(params)
    if extra_body:
        body.update(extra_body)
    if stream:
        body["stream"] = True
    t = None if isinstance(timeout, NotGiven) else Timeout.coerce(timeout)
    return body, (dict(extra_headers) if extra_headers else None), t


def _named(values: dict[str, Any]) -> dict[str, Any]:
    """A method's explicit arguments (``locals()`` without ``self`` and ``**params``)."""
    values.pop("self", None)
    values.pop("params", None)
    return values


# -- async -------------------------------------------------------------------------------


class _Requester:
    """Sends the chat-completion requests of one client.

    Resources, streams and Observables hold this object, not the client: a temporary client
    (``client.with_options(...).chat.completions.create(...)``) stays usable while anything made
    from it lives, and when the last of them goes, the finalizer closes the connections.
    """

    __slots__ = ("__weakref__", "finalizer", "transport")

    def __init__(self, transport: HTTPTransport) -> None:
        self.transport = transport
        self.finalizer = weakref.finalize(self, _close_transport_now, transport)

    def stream(self, body: dict[str, Any], headers: dict[str, str] | None, t: Timeout | None) -> AsyncStream:
        """A (not yet started) stream of ``body``."""
        return AsyncStream(lambda: self.transport.stream(_PATH, body, headers=headers, timeout=t))

    def observable(
        self, body: dict[str, Any], headers: dict[str, str] | None, t: Timeout | None
    ) -> Observable[ChatCompletionChunk]:
        """A cold Observable of ``body``'s chunks."""
        return observable_from_batches(
            lambda: self.transport.stream(_PATH, body, headers=headers, timeout=t)
        )

    async def completion(
        self, body: dict[str, Any], headers: dict[str, str] | None, t: Timeout | None
    ) -> ChatCompletion:
        """A whole (non-streamed) completion of ``body``."""
        data = await self.transport.post_json(_PATH, body, headers=headers, timeout=t)
        return _completion(data)


class AsyncCompletions:
    """``client.chat.completions`` of :class:`AsyncClient`."""

    def __init__(self, requester: _Requester) -> None:
        self._requester = requester

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self, *, model: str, messages: Iterable[Message], stream: Literal[True], **params: Any
    ) -> AsyncStream: ...

    @overload
    async def create(
        self, *, model: str, messages: Iterable[Message], stream: bool, **params: Any
    ) -> ChatCompletion | AsyncStream: ...

    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool = False,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: Any = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ChatCompletion | AsyncStream:
        """Create a chat completion, streamed or whole.

        Parameters are those of the OpenAI API (``None`` leaves one out); anything else goes in
        ``**params`` or ``extra_body``. A pydantic model as ``response_format`` is sent as a
        strict ``json_schema`` (use :meth:`stream` to also get it parsed).

        Args:
            model: the model name.
            messages: the conversation (dicts, or message models such as a previous answer).
            stream: ``True`` returns an :class:`~rxchat.AsyncStream` of chunks.
            extra_headers: headers of this request only.
            extra_body: merged into the JSON body last.
            timeout: a number of seconds, an :class:`~rxchat.Timeout`, or ``None`` for none;
                left out, the client's timeout applies.
            **params: more body fields (``metadata=``, ``store=``, provider extensions, ...).

        Returns:
            An :class:`~rxchat.AsyncStream` (already started: status errors raise here) when
            ``stream=True``, else a :class:`~rxchat.ChatCompletion`.

        Raises:
            APIStatusError: the server answered 4xx/5xx (a subclass per status).
            APIConnectionError: the server could not be reached; ``APITimeoutError`` on timeout.
            TypeError: a malformed argument.

        Example:
            >>> stream = await client.chat.completions.create(  # doctest: +SKIP
            ...     model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
            >>> async for chunk in stream:  # doctest: +SKIP
            ...     print(chunk.text or "", end="")
        """
        body, headers, t = _build_body(_named(locals()), params, stream=stream)
        if stream:
            result = self._requester.stream(body, headers, t)
            await result.start()
            return result
        return await self._requester.completion(body, headers, t)

    async def parse(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ParsedChatCompletion[ResponseFormatT]:
        """Create a whole completion and parse it, as the SDKs' ``parse()``.

        ``message.parsed`` holds the ``response_format`` model instance and each tool call's
        ``function.parsed_arguments`` its parsed arguments; the parsing is that of
        :meth:`stream` (the same state object), so both give the same result.

        Args:
            model: the model name.
            messages: the conversation.
            response_format: a pydantic model class (sent as a strict ``json_schema``), or a dict.
            tools: function tools (:func:`~rxchat.pydantic_function_tool` dicts are parsed).
            timeout: per-call timeout (see :meth:`create`).
            **params: more body fields.

        Returns:
            A :class:`~rxchat.ParsedChatCompletion`.

        Raises:
            LengthFinishReasonError: the answer hit the token limit.
            ContentFilterFinishReasonError: the content filter stopped the answer.
            StructuredOutputError: the content or arguments do not validate.
            APIStatusError: the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached.

        Example:
            >>> completion = await client.chat.completions.parse(  # doctest: +SKIP
            ...     model="m", messages=msgs, response_format=Answer)
            >>> completion.choices[0].message.parsed  # doctest: +SKIP
            Answer(...)
        """
        named = _named(locals())
        state: ChatCompletionStreamState[ResponseFormatT] = ChatCompletionStreamState(
            response_format=response_format, tools=tools
        )
        if tools is not None:
            named["tools"] = state.tools
        body, headers, t = _build_body(named, params, stream=False)
        completion = await self._requester.completion(body, headers, t)
        return _parse_completion(completion, state)

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> AsyncChatCompletionStreamManager[ResponseFormatT]:
        """Stream a completion as typed events: ``async with ... .stream(...) as stream``.

        ``response_format`` may be a pydantic model (sent as a strict ``json_schema``; the
        ``content.done`` event and the final message carry ``parsed``); ``tools`` may hold
        :func:`~rxchat.pydantic_function_tool` dicts (their calls carry ``parsed_arguments``).
        With such parseable input a ``length`` or ``content_filter`` finish raises
        :class:`~rxchat.LengthFinishReasonError` / :class:`~rxchat.ContentFilterFinishReasonError`.

        Args:
            model: the model name.
            messages: the conversation.
            response_format: a pydantic model class, or a response-format dict (passed through).
            tools: function tools (dicts; strict ones are parsed).
            timeout: per-call timeout (see :meth:`create`).
            **params: more body fields.

        Returns:
            A manager; entering it sends the request and yields an
            :class:`~rxchat.AsyncChatCompletionStream`. Leaving it closes the connection.

        Raises:
            APIStatusError: on entering, when the server answered 4xx/5xx.
            APIConnectionError: on entering or while reading.

        Example:
            >>> async with client.chat.completions.stream(model="m", messages=msgs) as stream:  # doctest: +SKIP
            ...     async for event in stream:
            ...         if event.type == "content.delta":
            ...             print(event.delta, end="")
            ...     completion = await stream.get_final_completion()
        """
        named = _named(locals())
        # The state checks response_format and tools now, and converts tools given as models.
        state: ChatCompletionStreamState[ResponseFormatT] = ChatCompletionStreamState(
            response_format=response_format, tools=tools
        )
        if tools is not None:
            named["tools"] = state.tools
        body, headers, t = _build_body(named, params, stream=True)
        requester = self._requester

        async def open_stream() -> AsyncChatCompletionStream[ResponseFormatT]:
            raw = requester.stream(body, headers, t)
            await raw.start()
            return AsyncChatCompletionStream(raw, state)

        return AsyncChatCompletionStreamManager(open_stream)

    def observe(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: Any = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> Observable[ChatCompletionChunk]:
        """The reactive door: a cold ``Observable`` of chunks with this client's configuration.

        Each subscription sends one request (base URL, key, timeouts and retries of the client);
        disposing the subscription closes the connection. Compose it with ``rxchat.operators``.

        Returns:
            ``Observable[ChatCompletionChunk]``.

        Example:
            >>> from rxchat import operators as ops
            >>> texts = client.chat.completions.observe(model="m", messages=msgs).pipe(  # doctest: +SKIP
            ...     ops.accumulate(), ops.text())
        """
        body, headers, t = _build_body(_named(locals()), params, stream=True)
        return self._requester.observable(body, headers, t)

    def run_tools(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        tools: Sequence[Any],
        max_turns: int = DEFAULT_MAX_TURNS,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> AsyncToolRunner[ResponseFormatT]:
        """Run a tool loop: stream a turn, run the tools it calls, send the results, repeat.

        The openai SDK's tool runner on this client: each turn is one streamed request (with
        this client's configuration) of the conversation so far and the tools' definitions;
        the tool calls of a turn run concurrently; their results (or their errors, as text)
        go back as ``tool`` messages; the loop ends when the model answers without calling a
        tool. See :func:`rxchat.run_tools` for the events.

        Args:
            model: the model name.
            messages: the conversation to start from.
            tools: python functions (sync or async), pydantic model classes with ``__call__``,
                or :func:`rxchat.function_tool` tools.
            max_turns: the most requests made (:class:`~rxchat.MaxTurnsExceededError` beyond).
            response_format: a pydantic model: the final answer is parsed into it.
            timeout: per-request timeout (see :meth:`create`).
            **params: more body fields of every request.

        Returns:
            An :class:`~rxchat.AsyncToolRunner`: ``async for event in runner``, or
            ``await runner.until_done()`` for the final completion. The first request is sent
            when iteration starts.

        Raises:
            TypeError: bad tools or arguments (at once).

        Example:
            >>> runner = client.chat.completions.run_tools(  # doctest: +SKIP
            ...     model="gpt-4o", messages=msgs, tools=[get_weather])
            >>> completion = await runner.until_done()  # doctest: +SKIP
        """
        named = _named(locals())
        function_tools = as_function_tools(named.pop("tools"))
        max_turns = named.pop("max_turns")
        start = named.pop("messages")
        observe = self.observe

        def request(
            *, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
        ) -> Observable[ChatCompletionChunk]:
            return observe(**named, messages=messages, tools=tools, **params)

        source = run_tools(
            request,
            messages=start,
            tools=function_tools,
            max_turns=max_turns,
            response_format=response_format,
        )
        return AsyncToolRunner(source, [request_message(m) for m in _messages(start)])


def _parse_completion(
    completion: ChatCompletion, state: ChatCompletionStreamState[ResponseFormatT]
) -> ParsedChatCompletion[ResponseFormatT]:
    """Parse a whole completion with the stream state: it is fed as one chunk."""
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
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
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
    data["object"] = "chat.completion.chunk"
    data["choices"] = choices
    state.handle_chunk(ChatCompletionChunk.model_validate(data))
    return state.get_final_completion()


def _completion(data: dict[str, Any]) -> ChatCompletion:
    try:
        return ChatCompletion.model_validate(data)
    except Exception as err:  # pydantic.ValidationError: the server broke the protocol
        raise APIResponseValidationError(
            f"the response is not a chat completion: {err}", body=data
        ) from None


class AsyncChat:
    """``client.chat`` of :class:`AsyncClient`."""

    def __init__(self, requester: _Requester) -> None:
        self.completions = AsyncCompletions(requester)


def _close_transport_now(transport: HTTPTransport) -> None:
    """Finalizer of an unclosed AsyncClient: close its connections without awaiting.

    ``ClientSession.close()`` is a coroutine, and a finalizer may run after its loop stopped:
    :meth:`HTTPTransport.close_now` closes synchronously, on the transport's loop when it
    still runs, leaving no unclosed-session or unclosed-connector warning behind.
    """
    loop = transport.loop
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or loop.is_closed() or running is loop or not loop.is_running():
        transport.close_now()
    else:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(transport.close_now)


class AsyncClient:
    """Asynchronous client for OpenAI-compatible chat completions.

    Args:
        api_key: API key; default ``$RXCHAT_API_KEY``, then ``$OPENAI_API_KEY``, else none
            (fine for local servers).
        base_url: API root including ``/v1``; default ``$RXCHAT_BASE_URL``, then
            ``$OPENAI_BASE_URL``, then ``https://api.openai.com/v1``.
        timeout: a number of seconds (connect and read-between-chunks), an
            :class:`~rxchat.Timeout` (connect, read, total) or ``None`` for none.
        max_retries: retries of connection errors, 408, 409, 429 and 5xx, only before the body
            began (never a stream that produced output), with backoff honouring ``Retry-After``.
        default_headers: headers sent with every request.
        verify_ssl: verify TLS certificates (on unless you turn it off explicitly).
        max_event_bytes: bound one SSE event's size (``EventTooLargeError`` beyond; 64 MiB
            when not given).
        default_query: query parameters added to every request's URL, as in the OpenAI SDK
            (Azure: ``{"api-version": "2024-06-01"}``); a query in ``base_url`` is kept too.

    Use it as ``async with AsyncClient() as client`` or call ``await client.close()``;
    closing it while streams still wait for data makes each of them raise
    :class:`~rxchat.APIConnectionError` at once.
    The client binds to the event loop of its first request.

    Example:
        >>> async with rxchat.AsyncClient(base_url="http://127.0.0.1:8000/v1") as client:  # doctest: +SKIP
        ...     async with client.chat.completions.stream(model="m", messages=msgs) as stream:
        ...         completion = await stream.get_final_completion()
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        verify_ssl: bool = True,
        max_event_bytes: int | None = None,
        default_query: Mapping[str, QueryValue] | None = None,
    ) -> None:
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError("api_key must be a str or None")
        self.api_key: str | None = resolve_api_key(api_key)
        resolved = resolve_base_url(base_url)
        self.timeout = Timeout.coerce(timeout)
        self.max_retries = max_retries
        self.default_headers: dict[str, str] = dict(default_headers or {})
        self.default_query: dict[str, QueryValue] = dict(default_query or {})
        self._verify_ssl = verify_ssl
        self._max_event_bytes = max_event_bytes
        self._base_url = resolved
        self._transport = HTTPTransport(
            base_url=resolved,
            api_key=self.api_key,
            timeout=self.timeout,
            max_retries=max_retries,
            default_headers=self.default_headers,
            default_query=self.default_query,
            verify_ssl=verify_ssl,
            max_event_bytes=max_event_bytes,
        )
        self._requester = _Requester(self._transport)
        self.chat = AsyncChat(self._requester)

    @property
    def base_url(self) -> str:
        """The API root (credentials in the URL left out)."""
        return self._transport.base_url

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout!r}, "
            f"max_retries={self.max_retries})"
        )

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> AsyncClient:
        """A new client with some options changed (it has its own connections: close it too)."""
        return type(self)(
            api_key=api_key or self.api_key,
            base_url=base_url or self._base_url,
            timeout=self.timeout if isinstance(timeout, NotGiven) else timeout,
            max_retries=self.max_retries if max_retries is None else max_retries,
            default_headers={**self.default_headers, **(default_headers or {})},
            verify_ssl=self._verify_ssl,
            max_event_bytes=self._max_event_bytes,
            default_query=self.default_query,
        )

    # -- Edgee style ---------------------------------------------------------------------

    def stream(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> AsyncStream:
        """Edgee style: stream a completion of ``input`` as chunks (``.text``, ``.role``, ``.finish_reason``).

        Args:
            model: the model name.
            input: a ``str`` (one user message), an :class:`~rxchat.InputObject` or a dict with
                its fields (``messages``, ``tools``, ``tool_choice``, ``tags``).
            timeout: per-call timeout.

        Returns:
            An :class:`~rxchat.AsyncStream`; the request is sent when iteration starts.

        Raises:
            TypeError: ``input`` has the wrong type. ValueError: unknown keys in a dict input.

        Example:
            >>> async for chunk in client.stream("gpt-4o", "Tell me a story"):  # doctest: +SKIP
            ...     print(chunk.text or "", end="")
        """
        fields, extra = edgee_request(input)
        body, headers, t = _build_body(
            {"model": model, "extra_headers": extra or None, "timeout": timeout, **fields},
            {},
            stream=True,
        )
        return self._requester.stream(body, headers, t)

    @overload
    async def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: Literal[False] = False,
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> SendResponse: ...

    @overload
    async def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: Literal[True],
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> AsyncStream: ...

    async def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: bool = False,
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> SendResponse | AsyncStream:
        """Edgee style: send ``input`` and return the whole answer, or a stream of chunks.

        Args:
            model: the model name.
            input: a ``str``, an :class:`~rxchat.InputObject` or a dict.
            stream: ``True`` returns an :class:`~rxchat.AsyncStream` (started).
            timeout: per-call timeout.

        Returns:
            A :class:`~rxchat.SendResponse` (``.text``, ``.message``, ``.finish_reason``,
            ``.tool_calls``, ``.usage``), or the stream.

        Raises:
            APIStatusError: the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached.
        """
        if stream:
            result = self.stream(model, input, timeout=timeout)
            await result.start()
            return result
        fields, extra = edgee_request(input)
        body, headers, t = _build_body(
            {"model": model, "extra_headers": extra or None, "timeout": timeout, **fields},
            {},
            stream=False,
        )
        return SendResponse.from_completion(await self._requester.completion(body, headers, t))

    # -- lifetime ------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connections (idempotent)."""
        await self._transport.aclose()

    aclose = close

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._transport.closed

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


# -- sync --------------------------------------------------------------------------------


class Completions:
    """``client.chat.completions`` of :class:`Client` (forwards to :class:`AsyncCompletions`)."""

    def __init__(self, completions: AsyncCompletions) -> None:
        self._async = completions

    @property
    def _portal(self) -> Portal:
        # Looked up per call: in a forked child the parent's loop thread does not exist.
        return get_portal()

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatCompletion: ...

    @overload
    def create(
        self, *, model: str, messages: Iterable[Message], stream: Literal[True], **params: Any
    ) -> Stream: ...

    @overload
    def create(
        self, *, model: str, messages: Iterable[Message], stream: bool, **params: Any
    ) -> ChatCompletion | Stream: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool = False,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: Any = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ChatCompletion | Stream:
        """Create a chat completion, streamed (a :class:`~rxchat.Stream`) or whole.

        Same parameters as :meth:`AsyncCompletions.create`.

        Example:
            >>> for chunk in client.chat.completions.create(model="m", messages=msgs, stream=True):  # doctest: +SKIP
            ...     print(chunk.text or "", end="")
        """
        kwargs = {**_named(locals()), **params}
        result: ChatCompletion | AsyncStream = self._portal.call(
            lambda: self._async.create(**kwargs)
        )
        if isinstance(result, AsyncStream):
            return Stream(result, self._portal)
        return result

    def parse(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ParsedChatCompletion[ResponseFormatT]:
        """Create a whole completion and parse it (see :meth:`AsyncCompletions.parse`).

        Example:
            >>> completion = client.chat.completions.parse(  # doctest: +SKIP
            ...     model="m", messages=msgs, response_format=Answer)
        """
        kwargs = {**_named(locals()), **params}
        result: ParsedChatCompletion[ResponseFormatT] = self._portal.call(
            lambda: self._async.parse(**kwargs)
        )
        return result

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ChatCompletionStreamManager[ResponseFormatT]:
        """Stream a completion as typed events: ``with client.chat.completions.stream(...) as stream``.

        Same parameters and events as :meth:`AsyncCompletions.stream`; the event state runs in
        your thread, chunks arrive from rxchat's loop thread in per-read batches.

        Example:
            >>> with client.chat.completions.stream(model="m", messages=msgs) as stream:  # doctest: +SKIP
            ...     for event in stream:
            ...         if event.type == "content.delta":
            ...             print(event.delta, end="")
            ...     completion = stream.get_final_completion()
        """
        manager = self._async.stream(**_named(locals()), **params)
        portal = self._portal

        def open_stream() -> ChatCompletionStream[ResponseFormatT]:
            astream = portal.call(manager.__aenter__)
            return ChatCompletionStream(Stream(astream._raw, portal), astream.state)

        return ChatCompletionStreamManager(open_stream)

    def observe(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        n: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: Any = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> Observable[ChatCompletionChunk]:
        """A cold ``Observable`` of chunks with this client's configuration.

        Subscriptions run on rxchat's background loop: callbacks are called from that thread.
        See :meth:`AsyncCompletions.observe`.
        """
        inner = self._async.observe(**_named(locals()), **params)

        def subscribe(
            observer: abc.ObserverBase[ChatCompletionChunk],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            # Another kind of scheduler (reactivex's .run() passes a NewThreadScheduler) cannot
            # drive a socket: the subscription then runs on rxchat's loop all the same.
            if not isinstance(scheduler, AsyncIOScheduler):
                # The portal of this process, looked up per subscription (fork() makes another).
                scheduler = AsyncIOThreadSafeScheduler(self._portal.loop)
            return inner.subscribe(observer, scheduler=scheduler)

        return Observable(subscribe)

    def run_tools(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        tools: Sequence[Any],
        max_turns: int = DEFAULT_MAX_TURNS,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[str, int] | None = None,
        logprobs: bool | None = None,
        max_completion_tokens: int | None = None,
        max_tokens: int | None = None,
        parallel_tool_calls: bool | None = None,
        presence_penalty: float | None = None,
        reasoning_effort: str | None = None,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        stream_options: Mapping[str, Any] | None = None,
        temperature: float | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        top_logprobs: int | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: TimeoutArg = NOT_GIVEN,
        **params: Any,
    ) -> ToolRunner[ResponseFormatT]:
        """Run a tool loop (see :meth:`AsyncCompletions.run_tools`): ``for event in runner``.

        The loop runs on rxchat's background loop; async tools run there, sync tools in
        worker threads.

        Example:
            >>> with client.chat.completions.run_tools(  # doctest: +SKIP
            ...         model="gpt-4o", messages=msgs, tools=[get_weather]) as runner:
            ...     completion = runner.until_done()
        """
        runner: AsyncToolRunner[ResponseFormatT] = self._async.run_tools(
            **_named(locals()), **params
        )
        return ToolRunner(runner, self._portal)


class Chat:
    """``client.chat`` of :class:`Client`."""

    def __init__(self, completions: AsyncCompletions) -> None:
        self.completions = Completions(completions)


class Client:
    """Synchronous client; same options and surface as :class:`AsyncClient`.

    The requests run on one background event loop thread shared by all sync clients
    (:mod:`rxchat._portal`); the calling thread only waits for results and consumes
    per-read batches of chunks.

    Args: see :class:`AsyncClient`.

    Example:
        >>> with rxchat.Client(base_url="http://127.0.0.1:8000/v1") as client:  # doctest: +SKIP
        ...     for chunk in client.stream("m", "Tell me a story"):
        ...         print(chunk.text or "", end="")
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        verify_ssl: bool = True,
        max_event_bytes: int | None = None,
        default_query: Mapping[str, QueryValue] | None = None,
    ) -> None:
        self._async = AsyncClient(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            verify_ssl=verify_ssl,
            max_event_bytes=max_event_bytes,
            default_query=default_query,
        )
        self.chat = Chat(self._async.chat.completions)

    @property
    def _portal(self) -> Portal:
        # Looked up per call: in a forked child the parent's loop thread does not exist.
        return get_portal()

    @property
    def api_key(self) -> str | None:
        """The API key in use (never shown in reprs or errors)."""
        return self._async.api_key

    @property
    def base_url(self) -> str:
        """The API root (credentials in the URL left out)."""
        return self._async.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeout of each request."""
        return self._async.timeout

    @property
    def max_retries(self) -> int:
        """Retries before the body began."""
        return self._async.max_retries

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout!r}, "
            f"max_retries={self.max_retries})"
        )

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> Client:
        """A new client with some options changed (it has its own connections: close it too)."""
        a = self._async
        return type(self)(
            api_key=api_key or a.api_key,
            base_url=base_url or a._base_url,
            timeout=a.timeout if isinstance(timeout, NotGiven) else timeout,
            max_retries=a.max_retries if max_retries is None else max_retries,
            default_headers={**a.default_headers, **(default_headers or {})},
            verify_ssl=a._verify_ssl,
            max_event_bytes=a._max_event_bytes,
            default_query=a.default_query,
        )

    def stream(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> Stream:
        """Edgee style: iterate the chunks of a completion of ``input`` (request sent on first use).

        See :meth:`AsyncClient.stream`.

        Example:
            >>> for chunk in client.stream("gpt-4o", "Tell me a story"):  # doctest: +SKIP
            ...     if chunk.text:
            ...         print(chunk.text, end="", flush=True)
        """
        return Stream(self._async.stream(model, input, timeout=timeout), self._portal)

    @overload
    def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: Literal[False] = False,
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> SendResponse: ...

    @overload
    def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: Literal[True],
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> Stream: ...

    def send(
        self,
        model: str,
        input: str | InputObject | Mapping[str, Any],
        stream: bool = False,
        *,
        timeout: TimeoutArg = NOT_GIVEN,
    ) -> SendResponse | Stream:
        """Edgee style: the whole answer (:class:`~rxchat.SendResponse`) or, with ``stream=True``, a stream.

        See :meth:`AsyncClient.send`.
        """
        if stream:
            return self.stream(model, input, timeout=timeout)
        a = self._async
        return self._portal.call(lambda: a.send(model, input, False, timeout=timeout))

    def close(self) -> None:
        """Close the connections (idempotent)."""
        if not self._async.closed:
            self._portal.call(self._async.close)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._async.closed

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
