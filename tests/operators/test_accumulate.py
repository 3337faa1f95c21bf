"""accumulate: chunks -> events, per-subscription state, errors that keep what arrived."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import operators as rops
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChatCompletionStreamState, ChunkDecoder, chat_completion_stream
from rxchat.errors import APIConnectionError, IncompleteStreamError, StructuredOutputError
from rxchat.events import ChunkEvent
from rxchat.mock import MockServer
from rxchat.operators._accumulate import AccumulatedObservable, accumulate
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed


def corpus(name: str) -> list[ChatCompletionChunk]:
    return ChunkDecoder().feed((CORPUS / name).read_bytes())


def run(observable: reactivex.Observable[Any]) -> tuple[list[Any], Exception | None, bool]:
    items: list[Any] = []
    errors: list[Exception] = []
    completed: list[bool] = []
    observable.subscribe(items.append, errors.append, lambda: completed.append(True))
    return items, (errors[0] if errors else None), bool(completed)


def chunk(
    content: str | None = None, finish: str | None = None, **delta: Any
) -> ChatCompletionChunk:
    if content is not None:
        delta["content"] = content
    return ChatCompletionChunk.from_wire(
        {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    )


@pytest.mark.parametrize(
    "name", ["plain_text.sse", "structured_location_n3.sse", "logprobs_content.sse"]
)
def test_events_equal_the_state_events(name: str) -> None:
    chunks = corpus(name)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    expected = [e.model_dump() for c in chunks for e in state.handle_chunk(c)]
    # dumped as they arrive: a chunk event's snapshot is the live completion
    dumps, error, completed = run(
        reactivex.from_iterable(chunks).pipe(accumulate(), rops.map(lambda e: e.model_dump()))
    )
    assert error is None and completed
    assert dumps == expected


def test_each_subscription_accumulates_on_its_own() -> None:
    source = reactivex.from_iterable(corpus("plain_text.sse")).pipe(accumulate())
    assert isinstance(source, AccumulatedObservable)
    first, _, _ = run(source)
    second, _, _ = run(source)
    assert len(first) == len(second)
    assert first[0].snapshot is not second[0].snapshot
    text = "".join(e.delta for e in first if e.type == "content.delta")
    done = [e for e in first if e.type == "content.done"]
    assert len(done) == 1 and done[0].content == text
    assert second[0].snapshot.choices[0].message.content == text


def test_marble_events_at_the_time_of_their_chunk() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, chunk("Hel", role="assistant")),
        on_next(220, chunk("lo", "stop")),
        on_completed(230),
    )
    results = scheduler.start(
        lambda: xs.pipe(accumulate(), rops.map(lambda e: (e.type, getattr(e, "delta", None))))
    )
    assert results.messages == [
        on_next(210, ("chunk", None)),
        on_next(210, ("content.delta", "Hel")),
        on_next(220, ("chunk", None)),
        on_next(220, ("content.delta", "lo")),
        on_next(220, ("content.done", None)),
        on_completed(230),
    ]


def test_upstream_error_gets_the_snapshot_so_far() -> None:
    scheduler = TestScheduler()
    cut = IncompleteStreamError("the body ended early")
    xs = scheduler.create_hot_observable(
        on_next(210, chunk("Partial ", role="assistant")),
        on_next(220, chunk("answer")),
        on_error(230, cut),
    )
    results = scheduler.start(lambda: xs.pipe(accumulate()))
    assert results.messages[-1] == on_error(230, cut)
    assert cut.completion is not None
    assert cut.completion.choices[0].message.content == "Partial answer"
    assert cut.chunks_received == 2


def test_upstream_error_keeps_its_own_completion_and_foreign_errors_pass() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    state.handle_chunk(chunk("earlier"))
    own = IncompleteStreamError("x", completion=state.current_completion_snapshot)
    _, error, _ = run(
        reactivex.concat(reactivex.of(chunk("new")), reactivex.throw(own)).pipe(accumulate())
    )
    assert error is own and own.completion is state.current_completion_snapshot
    boom = RuntimeError("boom")
    _, error, _ = run(reactivex.throw(boom).pipe(accumulate()))
    assert error is boom


def test_state_error_stops_the_stream_with_the_completion() -> None:
    seen: list[str] = []

    def source() -> Any:
        for c in (chunk("", role="assistant"), chunk('{"a": '), chunk("}"), chunk("never")):
            seen.append(c.choices[0].delta.content or "")
            yield c

    events, error, completed = run(
        reactivex.from_iterable(source()).pipe(accumulate(response_format=dict))
    )
    assert isinstance(error, StructuredOutputError) and not completed
    assert error.raw == '{"a": }'
    assert error.completion is not None and error.chunks_received == 3
    assert seen == ["", '{"a": ', "}"]  # the upstream is not read further
    assert [e.type for e in events] == ["chunk", "content.delta", "chunk", "content.delta"]


def test_items_that_are_not_chunks() -> None:
    events = reactivex.from_iterable(corpus("plain_text.sse")).pipe(accumulate())
    _, error, _ = run(events.pipe(accumulate()))
    assert isinstance(error, TypeError) and "'chunk' event" in str(error)
    items, error, _ = run(
        reactivex.of({"choices": [{"index": 0, "delta": {"content": "x"}}]}).pipe(accumulate())
    )
    assert error is None and [e.type for e in items] == ["chunk", "content.delta"]


def test_bad_options_fail_at_call_time() -> None:
    with pytest.raises(TypeError):
        accumulate(response_format=3.14)
    with pytest.raises(TypeError):
        accumulate(tools=[object()])


async def test_loopback_dropped_connection_keeps_what_arrived(mock_server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=10&drop_after=4",
        messages=[{"role": "user", "content": "hi"}],
        base_url=mock_server.url,
        max_retries=0,
    )
    events: list[Any] = []
    with pytest.raises((APIConnectionError, IncompleteStreamError)) as info:
        await source.pipe(accumulate(), rops.do_action(events.append))
    completion = info.value.completion
    assert completion is not None
    deltas = "".join(e.delta for e in events if e.type == "content.delta")
    assert deltas and completion.choices[0].message.content == deltas
    assert isinstance(events[0], ChunkEvent)
