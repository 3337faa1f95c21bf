"""extract_tool_calls: partial then validated arguments, parallel calls, unknown tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import openai
import pytest
import reactivex
from pydantic import BaseModel
from reactivex import operators as rops

from rxchat import ChunkDecoder, pydantic_function_tool
from rxchat.errors import UnknownToolError
from rxchat.operators import extract_tool_calls, parse_structured
from rxchat.operators._accumulate import AccumulatedObservable, accumulate
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


class GetWeatherArgs(BaseModel):
    """Get the temperature for the given country/city combo"""

    city: str
    country: str
    units: Literal["c", "f"] = "c"


class GetStockPrice(BaseModel):
    ticker: str
    exchange: str


class Location(BaseModel):
    city: str


def corpus(name: str) -> reactivex.Observable[ChatCompletionChunk]:
    return reactivex.from_iterable(ChunkDecoder().feed((CORPUS / name).read_bytes()))


def run(observable: reactivex.Observable[Any]) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, (errors[0] if errors else None)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


TOOLS = [GetWeatherArgs, pydantic_function_tool(GetStockPrice, name="get_stock_price")]


def test_parallel_calls_each_get_their_done() -> None:
    events, error = run(
        corpus("two_pydantic_tools.sse").pipe(accumulate(), extract_tool_calls(TOOLS))
    )
    assert error is None
    done = of_type(events, "tool_calls.function.arguments.done")
    assert [(e.index, e.name) for e in done] == [(0, "GetWeatherArgs"), (1, "get_stock_price")]
    assert done[0].parsed_arguments == GetWeatherArgs(city="Edinburgh", country="GB", units="c")
    assert done[1].parsed_arguments == GetStockPrice(ticker="AAPL", exchange="NASDAQ")
    partial = [e.parsed_arguments for e in of_type(events, "tool_calls.function.arguments.delta")]
    assert {} in partial and {"ticker": "AAPL"} in partial
    snapshot = events[0].snapshot  # the live completion
    calls = snapshot.choices[0].message.tool_calls
    assert [c.function.parsed_arguments for c in calls] == [e.parsed_arguments for e in done]


def test_tool_forms_give_the_same_result() -> None:
    forms = [
        [GetWeatherArgs],
        [pydantic_function_tool(GetWeatherArgs)],
        [openai.pydantic_function_tool(GetWeatherArgs)],
    ]
    results = []
    for tools in forms:
        events, error = run(corpus("pydantic_tool.sse").pipe(extract_tool_calls(tools)))
        assert error is None
        results.append(
            [e.model_dump() for e in of_type(events, "tool_calls.function.arguments.done")]
        )
    assert results[0] == results[1] == results[2]
    assert results[0][0]["parsed_arguments"]["city"] == "Edinburgh"


def test_strict_dict_tool_is_parsed_and_non_strict_is_not() -> None:
    strict = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "state": {"type": "string"}},
                "required": ["city", "state"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
    events, error = run(corpus("strict_dict_tool.sse").pipe(extract_tool_calls([strict])))
    assert error is None
    done = of_type(events, "tool_calls.function.arguments.done")[0]
    assert isinstance(done.parsed_arguments, dict) and "city" in done.parsed_arguments

    loose = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    events, error = run(corpus("non_strict_tool.sse").pipe(extract_tool_calls([loose])))
    assert error is None
    assert all(
        e.parsed_arguments is None
        for e in events
        if e.type.startswith("tool_calls.function.arguments")
    )


def test_unknown_tool_is_a_typed_error_carrying_the_calls() -> None:
    events, error = run(corpus("two_pydantic_tools.sse").pipe(extract_tool_calls([GetWeatherArgs])))
    assert isinstance(error, UnknownToolError)
    assert error.name == "get_stock_price"
    assert error.completion is not None
    calls = error.completion.choices[0].message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == [
        "GetWeatherArgs",
        "get_stock_price",
    ]
    assert len(of_type(events, "tool_calls.function.arguments.done")) == 1


def test_reconfigures_accumulate_and_keeps_its_response_format() -> None:
    source = corpus("pydantic_tool.sse")
    fused = source.pipe(accumulate(), parse_structured(Location), extract_tool_calls(TOOLS))
    assert isinstance(fused, AccumulatedObservable)
    assert fused.options["response_format"] is Location and fused.upstream is source
    generic = source.pipe(accumulate(response_format=Location), rops.filter(lambda e: True))
    events, error = run(generic.pipe(extract_tool_calls(TOOLS)))
    assert error is None
    assert isinstance(
        of_type(events, "tool_calls.function.arguments.done")[0].parsed_arguments, GetWeatherArgs
    )


def test_bad_tools_fail_at_call_time() -> None:
    with pytest.raises(TypeError):
        extract_tool_calls(["GetWeatherArgs"])
