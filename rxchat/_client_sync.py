"""``Client``: the synchronous client, a thin face over :class:`~rxchat.AsyncClient`.

Each call is forwarded to an ``AsyncClient`` that lives on rxchat's background event loop
(:mod:`rxchat._portal`), so no behaviour is written twice. The sync and async methods take the
same parameters (a test compares their signatures); configuration as in
:mod:`rxchat._client_async`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, overload

from reactivex import Observable, abc
from reactivex.scheduler.eventloop import AsyncIOScheduler, AsyncIOThreadSafeScheduler
from typing_extensions import Unpack

from ._client_async import AsyncClient, AsyncCompletions, changed_options
from ._config import DEFAULT_TIMEOUT, QueryValue, Timeout
from ._edgee import InputObject, SendResponse
from ._params import (
    NOT_GIVEN,
    CompletionCreateParams,
    Message,
    NotGiven,
    ResponseFormatT,
    TimeoutArg,
    ToolRunnerParams,
    expand_params,
)
from ._portal import Portal, get_portal
from ._streams import (
    AsyncStream,
    ChatCompletionStream,
    ChatCompletionStreamManager,
    Stream,
)
from ._tools import DEFAULT_MAX_TURNS, AsyncToolRunner, ToolRunner
from .types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

__all__ = ["Chat", "Client", "Completions"]


class Completions:
    """``client.chat.completions`` of :class:`Client` (forwards to :class:`AsyncCompletions`).

    The parameters are those of :class:`AsyncCompletions`: the OpenAI API's request fields
    (:class:`~rxchat.CompletionCreateParams`), ``extra_headers``, ``extra_query``,
    ``extra_body`` and ``timeout``; any other name is a :class:`TypeError`.
    """

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
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: Literal[True],
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> Stream: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool,
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | Stream: ...

    @expand_params(CompletionCreateParams)
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        stream: bool = False,
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ChatCompletion | Stream:
        """Create a chat completion, streamed (a :class:`~rxchat.Stream`) or whole.

        Same parameters as :meth:`AsyncCompletions.create`.

        Example:
            >>> for chunk in client.chat.completions.create(model="m", messages=msgs, stream=True):  # doctest: +SKIP
            ...     print(chunk.text or "", end="")
        """
        a = self._async
        result: ChatCompletion | AsyncStream = self._portal.call(
            lambda: a.create(
                model=model, messages=messages, stream=stream, response_format=response_format,
                **params,
            )
        )  # fmt: skip
        if isinstance(result, AsyncStream):
            return Stream(result, self._portal)
        return result

    @expand_params(CompletionCreateParams)
    def parse(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        **params: Unpack[CompletionCreateParams],
    ) -> ParsedChatCompletion[ResponseFormatT]:
        """Create a whole completion and parse it (see :meth:`AsyncCompletions.parse`).

        Example:
            >>> completion = client.chat.completions.parse(  # doctest: +SKIP
            ...     model="m", messages=msgs, response_format=Answer)
        """
        a = self._async
        result: ParsedChatCompletion[ResponseFormatT] = self._portal.call(
            lambda: a.parse(
                model=model, messages=messages, response_format=response_format, **params
            )
        )
        return result

    @expand_params(CompletionCreateParams)
    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: type[ResponseFormatT] | Mapping[str, Any] | None = None,
        **params: Unpack[CompletionCreateParams],
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
        manager = self._async.stream(
            model=model, messages=messages, response_format=response_format, **params
        )
        portal = self._portal

        def open_stream() -> ChatCompletionStream[ResponseFormatT]:
            return ChatCompletionStream.from_async(portal.call(manager.__aenter__), portal)

        return ChatCompletionStreamManager(open_stream)

    @expand_params(CompletionCreateParams)
    def observe(
        self,
        *,
        model: str,
        messages: Iterable[Message],
        response_format: Any = None,
        **params: Unpack[CompletionCreateParams],
    ) -> Observable[ChatCompletionChunk]:
        """A cold ``Observable`` of chunks with this client's configuration.

        Subscriptions run on rxchat's background loop: callbacks are called from that thread.
        See :meth:`AsyncCompletions.observe`.
        """
        inner = self._async.observe(
            model=model, messages=messages, response_format=response_format, **params
        )

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
            model=model, messages=messages, tools=tools, max_turns=max_turns,
            response_format=response_format, **params,
        )  # fmt: skip
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
        options = changed_options(
            self._async, api_key, base_url, timeout, max_retries, default_headers
        )
        return type(self)(**options)

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
