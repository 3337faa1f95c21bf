"""Fault x surface table (error type, time to raise, partial output) and disconnect latencies.

Runs every fault of ``tests/reliability/faultkit.py`` (the same definitions the test suite
asserts) on every surface against the embedded mock server on a loopback socket, and prints one
row per pair. ``ok`` is the same verdict the tests use (:func:`faultkit.check`).

Then every cancellation path of ``tests/reliability/cancelkit.py`` (dispose, break, leaving a
``with`` block, cancelling the task, ...) is run ``--repeat`` times: the latency is the time from
the user's action to the mock server's disconnect record.

Usage::

    python benchmarks/bench_faults.py            # the whole matrix
    python benchmarks/bench_faults.py --markdown # as a Markdown table
    python benchmarks/bench_faults.py --cli      # add the ``rxchat chat`` subprocess rows
    python benchmarks/bench_faults.py --hostile  # only the hostile-input timings

Last, hostile input (a megabyte of ``\\r``, of comments, deeply nested tool arguments, a 10 MB
event, ...) is timed at size n and 2n: the ratio must stay near 2 (linear).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable

import orjson
from pydantic import BaseModel

from rxchat._chunk_decoder import ChunkDecoder
from rxchat._sse import SSEDecoder
from rxchat._state import ChatCompletionStreamState
from rxchat._structured import pydantic_function_tool
from rxchat.errors import RxChatError
from rxchat.types import ChatCompletionChunk

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reliability"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from cancelkit import PATHS, cli_interrupt
from faultkit import (
    SENTINEL_KEY,
    check,
    describe_partial,
    expected_error,
    matrix,
    reference_pieces,
)
from support import ThreadedMock


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(_row(header, widths))
        print(_row(["-" * w for w in widths], widths))
        for r in rows:
            print(_row(r, widths))


async def cancellation(markdown: bool, repeat: int) -> int:
    server = ThreadedMock(api_key=SENTINEL_KEY)
    rows: list[list[str]] = []
    slow = 0
    try:
        for path in [*PATHS, cli_interrupt]:
            latencies = []
            stopped = True
            for _ in range(repeat):
                stop = await path(server)
                latencies.append(stop.latency * 1000)
                stopped &= stop.chunks_later == stop.chunks_at_disconnect
            latencies.sort()
            median = latencies[len(latencies) // 2]
            slow += median >= 100
            rows.append(
                [
                    path.__name__,
                    f"{median:.1f}",
                    f"{latencies[0]:.1f}",
                    f"{latencies[-1]:.1f}",
                    "yes" if stopped else "NO",
                    (path.__doc__ or "").strip().splitlines()[0],
                ]
            )
    finally:
        server.close()
    print(f"\nDisconnect latency, user action -> server notices ({repeat} runs each, ms)\n")
    header = ["path", "median", "min", "max", "server stopped", "action"]
    _table(header, rows, markdown)
    return slow


# -- hostile input: time for n and 2n must grow ~linearly -----------------------------------------


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _sse(data: bytes, read: int) -> Callable[[], object]:
    def run() -> object:
        decoder = SSEDecoder()
        n = 0
        for i in range(0, len(data), read):
            n += len(decoder.feed(data[i : i + read]))
        decoder.flush()
        return n

    return run


def _chunks(data: bytes, read: int = 65536) -> Callable[[], object]:
    def run() -> object:
        decoder = ChunkDecoder()
        n = 0
        for i in range(0, len(data), read):
            n += len(decoder.feed(data[i : i + read]))
        return n

    return run


def _frame(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _state(
    pieces: list[str], *, tools: bool, read_partial: bool, structured: bool = False
) -> Callable[[], object]:
    class Loc(BaseModel):
        city: str

    first = ChatCompletionChunk.from_wire(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        **(
                            {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": "c",
                                        "type": "function",
                                        "function": {"name": "Loc", "arguments": ""},
                                    }
                                ]
                            }
                            if tools
                            else {"content": ""}
                        ),
                    },
                }
            ]
        }
    )
    chunks = [
        ChatCompletionChunk.from_wire(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}
                        if tools
                        else {"content": p},
                    }
                ]
            }
        )
        for p in pieces
    ]

    def run() -> object:
        state: ChatCompletionStreamState[object] = ChatCompletionStreamState(
            tools=[pydantic_function_tool(Loc)] if tools else None,
            response_format=Loc if structured else None,
        )
        state.handle_chunk(first)
        try:
            for chunk in chunks:
                for event in state.handle_chunk(chunk):
                    if read_partial:
                        _ = getattr(event, "parsed_arguments", None) or getattr(
                            event, "parsed", None
                        )
        except RxChatError:
            pass
        return None

    return run


def hostile(markdown: bool) -> int:
    mb = 1 << 20
    cases: list[tuple[str, Callable[[int], Callable[[], object]]]] = [
        ("1 MB of \\r, one read", lambda k: _sse(b"\r" * (k * mb), k * mb)),
        ("1 MB of \\r, 64 KB reads", lambda k: _sse(b"\r" * (k * mb), 65536)),
        ("1 MB of \\r, 1-byte reads (1/8 of it)", lambda k: _sse(b"\r" * (k * mb // 8), 1)),
        ("1 MB of \\n, 64 KB reads", lambda k: _sse(b"\n" * (k * mb), 65536)),
        (
            "1 MB of ': keep-alive' comments",
            lambda k: _sse(b": keep-alive\n" * (k * mb // 13), 65536),
        ),
        ("1 MB of empty 'data:' lines", lambda k: _sse(b"data:\n" * (k * mb // 6), 65536)),
        ("1 MB unterminated line, 1 KB reads", lambda k: _sse(b"data: " + b"x" * (k * mb), 1024)),
        (
            "10 MB single event, 64 KB reads",
            lambda k: _chunks(_frame({"content": "x" * (10 * k * mb)})),
        ),
        (
            "1 MB of tiny chunks",
            lambda k: _chunks(_frame({"content": "ab"}) * (k * mb // 60)),
        ),
        (
            "nested args depth 50k (4 KB deltas)",
            lambda k: _state(
                _cut('{"city": ' + "[" * (50_000 * k) + "]" * (50_000 * k) + "}"),
                tools=True,
                read_partial=False,
            ),
        ),
        (
            "  same, reading parsed_arguments per delta",
            lambda k: _state(
                _cut('{"city": ' + "[" * (50_000 * k) + "]" * (50_000 * k) + "}"),
                tools=True,
                read_partial=True,
            ),
        ),
        (
            "1 MB tool arguments (100 B deltas)",
            lambda k: _state(
                _cut('{"city": "' + "y" * (k * mb) + '"}', 100), tools=True, read_partial=False
            ),
        ),
        (
            "1 MB structured content (100 B deltas)",
            lambda k: _state(
                _cut('{"city": "' + "y" * (k * mb) + '"}', 100),
                tools=False,
                read_partial=False,
                structured=True,
            ),
        ),
    ]
    rows = []
    worst = 0.0
    for name, make in cases:
        t1 = _best(make(1))
        t2 = _best(make(2))
        ratio = t2 / t1 if t1 > 0 else float("nan")
        worst = max(worst, ratio) if "per delta" not in name else worst
        rows.append([name, f"{t1 * 1000:.1f}", f"{t2 * 1000:.1f}", f"{ratio:.2f}"])
    print("\nHostile input: time at size n and 2n (best of 3, ms); ~2.0 = linear\n")
    _table(["input (size n)", "n", "2n", "2n / n"], rows, markdown)
    return 0 if worst < 3.0 else 1


def _cut(text: str, step: int = 4096) -> list[str]:
    return [text[i : i + step] for i in range(0, len(text), step)]


async def main(markdown: bool, with_cli: bool, repeat: int) -> int:
    server = ThreadedMock(api_key=SENTINEL_KEY)
    rows: list[list[str]] = []
    failures = 0
    try:
        pieces = await reference_pieces(server.url)
        pairs = list(matrix())
        if with_cli:
            pairs += matrix(cli=True)
        for fault, surface in pairs:
            out = await surface.run(server.url, fault)
            problems = check(fault, surface, out, pieces)
            failures += bool(problems)
            want = expected_error(fault, surface)
            if surface.cli:
                line = out.output.strip().removeprefix("rxchat: error: ")
                observed = f"exit {out.returncode}" + (f": {line[:48]}" if line else "")
                partial = f"stdout {len(out.text.rstrip(chr(10)))} chars"
            else:
                observed = type(out.error).__name__ if out.error else "(success)"
                partial = describe_partial(fault, surface, out)
            rows.append(
                [
                    fault.name,
                    surface.name,
                    want.__name__ if want else "(success)",
                    observed,
                    f"{out.elapsed * 1000:.0f} ms",
                    partial,
                    "ok" if not problems else "FAIL: " + "; ".join(problems),
                ]
            )
    finally:
        server.close()
    header = ["fault", "surface", "expected", "observed", "to raise", "partial preserved", "ok"]
    _table(header, rows, markdown)
    print(f"\n{len(rows)} pairs, {failures} failing")
    slow = await cancellation(markdown, repeat)
    return 1 if failures or slow else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--cli", action="store_true", help="include the CLI subprocess surface")
    parser.add_argument("--repeat", type=int, default=10, help="runs per cancellation path")
    parser.add_argument("--hostile", action="store_true", help="only the hostile-input timings")
    args = parser.parse_args()
    if args.hostile:
        sys.exit(hostile(args.markdown))
    status = asyncio.run(main(args.markdown, args.cli, args.repeat))
    # In a fresh process: the heap left by the runs above would time the collector, not us.
    cmd = [sys.executable, __file__, "--hostile", *(["--markdown"] if args.markdown else [])]
    sys.exit(status or subprocess.run(cmd, check=False).returncode)
