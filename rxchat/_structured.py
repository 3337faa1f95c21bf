"""Structured output and tool definitions: JSON schemas, formats, validation.

(Parsing the JSON text as it streams is :mod:`rxchat._partial_json`'s work.)

What the OpenAI SDK calls ``response_format`` and ``tools`` handling, written for rxchat:

* :func:`pydantic_function_tool` turns a pydantic model into a ``strict`` function tool whose
  arguments are validated into that model; :func:`to_strict_json_schema` makes a model's JSON
  schema meet the API's ``strict`` rules; :func:`type_to_response_format_param` turns a model into
  the ``response_format`` request parameter.
* :class:`ContentFormat` and :class:`ToolSet` are what the stream state consults: how content is
  parsed (model, other type, plain JSON, or not at all), and which given tools have parseable
  arguments. Validation failures become :class:`~rxchat.errors.StructuredOutputError` carrying the
  raw text.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

import pydantic
from pydantic import BaseModel, TypeAdapter

from .errors import StructuredOutputError

__all__ = [
    "ContentFormat",
    "PydanticFunctionTool",
    "ToolSet",
    "ToolSpec",
    "pydantic_function_tool",
    "to_strict_json_schema",
    "type_to_response_format_param",
]


class PydanticFunctionTool(dict[str, Any]):
    """A function definition (``tool["function"]``) that remembers the model of its arguments.

    It is an ordinary dict for JSON encoding; ``.model`` tells the stream state to validate the
    arguments into that model.
    """

    model: type[BaseModel]

    def __init__(self, definition: Mapping[str, Any], model: type[BaseModel]) -> None:
        super().__init__(definition)
        self.model = model


def pydantic_function_tool(
    model: type[BaseModel],
    *,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Build a ``strict`` function tool from a pydantic model.

    Args:
        model: the model of the tool's arguments.
        name: the function name (default: the class name).
        description: the function description (default: the class docstring, if any).

    Returns:
        A ``{"type": "function", "function": {...}}`` tool for the ``tools`` request parameter;
        streams given this tool validate the call's arguments into ``model``.

    Raises:
        TypeError: ``model`` is not a pydantic model class.

    >>> from pydantic import BaseModel
    >>> class GetWeather(BaseModel):
    ...     '''Current weather in a city.'''
    ...     city: str
    >>> tool = pydantic_function_tool(GetWeather)
    >>> tool["function"]["name"], tool["function"]["strict"], tool["function"]["parameters"]["required"]
    ('GetWeather', True, ['city'])
    """
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(f"pydantic_function_tool() needs a pydantic model class, got {model!r}")
    if description is None:
        # the class's own docstring, not pydantic's inherited one
        description = model.__doc__
    function = PydanticFunctionTool(
        {
            "name": name or model.__name__,
            "strict": True,
            "parameters": to_strict_json_schema(model),
        },
        model,
    )
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


def to_strict_json_schema(model: type[BaseModel] | TypeAdapter[Any]) -> dict[str, Any]:
    """The JSON schema of a model, adjusted to the API's ``strict`` structured-output rules.

    Every object gets ``additionalProperties: false`` and lists all its properties as
    ``required``; ``null`` defaults are dropped; a ``$ref`` with sibling keys is inlined; a
    one-element ``allOf`` is merged into its parent.

    Args:
        model: a pydantic model class or a ``TypeAdapter``.

    Returns:
        The schema as a new dict.

    Raises:
        TypeError: ``model`` is neither.

    >>> from pydantic import BaseModel
    >>> class Point(BaseModel):
    ...     x: int
    ...     y: int = 0
    >>> to_strict_json_schema(Point)["required"]
    ['x', 'y']
    """
    if inspect.isclass(model) and issubclass(model, BaseModel):
        schema = model.model_json_schema()
    elif isinstance(model, TypeAdapter):
        schema = model.json_schema()
    else:
        raise TypeError(f"expected a pydantic model class or a TypeAdapter, got {model!r}")
    return _strict(schema, root=schema, path=())


