"""Hostile input: the decoders and the stream state raise nothing but documented typed errors.

Hypothesis drives the SSE decoder with arbitrary bytes (and SSE-shaped byte soup) in arbitrary
read splits, the chunk decoder with frames carrying arbitrary JSON (chunk-shaped or not), and the
stream state — plain, with a structured ``response_format`` and with strict tools — with the
chunks that came out. Crafted inputs (a megabyte of ``\\r``, of ``\\n``, of comments, deeply
nested tool arguments, a 10 MB event) are checked functionally here; their timings (linear
growth) are measured by ``benchmarks/bench_faults.py --hostile``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from rxchat import (
    ChatCompletionStreamState,
    ChunkDecoder,
    ServerSentEvent,
    SSEDecoder,
    pydantic_function_tool,
)
from rxchat.errors import (
    EventTooLargeError,
    IncompleteStreamError,
    RxChatError,
    StructuredOutputError,
)
from rxchat.types import ChatCompletionChunk

# Examples per property in the suite (sized to keep the folder fast); scale them up for a long
# run with RXCHAT_FUZZ_SCALE=100 (benchmarks/fuzz_atheris.py is the coverage-guided variant).
SCALE = float(os.environ.get("RXCHAT_FUZZ_SCALE", "1"))


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- strategies ------------------------------------------------------------------------------

SSE_PIECES = [
    b"data:",
    b"data: ",
    b"event:",
    b"event: error",
    b"id:",
    b"id: 7",
    b"id: a\x00b",
    b"retry:",
    b"retry: 10",
    b"retry: x",
    b":",
    b": keep-alive",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"[DONE]",
    b"{",
    b"}",
    b'"',
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xa8",
    b"x",
    b" ",
]

sse_soup = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(SSE_PIECES) | st.binary(max_size=4), max_size=80).map(b"".join),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)

ARG_PIECES = ['{', '}', '[', ']', '"', ':', ',', ' ', '1', '-', '.5e3', 'true', 'nul', 'l',
              '"city"', '"n"', '\\', '\\u00', 'e9', '\\ud83d', '"x', 'é']  # fmt: skip
arg_text = st.lists(st.sampled_from(ARG_PIECES) | st.text(max_size=3), max_size=12).map("".join)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field's usual type, or any JSON value."""
    return strategy | json_values


