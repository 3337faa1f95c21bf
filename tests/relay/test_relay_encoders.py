"""The three wire formats, from real mock-server streams, read back by independent parsers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pydantic import BaseModel
from reactivex import operators as rx_ops
from relay_support import data_events, user

import rxchat
from rxchat import operators as ops
from rxchat import relay
from rxchat.mock import MockServer


class City(BaseModel):
    name: str
    population: int


class GetWeather(BaseModel):
    city: str
    unit: str


def chunks(url: str, model: str = "mock", **params: Any) -> Any:
    return rxchat.chat_completion_stream(
        model=model, messages=user("Hi"), base_url=url, api_key="sk-test", **params
    )


async def body_of(stream: relay.SSEStream) -> bytes:
    return b"".join([data async for data in stream])


def payloads(body: bytes) -> list[Any]:
    return [orjson.loads(d) if d != "[DONE]" else d for _, _, d in data_events(body)]


async def test_ids_are_consecutive_numbers(mock_server: MockServer) -> None:
    for format in relay.FORMATS:
        body = await body_of(relay.sse(chunks(mock_server.url, "mock?tokens=7"), format))
        ids = [i for i, _, _ in data_events(body)]
        assert ids == [str(n) for n in range(1, len(ids) + 1)], format


async def test_openai_passthrough_is_the_same_stream(mock_server: MockServer) -> None:
    originals = await chunks(
        mock_server.url, "mock?tokens=9&reasoning=2", stream_options={"include_usage": True}
    ).pipe(rx_ops.to_list())
    body = await body_of(
        relay.sse(
            chunks(
                mock_server.url, "mock?tokens=9&reasoning=2", stream_options={"include_usage": True}
            ),
            "openai",
        )
    )
    sent = payloads(body)
    assert sent[-1] == "[DONE]"
    assert sent[:-1] == [c.model_dump(mode="json", exclude_unset=True) for c in originals]
    # rxchat (and so the OpenAI SDK's parser) reads it back as the same completion
    again = await rxchat.from_sse_bytes([body]).pipe(ops.accumulate(), ops.final_completion())
    assert again.choices[0].message.content == "".join(c.text or "" for c in originals)


async def test_openai_passthrough_through_the_openai_sdk(mock_server: MockServer) -> None:
    """rxchat as a proxy in front of an OpenAI-compatible client: the openai SDK reads it."""
    import openai
    from aiohttp import web
    from relay_support import aiohttp_server

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        upstream = rxchat.chat_completion_stream(
            model=body["model"], messages=body["messages"], base_url=mock_server.url, api_key="k"
        )
        return await relay.aiohttp_response(request, upstream, "openai")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", proxy)
    async with aiohttp_server(app) as base:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
        stream = await client.chat.completions.create(
            model="mock?text=line one\n\nline two", messages=user("Hi"), stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
    assert text == "line one\n\nline two" or text.replace(" ", "") == "lineone\n\nlinetwo"


async def test_events_with_partial_structured_values(mock_server: MockServer) -> None:
    fmt = rxchat.type_to_response_format_param(City)
    source = chunks(mock_server.url, "mock?tokens=12", response_format=fmt).pipe(
        ops.accumulate(), ops.parse_structured(City)
    )
    events = [
        (e, orjson.loads(d)) for _, e, d in data_events(await body_of(relay.sse(source, "events")))
    ]
    kinds = [e for e, _ in events]
    assert kinds[-2:] == ["content.done", "done"]
    partial = [p["parsed"] for e, p in events if e == "content.delta" and "parsed" in p]
    assert len(partial) > 2 and partial[0] == {}
    done = events[-2][1]
    City.model_validate(done["parsed"])
    assert partial[-1] == done["parsed"]
    assert all("snapshot" not in p for _, p in events)
    assert events[-1][1]["choices"] == [{"index": 0, "finish_reason": "stop"}]


async def test_events_from_chunks_with_tools(mock_server: MockServer) -> None:
    tools = [rxchat.pydantic_function_tool(GetWeather)]
    source = chunks(mock_server.url, "mock", tools=tools, tool_choice="required")
    body = await body_of(relay.sse(source, "events", tools=tools))
    events = [(e, orjson.loads(d)) for _, e, d in data_events(body)]
    deltas = [p for e, p in events if e == "tool_calls.function.arguments.delta"]
    [done] = [p for e, p in events if e == "tool_calls.function.arguments.done"]
    assert done["name"] == "GetWeather"
    assert "".join(d["arguments_delta"] for d in deltas) == done["arguments"]
    assert GetWeather.model_validate(done["parsed_arguments"])
    assert any(d.get("parsed_arguments") for d in deltas)
    assert events[-1][1]["choices"] == [{"index": 0, "finish_reason": "tool_calls"}]


async def test_ai_sdk_ui_parts(mock_server: MockServer) -> None:
    tools = [rxchat.pydantic_function_tool(GetWeather)]
    body = await body_of(
        relay.sse(
            chunks(mock_server.url, "mock?reasoning=3", tools=tools, tool_choice="required"),
            "ai-sdk-ui",
            message_id="m1",
        )
    )
    parts = payloads(body)
    kinds = [p if p == "[DONE]" else p["type"] for p in parts]
    assert kinds[:3] == ["start", "start-step", "reasoning-start"]
    assert parts[0] == {"type": "start", "messageId": "m1"}
    assert kinds[-3:] == ["finish-step", "finish", "[DONE]"]
    assert parts[-2] == {"type": "finish", "finishReason": "tool-calls"}
    [start] = [p for p in parts if p != "[DONE]" and p["type"] == "tool-input-start"]
    [available] = [p for p in parts if p != "[DONE]" and p["type"] == "tool-input-available"]
    text = "".join(
        p["inputTextDelta"] for p in parts if p != "[DONE]" and p["type"] == "tool-input-delta"
    )
    assert start["toolName"] == available["toolName"] == "GetWeather"
    assert start["toolCallId"] == available["toolCallId"]
    assert available["input"] == orjson.loads(text)
    assert kinds.index("reasoning-end") < kinds.index("tool-input-start")


def test_ai_sdk_ui_invalid_tool_arguments_and_text_parts() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    encoder = relay.UIMessageStreamEncoder()
    items = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello\n"}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{bad"}}
                ]
            }
        ),
        chunk({"content": "after"}),
        chunk({}, "length"),
    ]
    messages = [m for item in items for m in encoder.encode(item)] + encoder.close()
    parts = [orjson.loads(d) if d != b"[DONE]" else "[DONE]" for _, d in messages]
    kinds = [p if p == "[DONE]" else p["type"] for p in parts]
    assert kinds == [
        "start", "start-step", "text-start", "text-delta", "text-end", "tool-input-start",
        "tool-input-delta", "tool-input-error", "text-start", "text-delta", "text-end",
        "finish-step", "finish", "[DONE]",
    ]  # fmt: skip
    assert parts[3] == {"type": "text-delta", "id": "text-0", "delta": "Hello\n"}
    assert parts[7]["input"] == "{bad" and parts[8]["id"] == "text-1"
    assert parts[12] == {"type": "finish", "finishReason": "length"}


@pytest.mark.parametrize("fault", ["error_after=3", "drop_after=3"])
async def test_a_mid_stream_error_is_the_formats_error_event(
    mock_server: MockServer, fault: str
) -> None:
    ends = {}
    for format in relay.FORMATS:
        stream = relay.sse(chunks(mock_server.url, f"mock?tokens=8&{fault}", max_retries=0), format)
        body = await body_of(stream)
        assert stream.outcome == "error"
        ends[format] = data_events(body)[-2:]
    openai_last = orjson.loads(ends["openai"][-1][2])
    assert set(openai_last["error"]) == {"message", "type", "param", "code"}
    assert ends["events"][-1][1] == "error"
    assert orjson.loads(ends["events"][-1][2])["error"]["type"] in (
        "StreamAPIError",
        "IncompleteStreamError",
        "APIConnectionError",
    )
    assert orjson.loads(ends["ai-sdk-ui"][-2][2])["type"] == "error"
    assert ends["ai-sdk-ui"][-1][2] == "[DONE]"


async def test_keepalive_comments_while_the_model_is_quiet(mock_server: MockServer) -> None:
    stream = relay.sse(
        chunks(mock_server.url, "mock?tokens=3&stall_first=0.5"),
        "openai",
        keepalive=0.1,
        retry=2500,
    )
    body = await body_of(stream)
    assert body.startswith(b": keep-alive\n\n")
    assert b"\n\nretry: 2500\nid: 1\n" in body
    assert body.count(b": keep-alive\n\n") >= 2
    assert payloads(body)[-1] == "[DONE]"


async def test_sources_of_every_kind() -> None:
    items = [
        {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}],
        }
        for t in ("a", "b\nc")
    ]

    async def agen() -> Any:
        for item in items:
            await asyncio.sleep(0)
            yield item

    bodies = [
        await body_of(relay.sse(source, "events"))
        for source in (items, agen(), rxchat.from_chunks(items))
    ]
    assert bodies[0] == bodies[1] == bodies[2]
    assert [
        orjson.loads(d).get("delta") for _, e, d in data_events(bodies[0]) if e == "content.delta"
    ] == ["a", "b\nc"]


async def test_bad_items_and_arguments() -> None:
    stream = relay.sse([object()], "events")
    body = await body_of(stream)
    assert stream.outcome == "error" and isinstance(stream.error, relay.RelayError)
    assert orjson.loads(data_events(body)[-1][2])["error"]["type"] == "RelayError"
    with pytest.raises(relay.RelayError, match="unknown SSE format"):
        relay.sse([], "html")  # type: ignore[arg-type]
    with pytest.raises(relay.RelayError, match="keepalive"):
        relay.sse([], keepalive=0)
    with pytest.raises(relay.RelayError, match="format 'openai'"):
        relay.sse([], "openai", message_id="x")
    with pytest.raises(relay.UnknownEventIdError):
        relay.sse([], last_event_id="abc")
    with pytest.raises(relay.RelayError):
        relay.sse()