def _strict(node: object, *, root: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise TypeError(f"expected a JSON schema object at {'/'.join(path) or '<root>'}: {node!r}")
    for defs_key in ("$defs", "definitions"):
        defs = node.get(defs_key)
        if isinstance(defs, dict):
            for def_name, def_schema in defs.items():
                _strict(def_schema, root=root, path=(*path, defs_key, def_name))

    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False

    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties)
        node["properties"] = {
            key: _strict(value, root=root, path=(*path, "properties", key))
            for key, value in properties.items()
        }

    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _strict(items, root=root, path=(*path, "items"))

    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        node["anyOf"] = [
            _strict(variant, root=root, path=(*path, "anyOf", str(i)))
            for i, variant in enumerate(any_of)
        ]

    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.update(_strict(all_of[0], root=root, path=(*path, "allOf", "0")))
            node.pop("allOf")
        else:
            node["allOf"] = [
                _strict(entry, root=root, path=(*path, "allOf", str(i)))
                for i, entry in enumerate(all_of)
            ]

    # a None default says nothing the (nullable) schema does not already say
    if "default" in node and node["default"] is None:
        node.pop("default")

    # strict mode forbids "$ref" next to other keys: inline the target (the node's own keys win)
    ref = node.get("$ref")
    if ref is not None and len(node) > 1:
        if not isinstance(ref, str):
            raise TypeError(f"$ref must be a string at {'/'.join(path) or '<root>'}: {ref!r}")
        target = _resolve_ref(root, ref)
        merged = {**target, **node}
        merged.pop("$ref")
        node.clear()
        node.update(merged)
        # the inlined target may itself need the strict adjustments
        return _strict(node, root=root, path=path)
    return node


def _resolve_ref(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"unsupported $ref {ref!r}: only local references (#/...) are resolved")
    target: Any = root
    for key in ref[2:].split("/"):
        if not isinstance(target, dict) or key not in target:
            raise ValueError(f"$ref {ref!r} does not resolve")
        target = target[key]
    if not isinstance(target, dict):
        raise ValueError(f"$ref {ref!r} resolves to {target!r}, not a schema object")
    return target


def type_to_response_format_param(response_format: Any) -> dict[str, Any] | None:
    """The ``response_format`` request parameter for a model, type or parameter dict.

    Args:
        response_format: a pydantic model class (or a type pydantic can describe, such as a
            pydantic dataclass), ``dict`` for plain JSON mode, a ready parameter dict (returned
            as is), or ``None``.

    Returns:
        ``{"type": "json_schema", "json_schema": {"name", "schema", "strict": True}}`` for a model
        or type, ``{"type": "json_object"}`` for ``dict``, ``None`` for ``None``.

    Raises:
        TypeError: pydantic cannot build a JSON schema for the type.

    >>> type_to_response_format_param(dict)
    {'type': 'json_object'}
    """
    if response_format is None:
        return None
    if isinstance(response_format, dict):
        return response_format
    if response_format is dict:
        return {"type": "json_object"}
    if inspect.isclass(response_format) and issubclass(response_format, BaseModel):
        schema = to_strict_json_schema(response_format)
    else:
        schema = to_strict_json_schema(_adapter(response_format))
    name = getattr(response_format, "__name__", None) or "response"
    return {"type": "json_schema", "json_schema": {"schema": schema, "name": name, "strict": True}}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp)
    except pydantic.PydanticUserError as err:
        raise TypeError(f"unsupported response_format type {tp!r}: {err}") from None


def _summary(err: Exception) -> str:
    if isinstance(err, pydantic.ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in err.errors()[:3]
        )
        more = err.error_count() - 3
        return problems + (f" (and {more} more)" if more > 0 else "")
    return str(err)


