"""Client CPU per streamed chunk: rxchat's source against a bare floor and the openai SDK.

Run: ``python benchmarks/bench_source.py [--tokens 100000] [--repeat 5] [--profile]``

The mock server runs in a separate process (``rxchat.mock.run``), so ``time.process_time()``
here measures the client alone. Every contender makes the same request to the same server over
loopback — ``tokens`` content chunks, no delay — and reads each chunk's text:

* ``floor``: aiohttp ``resp.content.iter_any()``, a minimal line split, ``orjson.loads`` per
  ``data:`` line. Nothing else: no SSE rules, no models, no error handling.
* ``rxchat source``: ``rxchat.chat_completion_stream(...)`` subscribed (typed chunk models).
* ``rxchat batches``: the transport's ``ChunkBatchStream`` iterated directly (no Observable).
* ``rxchat core per event``: aiohttp ``iter_any()`` into rxchat's ``SSEDecoder``, each event
  built with ``ChatCompletionChunk.from_json`` and dropped before the next is built (what the
  source would cost if it did not hold a whole read's chunks at once; see ``--stages``).
* ``openai async`` / ``openai sync``: ``client.chat.completions.create(stream=True)`` iterated.

Reported per contender: the median over ``repeat`` runs of wall time, chunks/s, CPU µs per
chunk and the cyclic-GC collections (all generations / full ones) during one stream. Targets
(issue 2): rxchat source / floor <= 2.0; openai / rxchat source >= 3.0.

``--stages`` adds a breakdown of the decoding cost, in-process (no network) on the same body
split as it arrived from the socket: the floor's split + ``orjson.loads``; ``orjson.loads``,
pydantic's ``validate_json`` and rxchat's C reader (both build the three models of a chunk) alone
on the payloads;
SSE decoding into event objects and into data strings (``feed_payloads``, what the chunk decoder
uses); and ``ChunkDecoder.feed`` (which returns a read's chunks as one list) fed 8 KiB slices as
the transport does, or whole socket reads with the cyclic GC on and off (holding hundreds of
chunk models at once makes them survive GC passes). ``--profile`` adds a cProfile (CPU time) of one rxchat-source run.

``--large-events`` adds the SSE decoder's cost on one huge event (1, 10 and 40 MB, fed in 64 KiB
reads and in one read): MB/s stays flat as the event grows, i.e. decoding is linear.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import openai
import orjson

import rxchat
from rxchat import ChunkDecoder, SSEDecoder
from rxchat._c_builder import build_chunks
from rxchat._transport import DEFAULT_TIMEOUT, HTTPTransport

MESSAGES = [{"role": "user", "content": "benchmark"}]
API_KEY = "sk-bench"

Contender = Callable[[str, str], Awaitable[tuple[int, int]]]


# -- the mock server, in its own process -----------------------------------------------------


def start_server() -> tuple[subprocess.Popen[str], str]:
    """Start ``rxchat.mock.run`` in a child process; returns it and the base URL (with /v1)."""
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


# -- contenders: each returns (chunks seen, characters of text) ------------------------------


async def floor(url: str, model: str) -> tuple[int, int]:
    """The least a client can do: read, split lines, parse JSON."""
    body = {"model": model, "messages": MESSAGES, "stream": True}
    chunks = chars = 0
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/chat/completions",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ) as resp,
    ):
        resp.raise_for_status()
        buffer = b""
        done = False
        async for data in resp.content.iter_any():
            lines = (buffer + data).split(b"\n")
            buffer = lines.pop()
            for line in lines:
                if line.startswith(b"data: "):
                    payload = line[6:]
                    if payload == b"[DONE]":
                        done = True
                        break
                    chunk = orjson.loads(payload)
                    chunks += 1
                    choices = chunk["choices"]
                    if choices:
                        chars += len(choices[0]["delta"].get("content") or "")
            if done:
                break
    return chunks, chars


async def rxchat_source(url: str, model: str) -> tuple[int, int]:
    """``rxchat.chat_completion_stream`` subscribed, reading ``chunk.text``."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    count = [0, 0]

    def on_next(chunk: rxchat.ChatCompletionChunk) -> None:
        count[0] += 1
        text = chunk.text
        if text:
            count[1] += len(text)

    def on_error(err: Exception) -> None:
        if not finished.done():
            finished.set_exception(err)

    def on_completed() -> None:
        if not finished.done():
            finished.set_result(None)

    rxchat.chat_completion_stream(
        model=model, messages=MESSAGES, base_url=url, api_key=API_KEY
    ).subscribe(on_next=on_next, on_error=on_error, on_completed=on_completed)
    await finished
    return count[0], count[1]


