"""Provider wire shapes (Azure, Gemini, vLLM, OpenRouter, usage details) on the real loopback mock,
through every surface: source + operators, AsyncClient create / stream, Client, Edgee style.

Each shaped answer must give the final completion of the same request without the shape (the mock
is deterministic), plus what the provider adds, kept where the provider put it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import reactivex.operators as rxo
from support import ThreadedMock

import rxchat
from rxchat import operators as ops
from rxchat.mock._providers import thought_signature
from rxchat.types import ChatCompletionChunk, ParsedChatCompletion

USER = [{"role": "user", "content": "Tell me about harbors"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
USAGE = {"stream_options": {"include_usage": True}}


def params(shape: str) -> dict[str, Any]:
    """Request parameters that make the shape show: reasoning, tools for Gemini, two choices."""
    extra: dict[str, Any] = {"tools": TOOLS} if shape == "gemini" else {}
    return {
        "model": f"mock?tokens=5&reasoning=4&shape={shape}",
        "messages": USER,
        "n": 2,
        **extra,
    }


def plain(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "model": "mock?tokens=5&reasoning=4"}


def state_of(chunks: list[ChatCompletionChunk]) -> tuple[ParsedChatCompletion[Any], list[Any]]:
    state: rxchat.ChatCompletionStreamState[Any] = rxchat.ChatCompletionStreamState()
    events = [e for chunk in chunks for e in state.handle_chunk(chunk)]
    return state.get_final_completion(), events


def check(
    shape: str,
    got: Any,
    expected: Any,
    *,
    streamed: bool,
    chunks: list[ChatCompletionChunk] | None = None,
    events: list[Any] | None = None,
) -> None:
    """``got`` (shaped) against ``expected`` (the same request, not shaped)."""
    assert len(got.choices) == len(expected.choices) == 2
    for mine, theirs in zip(got.choices, expected.choices, strict=True):
        m, t = mine.message, theirs.message
        assert (mine.index, mine.finish_reason) == (theirs.index, theirs.finish_reason)
        assert m.content == t.content
        assert [c.function.arguments for c in m.tool_calls or []] == [
            c.function.arguments for c in t.tool_calls or []
        ]
        reasoning = t.reasoning_content
        assert reasoning
        if shape in ("vllm", "openrouter"):
            assert (m.reasoning, m.reasoning_content) == (reasoning, None)
            assert m.to_param()["reasoning"] == reasoning
            if shape == "openrouter":
                assert m.model_extra["reasoning_details"] == [
                    {"type": "reasoning.text", "text": reasoning, "index": 0, "format": "unknown"}
                ]
        else:
            assert (m.reasoning_content, m.reasoning) == (reasoning, None)
    if got.usage is not None or expected.usage is not None:
        assert got.usage.completion_tokens == expected.usage.completion_tokens
        assert got.usage.prompt_tokens == expected.usage.prompt_tokens
    if shape == "usage_details":
        usage = got.usage
        assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens // 2
        assert usage.prompt_tokens_details.audio_tokens == 0
        assert usage.completion_tokens_details.reasoning_tokens == 8  # 4 per choice
        assert usage.completion_tokens_details.accepted_prediction_tokens == 0
    else:
        assert got.usage is None or got.usage.prompt_tokens_details is None
    if shape == "gemini":
        call = got.choices[0].message.tool_calls[0]
        signature = thought_signature(got.id, call.id)
        assert call.model_extra["extra_content"] == {"google": {"thought_signature": signature}}
        assert call.to_param()["extra_content"]["google"]["thought_signature"] == signature
        sent = got.choices[0].message.to_param()
        assert "index" not in sent["tool_calls"][0]
        assert "parsed_arguments" not in sent["tool_calls"][0]["function"]
    if shape == "azure":
        if streamed:
            assert chunks is not None
            verdicts = [
                c
                for c in chunks
                if c.choices and "content_filter_offsets" in c.choices[0].model_extra
            ]
            assert sorted(c.choices[0].index for c in verdicts) == [0, 1]
            for c in verdicts:
                assert c.choices[0].delta.to_dict() == {}  # no delta on the wire
                assert c.choices[0].model_extra["content_filter_results"]["hate"] == {
                    "filtered": False,
                    "severity": "safe",
                }
        else:
            assert got.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
            assert (
                got.choices[0].model_extra["content_filter_results"]["violence"]["filtered"]
                is False
            )
    if events is not None:
        reasoning_events = [e for e in events if e.type.startswith("reasoning.")]
        assert reasoning_events
        name = "reasoning" if shape in ("vllm", "openrouter") else "reasoning_content"
        assert {e.field for e in reasoning_events} == {name}
        done = [e for e in reasoning_events if e.type == "reasoning.done"]
        assert sorted(e.choice_index for e in done) == [0, 1]
        for choice in got.choices:
            deltas = [
                e.delta
                for e in events
                if e.type == "content.delta" and e.choice_index == choice.index
            ]
            assert "".join(deltas) == (choice.message.content or "")


SHAPES = ["azure", "gemini", "vllm", "openrouter", "usage_details"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_source_and_operators(shape: str, mock_server: Any) -> None:
    p = params(shape)
    url = mock_server.url
    chunks = await rxchat.chat_completion_stream(base_url=url, **p, **USAGE).pipe(rxo.to_list())
    events = await rxchat.chat_completion_stream(base_url=url, **p, **USAGE).pipe(
        ops.accumulate(), rxo.to_list()
    )
    got = await rxchat.chat_completion_stream(base_url=url, **p, **USAGE).pipe(
        ops.final_completion()
    )
    expected = await rxchat.chat_completion_stream(base_url=url, **plain(p), **USAGE).pipe(
        ops.final_completion()
    )
    check(shape, got, expected, streamed=True, chunks=chunks, events=events)
    assert [e.type for e in events if e.type == "chunk"] == ["chunk"] * len(
        [c for c in chunks if c.object == "chat.completion.chunk"]
    )


@pytest.mark.parametrize("shape", SHAPES)
async def test_async_client_create_and_stream(shape: str, mock_server: Any) -> None:
    p = params(shape)
    async with rxchat.AsyncClient(base_url=mock_server.url, api_key="unused") as client:
        completions = client.chat.completions
        whole = await completions.create(**p)
        whole_plain = await completions.create(**plain(p))
        check(shape, whole, whole_plain, streamed=False)

        stream = await completions.create(**p, stream=True, **USAGE)
        chunks = [chunk async for chunk in stream]
        got, events = state_of(chunks)
        expected, _ = state_of(
            [c async for c in await completions.create(**plain(p), stream=True, **USAGE)]
        )
        check(shape, got, expected, streamed=True, chunks=chunks, events=events)

        async with completions.stream(**p, **USAGE) as helper:
            streamed_events = [event async for event in helper]
            final = await helper.get_final_completion()
        check(shape, final, expected, streamed=True, chunks=chunks, events=streamed_events)


@pytest.fixture
def threaded() -> Iterator[ThreadedMock]:
    m = ThreadedMock()
    try:
        yield m
    finally:
        m.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_sync_client(shape: str, threaded: ThreadedMock) -> None:
    p = params(shape)
    with rxchat.Client(base_url=threaded.url, api_key="unused") as client:
        completions = client.chat.completions
        check(shape, completions.create(**p), completions.create(**plain(p)), streamed=False)
        chunks = list(completions.create(**p, stream=True, **USAGE))
        expected, _ = state_of(list(completions.create(**plain(p), stream=True, **USAGE)))
        with completions.stream(**p, **USAGE) as helper:
            events = list(helper)
            final = helper.get_final_completion()
        check(shape, final, expected, streamed=True, chunks=chunks, events=events)


@pytest.mark.parametrize("shape", SHAPES)
def test_edgee_style(shape: str, threaded: ThreadedMock) -> None:
    p = params(shape)
    with rxchat.Client(base_url=threaded.url, api_key="unused") as client:
        # Edgee inputs carry messages and tools; n goes through the model's defaults: one choice
        edgee_input: dict[str, Any] = {"messages": USER}
        if shape == "gemini":
            edgee_input["tools"] = TOOLS
        chunks = list(client.stream(p["model"], edgee_input))
        plain_chunks = list(client.stream(plain(p)["model"], edgee_input))
        got, events = state_of(chunks)
        expected, _ = state_of(plain_chunks)
        assert [c.message.content for c in got.choices] == [
            c.message.content for c in expected.choices
        ]
        reasoning_field = "reasoning" if shape in ("vllm", "openrouter") else "reasoning_content"
        assert getattr(got.choices[0].message, reasoning_field) == (
            expected.choices[0].message.reasoning_content
        )
        assert {e.field for e in events if e.type.startswith("reasoning.")} == {reasoning_field}
        if shape == "azure":
            assert any(
                c.choices and "content_filter_offsets" in c.choices[0].model_extra for c in chunks
            )
        if shape == "gemini":
            call = got.choices[0].message.tool_calls[0]
            assert call.model_extra["extra_content"]["google"]["thought_signature"] == (
                thought_signature(got.id, call.id)
            )
        response = client.send(p["model"], edgee_input)
        assert response.text == client.send(plain(p)["model"], edgee_input).text
        if shape == "usage_details":
            assert response.usage is not None
            assert response.usage.prompt_tokens_details is not None
            assert response.usage.prompt_tokens_details.cached_tokens == (
                response.usage.prompt_tokens // 2
            )


async def test_shape_option_is_validated(mock_server: Any) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url, api_key="unused") as client:
        with pytest.raises(rxchat.BadRequestError, match="unknown shape 'bogus'"):
            await client.chat.completions.create(model="mock?shape=bogus", messages=USER)
        # the header form and several shapes at once
        whole = await client.chat.completions.create(
            model="mock?reasoning=3",
            messages=USER,
            extra_headers={"X-Mock-Shape": "vllm, usage_details"},
        )
        assert whole.choices[0].message.reasoning and whole.usage.prompt_tokens_details
