"""idle_timeout / first_chunk_timeout: marble tests on virtual time, and loopback tests."""

from __future__ import annotations

import asyncio
import time

import pytest
from reactivex import operators as rops
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import chat_completion_stream
from rxchat.errors import APITimeoutError, FirstChunkTimeoutError, IdleTimeoutError
from rxchat.mock import MockServer
from rxchat.operators import first_chunk_timeout, idle_timeout

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed
subscribe = ReactiveTest.subscribe
USER = [{"role": "user", "content": "Hello"}]


def _error_at(messages: list[object]) -> tuple[float, Exception]:
    last = messages[-1]
    assert last.value.kind == "E"  # type: ignore[attr-defined]
    return last.time, last.value.exception  # type: ignore[attr-defined]


# -- idle_timeout ---------------------------------------------------------------------------


def test_idle_timeout_passes_a_lively_stream() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, "a"), on_next(235, "b"), on_next(260, "c"), on_completed(280)
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(30)))
    assert results.messages == [
        on_next(210, "a"),
        on_next(235, "b"),
        on_next(260, "c"),
        on_completed(280),
    ]
    assert xs.subscriptions == [subscribe(200, 280)]


def test_idle_timeout_fires_after_the_last_item() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, "a"), on_next(220, "b"), on_next(245, "c"), on_next(400, "late")
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(30)))
    assert results.messages[:3] == [on_next(210, "a"), on_next(220, "b"), on_next(245, "c")]
    at, err = _error_at(results.messages)
    assert at == 275  # 30 after the last item, not after the first
    assert isinstance(err, IdleTimeoutError) and isinstance(err, APITimeoutError)
    assert err.chunks_received == 3
    assert "30 s" in str(err) and "after 3 items" in str(err)
    assert xs.subscriptions == [subscribe(200, 275)], "the upstream is disposed"


def test_idle_timeout_before_any_item() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(300, "a"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(50)))
    at, err = _error_at(results.messages)
    assert at == 250 and isinstance(err, IdleTimeoutError)
    assert err.chunks_received == 0 and "before the first item" in str(err)
    assert xs.subscriptions == [subscribe(200, 250)]


def test_idle_timeout_forwards_errors_and_stops_its_timer() -> None:
    scheduler = TestScheduler()
    boom = ValueError("boom")
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_error(220, boom))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(30)))
    assert results.messages == [on_next(210, "a"), on_error(220, boom)]


def test_idle_timeout_disposal_cancels_the_timer() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(100)), disposed=250)
    assert results.messages == [on_next(210, "a")]
    assert xs.subscriptions == [subscribe(200, 250)]


def test_each_subscription_has_its_own_timer() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(10, "a"), on_next(50, "b"), on_completed(60))
    timed = xs.pipe(idle_timeout(30))
    results = scheduler.start(lambda: timed.pipe(rops.merge(timed.pipe(rops.delay(5)))))
    # The first subscription times out 30 after "a" (at 240); the merge ends with that error.
    at, err = _error_at(results.messages)
    assert at == 240 and isinstance(err, IdleTimeoutError)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_bad_seconds(bad: float) -> None:
    with pytest.raises(ValueError):
        idle_timeout(bad)
    with pytest.raises(ValueError):
        first_chunk_timeout(bad)
    with pytest.raises(TypeError):
        idle_timeout("5")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        idle_timeout(1, first=bad)


# -- first_chunk_timeout ----------------------------------------------------------------------------


def test_first_chunk_timeout_fires() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(260, "a"), on_completed(300))
    results = scheduler.start(lambda: xs.pipe(first_chunk_timeout(50)))
    at, err = _error_at(results.messages)
    assert at == 250
    assert isinstance(err, FirstChunkTimeoutError) and isinstance(err, APITimeoutError)
    assert xs.subscriptions == [subscribe(200, 250)]


def test_first_chunk_timeout_then_no_limit() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(240, "a"), on_next(500, "b"), on_completed(900))
    results = scheduler.start(lambda: xs.pipe(first_chunk_timeout(50)), disposed=2000)
    assert results.messages == [on_next(240, "a"), on_next(500, "b"), on_completed(900)]


