"""The tool loop: python functions as tools, run_tools on the clients and as an Observable."""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, field_validator
from reactivex import operators as rops
from support import ThreadedMock

import rxchat
from rxchat import AsyncClient, Client, MaxTurnsExceededError
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "What's the weather in Paris, and the time?"}]
STEPS = ("turn.started", "tool_call.started", "tool_call.finished", "turn.done", "final")


def get_weather(city: str, units: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Current weather of a city."""
    return {"city": city, "temperature": 18, "units": units}


async def get_time(zone: str) -> str:
    """The time in a time zone."""
    await asyncio.sleep(0)
    return "12:00"



@pytest.fixture
async def aclient(server: MockServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=server.url, api_key="sk-test") as c:
        yield c


def _steps(events: list[Any]) -> list[tuple[str, int, str]]:
    return [
        (e.type, e.turns if e.type == "final" else e.turn, getattr(e, "name", ""))
        for e in events
        if e.type in STEPS
    ]


# -- tools from functions ------------------------------------------------------------------


def test_function_tool_schema_from_the_signature() -> None:
    tool = rxchat.function_tool(get_weather)
    assert tool.definition() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "additionalProperties": False,
                "properties": {
                    "city": {"title": "City", "type": "string"},
                    "units": {
                        "default": "c",
                        "enum": ["c", "f"],
                        "title": "Units",
                        "type": "string",
                    },
                },
                "required": ["city"],
                "type": "object",
            },
        },
    }
    strict = rxchat.function_tool(get_weather, name="weather", description="W", strict=True)
    fn = strict.definition()["function"]
    assert (fn["name"], fn["description"], fn["strict"]) == ("weather", "W", True)
    assert fn["parameters"]["required"] == ["city", "units"]


def test_function_tool_rejects_what_it_cannot_call() -> None:
    def star(*args: int) -> None: ...

    def kw(**kwargs: int) -> None: ...

    for bad in (star, kw):
        with pytest.raises(TypeError, match="normal or keyword-only"):
            rxchat.function_tool(bad)
    with pytest.raises(TypeError, match="give the tool a name"):
        rxchat.function_tool(lambda x: x)
    with pytest.raises(TypeError, match="callable"):
        rxchat.function_tool("get_weather")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="two tools are named"):
        rxchat.run_tools(lambda **_: None, messages=USER, tools=[get_weather, get_weather])  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="not a tool dict"):
        rxchat.run_tools(
            lambda **_: None, messages=USER, tools=[{"type": "function", "function": {"name": "f"}}]
        )  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="no __call__"):

        class NoCall(BaseModel):
            x: int

        rxchat.run_tools(lambda **_: None, messages=USER, tools=[NoCall])  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="max_turns"):
        rxchat.run_tools(lambda **_: None, messages=USER, tools=[get_weather], max_turns=0)  # type: ignore[arg-type, return-value]


def test_tool_message_helper() -> None:
    class Out(BaseModel):
        ok: bool

    assert rxchat.tool_message("c1", "plain") == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "plain",
    }
    assert rxchat.tool_message("c1", Out(ok=True))["content"] == '{"ok":true}'
    assert rxchat.tool_message("c1", [1, {"a": None}])["content"] == '[1,{"a":null}]'
    assert rxchat.tool_message("c1", None)["content"] == "null"
    with pytest.raises(TypeError):
        rxchat.tool_message("", "x")


# -- the loop on the async client ------------------------------------------------------------


async def test_two_tool_turns_then_text(aclient: AsyncClient, server: MockServer) -> None:
    runner = aclient.chat.completions.run_tools(
        model="mock?tool_turns=2", messages=USER, tools=[get_weather, get_time]
    )
    events = [e async for e in runner]
    assert _steps(events) == [
        ("turn.started", 1, ""),
        ("tool_call.started", 1, "get_weather"),
        ("tool_call.finished", 1, "get_weather"),
        ("turn.done", 1, ""),
        ("turn.started", 2, ""),
        ("tool_call.started", 2, "get_time"),
        ("tool_call.finished", 2, "get_time"),
        ("turn.done", 2, ""),
        ("turn.started", 3, ""),
        ("turn.done", 3, ""),
        ("final", 3, ""),
    ]
    # the usual stream events come in between
    assert {"chunk", "tool_calls.function.arguments.delta", "content.delta", "content.done"} <= {
        e.type for e in events
    }
    finished = [e for e in events if e.type == "tool_call.finished"]
    args = finished[0].result
    assert finished[0].error is None and finished[0].content == (
        f'{{"city":"{args["city"]}","temperature":18,"units":"{args["units"]}"}}'
    )
    assert finished[1].result == "12:00"
    final = events[-1]
    assert final.type == "final"
    assert final.content == "Based on the tool results: get_time returned 12:00."
    assert await runner.until_done() is final.completion  # already done: the same completion

    # The conversation the loop built, as the server received it on the last turn.
    sent = server.requests[-1].body["messages"]
    assert sent == final.messages[:-1] == runner.messages[:-1]
    assert [m["role"] for m in final.messages] == [
        "user", "assistant", "tool", "assistant", "tool", "assistant"
    ]  # fmt: skip
    call = sent[1]["tool_calls"][0]
    assert set(call) == {"id", "type", "function"} and set(call["function"]) == {
        "name",
        "arguments",
    }
    assert sent[2] == {"role": "tool", "tool_call_id": call["id"], "content": finished[0].content}
    assert final.messages[-1] == {"role": "assistant", "content": final.content}
    assert [t["function"]["name"] for t in server.requests[-1].body["tools"]] == [
        "get_weather",
        "get_time",
    ]


async def test_parallel_calls_run_concurrently(aclient: AsyncClient) -> None:
    both = asyncio.Event()
    started: list[str] = []

    async def tool_a(x: str = "") -> str:
        started.append("a")
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)  # only returns if tool_b runs meanwhile
        return "A"

    async def tool_b(y: str = "") -> str:
        started.append("b")
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)
        return "B"

    barrier = threading.Barrier(2, timeout=5)

    def sync_c(z: str = "") -> str:
        barrier.wait()  # two sync tools meet only if they run in two threads at once
        return "C"

    def sync_d(w: str = "") -> str:
        barrier.wait()
        return "D"

    completion = await aclient.chat.completions.run_tools(
        model="mock?parallel_tools=2", messages=USER, tools=[tool_a, tool_b]
    ).until_done()
    assert completion.choices[0].message.content == (
        "Based on the tool results: tool_a returned A; tool_b returned B."
    )
    completion = await aclient.chat.completions.run_tools(
        model="mock?parallel_tools=2", messages=USER, tools=[sync_c, sync_d]
    ).until_done()
    assert completion.choices[0].message.content == (
        "Based on the tool results: sync_c returned C; sync_d returned D."
    )


async def test_a_raising_tool_goes_back_to_the_model(aclient: AsyncClient) -> None:
    def get_weather(city: str) -> str:
        raise ValueError(f"no station in {city}")

    runner = aclient.chat.completions.run_tools(model="mock", messages=USER, tools=[get_weather])
    events = [e async for e in runner]
    (finished,) = [e for e in events if e.type == "tool_call.finished"]
    assert isinstance(finished.error, ValueError) and finished.result is None
    assert finished.content.startswith("Error: ValueError: no station in ")
    assert events[-1].type == "final"
    assert (
        events[-1].content == f"Based on the tool results: get_weather returned {finished.content}."
    )


async def test_arguments_that_do_not_validate_go_back_to_the_model(aclient: AsyncClient) -> None:
    class Lookup(BaseModel):
        """Look a city up."""

        city: str

        @field_validator("city")
        @classmethod
        def known(cls, value: str) -> str:
            raise ValueError("unknown city")

        def __call__(self) -> str:
            raise AssertionError("never called with invalid arguments")

    events = [
        e
        async for e in aclient.chat.completions.run_tools(
            model="mock", messages=USER, tools=[Lookup]
        )
    ]
    started = next(e for e in events if e.type == "tool_call.started")
    finished = next(e for e in events if e.type == "tool_call.finished")
    assert started.parsed_arguments is None and started.name == "Lookup"
    assert isinstance(finished.error, ValueError)
    assert (
        finished.content == "Error: invalid arguments for Lookup: city: Value error, unknown city"
    )
    assert events[-1].type == "final"


async def test_pydantic_tools_sync_and_async(aclient: AsyncClient, server: MockServer) -> None:
    class Weather(BaseModel):
        """Weather of a city."""

        city: str = Field(description="the city")

        def __call__(self) -> str:
            return f"sunny in {self.city}"

    class Clock(BaseModel):
        zone: str

        async def __call__(self) -> dict[str, str]:
            return {"zone": self.zone, "time": "09:30"}

    runner = aclient.chat.completions.run_tools(
        model="mock?parallel_tools=2", messages=USER, tools=[Weather, Clock]
    )
    events = [e async for e in runner]
    started = [e for e in events if e.type == "tool_call.started"]
    assert [type(e.parsed_arguments) for e in started] == [Weather, Clock]
    # finished events come as the calls end; the tool messages keep the calls' order
    results = {e.name: e.result for e in events if e.type == "tool_call.finished"}
    assert results["Weather"] == f"sunny in {started[0].parsed_arguments.city}"
    assert results["Clock"] == {"zone": started[1].parsed_arguments.zone, "time": "09:30"}
    assert [m.get("tool_call_id") for m in events[-1].messages[2:4]] == [e.call_id for e in started]
    weather, clock = server.requests[0].body["tools"]
    assert weather["function"]["name"] == "Weather"
    assert weather["function"]["description"] == "Weather of a city."
    assert weather["function"]["parameters"]["properties"]["city"]["description"] == "the city"
    assert clock["function"]["name"] == "Clock" and "description" not in clock["function"]


async def test_function_tool_with_a_model(aclient: AsyncClient, server: MockServer) -> None:
    class Args(BaseModel):
        city: str

    seen: list[Args] = []

    def handler(args: Args) -> str:
        seen.append(args)
        return "ok"

    tool = rxchat.function_tool(handler, name="lookup", strict=True, model=Args)
    await aclient.chat.completions.run_tools(model="mock", messages=USER, tools=[tool]).until_done()
    assert len(seen) == 1 and isinstance(seen[0], Args)
    (definition,) = server.requests[0].body["tools"]
    assert definition["function"]["name"] == "lookup" and definition["function"]["strict"] is True


async def test_turn_limit_raises_with_a_conversation_to_continue(
    aclient: AsyncClient, server: MockServer
) -> None:
    runner = aclient.chat.completions.run_tools(
        model="mock", messages=USER, tools=[get_weather], tool_choice="required", max_turns=2
    )
    seen: list[Any] = []
    with pytest.raises(MaxTurnsExceededError) as info:
        async for event in runner:
            seen.append(event)
    err = info.value
    assert isinstance(err, rxchat.RxChatError) and err.turns == 2
    assert "after 2 turns" in str(err)
    assert [m["role"] for m in err.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert err.completion is not None and err.completion.choices[0].finish_reason == "tool_calls"
    assert [e.type for e in seen if e.type == "tool_call.finished"] == ["tool_call.finished"] * 2
    assert len(server.requests) == 2
    # The conversation is valid: continuing it with tool_choice auto gives the text answer.
    final = await aclient.chat.completions.run_tools(
        model="mock?tool_turns=0", messages=err.messages, tools=[get_weather]
    ).until_done()
    assert final.choices[0].message.content.startswith("Based on the tool results: get_weather")


async def test_final_answer_parsed_with_response_format(aclient: AsyncClient) -> None:
    class Report(BaseModel):
        city: str
        temperature: float

    runner = aclient.chat.completions.run_tools(
        model="mock", messages=USER, tools=[get_weather], response_format=Report
    )
    completion = await runner.until_done()
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Report)
    assert runner.final is not None and runner.final.message.parsed == parsed


async def test_closing_the_runner_closes_the_request(
    aclient: AsyncClient, server: MockServer
) -> None:
    runner = aclient.chat.completions.run_tools(
        model="mock?tool_turns=0&tokens=2000&delay=0.002", messages=USER, tools=[get_weather]
    )
    async with runner:
        async for event in runner:
            if event.type == "content.delta":
                break
    disconnect = await server.wait_for_disconnect(timeout=5)
    assert disconnect.chunks < 2000
    with pytest.raises(rxchat.IncompleteStreamError):
        await runner.until_done()


# -- the reactive source ----------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _tool_turn(calls: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    chunks = [_chunk({"role": "assistant", "content": None})]
    for k, (call_id, name, args) in enumerate(calls):
        head = {
            "index": k,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(_chunk({"tool_calls": [head]}))
        chunks.append(_chunk({"tool_calls": [{"index": k, "function": {"arguments": args}}]}))
    chunks.append(_chunk({}, "tool_calls"))
    return chunks


async def test_reactive_source_with_a_scripted_model() -> None:
    requests: list[dict[str, Any]] = []

    def request(*, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        requests.append({"messages": messages, "tools": tools})
        if len(requests) == 1:
            return rxchat.from_chunks(
                _tool_turn([("c1", "get_weather", '{"city": "Paris"'), ("c2", "nope", "{}")])
            )
        return rxchat.from_chunks(
            [_chunk({"role": "assistant", "content": "Done."}), _chunk({}, "stop")]
        )

    events: list[Any] = []
    done = asyncio.Event()
    rxchat.run_tools(request, messages=USER, tools=[get_weather]).subscribe(
        events.append, lambda err: done.set(), done.set
    )
    await asyncio.wait_for(done.wait(), 5)
    finished = {e.call_id: e for e in events if e.type == "tool_call.finished"}
    assert str(finished["c1"].error).startswith("the arguments are not valid JSON")
    assert finished["c1"].content.startswith("Error: the arguments are not valid JSON")
    assert isinstance(finished["c2"].error, LookupError)
    assert finished["c2"].content == "Error: no tool named 'nope'; the tools are: get_weather"
    assert events[-1].type == "final" and events[-1].content == "Done."
    second = requests[1]["messages"]
    assert [m.get("tool_call_id") for m in second[2:]] == ["c1", "c2"]
    assert requests[1]["tools"] == [rxchat.function_tool(get_weather).definition()]


async def test_reactive_source_with_the_client_observe(aclient: AsyncClient) -> None:
    source = rxchat.run_tools(
        functools.partial(aclient.chat.completions.observe, model="mock"),
        messages=USER,
        tools=[get_weather],
    )
    final = await source.pipe(rops.last())
    assert final.type == "final" and final.turns == 2
    assert final.content.startswith("Based on the tool results: get_weather returned {")
    again = await source.pipe(rops.last())  # cold: runs again
    assert again.content == final.content


async def test_stream_errors_end_the_loop_typed(aclient: AsyncClient) -> None:
    runner = aclient.chat.completions.run_tools(
        model="mock?status=400", messages=USER, tools=[get_weather]
    )
    with pytest.raises(rxchat.BadRequestError):
        await runner.until_done()


# -- the sync client ----------------------------------------------------------------------------


@pytest.fixture
def mock() -> Iterator[ThreadedMock]:
    m = ThreadedMock()
    try:
        yield m
    finally:
        m.close()


def test_sync_client_runs_the_loop(mock: ThreadedMock) -> None:
    calls: list[str] = []

    def weather(city: str) -> str:
        calls.append(threading.current_thread().name)
        return f"rain in {city}"

    with Client(base_url=mock.url, api_key="k") as client:
        with client.chat.completions.run_tools(
            model="mock?tool_turns=2", messages=USER, tools=[weather, get_time]
        ) as runner:
            steps = _steps(list(runner))
        assert steps[-1] == ("final", 3, "")
        assert runner.final is not None
        assert runner.final.content == "Based on the tool results: get_time returned 12:00."
        assert calls and calls[0] != threading.current_thread().name  # in a worker thread
        completion = client.chat.completions.run_tools(
            model="mock", messages=USER, tools=[weather]
        ).until_done()
        assert completion.choices[0].message.content.startswith(
            "Based on the tool results: weather returned rain in "
        )
        with pytest.raises(MaxTurnsExceededError):
            client.chat.completions.run_tools(
                model="mock", messages=USER, tools=[weather], tool_choice="required", max_turns=1
            ).until_done()


def test_sync_runner_dropped_mid_loop_closes_the_request(mock: ThreadedMock) -> None:
    with Client(base_url=mock.url, api_key="k") as client:
        runner = client.chat.completions.run_tools(
            model="mock?tool_turns=0&tokens=3000&delay=0.002", messages=USER, tools=[get_weather]
        )
        for event in runner:
            if event.type == "content.delta":
                break
        del runner, event
        gc.collect()
        disconnect = mock.wait_for_disconnect(timeout=5)
        assert disconnect.chunks < 3000


async def test_a_slow_consumer_slows_the_loop_instead_of_overflowing(aclient: AsyncClient) -> None:
    """Back-pressure: ``async for`` over a long turn never fills the bounded bridge."""
    runner = aclient.chat.completions.run_tools(
        model="mock?tool_turns=0&tokens=8000", messages=USER, tools=[get_weather]
    )
    seen = 0
    async for _ in runner:
        seen += 1
        if seen % 50 == 0:
            await asyncio.sleep(0.001)  # slower than the loopback stream
    assert seen > 16_000 and runner.final is not None


async def test_a_dropped_turn_keeps_what_arrived(aclient: AsyncClient) -> None:
    runner = aclient.chat.completions.run_tools(
        model="mock?tool_turns=0&tokens=50&drop_after=10", messages=USER, tools=[get_weather]
    )
    with pytest.raises(rxchat.APIConnectionError) as info:
        await runner.until_done()
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content
