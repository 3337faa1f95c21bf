"""``AsyncClient``: the OpenAI / Dedalus / Edgee-style asynchronous client; it holds the logic.

The synchronous :class:`~rxchat.Client` (:mod:`rxchat._client_sync`) forwards each call to an
``AsyncClient`` on rxchat's background event loop, so no behaviour is written twice. The request
parameters are written once, in :mod:`rxchat._params`.

Configuration (first match wins):

* API key: ``api_key=``, ``$RXCHAT_API_KEY``, ``$OPENAI_API_KEY``. A missing key is allowed — local
  servers (``rxchat serve``, llama.cpp, vLLM, Ollama) need none; no ``Authorization`` header is
  sent and a server that wants a key answers 401 (:class:`~rxchat.AuthenticationError`).
* Base URL (the API root including ``/v1``): ``base_url=``, ``$RXCHAT_BASE_URL``,
  ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1`` as in the OpenAI SDK.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, overload

from reactivex import Observable
from typing_extensions import Unpack

from ._config import DEFAULT_TIMEOUT, QueryValue, Timeout, resolve_api_key, resolve_base_url
from ._edgee import InputObject, SendResponse, edgee_request
from ._params import (
    CREATE_PARAMS,
    NOT_GIVEN,
    TOOL_RUNNER_PARAMS,
    CompletionCreateParams,
    Message,
    NotGiven,
    Request,
    ResponseFormatT,
    TimeoutArg,
    ToolRunnerParams,
    build_request,
    check_params,
    expand_params,
    messages_list,
)
from ._sources import observable_from_batches
from ._state import ChatCompletionStreamState
from ._streams import AsyncChatCompletionStream, AsyncChatCompletionStreamManager, AsyncStream
from ._tools import (
    DEFAULT_MAX_TURNS,
    AsyncToolRunner,
    as_function_tools,
    request_message,
    run_tools,
)
from ._transport import ChunkBatchStream, HTTPTransport
from .errors import APIResponseValidationError
from .types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

__all__ = ["AsyncChat", "AsyncClient", "AsyncCompletions"]

_PATH = "/chat/completions"

# What each method accepts, as its TypeError lists it: the named parameters, then **params.
_CREATE = ("model", "messages", "stream", "response_format", *CREATE_PARAMS)
_METHOD = ("model", "messages", "response_format", *CREATE_PARAMS)
_RUN_TOOLS = ("model", "messages", "tools", "max_turns", "response_format", *TOOL_RUNNER_PARAMS)


class _Requester:
    """Sends the chat-completion requests of one client.

    Resources, streams and Observables hold this object, not the client: a temporary client
    (``client.with_options(...).chat.completions.create(...)``) stays usable while anything made
    from it lives, and when the last of them goes, the finalizer closes the connections.
    """

    __slots__ = ("__weakref__", "finalizer", "transport")

    def __init__(self, transport: HTTPTransport) -> None:
        self.transport = transport
        self.finalizer = weakref.finalize(self, transport.close_nowait)

    def stream(self, request: Request) -> AsyncStream:
        """A (not yet started) stream of ``request``."""
        return AsyncStream(lambda: self._open(request))

    def observable(self, request: Request) -> Observable[ChatCompletionChunk]:
        """A cold Observable of ``request``'s chunks."""
        return observable_from_batches(lambda: self._open(request))

    def _open(self, request: Request) -> ChunkBatchStream:
        return self.transport.stream(
            _PATH, request.body, headers=request.headers, timeout=request.timeout,
            query=request.query,
        )  # fmt: skip

    async def completion(self, request: Request) -> ChatCompletion:
        """A whole (non-streamed) completion of ``request``."""
        data = await self.transport.post_json(
            _PATH, request.body, headers=request.headers, timeout=request.timeout,
            query=request.query,
        )  # fmt: skip
        try:
            return ChatCompletion.model_validate(data)
        except Exception as err:  # pydantic.ValidationError: the server broke the protocol
            raise APIResponseValidationError(
                f"the response is not a chat completion: {err}", body=data
            ) from None


