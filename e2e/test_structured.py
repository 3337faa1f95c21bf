"""Structured output: a pydantic ``response_format`` (llama.cpp turns its JSON schema into a
grammar, so the answer is valid JSON of that shape) and a forced tool call."""

from __future__ import annotations

import json
from typing import Any

from e2ekit import GREEDY, Target, afinished, note, raw_stream, raw_text, user
from pydantic import BaseModel

import rxchat
from rxchat import operators as ops


class City(BaseModel):
    name: str
    country: str
    population_millions: float


PROMPT = "Describe Paris as JSON with its name, country and population in millions."
PARAMS: dict[str, Any] = {"max_tokens": 60, **GREEDY}


async def test_response_format_pydantic_model(target: Target) -> None:
    async with (
        rxchat.AsyncClient(
            base_url=target.base_url, api_key=target.api_key, max_retries=0
        ) as client,
        client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), response_format=City, **PARAMS
        ) as stream,
    ):
        partials: list[Any] = []
        done: list[Any] = []
        async for event in stream:
            if event.type == "content.delta":
                partials.append(event.parsed)
            elif event.type == "content.done":
                done.append(event.parsed)
        completion = await afinished(stream.get_final_completion())
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop", (
        "the grammar closes the JSON before the limit"
    )
    assert isinstance(message.parsed, City)
    assert message.parsed == City.model_validate_json(message.content or "")
    assert done == [message.parsed]
    # The partial value grows while the JSON arrives: dicts with more and more fields.
    dicts = [p for p in partials if isinstance(p, dict)]
    assert len(dicts) >= 3
    assert set(dicts[-1]) == {"name", "country", "population_millions"}
    assert len({json.dumps(d, sort_keys=True) for d in dicts}) >= 3
    note(f"structured answer (json_schema through llama.cpp's grammar): {message.content}")


async def test_response_format_matches_the_wire(target: Target) -> None:
    response_format = rxchat.type_to_response_format_param(City)
    payloads = raw_stream(
        target, {"messages": user(PROMPT), "response_format": response_format, **PARAMS}
    )
    expected = raw_text(payloads)
    completion = await afinished(
        rxchat.chat_completion_stream(
            model=target.model,
            messages=user(PROMPT),
            base_url=target.base_url,
            api_key=target.api_key,
            response_format=response_format,
            **PARAMS,
        ).pipe(ops.accumulate(), ops.parse_structured(City), ops.final_completion())
    )
    assert completion.choices[0].message.content == expected
    assert completion.choices[0].message.parsed == City.model_validate_json(expected)


class GetWeather(BaseModel):
    """Get the current weather of a city."""

    city: str


async def test_forced_tool_call(target: Target) -> None:
    tool = rxchat.pydantic_function_tool(GetWeather)
    body: dict[str, Any] = {
        "tools": [tool],
        "tool_choice": "required",
        "max_tokens": 60,
        **GREEDY,
    }
    messages = user("What is the weather in Kyoto?")
    payloads = raw_stream(target, {"messages": messages, **body})
    raw_calls = [
        tc
        for p in payloads
        if isinstance(p, dict)
        for c in p.get("choices") or []
        for tc in (c.get("delta") or {}).get("tool_calls") or []
    ]
    raw_arguments = "".join((tc.get("function") or {}).get("arguments") or "" for tc in raw_calls)
    async with (
        rxchat.AsyncClient(
            base_url=target.base_url, api_key=target.api_key, max_retries=0
        ) as client,
        client.chat.completions.stream(model=target.model, messages=messages, **body) as stream,
    ):
        arguments_done = []
        try:
            async for event in stream:
                if event.type == "tool_calls.function.arguments.done":
                    arguments_done.append(event)
            completion = await afinished(stream.get_final_completion())
        except rxchat.LengthFinishReasonError as err:  # with tools, raised while iterating
            assert err.completion is not None
            completion = err.completion
    calls = completion.choices[0].message.tool_calls or []
    if not raw_calls:
        # Gemma 3 270M with llama.cpp's generic tool format may answer in content instead.
        assert not calls and not arguments_done
        assert (completion.choices[0].message.content or "") == raw_text(payloads)
        note(
            "tool_choice required: this server/model streamed no tool call "
            f"(content {raw_text(payloads)[:60]!r}); rxchat agreed with the wire"
        )
        return
    assert len(calls) == 1
    assert calls[0].function.name == "GetWeather"
    assert calls[0].function.arguments == raw_arguments
    assert isinstance(calls[0].function.parsed_arguments, GetWeather)
    assert [e.parsed_arguments for e in arguments_done] == [calls[0].function.parsed_arguments]
    assert completion.choices[0].finish_reason == "tool_calls"
    note(
        f"forced tool call: {calls[0].function.name}({calls[0].function.arguments}) "
        f"in {len(raw_calls)} tool-call deltas"
    )
