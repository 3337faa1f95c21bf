"""Cancellation paths, shared by ``test_cancellation.py`` and ``benchmarks/bench_faults.py``.

Each path starts an endless stream from the mock server (on its own thread), waits until a few
chunks arrived, takes ``time.monotonic()``, performs the user's stop action, and returns when
the server recorded the disconnect. The latency is the server's record time minus the action
time (one monotonic clock for the whole machine, so it works across threads and processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faultkit import MESSAGES, SENTINEL_KEY, cli_command, cli_env
from support import ThreadedMock

from rxchat import AsyncClient, Client, Timeout, chat_completion_stream
from rxchat.errors import APITimeoutError
from rxchat.operators import broadcast, idle_timeout

ENDLESS = "mock?tokens=20000&delay=0.002"  # 40 s: never finishes within a test
STALLED = "mock?tokens=8&stall_first=30"  # headers, then nothing: cancelled while waiting
SEEN = 3  # chunks to receive before stopping


@dataclass
class Stop:
    """What one cancellation path measured."""

    latency: float  # seconds from the stop action to the server's disconnect record
    chunks_at_disconnect: int  # chunks the server had written when it noticed
    chunks_later: int  # chunks written 50 ms after the disconnect (must not grow)
    outcome: str | None  # the server's stream outcome ("disconnected")


async def _measure(
    server: ThreadedMock, action: Callable[[], Awaitable[float]], timeout: float = 5.0
) -> Stop:
    state = server.server.state
    before = server.snapshot(lambda: len(state.disconnects))
    t0 = await action()
    record = await server.acall(state.wait_for_disconnect(timeout, count=before + 1))
    stream = server.snapshot(lambda: state.stream(record.request_id))
    chunks = stream.chunks
    await asyncio.sleep(0.05)
    later = server.snapshot(lambda: state.stream(record.request_id).chunks)
    return Stop(record.at - t0, chunks, later, stream.outcome)


def _client(url: str) -> AsyncClient:
    return AsyncClient(api_key=SENTINEL_KEY, base_url=url, max_retries=0)


# -- async paths (run on the test's loop) -------------------------------------------------------


async def dispose_subscription(server: ThreadedMock) -> Stop:
    """``subscription.dispose()`` of ``chat_completion_stream(...)``."""

    async def action() -> float:
        seen = asyncio.Event()
        count = 0

        def on_next(_: Any) -> None:
            nonlocal count
            count += 1
            if count == SEEN:
                seen.set()

        sub = chat_completion_stream(
            model=ENDLESS, messages=MESSAGES, base_url=server.url, api_key=SENTINEL_KEY
        ).subscribe(on_next)
        await seen.wait()
        t0 = time.monotonic()
        sub.dispose()
        return t0

    return await _measure(server, action)


async def dispose_observe(server: ThreadedMock) -> Stop:
    """``dispose()`` of ``AsyncClient.chat.completions.observe(...)`` piped through operators."""
    async with _client(server.url) as client:

        async def action() -> float:
            seen = asyncio.Event()
            count = 0

            def on_next(_: Any) -> None:
                nonlocal count
                count += 1
                if count == SEEN:
                    seen.set()

            sub = (
                client.chat.completions.observe(model=ENDLESS, messages=MESSAGES)
                .pipe(idle_timeout(30))
                .subscribe(on_next)
            )
            await seen.wait()
            t0 = time.monotonic()
            sub.dispose()
            return t0

        return await _measure(server, action)


async def broadcast_last_leaves(server: ThreadedMock) -> Stop:
    """Two subscribers of ``ops.broadcast()``; the request ends when the last one leaves."""

    async def action() -> float:
        seen = asyncio.Event()
        count = 0

        def on_next(_: Any) -> None:
            nonlocal count
            count += 1
            if count == SEEN:
                seen.set()

        shared = chat_completion_stream(
            model=ENDLESS, messages=MESSAGES, base_url=server.url, api_key=SENTINEL_KEY
        ).pipe(broadcast())
        first = shared.subscribe(on_next)
        second = shared.subscribe(lambda _: None)
        await seen.wait()
        first.dispose()  # one left: the stream goes on
        await asyncio.sleep(0.05)
        if server.snapshot(lambda: server.server.state.active_streams) != 1:
            raise AssertionError("the request ended while a subscriber remained")
        t0 = time.monotonic()
        second.dispose()
        return t0

    return await _measure(server, action)


async def async_for_break(server: ThreadedMock) -> Stop:
    """``break`` out of ``async for chunk in await create(stream=True)``."""
    async with _client(server.url) as client:

        async def action() -> float:
            stream = await client.chat.completions.create(
                model=ENDLESS, messages=MESSAGES, stream=True
            )
            n = 0
            async for _ in stream:
                n += 1
                if n == SEEN:
                    t0 = time.monotonic()
                    break
            return t0

        return await _measure(server, action)


async def async_with_exit(server: ThreadedMock) -> Stop:
    """Leaving ``async with stream`` (``create(stream=True)``) before the end."""
    async with _client(server.url) as client:

        async def action() -> float:
            stream = await client.chat.completions.create(
                model=ENDLESS, messages=MESSAGES, stream=True
            )
            async with stream:
                n = 0
                async for _ in stream:
                    n += 1
                    if n == SEEN:
                        t0 = time.monotonic()
                        break
            return t0

        return await _measure(server, action)


async def async_event_stream_exit(server: ThreadedMock) -> Stop:
    """Leaving ``async with client.chat.completions.stream(...)`` in the middle."""
    async with _client(server.url) as client:

        async def action() -> float:
            async with client.chat.completions.stream(model=ENDLESS, messages=MESSAGES) as s:
                n = 0
                async for event in s:
                    if event.type == "chunk":
                        n += 1
                        if n == SEEN:
                            t0 = time.monotonic()
                            break
            return t0

        return await _measure(server, action)


async def cancel_task(server: ThreadedMock) -> Stop:
    """``task.cancel()`` of the task iterating an ``AsyncStream``."""
    async with _client(server.url) as client:

        async def action() -> float:
            seen = asyncio.Event()

            async def consume() -> None:
                stream = await client.chat.completions.create(
                    model=ENDLESS, messages=MESSAGES, stream=True
                )
                n = 0
                async for _ in stream:
                    n += 1
                    if n == SEEN:
                        seen.set()

            task = asyncio.create_task(consume())
            await seen.wait()
            t0 = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return t0

        return await _measure(server, action)


async def cancel_task_before_first_chunk(server: ThreadedMock) -> Stop:
    """``task.cancel()`` while the request waits for its first chunk (headers received)."""
    async with _client(server.url) as client:

        async def action() -> float:
            state = server.server.state
            before = server.snapshot(lambda: len(state.streams))

            async def consume() -> None:
                stream = await client.chat.completions.create(
                    model=STALLED, messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    pass

            task = asyncio.create_task(consume())
            await server.acall(state.wait_for(lambda: len(state.streams) > before))
            await asyncio.sleep(0.05)  # the client now waits on the socket
            t0 = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return t0

        return await _measure(server, action)


async def idle_timeout_fires(server: ThreadedMock) -> Stop:
    """``ops.idle_timeout`` expires (keep-alives flowing, no output): the request is dropped."""
    async with _client(server.url) as client:

        async def action() -> float:
            loop = asyncio.get_running_loop()
            failed: asyncio.Future[float] = loop.create_future()
            model = f"mock?tokens=100&stall_between=30&stall_after={SEEN}&keepalive=0.02"
            sub = (
                client.chat.completions.observe(model=model, messages=MESSAGES)
                .pipe(idle_timeout(0.3))
                .subscribe(on_error=lambda _: failed.set_result(time.monotonic()))
            )
            try:
                return await failed
            finally:
                sub.dispose()

        return await _measure(server, action)


async def read_timeout_fires(server: ThreadedMock) -> Stop:
    """The transport's read timeout expires mid-stream: the connection is closed, not pooled."""
    async with AsyncClient(
        api_key=SENTINEL_KEY, base_url=server.url, max_retries=0, timeout=Timeout(read=0.3)
    ) as client:

        async def action() -> float:
            model = f"mock?tokens=100&stall_between=30&stall_after={SEEN}"
            stream = await client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True
            )
            try:
                async for _ in stream:
                    pass
            except APITimeoutError:
                return time.monotonic()
            raise AssertionError("no timeout")

        return await _measure(server, action)


