"""tool_calls: each completed call once, with id and parsed arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import reactivex
from pydantic import BaseModel
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChunkDecoder, pydantic_function_tool
from rxchat.errors import UnknownToolError
from rxchat.operators import accumulate, extract_tool_calls, tool_calls
from rxchat.types import ChatCompletionChunk, ParsedFunctionToolCall

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed


class GetWeatherArgs(BaseModel):
    city: str
    country: str
    units: Literal["c", "f"] = "c"


class GetStockPrice(BaseModel):
    ticker: str
    exchange: str


def corpus(name: str) -> list[ChatCompletionChunk]:
    return ChunkDecoder().feed((CORPUS / name).read_bytes())


def collect(observable: reactivex.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, errors


def test_each_call_once_with_parsed_arguments() -> None:
    tools = [GetWeatherArgs, pydantic_function_tool(GetStockPrice, name="get_stock_price")]
    calls, errors = collect(
        reactivex.from_iterable(corpus("two_pydantic_tools.sse")).pipe(
            accumulate(), extract_tool_calls(tools), tool_calls()
        )
    )
    assert not errors
    assert all(isinstance(c, ParsedFunctionToolCall) for c in calls)
    assert [c.id for c in calls] == [
        "call_JMW1whyEaYG438VE1OIflxA2",
        "call_DNYTawLBoN8fj3KN6qU9N1Ou",
    ]
    assert calls[0].function.parsed_arguments == GetWeatherArgs(city="Edinburgh", country="GB")
    assert calls[1].function.parsed_arguments == GetStockPrice(ticker="AAPL", exchange="NASDAQ")


def test_from_chunks_without_tools() -> None:
    calls, errors = collect(
        reactivex.from_iterable(corpus("two_pydantic_tools.sse")).pipe(tool_calls())
    )
    assert not errors and [c.function.name for c in calls] == ["GetWeatherArgs", "get_stock_price"]
    assert all(c.function.parsed_arguments is None for c in calls)
    assert calls[1].function.arguments == '{"ticker": "AAPL", "exchange": "NASDAQ"}'


def test_a_call_is_emitted_when_the_next_one_starts() -> None:
    def chunk(tool: dict[str, Any] | None = None, finish: str | None = None) -> ChatCompletionChunk:
        delta = {"tool_calls": [tool]} if tool else {}
        return ChatCompletionChunk.from_wire(
            {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(
            210,
            chunk(
                {
                    "index": 0,
                    "id": "a",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
            ),
        ),
        on_next(
            220,
            chunk(
                {
                    "index": 1,
                    "id": "b",
                    "type": "function",
                    "function": {"name": "g", "arguments": "{}"},
                }
            ),
        ),
        on_next(230, chunk(finish="tool_calls")),
        on_completed(240),
    )
    results = scheduler.start(lambda: xs.pipe(accumulate(), tool_calls()))
    assert [
        (m.time, m.value.kind, getattr(m.value, "value", None) and m.value.value.id)
        for m in results.messages
    ] == [
        (220, "N", "a"),
        (230, "N", "b"),
        (240, "C", None),
    ]


def test_unknown_tool_error() -> None:
    _, errors = collect(
        reactivex.from_iterable(corpus("two_pydantic_tools.sse")).pipe(
            extract_tool_calls([GetWeatherArgs]), tool_calls()
        )
    )
    assert isinstance(errors[0], UnknownToolError) and errors[0].completion is not None
