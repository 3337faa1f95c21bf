"""The relay's cost: CPU per chunk for each encoder against a hand-written SSE writer, and 1,000
concurrent SSE clients on one server process.

Run:  python benchmarks/bench_relay.py [--chunks 50000] [--repeat 5] [--clients 1000] [--events 200]
      python benchmarks/bench_relay.py --only cpu      (or --only load)

Table 1 — CPU per chunk. The same stream (``--chunks`` chunks of 4 characters of text; the
``events`` format gets the events of that stream, precomputed) goes through
``rxchat.relay.SSEStream`` fed by a hot Observable, 64 items per loop turn (as one network read
brings them), the writer taking the bytes after each turn. The floor is what a hand-written
handler subscribed to the same Observable does for the same payload: serialise it (the same serialiser: pydantic's for chunks,
orjson for the rest) and frame it as ``data: ...\\n\\n`` (``event:`` too for events), with no id, no
line-break safety, no buffer accounting, no state (the AI SDK floor sends ``text-delta`` only,
without the start / end parts). Target: the relay costs at most 1.5 x its floor.

Table 2 — load. A server process relays one hot stream (``--events`` chunks, one every 50 ms,
each carrying its sequence number and send time) to ``--clients`` aiohttp clients in another
process, over loopback, with ``aiohttp_response(..., "openai")``. Every client checks it got every
event once and in order, then ``[DONE]``; the table gives the events lost, the server's memory per
connection (RSS with every client connected minus before, divided by the clients), and the
delivery latency from the producer's ``on_next`` to the client's parse (p50 / p99 / max, the same
monotonic clock on both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
from reactivex.subject import Subject

from rxchat import relay
from rxchat._state import ChatCompletionStreamState
from rxchat.types import ChatCompletionChunk

BATCH = 64


def make_chunks(n: int) -> list[ChatCompletionChunk]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    dicts = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    dicts += [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"content": f"w{i % 97:02d} "}, "finish_reason": None}
            ],
        }
        for i in range(n)
    ]
    dicts.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [ChatCompletionChunk.model_validate(d) for d in dicts]


# -- floors: what a hand-written handler writes ---------------------------------------------------
# Each is subscribed to the same Observable as the relay and frames each item as it comes.


def floor_openai(chunk: Any) -> bytes:
    return (
        b"data: " + type(chunk).__pydantic_serializer__.to_json(chunk, exclude_unset=True) + b"\n\n"
    )


def floor_events(event: Any) -> bytes:
    kind = event.type
    if kind == "chunk":
        return b""
    if kind == "content.delta":
        body = {"type": kind, "delta": event.delta, "choice_index": event.choice_index}
    else:
        body = event.model_dump(mode="json", exclude={"snapshot"})
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


def floor_ai_sdk(chunk: Any) -> bytes:
    text = chunk.choices[0].delta.content if chunk.choices else None
    if not text:
        return b""
    return b"data: " + orjson.dumps({"type": "text-delta", "id": "text-0", "delta": text}) + b"\n\n"


def run_floor(writer: Any, items: list[Any]) -> tuple[float, int]:
    subject: Subject[Any] = Subject()
    out: list[bytes] = []
    subject.subscribe(lambda item: out.append(writer(item)))
    start = time.process_time()
    size = 0
    for i in range(0, len(items), BATCH):
        for item in items[i : i + BATCH]:
            subject.on_next(item)
        size += len(b"".join(out))
        out.clear()
    return time.process_time() - start, size


async def run_relay(format: str, items: list[Any]) -> tuple[float, int]:
    subject: Subject[Any] = Subject()
    stream = relay.sse(subject, format, keepalive=None)  # type: ignore[arg-type]
    start = time.process_time()
    size = len(await _first(stream, subject, items[:BATCH]))
    for i in range(BATCH, len(items), BATCH):
        for item in items[i : i + BATCH]:
            subject.on_next(item)
        size += len(await stream.__anext__())
    subject.on_completed()
    size += sum([len(data) async for data in stream])
    return time.process_time() - start, size


async def _first(stream: relay.SSEStream, subject: Subject[Any], items: list[Any]) -> bytes:
    async def feed() -> None:
        await asyncio.sleep(0)
        for item in items:
            subject.on_next(item)

    task = asyncio.ensure_future(feed())
    data = await stream.__anext__()  # subscribes, then waits for the first turn's items
    await task
    return data


def cpu_table(n: int, repeat: int) -> None:
    chunks = make_chunks(n)
    state = ChatCompletionStreamState()
    events = [e for chunk in chunks for e in state.handle_chunk(chunk)]
    for e in events:  # resolve deferred fields once, as a consumer of the events would have
        if e.type == "content.delta":
            _ = e.delta
    rows = [
        ("openai", chunks, floor_openai, len(chunks)),
        ("events", events, floor_events, len(chunks)),
        ("ai-sdk-ui", chunks, floor_ai_sdk, len(chunks)),
    ]
    print(f"\nTable 1 - CPU per chunk ({n} chunks, median of {repeat} runs)\n")
    print("| format     | floor µs/chunk | relay µs/chunk | relay / floor | relay bytes/chunk |")
    print("|------------|----------------|----------------|---------------|-------------------|")
    for name, items, floor, count in rows:
        floors, relays, size = [], [], 0
        for _ in range(repeat):
            floors.append(run_floor(floor, items)[0])
            seconds, size = asyncio.run(run_relay(name, items))
            relays.append(seconds)
        f, r = statistics.median(floors) / count * 1e6, statistics.median(relays) / count * 1e6
        print(f"| {name:<10} | {f:14.2f} | {r:14.2f} | {r / f:12.2f}x | {size / count:17.0f} |")
    # the events format straight from chunks: the encoder also accumulates (the stream state)
    relays = [asyncio.run(run_relay("events", chunks))[0] for _ in range(repeat)]
    r = statistics.median(relays) / len(chunks) * 1e6
    print(f"| events*    | {'-':>14} | {r:14.2f} | {'-':>13} |                   |")
    print("\n* the events format fed chunks: includes accumulating them into events\n")


# -- load ------------------------------------------------------------------------------------------


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def serve(events: int, interval: float) -> None:
    """The server process: GET /sse relays the hot stream; POST /start starts it."""
    from aiohttp import web

    _raise_fd_limit()
    subject: Subject[Any] = Subject()
    stats: dict[str, Any] = {"rss_before_kb": _rss_kb()}
    done = asyncio.Event()

    async def sse(request: web.Request) -> web.StreamResponse:
        return await relay.aiohttp_response(request, subject, "openai", keepalive=15.0)

    async def start(request: web.Request) -> web.Response:
        stats["rss_connected_kb"] = _rss_kb()
        asyncio.get_running_loop().create_task(produce())
        return web.json_response({})

    async def produce() -> None:
        base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        cpu = time.process_time()
        for seq in range(events):
            await asyncio.sleep(interval)
            text = f"{seq}:{time.monotonic()!r}"
            subject.on_next(
                ChatCompletionChunk.model_validate(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": text}, "finish_reason": None}
                        ],
                    }
                )
            )
            stats["rss_peak_kb"] = max(stats.get("rss_peak_kb", 0), _rss_kb())
        subject.on_completed()
        stats["cpu_s"] = time.process_time() - cpu
        done.set()

    async def result(request: web.Request) -> web.Response:
        await done.wait()
        return web.json_response(stats)

    app = web.Application()
    app.router.add_get("/sse", sse)
    app.router.add_post("/start", start)
    app.router.add_get("/result", result)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


async def clients(port: int, count: int, events: int) -> dict[str, Any]:
    import aiohttp

    _raise_fd_limit()
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    lost = 0
    errors = 0
    connected = 0
    all_connected = asyncio.Event()

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal lost, errors, connected
        expected = 0
        buffer = b""
        finished = False
        try:
            async with http.get(f"{base}/sse") as response:
                connected += 1
                if connected == count:
                    all_connected.set()
                async for data in response.content.iter_any():
                    buffer += data
                    *frames, buffer = buffer.split(b"\n\n")
                    now = time.monotonic()
                    for frame in frames:
                        line = frame.rsplit(b"\ndata: ", 1)[-1]
                        if not line.startswith(b"{"):
                            finished = finished or line.endswith(b"[DONE]")
                            continue
                        text = orjson.loads(line)["choices"][0]["delta"]["content"]
                        seq, sent = text.split(":")
                        if int(seq) != expected:
                            lost += int(seq) - expected
                        expected = int(seq) + 1
                        latencies.append(now - float(sent))
        except Exception:
            errors += 1
        lost += events - expected
        if not finished:
            errors += 1

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = [asyncio.ensure_future(one(http)) for _ in range(count)]
        await asyncio.wait_for(all_connected.wait(), 60)
        await http.post(f"{base}/start")
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        async with http.get(f"{base}/result") as response:
            server = await response.json()
    latencies.sort()
    return {
        "server": server,
        "lost": lost,
        "errors": errors,
        "received": len(latencies),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
    }


def load_table(count: int, events: int, interval: float) -> None:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(events), str(interval)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        wall = time.monotonic()
        result = asyncio.run(clients(port, count, events))
        wall = time.monotonic() - wall
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(30)
    s = result["server"]
    per_conn = (s["rss_connected_kb"] - s["rss_before_kb"]) / count
    print(
        f"\nTable 2 - {count} SSE clients on one server process, {events} events every {interval * 1e3:.0f} ms\n"
    )
    print(
        "| clients | events sent | delivered | lost | errors | server KiB/conn | server peak RSS MiB | server CPU s | p50 ms | p99 ms | max ms |"
    )
    print(
        "|---------|-------------|-----------|------|--------|-----------------|---------------------|--------------|--------|--------|--------|"
    )
    print(
        f"| {count} | {events * count} | {result['received']} | {result['lost']} | {result['errors']} "
        f"| {per_conn:.1f} | {s.get('rss_peak_kb', 0) / 1024:.0f} | {s['cpu_s']:.2f} "
        f"| {result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['max_ms']:.1f} |"
    )
    print(f"\n(wall {wall:.1f} s)\n")
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--only", choices=["cpu", "load"])
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(int(args.serve[0]), float(args.serve[1])))
        return 0
    if args.only != "load":
        cpu_table(args.chunks, args.repeat)
    if args.only != "cpu":
        load_table(args.clients, args.events, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