# -- sync paths (run in a worker thread; the sync client uses rxchat's loop thread) --------------


def _sync(fn: Callable[[Client], float]) -> Callable[[ThreadedMock], Awaitable[Stop]]:
    async def path(server: ThreadedMock) -> Stop:
        def action_in_thread() -> float:
            with Client(api_key=SENTINEL_KEY, base_url=server.url, max_retries=0) as client:
                return fn(client)

        async def action() -> float:
            return await asyncio.to_thread(action_in_thread)

        return await _measure(server, action)

    path.__doc__ = fn.__doc__
    path.__name__ = fn.__name__
    return path


@_sync
def sync_for_break(client: Client) -> float:
    """``break`` out of ``for chunk in client.chat.completions.create(stream=True)``."""
    stream = client.chat.completions.create(model=ENDLESS, messages=MESSAGES, stream=True)
    for n, _ in enumerate(stream, 1):
        if n == SEEN:
            t0 = time.monotonic()
            break
    return t0


@_sync
def sync_with_exit(client: Client) -> float:
    """Leaving ``with client.chat.completions.create(stream=True)`` before the end."""
    with client.chat.completions.create(model=ENDLESS, messages=MESSAGES, stream=True) as s:
        for n, _ in enumerate(s, 1):
            if n == SEEN:
                t0 = time.monotonic()
                break
    return t0


