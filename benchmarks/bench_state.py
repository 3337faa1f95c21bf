"""Stream-state and structured-parsing cost: rxchat against the OpenAI SDK and a jiter re-parse.

Run:  python benchmarks/bench_state.py [--quick]

Table 1: CPU time per chunk to accumulate a plain-text stream of N chunks (4 characters each)
into events and a snapshot, for rxchat's ChatCompletionStreamState and for the OpenAI SDK's;
for rxchat also when the snapshot's content is read after every chunk (read, not kept: a
reader that keeps every string it reads makes each read a copy of the text), and through
``ops.accumulate()`` on a synchronous Observable.
The OpenAI SDK re-serialises the whole message for every chunk, so its cost per chunk grows
with the answer; at sizes where a full run would take minutes it is measured on windows of the
stream and extrapolated with a linear fit (marked "~").

Table 2: CPU time per content delta to parse a streamed JSON document of 1 KB and of 1 MB
(8-character deltas, a list of records): rxchat's incremental parser through the state with
``response_format=dict`` (the cost of ``ops.parse_structured``), the same when every delta's
``parsed`` value is read, and the jiter re-parse of the whole prefix per delta that the OpenAI
SDK does (sampled on evenly spaced prefixes at 1 MB).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import jiter
import reactivex

from rxchat._state import ChatCompletionStreamState
from rxchat.operators._accumulate import accumulate
from rxchat.types import ChatCompletionChunk

try:
    from openai.lib.streaming.chat import ChatCompletionStreamState as OpenAIState
    from openai.types.chat import ChatCompletionChunk as OpenAIChunk
except ImportError:  # pragma: no cover - openai is a bench extra
    OpenAIState = None  # type: ignore[assignment, misc]
    OpenAIChunk = None  # type: ignore[assignment, misc]


def chunk_dicts(contents: Iterable[str]) -> list[dict[str, Any]]:
    """A complete stream: role chunk, one chunk per content piece, finish chunk."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    out += [
        {**base, "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]}
        for c in contents
    ]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out


def ours(dicts: list[dict[str, Any]]) -> list[ChatCompletionChunk]:
    return [ChatCompletionChunk.from_wire(json.loads(json.dumps(d))) for d in dicts]


def cpu(fn: Callable[[], Any]) -> float:
    """CPU seconds of one call (garbage collected before, enabled during)."""
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


# -- table 1 -----------------------------------------------------------------------------------


def rx_state_run(chunks: list[ChatCompletionChunk], read_snapshot: bool = False) -> float:
    def run() -> None:
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        handle = state.handle_chunk
        seen = 0
        for chunk in chunks:
            for event in handle(chunk):
                if read_snapshot and event.type == "chunk" and chunk.choices:
                    # read, not kept: the snapshot text then grows in place
                    seen += len(event.snapshot.choices[0].message.content or "")
        state.get_final_completion()

    return cpu(run) / len(chunks)


def rx_operator_run(chunks: list[ChatCompletionChunk]) -> float:
    sink: list[int] = [0]

    def on_next(_: Any) -> None:
        sink[0] += 1

    def run() -> None:
        reactivex.from_iterable(chunks).pipe(accumulate()).subscribe(on_next)

    return cpu(run) / len(chunks)


