"""Client-side cost of streaming: rxchat's facades against the OpenAI, Dedalus and Edgee SDKs.

Run: ``python benchmarks/bench_clients.py [--tokens 200,2000] [--repeat 5]``

The mock server runs in a separate process, so ``time.process_time()`` here measures the client
alone (every thread of this process, rxchat's background loop thread included). Every
contender makes the same request to the same server (``tokens`` content chunks, no delay) and
consumes the answer the way an application does: reading each content delta.

Columns: ``chunks`` per stream (server side), ``events`` the consumer saw, ``events/s`` over
wall time, ``CPU µs/chunk`` (process CPU divided by chunks) — best of ``repeat`` runs — and the
ratio of that CPU cost to rxchat's corresponding facade.

A second table gives, for each way of stopping a stream early, the time from the stop (``break``,
leaving ``with``, ``close()``, task cancellation, disposal) until the mock server (in-process, on
its own loop thread) saw the client disconnect.

Targets: rxchat's event stream (``Client.chat.completions.stream``) at least 5x cheaper per chunk
than the OpenAI and Dedalus ``.stream()`` helpers; rxchat's chunk iteration no slower than the
Edgee SDK's ``stream()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dedalus_labs
import edgee
import openai

import rxchat._client as rx
from rxchat.mock import MockServer

MESSAGES = [{"role": "user", "content": "benchmark"}]
PROMPT = "benchmark"


@dataclass
class Row:
    group: str
    name: str
    chunks: int
    events: int
    wall: float
    cpu: float
    text: str

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall

    @property
    def cpu_us_per_chunk(self) -> float:
        return self.cpu / self.chunks * 1e6


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The mock server in its own process; returns it and its base URL (with /v1)."""
    code = "from rxchat.mock import run; run(port=0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line!r}")
    return proc, line.strip().split()[-1]


# -- contenders: each returns (events seen, text) --------------------------------------------


def rx_events(client: rx.Client, model: str) -> tuple[int, str]:
    n, parts = 0, []
    with client.chat.completions.stream(model=model, messages=MESSAGES) as stream:
        for event in stream:
            n += 1
            if event.type == "content.delta":
                parts.append(event.delta)
    return n, "".join(parts)


def rx_chunks(client: rx.Client, model: str) -> tuple[int, str]:
    n, parts = 0, []
    with client.chat.completions.create(model=model, messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            n += 1
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    return n, "".join(parts)


def rx_edgee(client: rx.Client, model: str) -> tuple[int, str]:
    n, parts = 0, []
    for chunk in client.stream(model, PROMPT):
        n += 1
        if chunk.text:
            parts.append(chunk.text)
    return n, "".join(parts)


def rx_async_events(client: rx.AsyncClient, model: str) -> tuple[int, str]:
    async def run() -> tuple[int, str]:
        n, parts = 0, []
        async with client.chat.completions.stream(model=model, messages=MESSAGES) as stream:
            async for event in stream:
                n += 1
                if event.type == "content.delta":
                    parts.append(event.delta)
        return n, "".join(parts)

    return asyncio.run(run())


def sdk_events(client: Any, model: str) -> tuple[int, str]:
    n, parts = 0, []
    with client.chat.completions.stream(model=model, messages=MESSAGES) as stream:
        for event in stream:
            n += 1
            if event.type == "content.delta":
                parts.append(event.delta)
    return n, "".join(parts)


def sdk_chunks(client: Any, model: str) -> tuple[int, str]:
    n, parts = 0, []
    for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
        n += 1
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return n, "".join(parts)


def edgee_chunks(client: edgee.Edgee, model: str) -> tuple[int, str]:
    n, parts = 0, []
    for chunk in client.stream(model, PROMPT):
        n += 1
        if chunk.text:
            parts.append(chunk.text)
    return n, "".join(parts)


def measure(
    group: str, name: str, fn: Callable[[str], tuple[int, str]], model: str, chunks: int, repeat: int
) -> Row:
    fn(model)  # warm-up: connections, imports, caches
    walls, cpus = [], []
    events, text = 0, ""
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        events, text = fn(model)
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - t0)
    return Row(group, name, chunks, events, min(walls), min(cpus), text)


# -- disconnect latency ----------------------------------------------------------------------

LONG = "bench?tokens=20000&delay=0.002"


def _sync_break(client: rx.Client) -> float:
    stream = client.chat.completions.create(model=LONG, messages=MESSAGES, stream=True)
    for i, _ in enumerate(stream):
        if i == 5:
            t = time.monotonic()
            break
    return t


def _sync_with_events(client: rx.Client) -> float:
    with client.chat.completions.stream(model=LONG, messages=MESSAGES) as stream:
        for event in stream:
            if event.type == "content.delta":
                t = time.monotonic()
                break
    return t


def _sync_close(client: rx.Client) -> float:
    stream = client.stream(LONG, PROMPT)
    next(stream)
    t = time.monotonic()
    stream.close()
    return t


async def _async_break(client: rx.AsyncClient) -> float:
    stream = await client.chat.completions.create(model=LONG, messages=MESSAGES, stream=True)
    n = 0
    async for _ in stream:
        n += 1
        if n == 5:
            t = time.monotonic()
            break
    return t


async def _async_with(client: rx.AsyncClient) -> float:
    async with client.chat.completions.stream(model=LONG, messages=MESSAGES) as stream:
        async for event in stream:
            if event.type == "content.delta":
                t = time.monotonic()
                break
    return t