@_sync
def sync_event_stream_exit(client: Client) -> float:
    """Leaving ``with client.chat.completions.stream(...)`` in the middle."""
    with client.chat.completions.stream(model=ENDLESS, messages=MESSAGES) as s:
        n = 0
        for event in s:
            if event.type == "chunk":
                n += 1
                if n == SEEN:
                    t0 = time.monotonic()
                    break
    return t0


@_sync
def sync_exception_in_loop(client: Client) -> float:
    """An exception raised in the body of ``for chunk in stream``."""
    n = 0
    t0 = 0.0
    try:
        for _ in client.chat.completions.create(model=ENDLESS, messages=MESSAGES, stream=True):
            n += 1
            if n == SEEN:
                t0 = time.monotonic()
                raise KeyError("user code failed")
    except KeyError:
        pass
    return t0


@_sync
def sync_observe_dispose(client: Client) -> float:
    """``dispose()`` of a sync client's ``observe(...)`` subscription from another thread."""
    seen = threading.Event()
    count = 0

    def on_next(_: Any) -> None:
        nonlocal count
        count += 1
        if count == SEEN:
            seen.set()

    sub = client.chat.completions.observe(model=ENDLESS, messages=MESSAGES).subscribe(on_next)
    if not seen.wait(5):
        raise AssertionError("no chunks")
    t0 = time.monotonic()
    sub.dispose()
    return t0


# -- the CLI -------------------------------------------------------------------------------------


async def cli_interrupt(server: ThreadedMock) -> Stop:
    """Ctrl-C (SIGINT) to ``rxchat chat`` while it streams."""

    async def action() -> float:
        state = server.server.state
        before = server.snapshot(lambda: len(state.streams))
        args = cli_command(
            "chat", "hello", "--base-url", server.url, "--model", ENDLESS, "--api-key", SENTINEL_KEY
        )
        # The answer is endless and nobody reads it here: a pipe would fill up and block the CLI
        # in write(), which is not what this measures. Discard stdout; stderr stays small.
        proc = subprocess.Popen(
            args,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # MockState.wait_for re-checks on stream start/end only: poll for the chunk count.
            deadline = time.monotonic() + 10
            while not server.snapshot(
                lambda: len(state.streams) > before and state.streams[-1].chunks >= SEEN
            ):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("rxchat chat did not start streaming")
                await asyncio.sleep(0.01)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            status = await asyncio.to_thread(proc.wait, 10)
            if status != 130:
                raise AssertionError(f"rxchat chat exited {status} on Ctrl-C, expected 130")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
        return t0

    return await _measure(server, action)


PATHS: list[Callable[[ThreadedMock], Awaitable[Stop]]] = [
    dispose_subscription,
    dispose_observe,
    broadcast_last_leaves,
    async_for_break,
    async_with_exit,
    async_event_stream_exit,
    cancel_task,
    cancel_task_before_first_chunk,
    idle_timeout_fires,
    read_timeout_fires,
    sync_for_break,
    sync_with_exit,
    sync_event_stream_exit,
    sync_exception_in_loop,
    sync_observe_dispose,
]
