"""Request parameters written once: every method accepts exactly the OpenAI API's names.

A misspelt name is a ``TypeError`` naming the valid ones (and the closest), raised before anything
is sent, on every surface; provider fields go through ``extra_body=``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

import rxchat
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "hi"}]


class Answer(BaseModel):
    text: str


def _misspelt(call: Callable[..., Any], name: str) -> TypeError:
    with pytest.raises(TypeError) as info:
        call(temprature=0.2)
    message = str(info.value)
    assert message.startswith(f"{name} got an unexpected keyword argument 'temprature'")
    assert "did you mean 'temperature'?" in message
    assert "valid: model, messages" in message and "temperature" in message
    assert "extra_body" in message
    return info.value


async def test_a_misspelt_parameter_is_a_type_error_on_every_async_method(
    mock_server: MockServer,
) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url) as client:
        completions = client.chat.completions

        async def create(**kwargs: Any) -> None:
            await completions.create(model="m", messages=USER, **kwargs)

        async def create_stream(**kwargs: Any) -> None:
            await completions.create(model="m", messages=USER, stream=True, **kwargs)

        async def parse(**kwargs: Any) -> None:
            await completions.parse(model="m", messages=USER, response_format=Answer, **kwargs)

        calls: list[tuple[Callable[..., Awaitable[None]], str]] = [
            (create, "create()"), (create_stream, "create()"), (parse, "parse()"),
        ]  # fmt: skip
        for call, name in calls:
            with pytest.raises(TypeError) as info:
                await call(temprature=0.2)
            assert str(info.value).startswith(f"{name} got an unexpected keyword argument")
            assert "'temprature' (did you mean 'temperature'?)" in str(info.value)
        _misspelt(lambda **kw: completions.stream(model="m", messages=USER, **kw), "stream()")
        _misspelt(lambda **kw: completions.observe(model="m", messages=USER, **kw), "observe()")
        _misspelt(
            lambda **kw: completions.run_tools(model="m", messages=USER, tools=[_tool], **kw),
            "run_tools()",
        )
    assert mock_server.requests == []


def _tool(city: str) -> str:
    """A tool."""
    return city


def test_a_misspelt_parameter_is_a_type_error_on_the_sync_client() -> None:
    with rxchat.Client(base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        completions = client.chat.completions
        _misspelt(lambda **kw: completions.create(model="m", messages=USER, **kw), "create()")
        _misspelt(
            lambda **kw: completions.create(model="m", messages=USER, stream=True, **kw),
            "create()",
        )
        _misspelt(lambda **kw: completions.parse(model="m", messages=USER, **kw), "parse()")
        _misspelt(lambda **kw: completions.stream(model="m", messages=USER, **kw), "stream()")
        _misspelt(lambda **kw: completions.observe(model="m", messages=USER, **kw), "observe()")
        _misspelt(
            lambda **kw: completions.run_tools(model="m", messages=USER, tools=[_tool], **kw),
            "run_tools()",
        )


def test_a_misspelt_parameter_is_a_type_error_on_the_source() -> None:
    _misspelt(
        lambda **kw: rxchat.chat_completion_stream(
            model="m", messages=USER, base_url="http://127.0.0.1:9/v1", **kw
        ),
        "chat_completion_stream()",
    )
    with pytest.raises(TypeError, match="argument 'custom'; valid: model, messages, base_url"):
        rxchat.chat_completion_stream(model="m", messages=USER, custom=1)  # type: ignore[call-arg]


def test_names_far_from_any_valid_one_get_no_suggestion_and_are_all_named() -> None:
    client = rxchat.Client(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError) as info:
        client.chat.completions.observe(model="m", messages=USER, zzz=1, qqq=2)  # type: ignore[call-arg]
    client.close()
    message = str(info.value)
    assert "unexpected keyword arguments 'zzz', 'qqq';" in message
    assert "did you mean" not in message


def test_run_tools_takes_no_n() -> None:
    client = rxchat.Client(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="'n'"):
        client.chat.completions.run_tools(model="m", messages=USER, tools=[_tool], n=2)  # type: ignore[call-arg]
    client.close()


async def test_provider_fields_go_through_extra_body(mock_server: MockServer) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url) as client:
        await client.chat.completions.create(
            model="m", messages=USER, top_p=0.5, extra_body={"top_k": 40, "min_p": 0.1}
        )
        await client.chat.completions.observe(model="m", messages=USER, extra_body={"top_k": 41})
    await rxchat.chat_completion_stream(
        model="m", messages=USER, base_url=mock_server.url, extra_body={"top_k": 42}
    )
    bodies = [r.body for r in mock_server.requests]
    assert bodies[0]["top_k"] == 40 and bodies[0]["min_p"] == 0.1 and bodies[0]["top_p"] == 0.5
    assert bodies[1]["top_k"] == 41 and bodies[1]["stream"] is True
    assert bodies[2]["top_k"] == 42 and bodies[2]["stream"] is True


async def test_every_openai_body_field_reaches_the_server(mock_server: MockServer) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url) as client:
        await client.chat.completions.create(
            model="m",
            messages=USER,
            store=True,
            service_tier="auto",
            verbosity="low",
            prompt_cache_key="k",
            safety_identifier="s",
            modalities=["text"],
        )
    body = mock_server.requests[-1].body
    assert body["store"] is True and body["service_tier"] == "auto"
    assert body["verbosity"] == "low" and body["prompt_cache_key"] == "k"
    assert body["safety_identifier"] == "s" and body["modalities"] == ["text"]


async def test_the_source_builds_the_body_as_the_client_does(mock_server: MockServer) -> None:
    # One builder: a pydantic response_format is sent as a strict json_schema by both.
    await rxchat.chat_completion_stream(
        model="m", messages=USER, base_url=mock_server.url, response_format=Answer,
        temperature=0.1,
    )  # fmt: skip
    async with rxchat.AsyncClient(base_url=mock_server.url) as client:
        await client.chat.completions.observe(
            model="m", messages=USER, response_format=Answer, temperature=0.1
        )
    source, client_body = (r.body for r in mock_server.requests)
    assert source == client_body
    assert source["response_format"]["type"] == "json_schema"
    assert source["response_format"]["json_schema"]["strict"] is True


def test_messages_from_any_iterable_and_bad_ones_named() -> None:
    observable = rxchat.chat_completion_stream(
        model="m", messages=iter(USER), base_url="http://127.0.0.1:9/v1"
    )
    assert observable is not None
    with pytest.raises(TypeError, match=r"messages\[0\] must be a dict"):
        rxchat.chat_completion_stream(model="m", messages=["hi"], base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="extra_body must be a dict"):
        rxchat.chat_completion_stream(
            model="m",
            messages=USER,
            base_url="http://127.0.0.1:9/v1",
            extra_body=[1],  # type: ignore[typeddict-item]
        )


def test_the_parameter_types_are_public() -> None:
    for name in ("CompletionCreateParams", "ChatCompletionParams", "ToolRunnerParams",
                 "SourceParams", "RequestOptions", "AsyncCompletions", "Completions",
                 "AsyncChat", "Chat", "ChunkBatchStream"):  # fmt: skip
        assert name in rxchat.__all__ and hasattr(rxchat, name), name
    keys = rxchat.CompletionCreateParams.__optional_keys__
    assert {"temperature", "extra_body", "extra_query", "timeout", "n", "tools"} <= keys
    assert "n" not in rxchat.ToolRunnerParams.__optional_keys__


async def test_a_credential_in_extra_query_is_not_shown_in_errors() -> None:
    async with (
        MockServer(api_key="sk-the-right-one") as server,
        rxchat.AsyncClient(base_url=server.url, api_key="sk-wrong") as client,
    ):
        with pytest.raises(rxchat.AuthenticationError) as info:
            await client.chat.completions.create(
                model="m", messages=USER, extra_query={"key": "gem-secret-123", "v": "1"}
            )
    shown = info.value.response.url
    assert "gem-secret-123" not in shown and "key=***" in shown and "v=1" in shown
    assert "gem-secret-123" not in repr(info.value) and "gem-secret-123" not in str(info.value)