async def rxchat_batches(url: str, model: str) -> tuple[int, int]:
    """The transport's batches of chunks, no Observable in between."""
    body = {"model": model, "messages": MESSAGES, "stream": True}
    chunks = chars = 0
    async with (
        HTTPTransport(base_url=url, api_key=API_KEY, timeout=DEFAULT_TIMEOUT) as transport,
        transport.stream("/chat/completions", body) as stream,
    ):
        async for batch in stream:
            chunks += len(batch)
            for chunk in batch:
                text = chunk.text
                if text:
                    chars += len(text)
    return chunks, chars


async def rxchat_core_per_event(url: str, model: str) -> tuple[int, int]:
    """rxchat's SSEDecoder and chunk model, one chunk alive at a time."""
    body = {"model": model, "messages": MESSAGES, "stream": True}
    chunks = chars = 0
    from_json = rxchat.ChatCompletionChunk.from_json
    decoder = SSEDecoder()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/chat/completions",
            data=orjson.dumps(body),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ) as resp,
    ):
        resp.raise_for_status()
        async for data in resp.content.iter_any():
            for event in decoder.feed(data):
                if event.data == "[DONE]":
                    return chunks, chars
                text = from_json(event.data).text
                chunks += 1
                if text:
                    chars += len(text)
    return chunks, chars


async def openai_async(url: str, model: str) -> tuple[int, int]:
    """``AsyncOpenAI().chat.completions.create(stream=True)`` iterated."""
    chunks = chars = 0
    async with openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
        async for chunk in stream:
            chunks += 1
            if chunk.choices:
                chars += len(chunk.choices[0].delta.content or "")
    return chunks, chars


async def openai_sync(url: str, model: str) -> tuple[int, int]:
    """``OpenAI().chat.completions.create(stream=True)`` iterated (blocking, in this thread)."""
    chunks = chars = 0
    with openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
        for chunk in stream:
            chunks += 1
            if chunk.choices:
                chars += len(chunk.choices[0].delta.content or "")
    return chunks, chars


CONTENDERS: dict[str, Contender] = {
    "floor (iter_any + split + orjson)": floor,
    "rxchat source (Observable)": rxchat_source,
    "rxchat batches (transport)": rxchat_batches,
    "rxchat core per event": rxchat_core_per_event,
    "openai async": openai_async,
    "openai sync": openai_sync,
}


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    chunks: int
    chars: int
    wall: float
    cpu: float
    collections: int
    full_collections: int


@dataclass
class Result:
    name: str
    runs: list[Run]

    @property
    def chunks(self) -> int:
        return self.runs[0].chunks

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu_us(self) -> float:
        return statistics.median(r.cpu / r.chunks * 1e6 for r in self.runs)

    @property
    def rate(self) -> float:
        return statistics.median(r.chunks / r.wall for r in self.runs)

    @property
    def collections(self) -> str:
        total = statistics.median(r.collections for r in self.runs)
        full = statistics.median(r.full_collections for r in self.runs)
        return f"{total:.0f}/{full:.0f}"


def measure(contender: Contender, url: str, model: str) -> Run:
    async def main() -> tuple[int, int, float, float]:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        chunks, chars = await contender(url, model)
        return chunks, chars, time.perf_counter() - wall0, time.process_time() - cpu0

    before = [g["collections"] for g in gc.get_stats()]
    chunks, chars, wall, cpu = asyncio.run(main())
    after = [g["collections"] for g in gc.get_stats()]
    return Run(chunks, chars, wall, cpu, sum(after) - sum(before), after[-1] - before[-1])


