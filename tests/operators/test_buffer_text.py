"""buffer_text: marble tests on virtual time, kinds of input, and a loopback run."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as rops
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChatCompletionStreamState, chat_completion_stream, from_chunks
from rxchat.mock import MockServer
from rxchat.operators import buffer_text
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


# -- by text: lines, sentences, a separator -------------------------------------------------


def _texts(messages: list[Any]) -> list[str]:
    return [m.value.value for m in messages if m.value.kind == "N"]


def _split_run(operator: Any, pieces: list[str]) -> list[str]:
    """Push ``pieces`` through ``operator`` synchronously (no timer is needed)."""
    out: list[str] = []
    errors: list[Exception] = []
    reactivex.from_iterable(pieces).pipe(operator).subscribe(out.append, errors.append)
    assert errors == []
    return out


def _cuts(text: str, data: Any) -> list[str]:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def test_lines_are_emitted_when_their_end_arrives() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, "fir"),
        on_next(220, "st\nsec"),
        on_next(230, "ond\nthird\n\nfou"),
        on_next(240, "rth"),
        on_completed(250),
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(by="line")))
    assert results.messages == [
        on_next(220, "first"),
        on_next(230, "second"),
        on_next(230, "third"),
        on_next(230, ""),  # an empty line is a line
        on_next(250, "fourth"),  # the remainder, flushed at the end
        on_completed(250),
    ]


def test_lines_keepends_and_crlf() -> None:
    text = "a\r\nb\n\r\nc\r"
    assert _split_run(buffer_text(by="line"), list(text)) == ["a", "b", "", "c"]
    assert _split_run(buffer_text(by="line", keepends=True), list(text)) == [
        "a\r\n",
        "b\n",
        "\r\n",
        "c\r",
    ]


def test_an_error_flushes_the_partial_line_first() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("connection lost")
    xs = scheduler.create_hot_observable(
        on_next(210, "done\npart"), on_next(211, "ial"), on_error(215, boom)
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(by="line")))
    assert results.messages == [on_next(210, "done"), on_next(215, "partial"), on_error(215, boom)]


def test_sentences() -> None:
    text = 'Hello there. Pi is 3.14!  "Is it?" she asked.\nA list\n\n- item one\nEnd。次。 Tail'
    want = [
        "Hello there.",
        "Pi is 3.14!",
        '"Is it?"',
        "she asked.",
        "A list",
        "- item one",
        "End\u3002",
        "次\u3002",
        "Tail",
    ]
    assert _split_run(buffer_text(by="sentence"), [text]) == want
    assert _split_run(buffer_text(by="sentence"), list(text)) == want
    kept = _split_run(buffer_text(by="sentence", keepends=True), list(text))
    assert "".join(kept) == text
    assert kept[:3] == ["Hello there. ", "Pi is 3.14!  ", '"Is it?" ']


def test_sentences_wait_for_the_space_after_the_end_mark() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, "It costs 3."),
        on_next(220, "50 today."),
        on_next(230, " Then"),
        on_next(240, " more"),
        on_completed(250),
    )
    results = scheduler.start(lambda: xs.pipe(buffer_text(by="sentence")))
    assert results.messages == [
        on_next(230, "It costs 3.50 today."),
        on_next(250, "Then more"),
        on_completed(250),
    ]


def test_a_custom_separator_split_across_deltas() -> None:
    text = "a<|>b<|><|>c<|"
    want = text.split("<|>")
    assert _split_run(buffer_text(separator="<|>"), list(text)) == want
    assert _split_run(buffer_text(separator="<|>", keepends=True), list(text)) == [
        "a<|>",
        "b<|>",
        "<|>",
        "c<|",
    ]
    assert _split_run(buffer_text(separator="<|>"), ["x<|>"]) == ["x"], "no empty last piece"


_TEXT = st.text(alphabet=st.sampled_from(list("ab .!?\n\r\t\"'-<|>3\u3002\u00bb")), max_size=80)


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.data())
def test_any_split_of_the_deltas_gives_the_same_lines(text: str, data: Any) -> None:
    pieces = _cuts(text, data)
    lines = _split_run(buffer_text(by="line"), pieces)
    want = text.split("\n")
    if want[-1] == "":
        want.pop()
    assert lines == [w[:-1] if w.endswith("\r") else w for w in want]
    kept = _split_run(buffer_text(by="line", keepends=True), pieces)
    assert "".join(kept) == text
    assert all(k.endswith("\n") for k in kept[:-1])


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.data(), st.sampled_from(["<|>", "|", "--", "\n\n"]))
def test_any_split_of_the_deltas_gives_the_same_pieces(text: str, data: Any, sep: str) -> None:
    pieces = _cuts(text, data)
    want = text.split(sep)
    if want[-1] == "":
        want.pop()
    assert _split_run(buffer_text(separator=sep), pieces) == want
    assert "".join(_split_run(buffer_text(separator=sep, keepends=True), pieces)) == text


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.data())
def test_any_split_of_the_deltas_gives_the_same_sentences(text: str, data: Any) -> None:
    pieces = _cuts(text, data)
    whole = _split_run(buffer_text(by="sentence"), [text])
    assert _split_run(buffer_text(by="sentence"), pieces) == whole
    assert all(s and s == s.strip() and "\n" not in s for s in whole)
    kept = _split_run(buffer_text(by="sentence", keepends=True), pieces)
    assert "".join(kept) == text
    assert [k.strip() for k in kept if k.strip()] == whole


def test_by_text_accepts_chunks_and_events() -> None:
    chunks = [_chunk(None), _chunk("one\ntw"), _chunk("o\nthr"), _chunk("ee", "stop")]
    assert _split_run(buffer_text(by="line"), chunks) == ["one", "two", "three"]  # type: ignore[arg-type]
    state = ChatCompletionStreamState()
    events = [e for c in chunks for e in state.handle_chunk(c)]
    assert _split_run(buffer_text(by="line"), events) == ["one", "two", "three"]  # type: ignore[arg-type]


def test_by_text_rejects_items_without_text_after_flushing() -> None:
    out: list[str] = []
    errors: list[Exception] = []
    reactivex.from_iterable(["a\nb", 42, "c"]).pipe(buffer_text(by="line")).subscribe(
        out.append, errors.append
    )
    assert out == ["a", "b"]
    assert len(errors) == 1 and isinstance(errors[0], TypeError)


def test_each_subscription_splits_on_its_own() -> None:
    lines = reactivex.from_iterable(["x\ny", "z\nw"]).pipe(buffer_text(by="line"))
    first: list[str] = []
    second: list[str] = []
    lines.subscribe(first.append)
    lines.subscribe(second.append)
    assert first == second == ["x", "yz", "w"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, TypeError),
        ({"seconds": 1, "by": "line"}, TypeError),
        ({"by": "line", "separator": ","}, TypeError),
        ({"by": "paragraph"}, ValueError),
        ({"separator": ""}, ValueError),
        ({"separator": 3}, TypeError),
        ({"seconds": 1, "keepends": True}, TypeError),
        ({"by": "line", "scheduler": TestScheduler()}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        buffer_text(**kwargs)


async def test_lines_on_the_loop_against_the_mock(server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=120&delay=0.001",
        messages=[{"role": "user", "content": "Hi"}],
        base_url=server.url,
    )
    sentences = await source.pipe(buffer_text(by="sentence", keepends=True), rops.to_list())
    text = server.streams[-1].texts[0]
    assert "".join(sentences) == text
    assert len(sentences) >= 2 and all(s.rstrip()[-1] in ".!?" for s in sentences[:-1])
