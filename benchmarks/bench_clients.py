"""Client-side cost of streaming: rxchat's facades against the OpenAI, Dedalus and Edgee SDKs.

Run: ``python benchmarks/bench_clients.py [--tokens 200,2000] [--repeat 5]``

The mock server runs in a separate process, so ``time.process_time()`` here measures the client
alone (every thread of this process, rxchat's background loop thread included). Every
contender makes the same request to the same server (``tokens`` content chunks, no delay) and
consumes the answer the way an application does: reading each content delta.

Columns: ``chunks`` per stream (server side), ``events`` the consumer saw, ``events/s`` over
wall time, ``CPU µs/chunk`` (process CPU divided by chunks) — best of ``repeat`` runs — and the
ratio of that CPU cost to rxchat's corresponding facade.

Targets: rxchat's event stream (``Client.chat.completions.stream``) at least 5x cheaper per chunk
than the OpenAI and Dedalus ``.stream()`` helpers; rxchat's chunk iteration no slower than the
Edgee SDK's ``stream()``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dedalus_labs
import edgee
import openai

import rxchat._client as rx

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
    finally:
        rx_client.close()
        asyncio.run(rx_async.close())
        oa.close()
        dd.close()
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