def test_idle_timeout_with_a_longer_first_allowance() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(290, "a"), on_next(300, "b"), on_next(400, "c"), on_completed(500)
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    assert results.messages[:2] == [on_next(290, "a"), on_next(300, "b")]
    at, err = _error_at(results.messages)
    assert at == 320 and isinstance(err, IdleTimeoutError)
    assert err.chunks_received == 2
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(310, "a"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    at, err = _error_at(results.messages)
    assert at == 300 and isinstance(err, FirstChunkTimeoutError)
    assert xs.subscriptions == [subscribe(200, 300)]


def test_idle_timeout_first_allowance_then_the_gap_limit_from_the_first_item() -> None:
    """After the first item the gap limit applies at once, not the longer first allowance."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, "a"), on_next(400, "late"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    assert results.messages[:1] == [on_next(210, "a")]
    at, err = _error_at(results.messages)
    assert at == 230, "20 after the first item, not at the first allowance (300)"
    assert isinstance(err, IdleTimeoutError) and not isinstance(err, FirstChunkTimeoutError)
    assert err.chunks_received == 1 and "20 s" in str(err) and "after 1 items" in str(err)
    assert xs.subscriptions == [subscribe(200, 230)]


def test_idle_timeout_first_timer_alone() -> None:
    """The first allowance is timed on its own: a first item late by the gap limit is fine."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(299, "a"), on_next(319, "b"), on_next(339, "c"), on_completed(350)
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    assert results.messages == [
        on_next(299, "a"),
        on_next(319, "b"),
        on_next(339, "c"),
        on_completed(350),
    ]
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(301, "a"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    at, err = _error_at(results.messages)
    assert at == 300 and isinstance(err, FirstChunkTimeoutError)
    assert err.chunks_received == 0 and "100 s" in str(err)


def test_idle_timeout_gap_timer_alone_after_a_first_item_under_a_long_allowance() -> None:
    """Every gap after the first item is timed with ``seconds``, each from the item before."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(250, "a"), on_next(269, "b"), on_next(288, "c"), on_next(320, "d")
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(20, first=100)))
    assert results.messages[:3] == [on_next(250, "a"), on_next(269, "b"), on_next(288, "c")]
    at, err = _error_at(results.messages)
    assert at == 308 and isinstance(err, IdleTimeoutError) and err.chunks_received == 3


def test_idle_timeout_with_a_shorter_first_allowance() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(205, "a"), on_next(245, "b"), on_next(400, "late")
    )
    results = scheduler.start(lambda: xs.pipe(idle_timeout(50, first=10)))
    assert results.messages[:2] == [on_next(205, "a"), on_next(245, "b")]
    at, err = _error_at(results.messages)
    assert at == 295 and isinstance(err, IdleTimeoutError) and err.chunks_received == 2
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(215, "a"))
    results = scheduler.start(lambda: xs.pipe(idle_timeout(50, first=10)))
    at, err = _error_at(results.messages)
    assert at == 210 and isinstance(err, FirstChunkTimeoutError)


def test_idle_timeout_after_first_chunk_timeout_also_times_the_first_item() -> None:
    """Documented pitfall: each operator's timer starts at subscription."""
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(290, "a"))
    results = scheduler.start(lambda: xs.pipe(first_chunk_timeout(100), idle_timeout(20)))
    at, err = _error_at(results.messages)
    assert at == 220 and isinstance(err, IdleTimeoutError)


# -- on the event loop against the mock server ----------------------------------------------------



async def test_keepalives_do_not_count_as_output(server: MockServer) -> None:
    """The server stalls mid-answer but sends keep-alives: the read timeout (30 s) never
    fires, the idle timeout does, and the request is cancelled."""
    source = chat_completion_stream(
        model="mock?tokens=50&stall_between=30&stall_after=3&keepalive=0.02",
        messages=USER,
        base_url=server.url,
        timeout=30,
    )
    items: list[object] = []
    started = time.monotonic()
    with pytest.raises(IdleTimeoutError) as info:
        await source.pipe(idle_timeout(0.2), rops.do_action(items.append))
    elapsed = time.monotonic() - started
    assert len(items) == 3 and info.value.chunks_received == 3
    assert elapsed < 5
    record = await server.wait_for_disconnect(timeout=2)
    assert record.chunks == 3


async def test_a_stall_after_the_first_items_is_timed_by_seconds_not_first(
    server: MockServer,
) -> None:
    """``idle_timeout(0.2, first=30)``: the stall after item 2 fails in about 0.2 s, not 30 s."""
    source = chat_completion_stream(
        model="mock?tokens=50&stall_between=30&stall_after=2&keepalive=0.02",
        messages=USER,
        base_url=server.url,
        timeout=60,
    )
    started = time.monotonic()
    with pytest.raises(IdleTimeoutError) as info:
        await source.pipe(idle_timeout(0.2, first=30))
    assert time.monotonic() - started < 10  # functional bound: the bug waited for first= (30 s)
    assert info.value.chunks_received == 2 and "0.2 s" in str(info.value)
    await server.wait_for_disconnect(timeout=2)


async def test_first_chunk_timeout_with_keepalives(server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=5&stall_first=30&keepalive=0.02",
        messages=USER,
        base_url=server.url,
        timeout=30,
    )
    with pytest.raises(FirstChunkTimeoutError):
        await source.pipe(first_chunk_timeout(0.15))
    await server.wait_for_disconnect(timeout=2)
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_lively_stream_is_untouched(server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=20&delay=0.005", messages=USER, base_url=server.url
    )
    chunks = await source.pipe(first_chunk_timeout(5), idle_timeout(1), rops.to_list())
    assert chunks[-1].finish_reason == "stop"
    assert server.completed == 1


def test_no_loop_and_no_scheduler_is_a_clear_error() -> None:
    import reactivex

    errors: list[Exception] = []
    reactivex.never().pipe(idle_timeout(1)).subscribe(on_error=errors.append)
    assert isinstance(errors[0], RuntimeError) and "scheduler" in str(errors[0])
