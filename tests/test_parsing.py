"""Tool and response-format helpers: the same schemas and request parameters as the OpenAI SDK."""

from __future__ import annotations

import enum
from typing import Any, Literal

import openai
import pytest
from openai.lib._parsing._completions import (
    type_to_response_format_param as openai_response_format_param,
)
from openai.lib._pydantic import to_strict_json_schema as openai_strict_schema
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from rxchat._parsing import (
    ContentFormat,
    PydanticFunctionTool,
    ToolSet,
    pydantic_function_tool,
    to_strict_json_schema,
    type_to_response_format_param,
)
from rxchat.errors import StructuredOutputError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    city: str = Field(description="the city")


class Person(BaseModel):
    """A person."""

    name: str
    age: int | None = None
    nicknames: list[str] = []
    home: Address = Field(description="where they live")
    work: Address | None = None
    favourite: Color = Color.RED
    tags: dict[str, int] = {}


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


class Units(BaseModel):
    units: Literal["c", "f"] = "c"


@dataclass
class Point:
    x: int
    y: int


MODELS = [Person, Tree, Units, Address]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_strict_schema_equals_openai(model: type[BaseModel]) -> None:
    assert to_strict_json_schema(model) == openai_strict_schema(model)


def test_strict_schema_of_type_adapter_equals_openai() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(Point)
    assert to_strict_json_schema(adapter) == openai_strict_schema(adapter)


def test_strict_schema_rules() -> None:
    schema = to_strict_json_schema(Person)
    assert schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"])
    home = schema["properties"]["home"]
    assert "$ref" not in home and home["description"] == "where they live"
    assert home["additionalProperties"] is False
    assert "default" not in schema["properties"]["work"]
    with pytest.raises(TypeError):
        to_strict_json_schema(dict)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_pydantic_function_tool_equals_openai(model: type[BaseModel]) -> None:
    ours = pydantic_function_tool(model)
    theirs = openai.pydantic_function_tool(model)
    assert ours == theirs
    assert isinstance(ours["function"], PydanticFunctionTool)
    assert ours["function"].model is model
    named = pydantic_function_tool(model, name="n", description="d")
    assert named == openai.pydantic_function_tool(model, name="n", description="d")


def test_pydantic_function_tool_rejects_non_models() -> None:
    with pytest.raises(TypeError):
        pydantic_function_tool(dict)  # type: ignore[arg-type]


@pytest.mark.parametrize("response_format", [Person, Tree, Point, {"type": "json_object"}])
def test_response_format_param_equals_openai(response_format: Any) -> None:
    assert type_to_response_format_param(response_format) == openai_response_format_param(
        response_format
    )


def test_response_format_param_for_dict_and_none() -> None:
    assert type_to_response_format_param(dict) == {"type": "json_object"}
    assert type_to_response_format_param(None) is None


def test_content_format_kinds() -> None:
    assert ContentFormat.from_response_format(None) is None
    assert ContentFormat.from_response_format({"type": "json_object"}) is None
    fmt = ContentFormat.from_response_format(Units)
    assert fmt is not None and fmt.kind == "model"
    assert fmt.validate('{"units": "f"}') == Units(units="f")
    with pytest.raises(StructuredOutputError) as info:
        fmt.validate('{"units": "k"}')
    assert info.value.raw == '{"units": "k"}'
    point = ContentFormat.from_response_format(Point)
    assert point is not None and point.kind == "adapter"
    assert point.validate('{"x": 1, "y": 2}') == Point(1, 2)
    with pytest.raises(StructuredOutputError, match="Point"):
        point.validate("{")
    with pytest.raises(TypeError):
        ContentFormat.from_response_format("json")


def test_tool_set_lookup_and_kinds() -> None:
    raw = {"type": "function", "function": {"name": "raw", "parameters": {}}}
    strict = {"type": "function", "function": {"name": "strict", "parameters": {}, "strict": True}}
    tools = ToolSet([Units, raw, strict, openai.pydantic_function_tool(Address)])
    assert [t["function"]["name"] for t in tools.tools] == ["Units", "raw", "strict", "Address"]
    kinds = {name: tools.get(name).kind for name in ("Units", "raw", "strict", "Address")}  # type: ignore[union-attr]
    assert kinds == {"Units": "model", "raw": None, "strict": "json", "Address": "model"}
    assert tools.get("missing") is None and tools.parseable
    assert not ToolSet([raw]).parseable
    with pytest.raises(TypeError):
        ToolSet([{"type": "function", "function": {"parameters": {}}}])
