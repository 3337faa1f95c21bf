"""Fault x surface table: observed error type, time to raise, partial output preserved.

Runs every fault of ``tests/reliability/faultkit.py`` (the same definitions the test suite
asserts) on every surface against the embedded mock server on a loopback socket, and prints one
row per pair. ``ok`` is the same verdict the tests use (:func:`faultkit.check`).

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

from faultkit import (  # noqa: E402
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


async def main(markdown: bool, with_cli: bool) -> int:
    server = ThreadedServer(api_key=SENTINEL_KEY)
    rows: list[list[str]] = []
    failures = 0
    try:
        pieces = await reference_pieces(server.url)
        pairs = list(matrix())
        if with_cli:
            from faultkit import cli_matrix  # type: ignore[attr-defined]

            pairs += cli_matrix()
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
    print(f"\n{len(rows)} pairs, {failures} failing")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--cli", action="store_true", help="include the CLI subprocess surface")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.markdown, args.cli)))
