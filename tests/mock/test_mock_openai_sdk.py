"""The official ``openai`` SDK consumes the mock server's streams as it would OpenAI's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import openai
import pytest
from pydantic import BaseModel

from rxchat.mock import MockServer

MESSAGES = [{"role": "user", "content": "What's the weather like in SF?"}]


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


class GetWeatherArgs(BaseModel):
    """Get the temperature for the given country/city combo"""

    city: str
    country: str
    units: Literal["c", "f"] = "c"


@pytest.fixture
async def sdk(mock_server: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=mock_server.url, api_key="sk-unused", max_retries=0)
    try:
        yield client
    finally:
        await client.close()


async def test_sdk_parses_structured_stream_with_n_and_usage(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.beta.chat.completions.stream(
        model="gpt-4o",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=Location,
        n=3,
        logprobs=True,
        stream_options={"include_usage": True},
    ) as stream:
        kinds = {event.type async for event in stream}
        final = await stream.get_final_completion()
    assert {"content.delta", "content.done", "logprobs.content.delta"} <= kinds
    assert [c.index for c in final.choices] == [0, 1, 2]
    assert all(isinstance(c.message.parsed, Location) for c in final.choices)
    assert final.usage is not None and final.usage.completion_tokens > 0
    assert final.model == "gpt-4o"


async def test_sdk_parses_parallel_tool_calls(sdk: openai.AsyncOpenAI) -> None:
    tools = [openai.pydantic_function_tool(GetWeatherArgs), openai.pydantic_function_tool(Location)]
    async with sdk.beta.chat.completions.stream(
        model="gpt-4o?parallel_tools=2",
        messages=MESSAGES,  # type: ignore[arg-type]
        tools=tools,
    ) as stream:
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["GetWeatherArgs", "Location"]
    assert isinstance(calls[0].function.parsed_arguments, GetWeatherArgs)
    assert isinstance(calls[1].function.parsed_arguments, Location)
    assert final.choices[0].finish_reason == "tool_calls"


async def test_sdk_sees_refusal_and_length(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.beta.chat.completions.stream(
        model="gpt-4o?refusal=1",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format=Location,
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.refusal == "I'm sorry, but I can't help with that request."
    with pytest.raises(openai.LengthFinishReasonError):
        async with sdk.beta.chat.completions.stream(
            model="gpt-4o",
            messages=MESSAGES,  # type: ignore[arg-type]
            response_format=Location,
            max_tokens=2,
        ) as stream:
            await stream.get_final_completion()


async def test_sdk_maps_status_faults(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await sdk.chat.completions.create(
            model="gpt-4o?status=429&retry_after=0", messages=MESSAGES
        )  # type: ignore[arg-type]
    assert info.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(model="gpt-4o", messages=[])
