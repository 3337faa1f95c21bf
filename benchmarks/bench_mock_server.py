"""Mock-server throughput and disconnect-detection latency.

Run: ``python benchmarks/bench_mock_server.py [--tokens 200000] [--repeat 3]``

Prints three tables:

1. frame generation alone (plan + byte encoding, no I/O), chunks/s;
2. end to end over loopback: the mock server and a minimal raw reader (``iter_any`` and a
   byte count, nothing parsed) in one process; CPU per chunk is the sum of both sides,
   so it bounds the server's cost from above;
3. disconnect latency: time from the client closing the socket to the server recording
   the disconnect, for a paced stream, a stall and the batched fast path, with aiohttp's
   handler cancellation (``MockServer``) and with transport polling (a plain runner).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web

from rxchat.mock import MockServer, MockState, create_app
from rxchat.mock._options import MockOptions
from rxchat.mock._plan import build_plan
from rxchat.mock._stream import iter_frames

MESSAGES = [{"role": "user", "content": "benchmark"}]


def bench_generation(tokens: int, repeat: int) -> list[tuple[str, int, float, float]]:
    rows = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("text", {}),
        ("text + include_usage", {"stream_options": {"include_usage": True}}),
        ("text + logprobs", {"logprobs": True}),
        ("json_object", {"response_format": {"type": "json_object"}}),
    ]
    for label, extra in cases:
        best = float("inf")
        chunks = 0
        size = 0
        for _ in range(repeat):
            body = {"model": "mock", "messages": MESSAGES, "stream": True, **extra}
            t0 = time.process_time()
            plan = build_plan(body, MockOptions(tokens=tokens), model_name="mock")
            chunks = 0
            size = 0
            for frame in iter_frames(plan):
                chunks += 1
                size += len(frame)
            best = min(best, time.process_time() - t0)
        rows.append((label, chunks, chunks / best, size / best / 1e6))
    return rows


async def bench_loopback(tokens: int, repeat: int) -> list[tuple[str, int, float, float, float]]:
    rows = []
    async with MockServer() as server, aiohttp.ClientSession() as http:
        for label, model in (("no delay (batched)", f"mock?tokens={tokens}"),):
            walls, cpus = [], []
            chunks = 0
            for _ in range(repeat):
                body = {"model": model, "messages": MESSAGES, "stream": True}
                t0, c0 = time.perf_counter(), time.process_time()
                async with http.post(server.url + "/chat/completions", json=body) as resp:
                    nbytes = 0
                    async for piece in resp.content.iter_any():
                        nbytes += len(piece)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                chunks = server.streams[-1].chunks
            wall = min(walls)
            cpu = min(cpus)
            rows.append((label, chunks, chunks / wall, cpu / chunks * 1e6, nbytes / wall / 1e6))
    return rows


class _Plain:
    def __init__(self) -> None:
        self.state = MockState()
        self.runner = web.AppRunner(create_app(state=self.state), shutdown_timeout=0.1)
        self.url = ""

    async def __aenter__(self) -> _Plain:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def _latency(
    url: str, state: MockState, model: str, read_first: bool, trials: int
) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(trials):
            n = len(state.disconnects)
            body = {"model": model, "messages": MESSAGES, "stream": True}
            resp = await http.post(url + "/chat/completions", json=body)
            if read_first:
                await resp.content.readany()
            await asyncio.sleep(0.02)
            t = time.monotonic()
            resp.close()
            record = await state.wait_for_disconnect(5.0, count=n + 1)
            out.append((record.at - t) * 1000)
    return out


async def bench_disconnect(trials: int) -> list[tuple[str, str, float, float]]:
    cases = [
        ("paced, delay=20ms", "mock?tokens=100000&delay=0.02", True),
        ("stall before first chunk", "mock?stall_first=60", False),
        ("batched fast path", "mock?tokens=1000000", True),
    ]
    rows = []
    async with MockServer() as server:
        for label, model, read_first in cases:
            lat = await _latency(server.url, server.state, model, read_first, trials)
            rows.append(("handler cancellation", label, statistics.median(lat), max(lat)))
    async with _Plain() as plain:
        for label, model, read_first in cases:
            lat = await _latency(plain.url, plain.state, model, read_first, trials)
            rows.append(("polling (plain runner)", label, statistics.median(lat), max(lat)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()

    print(f"\n1. Frame generation, {args.tokens} tokens, best of {args.repeat}")
    print(f"{'case':<24}{'chunks':>10}{'chunks/s':>14}{'MB/s':>9}")
    for label, chunks, rate, mbs in bench_generation(args.tokens, args.repeat):
        print(f"{label:<24}{chunks:>10}{rate:>14,.0f}{mbs:>9.1f}")

    print("\n2. Loopback, server + raw byte reader in one process (CPU of both sides)")
    print(f"{'case':<24}{'chunks':>10}{'chunks/s':>14}{'CPU us/chunk':>14}{'MB/s':>9}")
    for label, chunks, rate, us, mbs in asyncio.run(bench_loopback(args.tokens, args.repeat)):
        print(f"{label:<24}{chunks:>10}{rate:>14,.0f}{us:>14.3f}{mbs:>9.1f}")

    print(
        f"\n3. Disconnect detection latency, {args.trials} trials (ms from client close to record)"
    )
    print(f"{'server':<24}{'stream':<28}{'median':>9}{'max':>9}")
    for server, label, med, mx in asyncio.run(bench_disconnect(args.trials)):
        print(f"{server:<24}{label:<28}{med:>9.2f}{mx:>9.2f}")


if __name__ == "__main__":
    main()
