"""Load: many concurrent streams on one event loop, every chunk checked, memory measured.

The mock server runs in a separate process. For each configuration a fresh client process
(one process, one event loop) opens all its streams at once through
``AsyncClient.chat.completions.observe(...)`` (or ``create(stream=True)`` with ``--surface
create``) and consumes them without accumulating: each stream keeps a running SHA-256 of its
content pieces, in order, and a chunk count. At the end each stream's digest is compared with
the digest of the same request answered whole (a non-streaming request made beforehand by this
orchestrating process: the mock is deterministic), and its chunk count with ``tokens + 2``
(role chunk, tokens, finish chunk). A stream with a wrong digest (a lost, duplicated or
reordered chunk), a wrong count, or an error counts as lost.

Memory: the client process reports its resident set before opening the streams and its peak
(``VmHWM``) at the end. Three configurations show what the peak follows: N streams of L tokens,
N streams of 4L tokens (same peak expected: nothing accumulates) and N/4 streams of L tokens
(smaller peak: memory follows open streams).

Usage::

    python benchmarks/bench_load.py                     # 1000 streams x 200 tokens, ...
    python benchmarks/bench_load.py --streams 200 --tokens 100 --delay 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

SERVER = """
import sys
from rxchat.mock import MockState, run
run("127.0.0.1", 0, on_start=lambda url: print(url, flush=True),
    state=MockState(record_texts=False))
"""


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Load test stream number {i}: tell me something."}]


# -- the client process ----------------------------------------------------------------------


async def _client_main(cfg: dict[str, Any]) -> dict[str, Any]:
    from rxchat._client import AsyncClient
    from rxchat._transport import Timeout

    url: str = cfg["url"]
    n: int = cfg["streams"]
    model = f"mock?tokens={cfg['tokens']}&delay={cfg['delay']}"
    expected: list[str] = cfg["digests"]
    want_chunks = cfg["tokens"] + 2
    rss_before = _status_kb("VmRSS")
    digests = [hashlib.sha256() for _ in range(n)]
    counts = [0] * n
    errors: list[str | None] = [None] * n
    open_now = 0
    open_max = 0
    async with AsyncClient(
        api_key="sk-load", base_url=url, timeout=Timeout(connect=30, read=60), max_retries=0
    ) as client:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        remaining = n

        started = [False] * n

        def first(i: int) -> None:
            nonlocal open_now, open_max
            started[i] = True
            open_now += 1
            open_max = max(open_max, open_now)

        def finished(i: int, err: BaseException | None) -> None:
            nonlocal open_now, remaining
            if started[i]:
                open_now -= 1
            if err is not None:
                errors[i] = f"{type(err).__name__}: {err}"
            remaining -= 1
            if remaining == 0 and not done.done():
                done.set_result(None)

        async def read_create(i: int) -> None:
            h = digests[i]
            try:
                stream = await client.chat.completions.create(
                    model=model, messages=_prompt(i), stream=True
                )
                async for chunk in stream:
                    if not counts[i]:
                        first(i)
                    counts[i] += 1
                    text = chunk.text
                    if text:
                        h.update(text.encode())
            except Exception as err:
                finished(i, err)
                return
            finished(i, None)

        def subscribe_observe(i: int) -> Any:
            h = digests[i]

            def on_next(chunk: Any) -> None:
                if not counts[i]:
                    first(i)
                counts[i] += 1
                text = chunk.text
                if text:
                    h.update(text.encode())

            return client.chat.completions.observe(model=model, messages=_prompt(i)).subscribe(
                on_next, lambda err: finished(i, err), lambda: finished(i, None)
            )

        start = time.perf_counter()
        keep: list[Any] = []
        if cfg["surface"] == "create":
            keep = [asyncio.create_task(read_create(i)) for i in range(n)]
        else:
            keep = [subscribe_observe(i) for i in range(n)]
        await done
        elapsed = time.perf_counter() - start
        del keep
    lost = 0
    for i in range(n):
        if errors[i] or counts[i] != want_chunks or digests[i].hexdigest() != expected[i]:
            lost += 1
    first_error = next((e for e in errors if e), None)
    chunks = sum(counts)
    return {
        "streams": n,
        "tokens": cfg["tokens"],
        "chunks": chunks,
        "lost": lost,
        "error": first_error,
        "open_max": open_max,
        "seconds": elapsed,
        "chunks_per_s": chunks / elapsed,
        "rss_before_kb": rss_before,
        "peak_rss_kb": _status_kb("VmHWM"),
    }


# -- the orchestrator ---------------------------------------------------------------------------


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("the mock server process did not start")
    return proc, url


async def _digests(url: str, streams: int, tokens: int, delay: float) -> list[str]:
    """The SHA-256 of each stream's whole answer, from non-streaming requests (16 at a time)."""
    from rxchat._client import AsyncClient

    model = f"mock?tokens={tokens}&delay={delay}"
    out: list[str] = [""] * streams
    sem = asyncio.Semaphore(16)
    async with AsyncClient(api_key="sk-load", base_url=url) as client:

        async def one(i: int) -> None:
            async with sem:
                completion = await client.chat.completions.create(model=model, messages=_prompt(i))
                content = completion.choices[0].message.content or ""
                out[i] = hashlib.sha256(content.encode()).hexdigest()

        await asyncio.gather(*(one(i) for i in range(streams)))
    return out


def _run_client(cfg: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child"],
        input=json.dumps(cfg).encode(),
        capture_output=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode()[-2000:])
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="concurrent streams on one event loop")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--surface", choices=["observe", "create"], default="observe")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cfg = json.loads(sys.stdin.buffer.read())
        print(json.dumps(asyncio.run(_client_main(cfg))))
        return 0

    server, url = _start_server()
    rows: list[dict[str, Any]] = []
    try:
        configs = [
            (args.streams, args.tokens),
            (args.streams, args.tokens * 4),
            (max(1, args.streams // 4), args.tokens),
        ]
        for streams, tokens in configs:
            digests = asyncio.run(_digests(url, streams, tokens, args.delay))
            cfg = {
                "url": url,
                "streams": streams,
                "tokens": tokens,
                "delay": args.delay,
                "surface": args.surface,
                "digests": digests,
            }
            rows.append(_run_client(cfg))
    finally:
        server.terminate()
        server.wait(10)

    print(
        f"surface={args.surface}  delay={args.delay}s between chunks  "
        f"server: separate process  client: one process, one event loop  cpus={os.cpu_count()}\n"
    )
    header = (
        f"{'streams':>7}  {'tokens':>6}  {'open max':>8}  {'chunks':>9}  {'lost':>4}  "
        f"{'seconds':>7}  {'chunks/s':>9}  {'RSS before':>10}  {'peak RSS':>9}  "
        f"{'peak-before':>11}  {'per stream':>10}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for r in rows:
        growth = r["peak_rss_kb"] - r["rss_before_kb"]
        print(
            f"{r['streams']:>7}  {r['tokens']:>6}  {r['open_max']:>8}  {r['chunks']:>9}  "
            f"{r['lost']:>4}  {r['seconds']:>7.2f}  {r['chunks_per_s']:>9.0f}  "
            f"{r['rss_before_kb'] / 1024:>8.1f}MB  {r['peak_rss_kb'] / 1024:>7.1f}MB  "
            f"{growth / 1024:>9.1f}MB  {growth / r['streams']:>8.1f}KB"
        )
        if r["lost"] or r["error"]:
            failed = True
            print(f"    first error: {r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
