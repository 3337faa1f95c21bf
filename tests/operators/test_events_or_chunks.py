"""The operators that take "events or chunks" accept the same items and reject the rest alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import reactivex
from pydantic import BaseModel

import rxchat
from rxchat import operators as ops

CHUNKS: list[dict[str, Any]] = [
    {"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
    {"id": "c", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
]


class Answer(BaseModel):
    text: str


OPERATORS: dict[str, Callable[[], Callable[[reactivex.Observable[Any]], Any]]] = {
    "text": ops.text,
    "raise_on_length": ops.raise_on_length,
    "tool_calls": ops.tool_calls,
    "final_completion": ops.final_completion,
    "partial_objects": lambda: ops.partial_objects(Answer),
    "parse_structured": lambda: ops.parse_structured(None),
}


def collect(observable: reactivex.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, errors


@pytest.mark.parametrize("name", OPERATORS)
def test_anything_else_is_the_same_type_error(name: str) -> None:
    _, errors = collect(reactivex.of(42).pipe(OPERATORS[name]()))
    assert len(errors) == 1 and isinstance(errors[0], TypeError)
    assert str(errors[0]) == f"{name}() expects events or chunks, got int"


@pytest.mark.parametrize("name", ["text", "tool_calls", "final_completion"])
def test_chunk_models_chunk_dicts_and_events_give_the_same_result(name: str) -> None:
    models = [rxchat.ChatCompletionChunk.from_wire(dict(c)) for c in CHUNKS]
    results = []
    for source in (
        reactivex.from_iterable(models),
        reactivex.from_iterable([dict(c) for c in CHUNKS]),
        reactivex.from_iterable(models).pipe(ops.accumulate()),
    ):
        items, errors = collect(source.pipe(OPERATORS[name]()))
        assert errors == []
        results.append([getattr(i, "type", None) or repr(i) for i in items])
    assert results[0] == results[1] == results[2]
    assert results[0] or name == "tool_calls"  # no tool call in these chunks


def test_text_reads_chunk_dicts() -> None:
    items, errors = collect(reactivex.from_iterable([dict(c) for c in CHUNKS]).pipe(ops.text()))
    assert (items, errors) == (["Hel", "lo"], [])
