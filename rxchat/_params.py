"""The parameters of a chat-completions request, written once, and the one body builder.

The ``TypedDict`` classes below describe the keyword arguments of every request method
(``client.chat.completions.create / parse / stream / observe / run_tools``, sync and async) and of
:func:`rxchat.chat_completion_stream`: the body fields of the OpenAI API (the names of the openai
SDK's ``completions.create``, a test compares them) and the per-call options ``extra_headers``,
``extra_query``, ``extra_body`` and ``timeout``. The methods take them as
``**params: Unpack[CompletionCreateParams]``, so a misspelt name (``temprature=0.2``) is an error
under mypy and a :class:`TypeError` naming the valid ones at run time, as in the openai SDK;
fields a provider adds go through ``extra_body=``.

:func:`build_request` turns the arguments into the JSON body, headers, query and timeout of one
request; the clients and the sources both use it, so they check arguments with the same words.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ForwardRef, Literal

from pydantic import BaseModel
from typing_extensions import TypedDict, TypeVar

from ._config import QueryValue, Timeout, query_items
from ._structured import type_to_response_format_param

__all__ = [
    "NOT_GIVEN",
    "ChatCompletionParams",
    "CompletionCreateParams",
    "Message",
    "NotGiven",
    "Request",
    "RequestOptions",
    "SourceParams",
    "TimeoutArg",
    "ToolRunnerParams",
    "build_request",
    "check_params",
    "expand_params",
    "param_names",
]

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


class _TurnParams(TypedDict, total=False):
    """Body fields of every request, a tool loop's turns included (``None`` leaves one out)."""

    audio: Mapping[str, Any] | None
    frequency_penalty: float | None
    function_call: str | Mapping[str, Any] | None
    functions: Iterable[Mapping[str, Any]] | None
    logit_bias: Mapping[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, str] | None
    modalities: Sequence[str] | None
    moderation: Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    prediction: Mapping[str, Any] | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    prompt_cache_options: Mapping[str, Any] | None
    prompt_cache_retention: str | None
    reasoning_effort: str | None
    safety_identifier: str | None
    seed: int | None
    service_tier: str | None
    stop: str | Sequence[str] | None
    store: bool | None
    stream_options: Mapping[str, Any] | None
    temperature: float | None
    tool_choice: str | Mapping[str, Any] | None
    top_logprobs: int | None
    top_p: float | None
    user: str | None
    verbosity: str | None
    web_search_options: Mapping[str, Any] | None


class ChatCompletionParams(_TurnParams, total=False):
    """The body fields of a chat-completions request besides ``model``, ``messages``,
    ``stream`` and ``response_format`` (which the methods take by name)."""

    n: int | None
    tools: Iterable[Mapping[str, Any]] | None


class RequestOptions(TypedDict, total=False):
    """Per-call options of the client methods, as in the openai SDK."""

    extra_headers: Mapping[str, str] | None
    """Headers of this request only (after the client's)."""
    extra_query: Mapping[str, QueryValue] | None
    """Query parameters of this request only (after the client's ``default_query``)."""
    extra_body: Mapping[str, Any] | None
    """Merged into the JSON body last: the door for provider-specific fields."""
    timeout: float | Timeout | NotGiven | None
    """Seconds, a :class:`~rxchat.Timeout`, or ``None`` for none; left out, the client's."""


class CompletionCreateParams(ChatCompletionParams, RequestOptions, total=False):
    """``**params`` of ``create`` / ``parse`` / ``stream`` / ``observe``."""


class ToolRunnerParams(_TurnParams, RequestOptions, total=False):
    """``**params`` of ``run_tools`` (its tools and one choice per turn are its own business)."""


class SourceParams(ChatCompletionParams, total=False):
    """``**params`` of :func:`rxchat.chat_completion_stream` (``headers=`` and ``timeout=`` are
    its own arguments)."""

    extra_body: Mapping[str, Any] | None


_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


def param_names(params_type: type) -> tuple[str, ...]:
    """The keys of a parameters ``TypedDict``: body fields sorted, then the per-call options."""
    keys: frozenset[str] = params_type.__required_keys__ | params_type.__optional_keys__  # type: ignore[attr-defined]
    return (*sorted(k for k in keys if k not in _OPTIONS), *(k for k in _OPTIONS if k in keys))


