"""Chunk models read from JSON by the optional C extension ``rxchat._speedups``.

pydantic-core's ``validate_json`` costs about 3.1 µs for an ordinary chunk (three model
instances: chunk, choice, delta), three times ``orjson.loads`` of the same payload. The extension
reads the JSON once and builds the same instances as it goes. It decides only what it can build
exactly as pydantic would: values that need no conversion (strings for ``str``, integer literals
for ``int``, numbers for ``float``, ``null`` for optional fields, objects and arrays for models and
lists). Anything else — invalid JSON, a missing required field, a number where a string belongs,
a lax conversion pydantic would make, a duplicated key — is handed back (``None`` in its slot) and
the caller gives that payload to pydantic, which builds it or raises its ``ValidationError``. So
every chunk is the model pydantic would build, and every rejection is pydantic's.

A plan per model class is derived from its pydantic fields; a class the builder cannot mirror
exactly (validators, aliases, default factories, other field types, ``extra`` other than
``"allow"``) has no plan and goes to pydantic whole. At import the builder is checked against
pydantic on sample chunks; any difference and it is not used. Without a C compiler at install
time the extension is absent and everything goes through pydantic: same results, slower.
``RXCHAT_NO_SPEEDUPS=1`` in the environment (read at import) does the same on purpose.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel

from ._compat import instance_state, json_validator, plain_model_class
from .types import ChatCompletionChunk

__all__ = ["build_chunks", "c_builder", "models_identical"]

try:
    from . import _speedups
except ImportError:  # built without a C compiler: pydantic does all the work
    _speedups = None  # type: ignore[assignment, unused-ignore]


class _Unsupported(Exception):
    """The class cannot be mirrored exactly."""


def _plan(cls: type[BaseModel], plans: dict[type[BaseModel], Any]) -> Any:
    if cls in plans:
        return plans[cls]
    assert _speedups is not None
    sp = _speedups
    if cls.model_config.get("extra") != "allow" or not plain_model_class(cls):
        raise _Unsupported(cls.__name__)
    fields: list[tuple[str, int, Any, Any]] = []
    for name, info in cls.model_fields.items():
        fields.append(_field(cls, name, info, plans))
    plan = sp.Plan(cls, tuple(fields))
    plans[cls] = plan
    return plan


def _field(
    cls: type[BaseModel], name: str, info: Any, plans: dict[type[BaseModel], Any]
) -> tuple[str, int, Any, Any]:
    """The (name, kind, sub-plan, default) of one field."""
    assert _speedups is not None
    sp = _speedups
    if info.alias or info.validation_alias or info.metadata:
        raise _Unsupported(f"{cls.__name__}.{name}")
    if info.default_factory is not None:
        # A model built by its factory when the key is missing (ChunkChoice.delta): read when
        # present; a payload without it is left to pydantic, which calls the factory.
        annotation = info.annotation
        if not (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and info.default_factory is annotation
        ):
            raise _Unsupported(f"{cls.__name__}.{name}: default factory")
        try:
            return (name, sp.K_MODEL | sp.K_REQUIRED, _plan(annotation, plans), None)
        except _Unsupported:
            return (name, sp.K_DEFER | sp.K_REQUIRED, None, None)
    try:
        return _mirrored_field(cls, name, info, plans)
    except _Unsupported:
        # A type the reader does not mirror (a union, dict[str, bool], ...): a payload that has
        # the field goes to pydantic; one without it takes the default, as pydantic does.
        default = info.default
        if info.is_required() or not isinstance(default, str | int | float | type(None)):
            raise
        nullable = type(None) in typing.get_args(info.annotation)
        return (name, sp.K_DEFER | (sp.K_NULLABLE if nullable else 0), None, default)


def _mirrored_field(
    cls: type[BaseModel], name: str, info: Any, plans: dict[type[BaseModel], Any]
) -> tuple[str, int, Any, Any]:
    assert _speedups is not None
    sp = _speedups
    annotation = info.annotation
    kind = 0
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise _Unsupported(f"{cls.__name__}.{name}")
        kind |= sp.K_NULLABLE
        annotation = rest[0]
        args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    sub = None
    if annotation is str:
        kind |= sp.K_STR
    elif annotation is int:
        kind |= sp.K_INT
    elif annotation is float:
        kind |= sp.K_FLOAT
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        kind |= sp.K_MODEL
        sub = _plan(annotation, plans)
    elif origin is list and len(args) == 1 and args[0] is int:
        kind |= sp.K_LIST_INT
    elif (
        origin is list
        and len(args) == 1
        and isinstance(args[0], type)
        and issubclass(args[0], BaseModel)
    ):
        kind |= sp.K_LIST_MODEL
        sub = _plan(args[0], plans)
    elif origin is dict and args == (str, Any):
        kind |= sp.K_DICT
    else:
        raise _Unsupported(f"{cls.__name__}.{name}: {info.annotation}")
    default = info.default
    if info.is_required():
        kind |= sp.K_REQUIRED
        default = None
    elif type(default) is list and not default:
        kind |= sp.K_FRESH_LIST
    elif not isinstance(default, str | int | float | type(None)):
        raise _Unsupported(f"{cls.__name__}.{name}: default {default!r}")
    return (name, kind, sub, default)


def models_identical(a: Any, b: Any) -> bool:
    """Equal as pydantic's ``==`` sees it, and also the same classes and fields set, all the way
    down (``==`` ignores which fields were set)."""
    if isinstance(a, BaseModel):
        if type(a) is not type(b):
            return False
        values_a, *rest_a = instance_state(a)
        values_b, *rest_b = instance_state(b)
        return (
            rest_a == rest_b
            and list(values_a) == list(values_b)
            and all(models_identical(v, values_b[k]) for k, v in values_a.items())
        )
    if isinstance(a, list):
        return (
            type(b) is list
            and len(a) == len(b)
            and all(models_identical(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


_SAMPLES = [
    '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"f",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    '"logprobs":null,"finish_reason":null}]}',
    '{"id":"c","created":1,"model":"m","x":{"y":[1]},"choices":[{"index":0,"delta":{"tool_calls":'
    '[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\\""}}]},'
    '"finish_reason":null}]}',
    '{"id":"c","choices":[{"index":1,"delta":{},"logprobs":{"content":[{"token":"a",'
    '"logprob":-0.5,"bytes":[97],"top_logprobs":[{"token":"a","logprob":-0.5,"bytes":null}]}]},'
    '"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,'
    '"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}',
    '{"id":"c","choices":[],"usage":{"prompt_tokens":1}}',
]


def c_builder() -> Callable[[list[str]], list[ChatCompletionChunk | None]] | None:
    """The C builder, checked against pydantic; ``None`` when it is not built or differs."""
    if _speedups is None:
        return None
    try:
        plan = _plan(ChatCompletionChunk, {})
    except _Unsupported:
        return None
    build_all = _speedups.build_all

    def build(payloads: list[str]) -> list[ChatCompletionChunk | None]:
        return cast("list[ChatCompletionChunk | None]", build_all(plan, payloads))

    validate = json_validator(ChatCompletionChunk)
    built = build(_SAMPLES)
    for raw, fast in zip(_SAMPLES, built, strict=True):
        if fast is None or not models_identical(fast, validate(raw)):
            return None  # this pydantic builds differently: leave it all to pydantic
    return build


build_chunks = (
    None if os.environ.get("RXCHAT_NO_SPEEDUPS", "") not in ("", "0") else c_builder()
)
"""``build_chunks(payloads)``: a chunk per payload, ``None`` where pydantic must decide; or
``None`` itself when the C builder is unavailable."""
