"""broadcast: one upstream subscription for all subscribers, replay for late ones, ref-counting."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as rops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChatCompletionStreamState, chat_completion_stream, from_chunks
from rxchat.events import ChunkEvent
from rxchat.mock import MockServer
from rxchat.operators import broadcast
from rxchat.types import ChatCompletionChunk

# Functional bound: a connection left to a timeout, the garbage collector or the end of the answer
# would take seconds. Typical latency is about 1 ms (benchmarks/bench_faults.py measures it); the
# margin keeps a loaded CI machine that deschedules a thread from failing the test.
DISCONNECT_BOUND = 0.5

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed
subscribe = ReactiveTest.subscribe
USER = [{"role": "user", "content": "Hello"}]


def accumulate(source: Observable[ChatCompletionChunk]) -> Observable[Any]:
    """Chunks -> events with a state per subscription (what ops.accumulate does)."""

    def factory(_: Any) -> Observable[Any]:
        state = ChatCompletionStreamState()
        return source.pipe(rops.flat_map(lambda c: reactivex.from_iterable(state.handle_chunk(c))))

    return reactivex.defer(factory)


class Sink:
    def __init__(self, fail_on: int | None = None) -> None:
        self.items: list[Any] = []
        self.error: Exception | None = None
        self.completed = False
        self.fail_on = fail_on

    def on_next(self, value: Any) -> None:
        if self.fail_on is not None and len(self.items) == self.fail_on:
            raise RuntimeError("subscriber bug")
        self.items.append(value)

    def on_error(self, err: Exception) -> None:
        self.error = err

    def on_completed(self) -> None:
        self.completed = True


# -- marble tests ------------------------------------------------------------------------------


def test_one_upstream_subscription_for_all() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(
        on_next(10, "a"), on_next(20, "b"), on_next(30, "c"), on_completed(40)
    )
    shared = xs.pipe(broadcast())
    a = scheduler.create_observer()
    b = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: shared.subscribe(a))
    scheduler.schedule_absolute(200, lambda *_: shared.subscribe(b))
    scheduler.start()
    expected = [on_next(210, "a"), on_next(220, "b"), on_next(230, "c"), on_completed(240)]
    assert a.messages == expected
    assert b.messages == expected
    assert xs.subscriptions == [subscribe(200, 240)]


def test_late_subscriber_gets_the_chunks_so_far_then_live() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(
        on_next(10, "a"), on_next(20, "b"), on_next(30, "c"), on_completed(40)
    )
    shared = xs.pipe(broadcast())
    a = scheduler.create_observer()
    late = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: shared.subscribe(a))
    scheduler.schedule_absolute(225, lambda *_: shared.subscribe(late))
    scheduler.start()
    assert late.messages == [
        on_next(225, "a"),
        on_next(225, "b"),
        on_next(230, "c"),
        on_completed(240),
    ]
    assert xs.subscriptions == [subscribe(200, 240)]


def test_last_unsubscribe_disposes_upstream_and_next_subscribe_restarts() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, "a"), on_next(50, "b"), on_completed(60))
    shared = xs.pipe(broadcast())
    a = scheduler.create_observer()
    b = scheduler.create_observer()
    c = scheduler.create_observer()
    subs: dict[str, Any] = {}
    scheduler.schedule_absolute(200, lambda *_: subs.__setitem__("a", shared.subscribe(a)))
    scheduler.schedule_absolute(205, lambda *_: subs.__setitem__("b", shared.subscribe(b)))
    scheduler.schedule_absolute(215, lambda *_: subs["a"].dispose())
    scheduler.schedule_absolute(220, lambda *_: subs["b"].dispose())
    scheduler.schedule_absolute(300, lambda *_: shared.subscribe(c))
    scheduler.start()
    assert xs.subscriptions == [subscribe(200, 220), subscribe(300, 360)]
    # The restarted upstream starts from scratch: no stale history.
    assert c.messages == [on_next(310, "a"), on_next(350, "b"), on_completed(360)]
    assert b.messages == [on_next(210, "a")]


def test_after_the_end_new_subscribers_get_the_replay_and_the_end() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("upstream failed")
    xs = scheduler.create_cold_observable(on_next(10, "a"), on_error(20, boom))
    shared = xs.pipe(broadcast())
    a = scheduler.create_observer()
    late = scheduler.create_observer()
    scheduler.schedule_absolute(200, lambda *_: shared.subscribe(a))
    scheduler.schedule_absolute(400, lambda *_: shared.subscribe(late))
    scheduler.start()
    assert a.messages == [on_next(210, "a"), on_error(220, boom)]
    assert late.messages == [on_next(400, "a"), on_error(400, boom)]
    assert xs.subscriptions == [subscribe(200, 220)], "a finished stream is not requested again"


def test_a_failing_subscriber_does_not_break_the_others() -> None:
    subject: Subject[int] = Subject()
    shared = subject.pipe(broadcast())
    good, bad, other = Sink(), Sink(fail_on=1), Sink()
    shared.subscribe(good)
    shared.subscribe(bad)
    shared.subscribe(other)
    for i in range(4):
        subject.on_next(i)
    subject.on_completed()
    assert good.items == other.items == [0, 1, 2, 3]
    assert good.completed and other.completed
    assert bad.items == [0]
    assert isinstance(bad.error, RuntimeError), "the failure goes to that subscriber's on_error"
    assert not bad.completed


def test_a_failing_subscriber_without_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    subject: Subject[int] = Subject()
    shared = subject.pipe(broadcast())
    seen: list[int] = []

    def explode(_: int) -> None:
        raise KeyError("boom")

    shared.subscribe(explode)  # no on_error: reactivex would re-raise it
    shared.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="rxchat"):
        subject.on_next(1)
        subject.on_next(2)
    assert seen == [1, 2]
    assert any("broadcast subscriber" in r.getMessage() for r in caplog.records)


def test_failing_sole_subscriber_disconnects() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, "a"), on_next(20, "b"), on_completed(30))
    shared = xs.pipe(broadcast())
    sink = Sink(fail_on=0)
    scheduler.schedule_absolute(200, lambda *_: shared.subscribe(sink))
    scheduler.start()
    assert isinstance(sink.error, RuntimeError)
    assert xs.subscriptions == [subscribe(200, 210)]


def test_subscribing_inside_on_next_sees_no_duplicates() -> None:
    subject: Subject[str] = Subject()
    shared = subject.pipe(broadcast())
    inner = Sink()

    def on_item(value: str) -> None:
        if value == "b":
            shared.subscribe(inner)

    shared.subscribe(on_item)
    for v in "abcd":
        subject.on_next(v)
    assert inner.items == ["a", "b", "c", "d"]


def test_events_late_subscriber_starts_from_the_snapshot() -> None:
    pieces = ["Hel", "lo", ", wor", "ld"]
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": p}}]} for p in pieces
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    subject: Subject[ChatCompletionChunk] = Subject()
    shared = accumulate(subject).pipe(broadcast())
    early, late = Sink(), Sink()
    shared.subscribe(early)
    models = [ChatCompletionChunk.model_validate(c) for c in chunks]
    subject.on_next(models[0])
    subject.on_next(models[1])
    shared.subscribe(late)
    first = late.items[0]
    assert isinstance(first, ChunkEvent)
    assert first.snapshot.choices[0].message.content == "Hello"
    # Only the latest chunk event and the events of that same chunk are replayed.
    assert [e.type for e in late.items] == ["chunk", "content.delta"]
    assert late.items[1].snapshot == "Hello"
    for m in models[2:]:
        subject.on_next(m)
    subject.on_completed()
    assert late.completed
    assert [e for e in late.items[2:]] == [e for e in early.items[-len(late.items[2:]) :]]
    final = [e for e in late.items if e.type == "content.done"]
    assert final and final[0].content == "Hello, world"


# -- against the mock server -------------------------------------------------------------------


async def test_three_subscribers_one_request(server: MockServer) -> None:
    shared = chat_completion_stream(
        model="mock?tokens=40&delay=0.001", messages=USER, base_url=server.url
    ).pipe(broadcast())
    results = await asyncio.gather(*(shared.pipe(rops.to_list()) for _ in range(3)))
    assert len(server.requests) == 1
    texts = ["".join(c.text or "" for c in r) for r in results]
    assert texts == [server.streams[-1].texts[0]] * 3


async def test_late_subscriber_over_the_network(server: MockServer) -> None:
    shared = chat_completion_stream(
        model="mock?tokens=60&delay=0.003", messages=USER, base_url=server.url
    ).pipe(broadcast())
    early = asyncio.ensure_future(shared.pipe(rops.to_list()))
    while server.active_streams == 0 or server.streams[-1].chunks < 10:
        await asyncio.sleep(0.002)
    late = await shared.pipe(rops.to_list())
    assert [c.to_dict() for c in late] == [c.to_dict() for c in await early]
    assert len(server.requests) == 1


async def test_unsubscribing_all_closes_the_connection(server: MockServer) -> None:
    shared = chat_completion_stream(
        model="mock?tokens=100000&delay=0.005", messages=USER, base_url=server.url
    ).pipe(broadcast())
    sinks = [Sink() for _ in range(3)]
    subs = [shared.subscribe(s) for s in sinks]
    while min(len(s.items) for s in sinks) < 3:
        await asyncio.sleep(0.005)
    subs[0].dispose()
    subs[1].dispose()
    await asyncio.sleep(0.05)
    assert server.disconnects == [], "one subscriber is still there"
    assert server.active_streams == 1
    last_left = time.monotonic()
    subs[2].dispose()
    record = await server.wait_for_disconnect(timeout=2)
    assert record.at - last_left < DISCONNECT_BOUND
    assert len(server.requests) == 1
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert all(s.error is None and not s.completed for s in sinks)


async def test_events_broadcast_over_the_network(server: MockServer) -> None:
    shared = accumulate(
        chat_completion_stream(
            model="mock?tokens=30&delay=0.002", messages=USER, base_url=server.url
        )
    ).pipe(broadcast())
    early = asyncio.ensure_future(shared.pipe(rops.to_list()))
    while server.active_streams == 0 or server.streams[-1].chunks < 5:
        await asyncio.sleep(0.002)
    late = await shared.pipe(rops.to_list())
    assert isinstance(late[0], ChunkEvent)
    final_early = next(e for e in await early if e.type == "content.done")
    final_late = next(e for e in late if e.type == "content.done")
    assert final_late.content == final_early.content == server.streams[-1].texts[0]
    assert len(server.requests) == 1


async def test_replay_source_broadcast() -> None:
    chunks = [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in "abc"]
    shared = from_chunks(chunks).pipe(broadcast())
    first = await shared.pipe(rops.to_list())
    second = await shared.pipe(rops.to_list())
    assert [c.text for c in first] == [c.text for c in second] == ["a", "b", "c"]


async def test_with_the_real_operators_late_views_agree(server: MockServer) -> None:
    from rxchat import operators as ops

    shared = chat_completion_stream(
        model="mock?tokens=40&delay=0.002", messages=USER, base_url=server.url
    ).pipe(ops.accumulate(), ops.broadcast())
    text_view = asyncio.ensure_future(shared.pipe(ops.text(), rops.to_list()))
    while server.active_streams == 0 or server.streams[-1].chunks < 8:
        await asyncio.sleep(0.002)
    # A late subscriber: its first event carries the snapshot of everything it missed.
    late_first = await shared.pipe(rops.first())
    assert isinstance(late_first, ChunkEvent)
    assert late_first.snapshot.choices[0].message.content
    final = await shared.pipe(ops.final_completion())
    expected = server.streams[-1].texts[0]
    assert "".join(await text_view) == expected
    assert final.choices[0].message.content == expected
    assert len(server.requests) == 1


async def test_late_replay_keeps_every_field_of_the_wire(server: MockServer) -> None:
    """From a network source the history keeps the chunks' JSON texts as received (no chunk
    models kept alive for the garbage collector to walk): a subscriber after the end gets chunks
    equal to the live ones, unknown provider fields and usage included."""
    shared = chat_completion_stream(
        model="mock?tokens=300&shape=azure",
        messages=USER,
        base_url=server.url,
        stream_options={"include_usage": True},
    ).pipe(broadcast())
    live = await shared.pipe(rops.to_list())
    late = await shared.pipe(rops.to_list())
    assert len(server.requests) == 1
    assert [c.to_dict() for c in late] == [c.to_dict() for c in live]
    assert any(c.model_extra for c in late) or any(
        choice.model_extra for c in late for choice in c.choices
    ), "the azure shape adds fields rxchat does not declare"
    assert late[-1].usage is not None


async def test_the_last_subscriber_leaving_inside_a_batch_stops_delivery(
    server: MockServer,
) -> None:
    """A fast stream arrives in reads of many chunks; leaving in the middle of one delivers
    nothing more and closes the connection."""
    shared = chat_completion_stream(
        model="mock?tokens=100000", messages=USER, base_url=server.url
    ).pipe(broadcast())
    got: list[ChatCompletionChunk] = []
    subscription: Any = None

    def on_next(chunk: ChatCompletionChunk) -> None:
        got.append(chunk)
        if len(got) == 5:
            subscription.dispose()

    subscription = shared.subscribe(on_next)
    await server.wait_for_disconnect(timeout=5)
    await asyncio.sleep(0.02)
    assert len(got) == 5