class ContentFormat:
    """How message content is parsed: into a model, another type, plain JSON, or not at all.

    Built from the ``response_format`` option: a pydantic model class validates into the model
    (as the SDKs do); another class pydantic can validate (a pydantic dataclass, a TypedDict ...)
    goes through a ``TypeAdapter``; ``dict`` means plain JSON, any value, no validation; a
    parameter dict (``{"type": "json_object"}``, ...) and ``None`` mean no parsing, as in the SDKs.
    """

    __slots__ = ("_adapter", "kind", "name", "target")

    kind: Literal["model", "adapter", "json"]

    def __init__(self, kind: Literal["model", "adapter", "json"], target: Any) -> None:
        self.kind = kind
        self.target = target
        self.name: str = getattr(target, "__name__", None) or repr(target)
        self._adapter = _adapter(target) if kind == "adapter" else None

    @classmethod
    def from_response_format(cls, response_format: Any) -> ContentFormat | None:
        """The format for a ``response_format`` option (``None``: content is not parsed)."""
        if response_format is None or isinstance(response_format, Mapping):
            return None
        if response_format is dict:
            return cls("json", dict)
        if inspect.isclass(response_format) and issubclass(response_format, BaseModel):
            return cls("model", response_format)
        if inspect.isclass(response_format) or hasattr(response_format, "__origin__"):
            return cls("adapter", response_format)
        raise TypeError(
            "response_format must be a pydantic model class, a type pydantic can validate, "
            f"dict, a response_format parameter dict, or None; got {response_format!r}"
        )

    def validate(self, text: str) -> Any:
        """Validate complete JSON text (model and adapter kinds).

        Raises:
            StructuredOutputError: the text is not valid JSON or does not validate.
        """
        try:
            if self.kind == "model":
                return cast(type[BaseModel], self.target).model_validate_json(text)
            assert self._adapter is not None
            return self._adapter.validate_json(text)
        except (pydantic.ValidationError, ValueError) as err:
            raise StructuredOutputError(
                f"the content does not validate as {self.name}: {_summary(err)}", raw=text
            ) from err


class ToolSpec:
    """One given function tool: its name and how its arguments are parsed."""

    __slots__ = ("kind", "model", "name")

    def __init__(self, name: str, kind: Literal["model", "json"] | None, model: Any) -> None:
        self.name = name
        self.kind = kind  # None: not parsed (a non-strict dict tool)
        self.model: type[BaseModel] | None = model

    def validate(self, text: str) -> Any:
        """Validate complete arguments text into the tool's model (``model`` kind).

        Raises:
            StructuredOutputError: the text is not valid JSON or does not validate.
        """
        assert self.model is not None
        try:
            return self.model.model_validate_json(text)
        except (pydantic.ValidationError, ValueError) as err:
            raise StructuredOutputError(
                f"the arguments of the call to {self.name!r} do not validate as "
                f"{self.model.__name__}: {_summary(err)}",
                raw=text,
            ) from err


class ToolSet:
    """The ``tools`` option, normalised: the tool dicts as sent, and a lookup by name.

    Accepts pydantic model classes (made into tools with :func:`pydantic_function_tool`), tool
    dicts from :func:`pydantic_function_tool` (rxchat's or the OpenAI SDK's), and plain tool dicts.
    A function tool's arguments are parsed when it has a model, or as plain JSON when its
    definition says ``"strict": true``; other tools are not parsed, as in the SDKs.
    """

    __slots__ = ("_by_name", "given", "parseable", "tools")

    def __init__(self, tools: Iterable[Any] | None) -> None:
        self.given = tools is not None
        self.tools: list[dict[str, Any]] = []
        self._by_name: dict[str, ToolSpec] = {}
        for tool in tools or ():
            if inspect.isclass(tool) and issubclass(tool, BaseModel):
                tool = pydantic_function_tool(tool)
            if not isinstance(tool, Mapping):
                raise TypeError(
                    f"a tool must be a pydantic model class or a tool dict, got {tool!r}"
                )
            self.tools.append(cast(dict[str, Any], tool))
            if tool.get("type") != "function":
                continue
            function = tool.get("function")
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise TypeError(f"a function tool needs function.name: {tool!r}")
            name = function["name"]
            model = getattr(function, "model", None)
            if inspect.isclass(model) and issubclass(model, BaseModel):
                spec = ToolSpec(name, "model", model)
            elif function.get("strict"):
                spec = ToolSpec(name, "json", None)
            else:
                spec = ToolSpec(name, None, None)
            # the first tool of a name wins, as in the SDKs
            self._by_name.setdefault(name, spec)
        self.parseable = any(spec.kind is not None for spec in self._by_name.values())

    def get(self, name: str | None) -> ToolSpec | None:
        """The function tool of that name, or None."""
        return self._by_name.get(name) if name is not None else None

    def __bool__(self) -> bool:
        return bool(self.tools)
