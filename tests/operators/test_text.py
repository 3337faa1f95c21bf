"""text: content deltas as strings, from events or straight from chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reactivex
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChunkDecoder
from rxchat.operators import accumulate, text
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed


def collect(observable: reactivex.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, errors


def test_same_text_from_events_and_from_chunks() -> None:
    chunks = ChunkDecoder().feed((CORPUS / "plain_text.sse").read_bytes())
    from_events, _ = collect(reactivex.from_iterable(chunks).pipe(accumulate(), text()))
    from_chunks, _ = collect(reactivex.from_iterable(chunks).pipe(text()))
    assert from_events == from_chunks
    assert "" not in from_events
    expected = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "".join(from_events) == expected and len(from_events) > 10


def test_choice_index_selects_one_choice() -> None:
    chunks = ChunkDecoder().feed((CORPUS / "structured_location_n3.sse").read_bytes())
    for index in range(3):
        pieces, _ = collect(reactivex.from_iterable(chunks).pipe(accumulate(), text(index)))
        expected = "".join(
            ch.delta.content or "" for c in chunks for ch in c.choices if ch.index == index
        )
        assert "".join(pieces) == expected and expected.startswith("{")


def test_marble_deltas_keep_their_timing() -> None:
    scheduler = TestScheduler()

    def chunk(content: str) -> ChatCompletionChunk:
        return ChatCompletionChunk.from_wire(
            {"choices": [{"index": 0, "delta": {"content": content}}]}
        )

    xs = scheduler.create_hot_observable(
        on_next(210, chunk("")),
        on_next(220, chunk("Hi")),
        on_next(230, chunk(" you")),
        on_completed(240),
    )
    results = scheduler.start(lambda: xs.pipe(accumulate(), text()))
    assert results.messages == [on_next(220, "Hi"), on_next(230, " you"), on_completed(240)]


def test_other_items_are_a_type_error() -> None:
    _, errors = collect(reactivex.of("raw text").pipe(text()))
    assert isinstance(errors[0], TypeError)