def _dumps(value: Any) -> bytes:
    """JSON of any value (integers beyond 64 bits included), escaped or as raw UTF-8."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


function_like = st.fixed_dictionaries(
    {},
    optional={
        "name": _maybe(st.sampled_from(["Location", "Weather", "unknown", ""])),
        "arguments": _maybe(arg_text),
    },
)
tool_call_like = st.fixed_dictionaries(
    {"index": _maybe(st.integers(0, 2))},
    optional={
        "id": _maybe(st.text(max_size=6)),
        "type": _maybe(st.just("function")),
        "function": _maybe(function_like),
    },
)
delta_like = st.fixed_dictionaries(
    {},
    optional={
        "role": _maybe(st.sampled_from(["assistant", "user", "tool"])),
        "content": _maybe(st.none() | arg_text),
        "refusal": _maybe(st.none() | st.text(max_size=8)),
        "reasoning_content": _maybe(st.text(max_size=8)),
        "tool_calls": _maybe(st.lists(tool_call_like, max_size=2)),
        "function_call": _maybe(function_like),
    },
)
choice_like = st.fixed_dictionaries(
    {"index": _maybe(st.integers(0, 2)), "delta": _maybe(delta_like)},
    optional={
        "finish_reason": _maybe(
            st.sampled_from([None, "stop", "length", "tool_calls", "content_filter", "weird"])
        ),
        "logprobs": _maybe(st.none()),
    },
)
chunk_like = st.fixed_dictionaries(
    {"choices": _maybe(st.lists(choice_like, max_size=3))},
    optional={
        "id": _maybe(st.text(max_size=6)),
        "object": _maybe(st.sampled_from(["chat.completion.chunk", "chat.completion"])),
        "created": _maybe(st.integers(0, 2**40)),
        "model": _maybe(st.text(max_size=6)),
        "usage": _maybe(
            st.none()
            | st.fixed_dictionaries(
                {
                    "prompt_tokens": st.integers(0, 99),
                    "completion_tokens": st.integers(0, 99),
                    "total_tokens": st.integers(0, 199),
                }
            )
        ),
        "error": json_values,
    },
)
payload = st.one_of(
    chunk_like.map(_dumps),
    chunk_like.map(json.dumps).map(str.encode),
    json_values.map(_dumps),
    st.just(b"[DONE]"),
    st.binary(max_size=20),
)
frame = st.tuples(st.sampled_from([b"", b"event: error\n", b": ka\n", b"id: 1\n"]), payload).map(
    lambda t: t[0] + b"data: " + t[1] + b"\n\n"
)
body = st.lists(frame, max_size=6).map(b"".join)
cuts = st.lists(st.integers(0, 10_000), max_size=6)


def _split(data: bytes, points: list[int]) -> list[bytes]:
    if not data:
        return [data]
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _key(events: list[ServerSentEvent]) -> list[tuple[str, str, str, int | None]]:
    return [(e.data, e.event, e.id, e.retry) for e in events]


def _decode_all(decoder: SSEDecoder, reads: list[bytes]) -> list[ServerSentEvent]:
    events: list[ServerSentEvent] = []
    for data in reads:
        events += decoder.feed(data)
    events += decoder.flush()
    return events


class Location(BaseModel):
    city: str
    n: int = 0


class Weather(BaseModel):
    city: str


TOOLS = [pydantic_function_tool(Location), pydantic_function_tool(Weather)]


# -- SSE decoder ------------------------------------------------------------------------------


@_fuzz(1000)
@given(data=sse_soup, points=cuts, limit=st.none() | st.integers(1, 64))
def test_sse_decoder_takes_any_bytes(data: bytes, points: list[int], limit: int | None) -> None:
    whole = SSEDecoder(max_event_bytes=limit)
    split = SSEDecoder(max_event_bytes=limit)
    try:
        expected = _decode_all(whole, [data])
    except EventTooLargeError:
        assert limit is not None
        expected = None
    try:
        got = _decode_all(split, _split(data, points))
    except EventTooLargeError as err:
        assert limit is not None
        assert f"max_event_bytes={limit}" in str(err)
        got = None
    if expected is not None and got is not None:
        assert _key(got) == _key(expected)  # any split of the same bytes, the same events
    if limit is None:
        assert got is not None


# -- chunk decoder + stream state --------------------------------------------------------------


def _run_decoder(reads: list[bytes]) -> tuple[list[ChatCompletionChunk], RxChatError | None]:
    decoder = ChunkDecoder()
    chunks: list[ChatCompletionChunk] = []
    error: RxChatError | None = None
    try:
        for data in reads:
            got = decoder.feed(data)
            chunks += got
            if decoder.error is not None:
                error = decoder.error
                with pytest.raises(RxChatError) as again:
                    decoder.feed(b"data: {}\n\n")  # a failed decoder keeps failing the same way
                assert again.value is error
                break
            if decoder.done:
                break
        else:
            decoder.close()
    except RxChatError as err:  # close(): incomplete, or the stored error
        error = err
    assert decoder.chunks_received == len(chunks)
    if error is not None:
        assert error.chunks_received == len(chunks)
        assert str(error)  # a message, not an empty string
    elif not decoder.done:
        assert decoder.finished  # a success without [DONE] needs a finish reason
    return chunks, error


def _feed_state(state: ChatCompletionStreamState[Any], chunks: list[ChatCompletionChunk]) -> None:
    try:
        for chunk in chunks:
            for event in state.handle_chunk(chunk):
                _ = event.type
        state.current_completion_snapshot  # noqa: B018 - reading it must not fail either
        state.get_final_completion()
    except RxChatError:
        pass


@_fuzz(300)
@given(data=body, points=cuts)
def test_chunk_decoder_and_state_take_any_frames(data: bytes, points: list[int]) -> None:
    chunks, _ = _run_decoder(_split(data, points))
    _feed_state(ChatCompletionStreamState(), chunks)


@_fuzz(150)
@given(data=body, points=cuts)
def test_state_with_structured_output_and_tools(data: bytes, points: list[int]) -> None:
    chunks, _ = _run_decoder(_split(data, points))
    _feed_state(ChatCompletionStreamState(response_format=Location), chunks)
    _feed_state(ChatCompletionStreamState(tools=TOOLS), chunks)


@_fuzz(1000)
@given(data=sse_soup, points=cuts)
def test_chunk_decoder_takes_byte_soup(data: bytes, points: list[int]) -> None:
    _run_decoder(_split(data, points))


# -- many more examples, cheaply: a seeded generator instead of hypothesis's draws -----------
#
# Hypothesis spends most of its time drawing; this generator builds hostile bodies with
# ``random.Random(seed)`` so tens of thousands of them run in seconds. A failure names its seed.

_FIELDS = ["id", "object", "created", "model", "usage", "choices", "error", "system_fingerprint"]
_DELTA = ["role", "content", "refusal", "reasoning_content", "tool_calls", "function_call", "x"]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, 1, -1, 2**63, -(2**80), 3])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e-320])
    if kind in (4, 5):
        return "".join(rng.choice(ARG_PIECES) for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(_FIELDS + _DELTA): _junk(rng, depth + 1) for _ in range(rng.randrange(3))}


def _usually(rng: random.Random, value: Any) -> Any:
    return value if rng.random() < 0.97 else _junk(rng)


def _random_chunk(rng: random.Random) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for key in rng.sample(_DELTA, rng.randrange(3)):
        if key == "tool_calls":
            delta[key] = [
                {
                    "index": _usually(rng, rng.randrange(2)),
                    "id": _usually(rng, "call_1"),
                    "type": _usually(rng, "function"),
                    "function": _usually(
                        rng,
                        {
                            "name": _usually(rng, rng.choice(["Location", "Weather", "nope"])),
                            "arguments": _usually(
                                rng,
                                _junk(rng)
                                if rng.random() < 0.2
                                else "".join(
                                    rng.choice(ARG_PIECES) for _ in range(rng.randrange(8))
                                ),
                            ),
                        },
                    ),
                }
                for _ in range(rng.randrange(1, 3))
            ]
        elif key == "role":
            delta[key] = _usually(rng, "assistant")
        else:
            delta[key] = _usually(rng, "".join(rng.choice(ARG_PIECES) for _ in range(3)))
    choice = {
        "index": _usually(rng, rng.randrange(3)),
        "delta": _usually(rng, delta),
        "finish_reason": _usually(
            rng, rng.choice([None] * 6 + ["stop", "length", "tool_calls", "content_filter"])
        ),
    }
    chunk: dict[str, Any] = {"choices": _usually(rng, [choice] if rng.random() < 0.9 else [])}
    if rng.random() < 0.5:
        chunk["object"] = _usually(rng, "chat.completion.chunk")
    if rng.random() < 0.1:
        chunk["usage"] = _junk(rng)
    if rng.random() < 0.005:
        chunk["error"] = _junk(rng)
    return chunk


def _random_body(rng: random.Random) -> bytes:
    frames = []
    for _ in range(rng.randrange(1, 12)):
        r = rng.random()
        if r < 0.95:
            data = _dumps(_random_chunk(rng))
        elif r < 0.96:
            data = b"[DONE]"
        elif r < 0.98:
            data = _dumps(_junk(rng))
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        r = rng.random()
        prefix = b"event: error\n" if r < 0.01 else b": ka\n" if r < 0.1 else b""
        frames.append(prefix + b"data: " + data + rng.choice([b"\n\n", b"\r\n\r\n", b"\r\r"]))
    body = b"".join(frames)
    if rng.random() < 0.1:
        body = body[: rng.randrange(len(body) + 1)]  # cut anywhere
    return body


RANDOM_BODIES = max(1, int(10_000 * SCALE))


def test_random_bodies_through_decoder_and_state() -> None:
    states = [
        lambda: ChatCompletionStreamState(),
        lambda: ChatCompletionStreamState(response_format=Location),
        lambda: ChatCompletionStreamState(tools=TOOLS),
    ]
    for seed in range(RANDOM_BODIES):
        rng = random.Random(seed)
        data = _random_body(rng)
        try:
            chunks, _ = _run_decoder(_split(data, [rng.randrange(len(data) + 1) for _ in range(3)]))
            _feed_state(states[seed % 3](), chunks)
        except BaseException as err:
            raise AssertionError(f"seed {seed}: {type(err).__name__}: {err}") from err


# -- crafted input (functional; timings in benchmarks/bench_faults.py --hostile) ----------------

MB = 1 << 20


@pytest.mark.parametrize(
    ("name", "data", "comments"),
    [
        ("cr", b"\r" * MB, 0),
        ("lf", b"\n" * MB, 0),
        ("crlf", b"\r\n" * (MB // 2), 0),
        ("comments", b": keep-alive\n" * (MB // 13), MB // 13),
        ("empty-data", b"data:\n" * (MB // 6), 0),
        ("unterminated-line", b"data: " + b"x" * MB, 0),
    ],
)
def test_megabyte_of_hostile_bytes(name: str, data: bytes, comments: int) -> None:
    for read in (len(data), 4096, 1):
        if read == 1 and len(data) > 20_000:
            data = data[:20_000]  # one-byte reads: the first 20 kB is enough
            comments = data.count(b": keep-alive\n")
        decoder = SSEDecoder()
        events: list[ServerSentEvent] = []
        for i in range(0, len(data), read):
            events += decoder.feed(data[i : i + read])
        events += decoder.flush()
        if name == "empty-data":
            # Each block is one empty data line: as per the spec, dispatched with data "".
            assert all(e.data == "" for e in events)
        else:
            assert events == []
        assert decoder.comments == comments


def test_ten_megabyte_event_is_delivered_whole() -> None:
    text = "abcdefghij" * (MB)
    frame = b'data: {"choices":[{"index":0,"delta":{"content":"' + text.encode() + b'"}}]}\n\n'
    decoder = ChunkDecoder()
    chunks = []
    for i in range(0, len(frame), 65536):
        chunks += decoder.feed(frame[i : i + 65536])
    assert [c.text for c in chunks] == [text]


@pytest.mark.parametrize("limit", [1, 1000, MB])
def test_max_event_bytes_stops_buffering_early(limit: int) -> None:
    """An endless event fails once it crosses the limit: memory stays bounded by the limit."""
    decoder = ChunkDecoder(max_event_bytes=limit)
    fed = 0
    read = b"x" * 65536
    assert decoder.feed(b"data: ") == []
    fed += 6
    while decoder.error is None:
        decoder.feed(read)
        fed += len(read)
        assert fed <= limit + 2 * len(read), "still buffering past the limit"
    error = decoder.error
    assert isinstance(error, EventTooLargeError)
    assert error.limit == limit
    assert f"max_event_bytes={limit}" in str(error)
    with pytest.raises(EventTooLargeError):
        decoder.close()


def test_events_before_an_oversized_one_are_delivered() -> None:
    small = b'data: {"choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
    decoder = ChunkDecoder(max_event_bytes=1000)
    chunks = decoder.feed(small * 3 + b"data: " + b"y" * 5000)
    assert [c.text for c in chunks] == ["ok"] * 3
    assert isinstance(decoder.error, EventTooLargeError)
    assert decoder.error.chunks_received == 3


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_tool_arguments(depth: int, kind: str) -> None:
    """Nesting far beyond any recursion limit: a typed error (or a value), never a crash."""
    opener, closer = ("[", "]") if kind == "array" else ('{"a":', "}")
    args = '{"city": ' + opener * depth + "1" + closer * depth + "}"
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(tools=TOOLS)
    first = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "Location", "arguments": ""},
                        }
                    ],
                },
            }
        ]
    }
    state.handle_chunk(ChatCompletionChunk.from_wire(first))
    step = 4096
    last: Any = None
    with pytest.raises(StructuredOutputError) as caught:
        for i in range(0, len(args), step):
            piece = {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"arguments": args[i : i + step]}}
                            ]
                        },
                    }
                ]
            }
            for event in state.handle_chunk(ChatCompletionChunk.from_wire(piece)):
                if event.type == "tool_calls.function.arguments.delta":
                    last = event
        assert last is not None
        _ = last.parsed_arguments  # the deep partial value is built: no RecursionError
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
        state.handle_chunk(ChatCompletionChunk.from_wire(done))
        state.get_final_completion()
    # "city" must be a string: the nested value is rejected by validation, with the raw text.
    assert caught.value.raw == args


def test_incomplete_body_is_reported_not_dropped() -> None:
    decoder = ChunkDecoder()
    decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n')
    decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"cut')
    with pytest.raises(IncompleteStreamError) as caught:
        decoder.close()
    assert caught.value.chunks_received == 1
    assert "discarded" in str(caught.value)