async def _async_cancel(client: rx.AsyncClient) -> float:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in client.stream(LONG, PROMPT):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    t = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return t


async def _async_dispose(client: rx.AsyncClient) -> float:
    got = asyncio.Event()
    sub = client.chat.completions.observe(model=LONG, messages=MESSAGES).subscribe(
        on_next=lambda _c: got.set()
    )
    await got.wait()
    t = time.monotonic()
    sub.dispose()
    return t


def bench_disconnect(repeat: int) -> list[tuple[str, float, float]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MockServer()
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result()

    def wait(count: int) -> float:
        fut = asyncio.run_coroutine_threadsafe(server.wait_for_disconnect(5.0, count=count), loop)
        return float(fut.result(10).at)

    rows: list[tuple[str, float, float]] = []
    count = 0
    client = rx.Client(base_url=url)
    sync_paths: list[tuple[str, Callable[[rx.Client], float]]] = [
        ("sync: break out of for (create stream=True)", _sync_break),
        ("sync: leave with .stream() early", _sync_with_events),
        ("sync: Stream.close() (Edgee-style stream)", _sync_close),
    ]
    for label, fn in sync_paths:
        lat = []
        for _ in range(repeat):
            t = fn(client)
            count += 1
            lat.append(wait(count) - t)
        rows.append((label, statistics.median(lat) * 1e3, max(lat) * 1e3))
    client.close()

    async def run_async() -> None:
        nonlocal count
        async with rx.AsyncClient(base_url=url) as aclient:
            async_paths: list[tuple[str, Callable[[rx.AsyncClient], Any]]] = [
                ("async: break out of async for", _async_break),
                ("async: leave async with .stream() early", _async_with),
                ("async: cancel the consuming task", _async_cancel),
                ("async: dispose an observe() subscription", _async_dispose),
            ]
            for label, fn in async_paths:
                lat = []
                for _ in range(repeat):
                    t = await fn(aclient)
                    count += 1
                    at = await asyncio.wrap_future(
                        asyncio.run_coroutine_threadsafe(
                            server.wait_for_disconnect(5.0, count=count), loop
                        )
                    )
                    lat.append(at.at - t)
                rows.append((label, statistics.median(lat) * 1e3, max(lat) * 1e3))

    asyncio.run(run_async())
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="200,2000", help="content chunks per stream (list)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    proc, url = start_server()
    root = url.removesuffix("/v1")
    rx_client = rx.Client(base_url=url, api_key="bench")
    rx_async = rx.AsyncClient(base_url=url, api_key="bench")
    oa = openai.OpenAI(base_url=url, api_key="bench")
    dd = dedalus_labs.Dedalus(base_url=root, api_key="bench")
    ed = edgee.Edgee({"api_key": "bench", "base_url": root})
    try:
        for tokens in [int(t) for t in args.tokens.split(",")]:
            model = f"bench?tokens={tokens}"
            chunks, reference = rx_chunks(rx_client, model)
            contenders: list[tuple[str, str, Callable[[str], tuple[int, str]]]] = [
                ("events", "rxchat Client.chat.completions.stream", lambda m: rx_events(rx_client, m)),
                ("events", "rxchat AsyncClient.chat.completions.stream",
                 lambda m: rx_async_events(rx.AsyncClient(base_url=url, api_key="bench"), m)),
                ("events", "openai .chat.completions.stream", lambda m: sdk_events(oa, m)),
                ("events", "dedalus-labs .chat.completions.stream", lambda m: sdk_events(dd, m)),
                ("chunks", "rxchat Client.chat.completions.create(stream=True)",
                 lambda m: rx_chunks(rx_client, m)),
                ("chunks", "rxchat Client.stream (Edgee style)", lambda m: rx_edgee(rx_client, m)),
                ("chunks", "edgee Edgee.stream", lambda m: edgee_chunks(ed, m)),
                ("chunks", "openai create(stream=True)", lambda m: sdk_chunks(oa, m)),
                ("chunks", "dedalus-labs create(stream=True)", lambda m: sdk_chunks(dd, m)),
            ]  # fmt: skip
            rows = [measure(g, n, fn, model, chunks, args.repeat) for g, n, fn in contenders]
            for row in rows:
                if row.text != reference:
                    raise SystemExit(f"{row.name} read a different answer than rxchat")
            print(f"\n{tokens} content tokens per stream ({chunks} chunks), best of {args.repeat}")
            print(
                f"{'':6} {'client':52} {'events':>7} {'events/s':>11} {'CPU µs/chunk':>13} {'vs rxchat':>10}"
            )
            base = {g: next(r for r in rows if r.group == g).cpu_us_per_chunk for g in ("events", "chunks")}
            for row in rows:
                ratio = row.cpu_us_per_chunk / base[row.group]
                print(
                    f"{row.group:6} {row.name:52} {row.events:7d} {row.events_per_s:11,.0f} "
                    f"{row.cpu_us_per_chunk:13.1f} {ratio:9.1f}x"
                )
        print(f"\nDisconnect latency (stop -> server saw the disconnect), {args.repeat} runs each")
        print(f"{'path':52} {'median ms':>10} {'max ms':>8}")
        for label, median, worst in bench_disconnect(args.repeat):
            print(f"{label:52} {median:10.2f} {worst:8.2f}")
    finally:
        rx_client.close()
        asyncio.run(rx_async.close())
        oa.close()
        dd.close()
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