class AsyncCompletions:
    """``client.chat.completions`` of :class:`AsyncClient`.

    Every method takes the OpenAI API's request fields by their names (listed in
    :class:`~rxchat.CompletionCreateParams`; ``None`` leaves one out) and the per-call options
    ``extra_headers``, ``extra_query``, ``extra_body`` and ``timeout``. Any other name is a
    :class:`TypeError`: send a provider's own fields with ``extra_body={...}``.
    """

    def __init__(self, requester: _Requester) -> None:
        self._requester = requester

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[False] = False,
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[True],
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> AsyncStream: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool,
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | AsyncStream: ...

    @expand_params(CompletionCreateParams)
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool = False,
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | AsyncStream:
        """Create a chat completion, streamed or whole.

        Parameters are those of the OpenAI API (``None`` leaves one out); fields the API does
        not define go in ``extra_body``. A pydantic model as ``response_format`` is sent as a
        strict ``json_schema`` (use :meth:`stream` to also get it parsed).

        Args:
            model: the model name.
            messages: the conversation (dicts, or message models such as a previous answer).
            stream: ``True`` returns an :class:`~rxchat.AsyncStream` of chunks.
            response_format: a pydantic model class (or another type), or a dict.
            **params: the other fields of :class:`~rxchat.CompletionCreateParams`:
                ``temperature=``, ``tools=``, ``metadata=``, ...; ``extra_headers=`` (headers of
                this request only), ``extra_query=`` (query parameters of this request only),
                ``extra_body=`` (merged into the JSON body last), ``timeout=`` (seconds, a
                :class:`~rxchat.Timeout`, or ``None`` for none; left out, the client's).

        Returns:
            An :class:`~rxchat.AsyncStream` (already started: status errors raise here) when
            ``stream=True``, else a :class:`~rxchat.ChatCompletion`.

        Raises:
            APIStatusError: the server answered 4xx/5xx (a subclass per status).
            APIConnectionError: the server could not be reached; ``APITimeoutError`` on timeout.
            TypeError: an unknown parameter name (the valid ones are listed), or a malformed
                argument.

        Example:
            >>> stream = await client.chat.completions.create(  # doctest: +SKIP
            ...     model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True)
            >>> async for chunk in stream:  # doctest: +SKIP
            ...     print(chunk.text or "", end="")
        """
        request = build_request(
            "create()", _CREATE, model=model, messages=messages, params=params,
            response_format=response_format, stream=stream,
        )  # fmt: skip
        if stream:
            result = self._requester.stream(request)
            await result.start()
            return result
        return await self._requester.completion(request)

    @expand_params(CompletionCreateParams)
    async def parse(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ParsedChatCompletion[ResponseFormatT]:
        """Create a whole completion and parse it, as the SDKs' ``parse()``.

        ``message.parsed`` holds the ``response_format`` model instance and each tool call's
        ``function.parsed_arguments`` its parsed arguments; the parsing is that of
        :meth:`stream` (the same state object), so both give the same result.

        Args:
            model: the model name.
            messages: the conversation.
            response_format: a pydantic model class (sent as a strict ``json_schema``), or a dict.
            **params: as :meth:`create`; ``tools=`` (:func:`~rxchat.pydantic_function_tool`
                dicts are parsed).

        Returns:
            A :class:`~rxchat.ParsedChatCompletion`.

        Raises:
            LengthFinishReasonError: the answer hit the token limit.
            ContentFilterFinishReasonError: the content filter stopped the answer.
            StructuredOutputError: the content or arguments do not validate.
            APIStatusError: the server answered 4xx/5xx.
            APIConnectionError: the server could not be reached.
            TypeError: an unknown parameter name, or a malformed argument.

        Example:
            >>> completion = await client.chat.completions.parse(  # doctest: +SKIP
            ...     model="m", messages=msgs, response_format=Answer)
            >>> completion.choices[0].message.parsed  # doctest: +SKIP
            Answer(...)
        """
        state, request = _parsing_request(
            "parse()", model, messages, response_format, params, stream=False
        )
        completion = await self._requester.completion(request)
        state.handle_completion(completion)
        return state.get_final_completion()

    @expand_params(CompletionCreateParams)
    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        **params: Unpack[CompletionCreateParams],
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
            **params: as :meth:`create`; ``tools=`` (dicts; strict ones are parsed).

        Returns:
            A manager; entering it sends the request and yields an
            :class:`~rxchat.AsyncChatCompletionStream`. Leaving it closes the connection.

        Raises:
            TypeError: (at once) an unknown parameter name, or a malformed argument.
            APIStatusError: on entering, when the server answered 4xx/5xx.
            APIConnectionError: on entering or while reading.

        Example:
            >>> async with client.chat.completions.stream(model="m", messages=msgs) as stream:  # doctest: +SKIP
            ...     async for event in stream:
            ...         if event.type == "content.delta":
            ...             print(event.delta, end="")
            ...     completion = await stream.get_final_completion()
        """
        state, request = _parsing_request(
            "stream()", model, messages, response_format, params, stream=True
        )
        requester = self._requester

        async def open_stream() -> AsyncChatCompletionStream[ResponseFormatT]:
            raw = requester.stream(request)
            await raw.start()
            return AsyncChatCompletionStream(raw, state)

        return AsyncChatCompletionStreamManager(open_stream)

    @expand_params(CompletionCreateParams)
    def observe(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> Observable[ChatCompletionChunk]:
        """The reactive door: a cold ``Observable`` of chunks with this client's configuration.

        Each subscription sends one request (base URL, key, timeouts and retries of the client);
        disposing the subscription closes the connection. Compose it with ``rxchat.operators``.
        Parameters are those of :meth:`create`.

        Returns:
            ``Observable[ChatCompletionChunk]``.

        Raises:
            TypeError: (at once) an unknown parameter name, or a malformed argument.

        Example:
            >>> from rxchat import operators as ops
            >>> texts = client.chat.completions.observe(model="m", messages=msgs).pipe(  # doctest: +SKIP
            ...     ops.accumulate(), ops.text())
        """
        request = build_request(
            "observe()", _METHOD, model=model, messages=messages, params=params,
            response_format=response_format, stream=True,
        )  # fmt: skip
        return self._requester.observable(request)

    @expand_params(ToolRunnerParams)
    def run_tools(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        tools: Sequence[Any],
        max_turns: int = DEFAULT_MAX_TURNS,
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        **params: Unpack[ToolRunnerParams],
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
            **params: the fields of :class:`~rxchat.ToolRunnerParams` (those of :meth:`create`
                but ``n`` and ``tools``), sent with every request.

        Returns:
            An :class:`~rxchat.AsyncToolRunner`: ``async for event in runner``, or
            ``await runner.until_done()`` for the final completion. The first request is sent
            when iteration starts.

        Raises:
            TypeError: bad tools, an unknown parameter name, or a malformed argument (at once).

        Example:
            >>> runner = client.chat.completions.run_tools(  # doctest: +SKIP
            ...     model="gpt-4o", messages=msgs, tools=[get_weather])
            >>> completion = await runner.until_done()  # doctest: +SKIP
        """
        check_params("run_tools()", params, _RUN_TOOLS)
        function_tools = as_function_tools(tools)
        start = messages_list(messages)
        observe = self.observe

        def request(
            *, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
        ) -> Observable[ChatCompletionChunk]:
            return observe(
                model=model, messages=messages, tools=tools, response_format=response_format,
                **params,
            )  # fmt: skip

        source = run_tools(
            request,
            messages=start,
            tools=function_tools,
            max_turns=max_turns,
            response_format=response_format,
        )
        return AsyncToolRunner(source, [request_message(m) for m in start])


def _parsing_request(
    method: str,
    model: str,
    messages: Iterable[Message],
    response_format: type[ResponseFormatT] | Mapping[str, Any] | None,
    params: CompletionCreateParams,
    *,
    stream: bool,
) -> tuple[ChatCompletionStreamState[ResponseFormatT], Request]:
    """The state that parses the answer, and the request (tools given as models converted)."""
    check_params(method, params, _METHOD)
    # The state checks response_format and tools now, and converts tools given as models.
    tools = params.get("tools")
    state: ChatCompletionStreamState[ResponseFormatT] = ChatCompletionStreamState(
        response_format=response_format, tools=tools
    )
    fields: dict[str, Any] = dict(params)
    if tools is not None:
        fields["tools"] = state.tools
    request = build_request(
        method, _METHOD, model=model, messages=messages, params=fields,
        response_format=response_format, stream=stream,
    )  # fmt: skip
    return state, request


class AsyncChat:
    """``client.chat`` of :class:`AsyncClient`."""

    def __init__(self, requester: _Requester) -> None:
        self.completions = AsyncCompletions(requester)


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
            **changed_options(self, api_key, base_url, timeout, max_retries, default_headers)
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
        return self._requester.stream(_edgee(model, input, timeout, stream=True))

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
        request = _edgee(model, input, timeout, stream=False)
        return SendResponse.from_completion(await self._requester.completion(request))

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


def changed_options(
    client: AsyncClient,
    api_key: str | None,
    base_url: str | None,
    timeout: float | Timeout | NotGiven | None,
    max_retries: int | None,
    default_headers: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The constructor arguments of ``with_options`` (of both clients): ``client``'s, changed."""
    return {
        "api_key": api_key or client.api_key,
        "base_url": base_url or client._base_url,
        "timeout": client.timeout if isinstance(timeout, NotGiven) else timeout,
        "max_retries": client.max_retries if max_retries is None else max_retries,
        "default_headers": {**client.default_headers, **(default_headers or {})},
        "verify_ssl": client._verify_ssl,
        "max_event_bytes": client._max_event_bytes,
        "default_query": client.default_query,
    }


def _edgee(
    model: str, input: str | InputObject | Mapping[str, Any], timeout: TimeoutArg, *, stream: bool
) -> Request:
    """The request of an Edgee-style input (its ``tags`` are a body field of the Edgee gateway)."""
    fields, headers = edgee_request(input)
    messages = fields.pop("messages")
    tags = fields.pop("tags", None)
    params: dict[str, Any] = {**fields, "extra_headers": headers or None, "timeout": timeout}
    if tags is not None:
        params["extra_body"] = {"tags": tags}
    return build_request(
        "stream()" if stream else "send()", _METHOD, model=model, messages=messages,
        params=params, stream=stream,
    )  # fmt: skip
