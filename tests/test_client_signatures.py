"""The sync and async clients accept the same parameters: compared automatically, not by eye."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import openai
import pytest

import rxchat
from rxchat import AsyncClient, AsyncCompletions, Client, Completions

PAIRS: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
    ("chat.completions.create", Completions.create, AsyncCompletions.create),
    ("chat.completions.stream", Completions.stream, AsyncCompletions.stream),
    ("chat.completions.parse", Completions.parse, AsyncCompletions.parse),
    ("chat.completions.observe", Completions.observe, AsyncCompletions.observe),
    ("chat.completions.run_tools", Completions.run_tools, AsyncCompletions.run_tools),
    ("stream", Client.stream, AsyncClient.stream),
    ("send", Client.send, AsyncClient.send),
    ("__init__", Client.__init__, AsyncClient.__init__),
    ("with_options", Client.with_options, AsyncClient.with_options),
]


def _params(fn: Callable[..., Any]) -> list[tuple[str, Any, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default, p.annotation) for p in sig.parameters.values()]


@pytest.mark.parametrize(("name", "sync", "async_"), PAIRS, ids=[p[0] for p in PAIRS])
def test_sync_and_async_take_the_same_parameters(
    name: str, sync: Callable[..., Any], async_: Callable[..., Any]
) -> None:
    assert _params(sync) == _params(async_), name


@pytest.mark.parametrize(("name", "sync", "async_"), PAIRS, ids=[p[0] for p in PAIRS])
def test_overloads_match(name: str, sync: Callable[..., Any], async_: Callable[..., Any]) -> None:
    sync_overloads = [_params(f) for f in typing.get_overloads(sync)]
    async_overloads = [_params(f) for f in typing.get_overloads(async_)]
    assert sync_overloads == async_overloads, name


def test_async_methods_are_coroutines_where_they_do_io() -> None:
    assert inspect.iscoroutinefunction(AsyncCompletions.create)
    assert inspect.iscoroutinefunction(AsyncClient.send)
    assert inspect.iscoroutinefunction(AsyncCompletions.parse)
    # Managers, lazy streams and Observables are returned without awaiting.
    for fn in (AsyncCompletions.stream, AsyncCompletions.observe, AsyncClient.stream):
        assert not inspect.iscoroutinefunction(fn)
    for fn in (Completions.create, Completions.stream, Client.stream, Client.send):
        assert not inspect.iscoroutinefunction(fn)


def test_create_stream_and_observe_share_the_request_parameters() -> None:
    create = [p for p in _params(AsyncCompletions.create) if p[0] not in ("self", "stream")]
    stream = [p for p in _params(AsyncCompletions.stream) if p[0] != "self"]
    observe = [p for p in _params(AsyncCompletions.observe) if p[0] != "self"]
    parse = [p for p in _params(AsyncCompletions.parse) if p[0] != "self"]
    names = [p[0] for p in create]
    assert names == [p[0] for p in stream] == [p[0] for p in observe] == [p[0] for p in parse]


def test_every_openai_create_parameter_is_accepted() -> None:
    # Code written for the OpenAI SDK passes these by keyword: every name of the SDK's
    # completions.create is a keyword-only parameter here, and nothing else is accepted (a
    # misspelt name is a TypeError, as in the SDK; provider fields go through extra_body=).
    ours = inspect.signature(Completions.create).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours.values())
    theirs = inspect.signature(openai.resources.chat.completions.Completions.create).parameters
    for name in theirs:
        if name != "self":
            assert name in ours, name
            assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert set(ours) == set(theirs)
    common = {"model", "messages", "stream", "temperature", "tools", "tool_choice",
              "response_format", "max_tokens", "max_completion_tokens", "n", "seed", "stop",
              "stream_options", "logprobs", "top_logprobs", "timeout", "extra_headers",
              "extra_body", "extra_query"}  # fmt: skip
    assert common <= set(ours)
    assert common <= set(theirs)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (AsyncCompletions.create, openai.resources.chat.completions.AsyncCompletions.create),
        (AsyncCompletions.stream, openai.resources.chat.completions.AsyncCompletions.stream),
        (AsyncCompletions.parse, openai.resources.chat.completions.AsyncCompletions.parse),
        (Completions.stream, openai.resources.chat.completions.Completions.stream),
        (Completions.parse, openai.resources.chat.completions.Completions.parse),
    ],
    ids=["async create", "async stream", "async parse", "stream", "parse"],
)
def test_the_methods_take_the_openai_sdk_parameters(
    ours: Callable[..., Any], theirs: Callable[..., Any]
) -> None:
    assert set(inspect.signature(ours).parameters) == set(inspect.signature(theirs).parameters)


def test_run_tools_takes_the_turn_parameters() -> None:
    # One choice per turn (no n), and the tools are the runner's own argument.
    names = set(inspect.signature(Completions.run_tools).parameters)
    create = set(inspect.signature(Completions.create).parameters)
    assert names == (create - {"n", "stream"}) | {"max_turns"}


def test_the_sources_take_the_body_parameters() -> None:
    ours = set(inspect.signature(rxchat.chat_completion_stream).parameters)
    body = set(inspect.signature(Completions.create).parameters) - {
        "self", "extra_headers", "extra_query", "timeout",
    }  # fmt: skip
    assert body <= ours
    assert {"base_url", "api_key", "timeout", "headers", "default_query"} <= ours