def openai_run(dicts: list[dict[str, Any]], budget: float) -> tuple[float, bool]:
    """Per-chunk CPU seconds of the OpenAI SDK state; (value, extrapolated)."""
    chunks = [OpenAIChunk.model_validate(d) for d in dicts]
    state = OpenAIState()
    n = len(chunks)
    window = max(200, n // 50)
    samples: list[tuple[float, float]] = []  # (position, seconds per chunk)
    spent = 0.0
    done = 0
    gc.collect()
    while done < n:
        end = min(n, done + window)
        start = time.process_time()
        for chunk in chunks[done:end]:
            for _ in state.handle_chunk(chunk):
                pass
        elapsed = time.process_time() - start
        spent += elapsed
        samples.append(((done + end) / 2, elapsed / (end - done)))
        done = end
        if spent > budget and done < n:
            break
    if done == n:
        start = time.process_time()
        state.get_final_completion()
        spent += time.process_time() - start
        return spent / n, False
    # cost per chunk grows linearly with the position (the message is re-serialised each time)
    xs = [x for x, _ in samples]
    ys = [y for _, y in samples]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    intercept = mean_y - slope * mean_x
    return intercept + slope * (n / 2), True


def table_state(sizes: list[int], repeat: int, openai_budget: float) -> float:
    print("Table 1 - plain-text stream, CPU µs per chunk (4-character deltas)")
    header = (
        f"{'chunks':>8} | {'rxchat state':>12} | {'+ snapshot read':>15} | "
        f"{'ops.accumulate':>14} | {'openai state':>13} | {'openai/rxchat':>13}"
    )
    print(header)
    print("-" * len(header))
    base = None
    last = None
    for n in sizes:
        dicts = chunk_dicts("tok " for _ in range(n))
        chunks = ours(dicts)
        rx = best(lambda c=chunks: rx_state_run(c), repeat)
        rx_read = best(lambda c=chunks: rx_state_run(c, read_snapshot=True), repeat)
        rx_op = best(lambda c=chunks: rx_operator_run(c), repeat)
        if OpenAIState is not None:
            oa, extrapolated = openai_run(dicts, openai_budget)
            oa_text = f"{'~' if extrapolated else ''}{oa * 1e6:.1f}"
            ratio = f"{'~' if extrapolated else ''}{oa / rx:.0f}x"
        else:
            oa_text, ratio = "n/a", "n/a"
        print(
            f"{n:>8} | {rx * 1e6:>12.2f} | {rx_read * 1e6:>15.2f} | {rx_op * 1e6:>14.2f} | "
            f"{oa_text:>13} | {ratio:>13}"
        )
        if base is None:
            base = rx
        last = rx
    assert base is not None and last is not None
    flat = last / base
    print(f"rxchat per-chunk cost, {sizes[-1]} vs {sizes[0]} chunks: {flat:.2f}x (target <= 1.3)")
    print()
    return flat


# -- table 2 -----------------------------------------------------------------------------------


def json_document(size: int) -> str:
    """A list of records, about ``size`` characters of JSON."""
    records = []
    total = 20
    i = 0
    while total < size:
        record = {"id": i, "name": f"item number {i}", "price": round(i * 1.25, 2),
                  "tags": ["alpha", "beta"], "in_stock": i % 3 == 0}  # fmt: skip
        records.append(record)
        total += len(json.dumps(record)) + 2
        i += 1
    return json.dumps({"items": records, "count": len(records)})


def rx_parse_run(chunks: list[ChatCompletionChunk], read_parsed: bool) -> float:
    deltas = len(chunks) - 2

    def run() -> None:
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=dict)
        handle = state.handle_chunk
        for chunk in chunks:
            for event in handle(chunk):
                if read_parsed and event.type == "content.delta":
                    _ = event.parsed

    return cpu(run) / deltas


def jiter_run(text: str, step: int, samples: int) -> float:
    """Per-delta seconds of re-parsing the whole prefix (evenly spaced prefixes)."""
    ends = list(range(step, len(text) + step, step))
    if len(ends) > samples:
        stride = len(ends) / samples
        ends = [ends[int(i * stride)] for i in range(samples)]

    def run() -> None:
        for end in ends:
            jiter.from_json(text[:end].encode(), partial_mode=True)

    return cpu(run) / len(ends)


def table_parse(sizes: list[int], step: int, repeat: int) -> float:
    print(f"Table 2 - structured content, CPU µs per delta ({step}-character deltas)")
    header = (
        f"{'document':>9} | {'deltas':>7} | {'rxchat parse':>12} | {'+ read parsed':>13} | "
        f"{'jiter re-parse':>14}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for size in sizes:
        text = json_document(size)
        pieces = [text[i : i + step] for i in range(0, len(text), step)]
        chunks = ours(chunk_dicts(pieces))
        rx = best(lambda c=chunks: rx_parse_run(c, False), repeat)
        rx_read = best(lambda c=chunks: rx_parse_run(c, True), 1 if size > 100_000 else repeat)
        baseline = jiter_run(text, step, samples=2000)
        rows.append(rx)
        label = (
            f"{len(text) / 1024:.0f} KB"
            if len(text) < 1 << 20
            else f"{len(text) / (1 << 20):.1f} MB"
        )
        print(
            f"{label:>9} | {len(pieces):>7} | {rx * 1e6:>12.2f} | {rx_read * 1e6:>13.2f} | "
            f"{baseline * 1e6:>14.1f}"
        )
    ratio = rows[-1] / rows[0]
    print(f"rxchat parse per-delta cost, largest vs smallest document: {ratio:.2f}x (target <= 2)")
    print(
        "(+ read parsed: reading every delta's partial value copies the arrays/objects still "
        "open, here the growing list of records)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    args = parser.parse_args()
    if args.quick:
        table_state([1_000, 10_000], repeat=1, openai_budget=2.0)
        table_parse([1_024, 64 * 1024], step=8, repeat=1)
    else:
        table_state([1_000, 10_000, 100_000], repeat=3, openai_budget=20.0)
        table_parse([1_024, 1 << 20], step=8, repeat=3)


if __name__ == "__main__":
    main()