async def capture(url: str, model: str) -> list[bytes]:
    """The response body, read by read as aiohttp delivered it."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/chat/completions",
            data=orjson.dumps({"model": model, "messages": MESSAGES, "stream": True}),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ) as resp,
    ):
        return [data async for data in resp.content.iter_any()]


def stages(reads: list[bytes], repeat: int) -> list[tuple[str, float]]:
    """CPU µs per chunk of each decoding stage on recorded reads (best of ``repeat``)."""
    count = b"".join(reads).count(b"\ndata: {") + 1
    validate_json = rxchat.ChatCompletionChunk.__pydantic_validator__.validate_json
    sliced = [data[i : i + 8192] for data in reads for i in range(0, len(data), 8192)]
    payloads = [
        line[6:]
        for line in b"".join(reads).decode().split("\n")
        if line.startswith("data: {")
    ]

    def split_orjson() -> None:
        buffer = b""
        for data in reads:
            lines = (buffer + data).split(b"\n")
            buffer = lines.pop()
            for line in lines:
                if line.startswith(b"data: {"):
                    orjson.loads(line[6:])

    def orjson_alone() -> None:
        for payload in payloads:
            orjson.loads(payload)

    def validate_alone() -> None:
        for payload in payloads:
            validate_json(payload)

    def c_reader_alone() -> None:
        if build_chunks is not None:
            for start in range(0, len(payloads), 32):  # as many as an 8 KiB slice holds
                build_chunks(payloads[start : start + 32])

    def sse() -> None:
        decoder = SSEDecoder()
        for data in sliced:
            decoder.feed(data)

    def sse_payloads() -> None:
        decoder = SSEDecoder()
        for data in sliced:
            decoder.feed_payloads(data)

    def chunk_decoder() -> None:
        decoder = ChunkDecoder()
        for data in reads:
            decoder.feed(data)

    def chunk_decoder_sliced() -> None:
        decoder = ChunkDecoder()
        for data in sliced:
            decoder.feed(data)

    def chunk_decoder_no_gc() -> None:
        gc.disable()
        try:
            chunk_decoder()
        finally:
            gc.enable()

    plan = [
        ("floor: line split + orjson.loads", split_orjson),
        ("orjson.loads alone (payloads split beforehand)", orjson_alone),
        ("pydantic validate_json alone (the chunk models)", validate_alone),
        ("C reader alone (the same models, rxchat._speedups)", c_reader_alone),
        ("SSEDecoder.feed, 8 KiB slices (event objects)", sse),
        ("SSEDecoder.feed_payloads, 8 KiB slices", sse_payloads),
        ("ChunkDecoder.feed, 8 KiB slices (as the transport)", chunk_decoder_sliced),
        ("ChunkDecoder.feed, whole reads (a read's chunks held)", chunk_decoder),
        ("ChunkDecoder.feed, whole reads, cyclic GC disabled", chunk_decoder_no_gc),
    ]
    best = {name: float("inf") for name, _ in plan}
    for _ in range(repeat):
        for name, fn in plan:
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return [(name, best[name] / count * 1e6) for name, _ in plan]


def profile(url: str, model: str, top: int) -> str:
    profiler = cProfile.Profile(time.process_time)

    async def main() -> None:
        profiler.enable()
        await rxchat_source(url, model)
        profiler.disable()

    asyncio.run(main())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def large_events(repeat: int) -> list[tuple[int, str, float]]:
    """Seconds to decode one event of N MB, in 64 KiB reads and in one read (best of repeat)."""
    rows = []
    for megabytes in (1, 10, 40):
        body = b"data: " + b"x" * (megabytes * 1_000_000) + b"\n\n"
        for label, size in (("64 KiB reads", 65536), ("one read", len(body))):
            reads = [body[i : i + size] for i in range(0, len(body), size)]
            best = float("inf")
            for _ in range(repeat):
                start = time.process_time()
                decoder = SSEDecoder()
                events = [event for data in reads for event in decoder.feed(data)]
                best = min(best, time.process_time() - start)
                assert len(events) == 1 and len(events[0].data) == megabytes * 1_000_000
            rows.append((megabytes, label, best))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000, help="content chunks per stream")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (median)")
    parser.add_argument("--only", default="", help="comma-separated name prefixes to run")
    parser.add_argument("--stages", action="store_true", help="in-process cost per decoding stage")
    parser.add_argument(
        "--large-events", action="store_true", help="SSE decoding of one 1/10/40 MB event"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one rxchat-source run")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile")
    args = parser.parse_args()

    proc, url = start_server()
    model = f"mock?tokens={args.tokens}"
    try:
        chosen = {
            name: fn
            for name, fn in CONTENDERS.items()
            if not args.only or any(name.startswith(p) for p in args.only.split(","))
        }
        for fn in chosen.values():  # warm up imports, connection code paths, the server
            asyncio.run(fn(url, "mock?tokens=200"))
        results: list[Result] = []
        for _ in range(args.repeat):  # interleave contenders so drift hits all alike
            for name, fn in chosen.items():
                run = measure(fn, url, model)
                for result in results:
                    if result.name == name:
                        result.runs.append(run)
                        break
                else:
                    results.append(Result(name, [run]))
        counts = {(r.chunks, r.runs[0].chars) for r in results}
        if len(counts) != 1:
            raise SystemExit(f"contenders disagree on chunks/characters: {counts}")
        report(results, args)
        if args.stages:
            reads = asyncio.run(capture(url, model))
            print()
            print(
                f"Decoding stages in-process on the same body as {len(reads)} socket reads "
                f"(CPU µs per chunk, best of {args.repeat}):"
            )
            print()
            rows = stages(reads, args.repeat)
            base = rows[0][1]
            print(f"| {'stage':52} | {'µs/chunk':>8} | {'vs floor':>8} |")
            print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|")
            for name, cost in rows:
                print(f"| {name:52} | {cost:8.2f} | {cost / base:7.2f}x |")
        if args.large_events:
            print()
            print(f"One large SSE event through SSEDecoder (CPU, best of {args.repeat}):")
            print()
            print(f"| {'event':>6} | {'fed as':12} | {'seconds':>8} | {'MB/s':>7} |")
            print(f"|{'-' * 8}|{'-' * 14}|{'-' * 10}|{'-' * 9}|")
            for megabytes, label, seconds in large_events(args.repeat):
                rate = megabytes / seconds if seconds else float("inf")
                print(f"| {megabytes:>3} MB | {label:12} | {seconds:8.4f} | {rate:7.0f} |")
        if args.profile:
            print()
            print(f"cProfile of one rxchat-source run ({args.tokens} chunks), by own time:")
            print(profile(url, model, args.top))
    finally:
        proc.terminate()
        proc.wait(10)


def report(results: list[Result], args: argparse.Namespace) -> None:
    by_name = {r.name: r for r in results}
    floor_cpu = by_name.get("floor (iter_any + split + orjson)")
    print(
        f"{results[0].chunks} chunks per stream over loopback, median of {args.repeat} runs, "
        f"Python {sys.version.split()[0]}, openai {openai.__version__}, "
        f"aiohttp {aiohttp.__version__}"
    )
    print()
    header = (
        f"| {'contender':34} | {'wall s':>7} | {'chunks/s':>9} | {'CPU µs/chunk':>12} "
        f"| {'vs floor':>8} | {'GC all/full':>11} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(col) + 0) for col in header.split("|")[1:-1]) + "|")
    for r in results:
        ratio = f"{r.cpu_us / floor_cpu.cpu_us:.2f}x" if floor_cpu else "-"
        print(
            f"| {r.name:34} | {r.wall:7.2f} | {r.rate:9.0f} | {r.cpu_us:12.2f} | {ratio:>8} "
            f"| {r.collections:>11} |"
        )
    source = by_name.get("rxchat source (Observable)")
    print()
    if source and floor_cpu:
        ratio = source.cpu_us / floor_cpu.cpu_us
        verdict = "meets" if ratio <= 2.0 else "MISSES"
        print(f"rxchat source / floor CPU per chunk: {ratio:.2f}  (target <= 2.0: {verdict})")
    for name in ("openai async", "openai sync"):
        other = by_name.get(name)
        if source and other:
            ratio = other.cpu_us / source.cpu_us
            verdict = "meets" if ratio >= 3.0 else "MISSES"
            print(f"{name} / rxchat source CPU per chunk: {ratio:.2f}  (target >= 3.0: {verdict})")


if __name__ == "__main__":
    main()
