"""buffer_text: marble tests on virtual time, kinds of input, and a loopback run."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import reactivex
from reactivex import operators as rops
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat._sources import chat_completion_stream, from_chunks
from rxchat._state import ChatCompletionStreamState
from rxchat.mock import MockServer
from rxchat.operators._buffer_text import buffer_text
from rxchat.types import ChatCompletionChunk

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed
subscribe = ReactiveTest.subscribe


def test_one_string_per_window() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, "a"),
        on_next(215, "b"),
        on_next(229, "c"),
        on_next(240, "d"),
        on_next(250, "e"),
        on_completed(300),
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(20)))
    assert results.messages == [
        on_next(230, "abc"),  # window opened by "a" at 210
        on_next(260, "de"),  # window opened by "d" at 240
        on_completed(300),
    ]


def test_no_empty_emissions_and_empty_deltas_ignored() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, ""), on_next(400, "x"), on_next(405, ""), on_completed(500)
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(10)), disposed=1000)
    assert results.messages == [on_next(410, "x"), on_completed(500)]


def test_completion_flushes_at_once() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_next(212, "b"), on_completed(215))
    results = scheduler.start(lambda: xs.pipe(buffer_text(50)))
    assert results.messages == [on_next(215, "ab"), on_completed(215)]


def test_error_flushes_first() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("connection lost")
    xs = scheduler.create_hot_observable(
        on_next(210, "par"), on_next(211, "tial"), on_error(215, boom)
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(50)))
    assert results.messages == [on_next(215, "partial"), on_error(215, boom)]


def test_disposal_stops_the_timer() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"))
    results = scheduler.start(lambda: xs.pipe(buffer_text(100)), disposed=250)
    assert results.messages == []
    assert xs.subscriptions == [subscribe(200, 250)]


def test_never_loses_or_reorders_text() -> None:
    rng = random.Random(7)
    pieces = ["".join(rng.choice("abc \n") for _ in range(rng.randint(0, 4))) for _ in range(300)]
    times = sorted(rng.sample(range(201, 5000), len(pieces)))
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        *[on_next(t, p) for t, p in zip(times, pieces, strict=True)], on_completed(5001)
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(17)), disposed=10_000)
    texts = [m.value.value for m in results.messages if m.value.kind == "N"]
    assert "".join(texts) == "".join(pieces)
    assert all(texts), "no empty strings"
    emitted_at = [m.time for m in results.messages if m.value.kind == "N"]
    gaps = [b - a for a, b in itertools.pairwise(emitted_at)]
    assert all(g >= 17 for g in gaps[:-1]), "at most one string per window"


def _chunk(text: str | None, finish: str | None = None) -> ChatCompletionChunk:
    delta: dict[str, Any] = {} if text is None else {"content": text}
    return ChatCompletionChunk.model_validate(
        {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    )


def test_accepts_chunks_and_events() -> None:
    chunks = [_chunk(None), _chunk("Hel"), _chunk("lo"), _chunk(None, "stop")]
    scheduler = TestScheduler()
    out = scheduler.start(lambda: from_chunks(chunks).pipe(buffer_text(5)))
    assert [m.value.value for m in out.messages if m.value.kind == "N"] == ["Hello"]

    state = ChatCompletionStreamState()
    events = [e for c in chunks for e in state.handle_chunk(c)]
    assert {e.type for e in events} >= {"chunk", "content.delta", "content.done"}
    scheduler = TestScheduler()
    out = scheduler.start(lambda: reactivex.from_iterable(events).pipe(buffer_text(5)))
    assert [m.value.value for m in out.messages if m.value.kind == "N"] == ["Hello"]
    assert out.messages[-1].value.kind == "C"


def test_rejects_items_without_text() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_next(220, 42), on_next(230, "b"))
    results = scheduler.start(lambda: xs.pipe(buffer_text(100)))
    assert results.messages[0] == on_next(220, "a")
    assert results.messages[1].time == 220
    assert isinstance(results.messages[1].value.exception, TypeError)
    assert xs.subscriptions == [subscribe(200, 220)]


@pytest.mark.parametrize("bad", [0, -0.5, float("inf"), float("nan")])
def test_bad_seconds(bad: float) -> None:
    with pytest.raises(ValueError):
        buffer_text(bad)


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    async with MockServer() as s:
        yield s


async def test_on_the_loop_against_the_mock(server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=120&delay=0.002",
        messages=[{"role": "user", "content": "Hi"}],
        base_url=server.url,
    )
    frames = await source.pipe(buffer_text(0.03), rops.to_list())
    assert "".join(frames) == server.streams[-1].texts[0]
    assert all(frames)
    assert len(frames) < 120, "deltas were coalesced"
