"""Per-delta cost of incremental partial-JSON parsing: rxchat vs a jiter re-parse per delta.

Run: ``python benchmarks/bench_partial_json.py [--quick]``

Each document is fed in 8-character deltas and a snapshot of the partial value is taken
after every delta, as ``ops.parse_structured`` does. The baseline is what the OpenAI SDK
does per chunk: re-parse the whole prefix with ``jiter.from_json(prefix, partial_mode=...)``.
CPU time (``time.process_time``) per delta; best and median of several repeats.

Shapes:
  nested  an object of nested objects and strings (fan-out 8, like a typical structured
          output: sections -> subsections -> fields); the open path stays narrow
  records a wide array of small records (``[{"id": 1, "name": ..., "tags": [...]}, ...]``);
          the top-level array stays open and grows to ~10k elements at 1 MB

For 1 MB the jiter baseline is O(n^2) overall, so it is measured on an evenly spaced
sample of deltas (the prefix grows linearly, so the sample mean is the mean over all
deltas) and marked "sampled" in the table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jiter

from rxchat._partial_json import PartialJSONParser

DELTA = 8


def nested_doc(target: int, rng: random.Random) -> str:
    """A balanced object tree with fan-out 8 and string leaves, about ``target`` bytes."""
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta"]

    def leaf() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))

    # leaves of ~40 bytes each; depth such that 8**depth * 40 ~ target
    depth = 1
    while 8 ** (depth + 1) * 40 <= target:
        depth += 1

    def build(d: int) -> Any:
        if d == 0:
            return leaf()
        return {f"field_{k}": build(d - 1) for k in range(8)}

    value = build(depth)
    # top up to the target with extra subtrees of the same shape
    text = json.dumps(value)
    extra = 0
    while len(text) < target * 0.9:
        value[f"more_{extra}"] = build(max(depth - 1, 0))
        extra += 1
        text = json.dumps(value)
    return text


def records_doc(target: int, rng: random.Random) -> str:
    """A wide array of small records, about ``target`` bytes."""
    out: list[Any] = []
    size = 2
    k = 0
    while size < target:
        rec = {
            "id": k,
            "name": f"user {rng.randint(0, 10**6)}",
            "score": round(rng.random() * 100, 3),
            "active": rng.random() < 0.5,
            "tags": rng.sample(["red", "green", "blue", "cyan", "gold"], 2),
        }
        out.append(rec)
        size += len(json.dumps(rec)) + 2
        k += 1
    return json.dumps(out)


def deltas_of(doc: str) -> list[str]:
    return [doc[i : i + DELTA] for i in range(0, len(doc), DELTA)]


def time_rxchat(doc: str, repeats: int, partial_strings: bool, snapshot: bool) -> list[float]:
    """Per-delta CPU seconds for feed (+ snapshot), one figure per repeat."""
    deltas = deltas_of(doc)
    expected = json.loads(doc)
    results = []
    for _ in range(repeats):
        p = PartialJSONParser(partial_strings=partial_strings)
        feed = p.feed
        snap = p.snapshot
        if snapshot:
            t0 = time.process_time()
            for d in deltas:
                feed(d)
                snap()
            t1 = time.process_time()
        else:
            t0 = time.process_time()
            for d in deltas:
                feed(d)
            t1 = time.process_time()
        results.append((t1 - t0) / len(deltas))
        assert p.finish() == expected
    return results


def time_jiter(
    doc: str, repeats: int, partial_strings: bool, sample: int | None
) -> tuple[list[float], bool]:
    """Per-delta CPU seconds of re-parsing the whole prefix with jiter after each delta."""
    mode: Any = "trailing-strings" if partial_strings else True
    ends = list(range(DELTA, len(doc) + DELTA, DELTA))
    sampled = sample is not None and sample < len(ends)
    if sampled:
        assert sample is not None
        step = len(ends) / sample
        ends = [ends[int(k * step + step / 2)] for k in range(sample)]
    from_json: Callable[..., Any] = jiter.from_json
    results = []
    for _ in range(repeats):
        t0 = time.process_time()
        for e in ends:
            # Prefixes of a top-level array/object always parse in partial mode.
            from_json(doc[:e].encode(), partial_mode=mode)
        t1 = time.process_time()
        results.append((t1 - t0) / len(ends))
    return results, sampled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    rng = random.Random(1234)
    small_reps, big_reps = (20, 2) if args.quick else (200, 3)
    sizes = [("1 KB", 1_000), ("1 MB", 1_000_000)]
    shapes: list[tuple[str, Callable[[int, random.Random], str]]] = [
        ("nested", nested_doc),
        ("records", records_doc),
    ]
    jiter_version = getattr(jiter, "__version__", "?")
    print(f"python {sys.version.split()[0]}, jiter {jiter_version}, {DELTA}-char deltas;")
    print("CPU µs per delta, best / median of repeats. 'feed+snap' takes a snapshot of the")
    print("partial value after every delta, as parse_structured does; 'feed' alone shows the")
    print("parsing cost. The jiter baseline re-parses the whole prefix after every delta.\n")
    header = (
        f"{'doc':>5}  {'shape':<8} {'mode':<9} {'bytes':>9} {'deltas':>7}  "
        f"{'rxchat feed':>15}  {'rxchat feed+snap':>17}  {'jiter re-parse':>27}  "
        f"{'1MB/1KB feed':>12}  {'1MB/1KB feed+snap':>17}"
    )
    print(header)
    print("-" * len(header))
    for shape, make in shapes:
        docs = {label: make(size, rng) for label, size in sizes}
        for partial_strings in (False, True):
            mode = "trailing" if partial_strings else "default"
            small_feed = small_snap = 0.0
            for label, _size in sizes:
                doc = docs[label]
                big = len(doc) > 100_000
                reps = big_reps if big else small_reps
                feed_only = time_rxchat(doc, reps, partial_strings, snapshot=False)
                with_snap = time_rxchat(doc, reps, partial_strings, snapshot=True)
                jt, sampled = time_jiter(doc, reps, partial_strings, 300 if big else None)
                f_best, f_med = min(feed_only) * 1e6, statistics.median(feed_only) * 1e6
                s_best, s_med = min(with_snap) * 1e6, statistics.median(with_snap) * 1e6
                jt_best, jt_med = min(jt) * 1e6, statistics.median(jt) * 1e6
                if big:
                    r_feed = f"{f_best / small_feed:.2f}"
                    r_snap = f"{s_best / small_snap:.2f}"
                else:
                    small_feed, small_snap = f_best, s_best
                    r_feed = r_snap = ""
                jt_note = " sampled" if sampled else ""
                print(
                    f"{label:>5}  {shape:<8} {mode:<9} {len(doc):>9} {len(deltas_of(doc)):>7}  "
                    f"{f_best:>6.2f} / {f_med:>6.2f}  {s_best:>7.2f} / {s_med:>7.2f}  "
                    f"{jt_best:>8.1f} / {jt_med:>8.1f}{jt_note:<8}  {r_feed:>12}  {r_snap:>17}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
