"""Every attribute path of openai's ChatCompletion, ChatCompletionChunk and ParsedChatCompletion
exists on rxchat's models, declared (typed, ``None`` when absent), with a compatible type.

The walk follows openai's pydantic fields recursively (into lists, optionals and every member of
a union), so it stays true when openai adds a field: the new path fails here until rxchat has it.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from openai.types.chat import ChatCompletion as OAICompletion
from openai.types.chat import ChatCompletionChunk as OAIChunk
from openai.types.chat import ParsedChatCompletion as OAIParsed
from pydantic import BaseModel

from rxchat.types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

PAIRS = [
    (OAICompletion, ChatCompletion),
    (OAIChunk, ChatCompletionChunk),
    (OAIParsed, ParsedChatCompletion),
]


def _flatten(annotation: Any) -> list[Any]:
    """The leaf types of an annotation: through Optional, Union, list, dict values, Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return [leaf for arg in typing.get_args(annotation) for leaf in _flatten(arg)]
    if origin in (list, typing.List):  # noqa: UP006
        return _flatten(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        generic = annotation.__pydantic_generic_metadata__.get("origin")
        return [generic or annotation]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [t for t in _flatten(annotation) if isinstance(t, type) and issubclass(t, BaseModel)]


def _kind(leaf: Any) -> str:
    """A coarse type: what a caller may do with the value."""
    if leaf is type(None):
        return "none"
    if isinstance(leaf, typing.TypeVar) or leaf in (object, Any):
        return "any"
    origin = typing.get_origin(leaf)
    if origin is typing.Literal:
        return "str" if all(isinstance(a, str) for a in typing.get_args(leaf)) else "literal"
    if origin in (dict, typing.Dict):  # noqa: UP006
        return "dict"
    if isinstance(leaf, type) and issubclass(leaf, BaseModel):
        return "model"
    if leaf is bool:
        return "bool"
    if leaf in (int, float, str):
        return leaf.__name__
    return repr(leaf)


def _compatible(theirs: Any, ours: Any) -> bool:
    their_kinds = {_kind(t) for t in _flatten(theirs)} - {"none"}
    our_kinds = {_kind(t) for t in _flatten(ours)} - {"none"}
    if "any" in our_kinds:
        return True
    if their_kinds == {"any"}:
        return True
    # an int is a valid float; a Literal of strings is a str
    if "float" in our_kinds:
        our_kinds = our_kinds | {"int"}
    return their_kinds <= our_kinds


def walk(
    theirs: type[BaseModel],
    ours: list[type[BaseModel]],
    path: str,
    out: list[str],
    missing: list[str],
    seen: set[tuple[type[BaseModel], str]],
) -> None:
    for name, info in theirs.model_fields.items():
        here = f"{path}.{name}"
        out.append(here)
        owners = [m for m in ours if name in m.model_fields]
        if not owners:
            missing.append(f"{here}: no such field on {[m.__name__ for m in ours]}")
            continue
        ours_annotation = owners[0].model_fields[name].annotation
        if not _compatible(info.annotation, ours_annotation):
            missing.append(f"{here}: openai {info.annotation} vs rxchat {ours_annotation}")
            continue
        their_models = _models(info.annotation)
        our_models = [m for owner in owners for m in _models(owner.model_fields[name].annotation)]
        for sub in their_models:
            key = (sub, here)
            if key in seen:
                continue
            seen.add(key)
            walk(sub, our_models, here, out, missing, seen)


def collect() -> tuple[list[str], list[str]]:
    paths: list[str] = []
    missing: list[str] = []
    for theirs, ours in PAIRS:
        walk(theirs, [ours], theirs.__name__, paths, missing, set())
    return paths, missing


def test_every_openai_attribute_path_exists_on_rxchat_models() -> None:
    paths, missing = collect()
    assert len(paths) >= 280  # 286 with openai 3.57: the three models and all they contain
    assert missing == []


@pytest.mark.parametrize(
    "path",
    [
        "usage.completion_tokens_details.reasoning_tokens",
        "usage.prompt_tokens_details.cached_tokens",
        "choices.0.message.annotations",
        "choices.0.message.audio",
        "choices.0.message.function_call",
        "service_tier",
        "moderation",
        "metadata",
    ],
)
def test_absent_fields_read_as_none(path: str) -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
            "usage": {
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "total_tokens": 2,
                "completion_tokens_details": {},
                "prompt_tokens_details": {},
            },
        }
    )
    value: Any = completion
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    assert value is None


def test_details_are_typed_and_chunk_obfuscation_is_optional() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "completion_tokens_details": {"reasoning_tokens": 3},
                "prompt_tokens_details": {"cached_tokens": 8},
            },
        }
    )
    assert chunk.obfuscation is None
    assert chunk.usage is not None
    assert chunk.usage.completion_tokens_details is not None
    assert chunk.usage.completion_tokens_details.reasoning_tokens == 3
    assert chunk.usage.prompt_tokens_details is not None
    assert chunk.usage.prompt_tokens_details.cached_tokens == 8
    assert chunk.usage.prompt_tokens_details.audio_tokens is None
    with_obfuscation = ChatCompletionChunk.model_validate({"choices": [], "obfuscation": "ab"})
    assert with_obfuscation.obfuscation == "ab"
