"""Structured outputs and tool calls from the mock server validate against their schemas."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

import jsonschema
import orjson
import pytest
from mock_helpers import Post
from pydantic import BaseModel, Field

from rxchat.mock import SchemaError, generate_instance
from rxchat.mock._schema import matches


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


class GetWeatherArgs(BaseModel):
    """Get the temperature for the given country/city combo"""

    city: str
    country: str
    units: Literal["c", "f"] = "c"


class GetStockPrice(BaseModel):
    ticker: str
    exchange: str


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Node(BaseModel):
    name: str
    children: list[Node] = Field(default_factory=list)
    parent: Node | None = None


class Order(BaseModel):
    id: int = Field(ge=10, le=20)
    price: float = Field(gt=0, lt=1)
    color: Color
    tags: list[str] = Field(min_length=3, max_length=5)
    note: str | None
    code: str = Field(min_length=8, max_length=8)
    location: Location


SCHEMAS: dict[str, dict[str, Any]] = {
    "location": Location.model_json_schema(),
    "weather_args": GetWeatherArgs.model_json_schema(),
    "stock": GetStockPrice.model_json_schema(),
    "recursive_node": Node.model_json_schema(),
    "order": Order.model_json_schema(),
    "type_lists": {
        "type": "object",
        "properties": {
            "a": {"type": ["string", "null"]},
            "b": {"type": ["null", "integer"]},
            "c": {"type": "boolean"},
            "d": {"type": "null"},
            "e": {"const": {"fixed": [1, 2]}},
            "f": {"type": "number", "multipleOf": 0.5, "minimum": 3},
            "g": {"type": "integer", "multipleOf": 7, "exclusiveMinimum": 0},
        },
        "required": ["a", "b", "c", "d", "e", "f", "g"],
        "additionalProperties": False,
    },
    "one_of": {
        "type": "object",
        "properties": {
            "shape": {
                "oneOf": [
                    {"type": "object", "properties": {"r": {"type": "number"}}, "required": ["r"]},
                    {
                        "type": "object",
                        "properties": {"w": {"type": "number"}, "h": {"type": "number"}},
                        "required": ["w", "h"],
                        "additionalProperties": False,
                    },
                ]
            },
            "either": {"anyOf": [{"type": "string", "enum": ["x", "y"]}, {"type": "integer"}]},
        },
        "required": ["shape", "either"],
    },
    "definitions_ref": {
        "definitions": {
            "item": {"type": "object", "properties": {"q": {"type": "integer"}}, "required": ["q"]}
        },
        "type": "array",
        "items": {"$ref": "#/definitions/item"},
        "minItems": 4,
        "uniqueItems": True,
    },
    "formats": {
        "type": "object",
        "properties": {
            k: {"type": "string", "format": k}
            for k in ("date-time", "date", "email", "uuid", "uri")
        },
        "required": ["date-time", "date", "email", "uuid", "uri"],
    },
    "tuple": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
    },
    "all_of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ]
    },
    "free_form": {"type": "object", "required": ["anything"], "minProperties": 3},
}


def _rf(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_generated_instances_validate(name: str) -> None:
    schema = SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema)
    for seed in range(25):
        value = generate_instance(schema, seed)
        validator.validate(value)
        assert matches(schema, value)
    assert generate_instance(schema, 3) == generate_instance(schema, 3)


def test_unsatisfiable_schemas_raise() -> None:
    with pytest.raises(SchemaError):
        generate_instance({"type": "integer", "minimum": 5, "maximum": 1}, 0)
    with pytest.raises(SchemaError):
        generate_instance({"$ref": "#/$defs/missing"}, 0)
    with pytest.raises(SchemaError):
        generate_instance(False, 0)
    with pytest.raises(SchemaError):
        generate_instance({"type": "object", "required": ["x"], "additionalProperties": False}, 0)


def test_matches_rejects_what_jsonschema_rejects() -> None:
    schema = SCHEMAS["order"]
    good = generate_instance(schema, 1)
    bad = [
        {**good, "id": 9},
        {**good, "color": "green"},
        {**good, "tags": ["a"]},
        {k: v for k, v in good.items() if k != "note"},
        {**good, "location": {**good["location"], "units": "k"}},
        {**good, "price": 1},
    ]
    for value in bad:
        assert not matches(schema, value)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema)


@pytest.mark.parametrize("name", ["location", "recursive_node", "order", "one_of", "type_lists"])
async def test_json_schema_stream_validates(post: Post, name: str) -> None:
    schema = SCHEMAS[name]
    r = await post(stream=True, response_format=_rf(name, schema), n=2)
    for i in range(2):
        text = r.content(i)
        jsonschema.validate(json.loads(text), schema)
    pieces = [
        c["choices"][0]["delta"]["content"]
        for c in r.chunks
        if c["choices"][0]["delta"].get("content")
    ]
    assert len(pieces) > 5
    assert max(len(p) for p in pieces) <= 6
    full = (await post(response_format=_rf(name, schema), n=2)).json
    assert [c["message"]["content"] for c in full["choices"]] == [r.content(0), r.content(1)]


async def test_json_schema_truncated_by_max_tokens(post: Post) -> None:
    r = await post(stream=True, response_format=_rf("Location", SCHEMAS["location"]), max_tokens=1)
    assert len(r.chunks) == 3
    assert r.content() == '{"'  # the corpus recording structured_max_tokens_1.sse says the same
    assert r.chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_json_object_format(post: Post) -> None:
    r = await post(stream=True, response_format={"type": "json_object"}, tokens=30)
    value = json.loads(r.content())
    assert isinstance(value, dict)
    assert value["tokens"] == 30


def _tool(model: type[BaseModel], name: str | None = None) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name or model.__name__,
            "description": model.__doc__ or "",
            "parameters": model.model_json_schema(),
            "strict": True,
        },
    }


TOOLS = [
    _tool(GetWeatherArgs),
    _tool(GetStockPrice, "get_stock_price"),
    _tool(Order, "place_order"),
]


def _calls(chunks: list[dict[str, Any]], choice: int = 0) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        if not c["choices"] or c["choices"][0]["index"] != choice:
            continue
        for tc in c["choices"][0]["delta"].get("tool_calls") or []:
            if "id" in tc:
                assert tc["index"] not in calls
                assert tc["type"] == "function" and tc["function"]["arguments"] == ""
                assert set(tc) == {"index", "id", "type", "function"}
                assert tc["id"].startswith("call_")
                calls[tc["index"]] = {
                    "id": tc["id"],
                    "name": tc["function"]["name"],
                    "arguments": "",
                }
            else:
                assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
                calls[tc["index"]]["arguments"] += tc["function"]["arguments"]
    return calls


async def test_tool_call_stream_shape_and_validity(post: Post) -> None:
    r = await post(stream=True, tools=TOOLS, stream_options={"include_usage": True})
    chunks = r.chunks
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None and first["refusal"] is None
    assert first["tool_calls"][0]["function"]["name"] == "GetWeatherArgs"
    calls = _calls(chunks)
    assert list(calls) == [0]
    jsonschema.validate(json.loads(calls[0]["arguments"]), TOOLS[0]["function"]["parameters"])
    arg_chunks = [c for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert len(arg_chunks) > 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(arg_chunks) - 1


async def test_parallel_tools_and_tool_choice(post: Post) -> None:
    r = await post(stream=True, tools=TOOLS, model="mock?parallel_tools=3")
    calls = _calls(r.chunks)
    assert [calls[k]["name"] for k in sorted(calls)] == [
        "GetWeatherArgs",
        "get_stock_price",
        "place_order",
    ]
    for k, tool in enumerate(TOOLS):
        jsonschema.validate(json.loads(calls[k]["arguments"]), tool["function"]["parameters"])
    assert len({c["id"] for c in calls.values()}) == 3

    serial = await post(
        stream=True, tools=TOOLS, model="mock?parallel_tools=3", parallel_tool_calls=False
    )
    assert len(_calls(serial.chunks)) == 1

    named = await post(
        stream=True,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "place_order"}},
    )
    (only,) = _calls(named.chunks).values()
    assert only["name"] == "place_order"
    jsonschema.validate(json.loads(only["arguments"]), TOOLS[2]["function"]["parameters"])

    required = await post(stream=True, tools=TOOLS, tool_choice="required")
    assert [c["name"] for c in _calls(required.chunks).values()] == ["GetWeatherArgs"]

    none = await post(stream=True, tools=TOOLS, tool_choice="none", tokens=4)
    assert _calls(none.chunks) == {}
    assert none.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len(none.content().split()) == 4


async def test_tool_without_parameters_and_dict_tool(post: Post) -> None:
    tools = [
        {"type": "function", "function": {"name": "ping"}},
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "state": {"type": "string"}},
                    "required": ["city", "state"],
                    "additionalProperties": False,
                },
            },
        },
    ]
    r = await post(stream=True, tools=tools, headers={"X-Mock-Parallel-Tools": "2"})
    calls = _calls(r.chunks)
    assert json.loads(calls[0]["arguments"]) == {}
    jsonschema.validate(json.loads(calls[1]["arguments"]), tools[1]["function"]["parameters"])


async def test_tool_calls_with_reasoning_and_n(post: Post) -> None:
    r = await post(stream=True, tools=TOOLS[:1], n=2, model="mock?reasoning=3")
    for i in range(2):
        calls = _calls(r.chunks, i)
        assert len(calls) == 1
        jsonschema.validate(json.loads(calls[0]["arguments"]), TOOLS[0]["function"]["parameters"])
    first = r.chunks[0]["choices"][0]["delta"]
    assert "tool_calls" not in first  # with reasoning first, the tool header comes after it


async def test_non_streaming_tool_calls(post: Post) -> None:
    stream = await post(stream=True, tools=TOOLS, model="mock?parallel_tools=2")
    body = (await post(tools=TOOLS, model="mock?parallel_tools=2")).json
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    streamed = _calls(stream.chunks)
    assert [(t["function"]["name"], t["function"]["arguments"]) for t in message["tool_calls"]] == [
        (streamed[k]["name"], streamed[k]["arguments"]) for k in (0, 1)
    ]
    assert all(
        t["type"] == "function" and t["id"].startswith("call_") for t in message["tool_calls"]
    )


async def test_tool_args_truncated_by_max_tokens(post: Post) -> None:
    r = await post(stream=True, tools=TOOLS, max_tokens=3)
    calls = _calls(r.chunks)
    assert r.chunks[-1]["choices"][0]["finish_reason"] == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(calls[0]["arguments"])


async def test_unsatisfiable_schema_is_a_400(post: Post) -> None:
    r = await post(
        stream=True, response_format=_rf("x", {"type": "integer", "minimum": 2, "maximum": 1})
    )
    assert r.status == 400
    err = orjson.loads(r.raw)["error"]
    assert err["param"] == "response_format.json_schema.schema"
