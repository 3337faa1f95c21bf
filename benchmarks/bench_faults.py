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
    python benchmarks/bench_faults.py --cli      # add the ``rxchat chat`` subprocess column
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reliability"))

from cancelkit import PATHS
from faultkit import (
    SENTINEL_KEY,
    ThreadedServer,
    check,
    describe_partial,
    expected_error,
    matrix,
    reference_pieces,
)


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
    server = ThreadedServer(api_key=SENTINEL_KEY)
    rows: list[list[str]] = []
    slow = 0
    try:
        for path in PATHS:
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


async def main(markdown: bool, with_cli: bool, repeat: int) -> int:
    server = ThreadedServer(api_key=SENTINEL_KEY)
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
            rows.append(
                [
                    fault.name,
                    surface.name,
                    want.__name__ if want else "(success)",
                    type(out.error).__name__ if out.error else "(success)",
                    f"{out.elapsed * 1000:.0f} ms",
                    describe_partial(fault, surface, out),
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
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.markdown, args.cli, args.repeat)))