def check_params(method: str, params: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise :class:`TypeError` for any name of ``params`` not in ``valid`` (closest match named).

    Args:
        method: shown in the message (``"create()"``).
        params: the keyword arguments received.
        valid: the names allowed.

    Raises:
        TypeError: an unknown name, with a suggestion, the valid names and ``extra_body``.
    """
    allowed = tuple(valid)
    unknown = [name for name in params if name not in allowed]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.7)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    plural = "s" if len(unknown) > 1 else ""
    extra = (
        "; send fields the OpenAI API does not define (provider extensions) with extra_body={...}"
        if "extra_body" in allowed
        else ""
    )
    raise TypeError(
        f"{method} got an unexpected keyword argument{plural} {', '.join(hints)}; "
        f"valid: {', '.join(allowed)}{extra}"
    )


F = TypeVar("F", bound=Callable[..., Any])


def expand_params(params_type: type) -> Callable[[F], F]:
    """Show ``**params: Unpack[X]`` as the keyword-only parameters of ``X`` in ``inspect.signature``.

    Type checkers read the ``Unpack`` annotation; ``help()``, IDEs that introspect and the
    signature tests read the expanded signature, which names exactly what the method accepts.
    """
    annotations = params_type.__annotations__
    names = param_names(params_type)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        kept = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in kept}
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=NOT_GIVEN if name == "timeout" else None,
                annotation=_annotation(annotations[name]),
            )
            for name in names
            if name not in taken
        ]
        fn.__signature__ = sig.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        return fn

    return decorate


def _annotation(value: Any) -> Any:
    return value.__forward_arg__ if isinstance(value, ForwardRef) else value


CREATE_PARAMS = param_names(CompletionCreateParams)
TOOL_RUNNER_PARAMS = param_names(ToolRunnerParams)
SOURCE_PARAMS = param_names(SourceParams)


# -- the body builder ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One chat-completions request: its JSON body and per-call options."""

    body: dict[str, Any]
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None
    timeout: Timeout | None = None  # None: the client's


def messages_list(messages: object) -> list[Message]:
    """``messages`` as a list, checked: message dicts (or message models)."""
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


def _response_format(value: object) -> Any:
    if value is None or isinstance(value, Mapping):
        return value
    if not isinstance(value, type) and getattr(value, "__origin__", None) is None:
        raise TypeError(
            "response_format must be a pydantic model class (or another type) or a dict such as "
            f"{{'type': 'json_object'}}, got {value!r}"
        )
    return type_to_response_format_param(value)


def _mapping(name: str, value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
    return value


def build_request(
    method: str,
    valid: Iterable[str],
    *,
    model: object,
    messages: object,
    params: Mapping[str, Any],
    response_format: object = None,
    stream: bool,
) -> Request:
    """Check the arguments of one request method and build its :class:`Request`.

    Args:
        method: the method's name for messages (``"create()"``).
        valid: the names ``params`` may hold (:func:`param_names` of the method's ``TypedDict``).
        model: the model name.
        messages: the conversation.
        params: the other keyword arguments (body fields, then ``extra_*`` and ``timeout``).
        response_format: a pydantic model class or another type (sent as a strict
            ``json_schema``), a dict (sent as given) or ``None``.
        stream: add ``"stream": true``.

    Returns:
        The body (``None`` values left out, ``extra_body`` merged last), headers, query and
        timeout (``None`` when not given).

    Raises:
        TypeError: an unknown parameter name, or an argument of the wrong type.
        ValueError: a timeout that is not a finite number > 0.
    """
    check_params(method, params, valid)
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a non-empty str, got {model!r}")
    body: dict[str, Any] = {"model": model, "messages": messages_list(messages)}
    rest = dict(params)
    extra_headers = _mapping("extra_headers", rest.pop("extra_headers", None))
    extra_query = _mapping("extra_query", rest.pop("extra_query", None))
    extra_body = _mapping("extra_body", rest.pop("extra_body", None))
    timeout = rest.pop("timeout", NOT_GIVEN)
    if response_format is not None:
        body["response_format"] = _response_format(response_format)
    tools = rest.get("tools")
    if tools is not None:
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Iterable):
            raise TypeError(f"tools must be a list of tool dicts, got {type(tools).__name__}")
        rest["tools"] = list(tools)
    body.update((k, v) for k, v in rest.items() if v is not None)
    if extra_body:
        body.update(extra_body)
    if stream:
        body["stream"] = True
    return Request(
        body,
        dict(extra_headers) if extra_headers else None,
        query_items(extra_query, "extra_query") if extra_query else None,
        None if isinstance(timeout, NotGiven) else Timeout.coerce(timeout),
    )
