"""The C chunk builder (rxchat._speedups via rxchat._fastbuild) against pydantic.

Whatever it builds must be the model pydantic builds from the same payload — same classes,
values, key order, fields set, extras — and whatever pydantic rejects it must hand back (None)
for pydantic to reject. Checked on the corpus, the mock server's output and generated payloads
that mix right and wrong types at every field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _c_reader import requires_c_reader
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import rxchat._fastbuild as fastbuild
from rxchat import ChatCompletionChunk, SSEDecoder
from rxchat._fastbuild import models_identical
from rxchat.mock import MockServer

pytestmark = requires_c_reader  # every test here is a test of the C reader itself

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"

validate = ChatCompletionChunk.__pydantic_validator__.validate_json


def test_the_extension_is_built_and_in_use() -> None:
    # Skipped without a compiler; CI sets RXCHAT_EXPECT_SPEEDUPS=1 where it has one, so a silent
    # build failure (the extension is optional) shows here.
    assert fastbuild._speedups is not None
    assert C_BUILD is not None
    if os.environ.get("RXCHAT_NO_SPEEDUPS", "") in ("", "0"):
        assert fastbuild.build_chunks is not None
    else:
        assert fastbuild.build_chunks is None


# These tests use the builder directly, so they run whatever RXCHAT_NO_SPEEDUPS says.
C_BUILD = fastbuild.c_builder()


def build(raw: str) -> Any:
    assert C_BUILD is not None
    return C_BUILD([raw])[0]


def check(raw: str) -> bool:
    """Assert the builder agrees with pydantic on ``raw``; True if the builder decided it."""
    fast = build(raw)
    try:
        expected = validate(raw)
    except ValidationError:
        assert fast is None, raw
        return False
    if fast is None:
        return False
    assert models_identical(fast, expected), raw
    assert fast.model_dump() == expected.model_dump()
    assert fast.model_dump_json(exclude_unset=True) == expected.model_dump_json(exclude_unset=True)
    assert repr(fast) == repr(expected)
    return True


def corpus_payloads() -> list[str]:
    payloads = []
    for path in sorted(CORPUS.glob("*.sse")):
        for event in SSEDecoder().feed(path.read_bytes()):
            if event.data != "[DONE]":
                payloads.append(event.data)
    return payloads


def test_every_corpus_chunk_is_built_by_the_extension_as_pydantic_builds_it() -> None:
    payloads = corpus_payloads()
    assert len(payloads) > 300
    decided = [check(raw) for raw in payloads]
    assert all(decided)  # real OpenAI chunks never need the fallback


async def test_mock_server_chunks_of_every_kind(mock_server: MockServer) -> None:
    import aiohttp

    bodies = [
        {"model": "mock?tokens=20", "n": 2, "logprobs": True, "top_logprobs": 2},
        {"model": "mock", "stream_options": {"include_usage": True}},
        {
            "model": "mock",
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                }
            ],
            "tool_choice": "required",
        },
        {"model": "mock", "messages": [{"role": "user", "content": "anthrax"}]},
        {"model": "mock?reasoning=3"},
        {"model": "mock?tokens=5", "response_format": {"type": "json_object"}},
    ]
    seen = 0
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            body = {"messages": [{"role": "user", "content": "hi"}], **body, "stream": True}
            async with session.post(mock_server.url + "/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                for event in SSEDecoder().feed(await resp.read()):
                    if event.data != "[DONE]":
                        assert check(event.data)
                        seen += 1
    assert seen > 50


def test_a_mutated_instance_behaves_like_pydantics() -> None:
    raw = corpus_payloads()[1]
    fast, slow = build(raw), validate(raw)
    for model in (fast, slow):
        model.choices[0].delta.content = "changed"
        model.brand_new = 1  # extra="allow": kept in the extras
    assert models_identical(fast, slow)
    assert fast.model_copy(deep=True) == slow.model_copy(deep=True)


# -- generated payloads: right and wrong types everywhere ------------------------------------

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a right value (7 in 8), sometimes anything."""
    return st.tuples(st.booleans(), st.booleans(), st.booleans()).flatmap(
        lambda coins: _json if all(coins) else good
    )


def _obj(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """An object with the fields (the required ones nearly always), plus maybe unknown keys."""
    return st.fixed_dictionaries(
        {name: _maybe(fields[name]) for name in required if name in fields},
        optional={name: _maybe(s) for name, s in fields.items() if name not in required},
    ).flatmap(
        lambda d: st.dictionaries(
            st.sampled_from(["x", "extra", "obfuscation", "index"]), _json, max_size=2
        ).map(lambda extra: {**extra, **d} if extra else d)
    )


_str_or_none = st.one_of(st.none(), st.text(max_size=6))
_top = _obj(
    {
        "token": st.text(max_size=3),
        "logprob": st.floats(-20, 0),
        "bytes": st.one_of(st.none(), st.lists(st.integers(0, 255), max_size=3)),
    },
    required=("token", "logprob"),
)
_token = _obj(
    {
        "token": st.text(max_size=3),
        "logprob": st.one_of(st.floats(-20, 0), st.integers(-3, 0)),
        "bytes": st.one_of(st.none(), st.lists(st.integers(0, 255), max_size=3)),
        "top_logprobs": st.lists(_top, max_size=2),
    },
    required=("token", "logprob"),
)
_function = _obj({"name": _str_or_none, "arguments": _str_or_none})
_tool_call = _obj(
    {
        "index": st.integers(0, 3),
        "id": _str_or_none,
        "type": _str_or_none,
        "function": st.one_of(st.none(), _function),
    },
    required=("index",),
)
_delta = _obj(
    {
        "role": _str_or_none,
        "content": _str_or_none,
        "refusal": _str_or_none,
        "reasoning_content": _str_or_none,
        "tool_calls": st.one_of(st.none(), st.lists(_tool_call, max_size=2)),
        "function_call": st.one_of(st.none(), _function),
    }
)
_choice = _obj(
    {
        "index": st.integers(0, 3),
        "delta": _delta,
        "logprobs": st.one_of(
            st.none(),
            _obj(
                {
                    "content": st.one_of(st.none(), st.lists(_token, max_size=2)),
                    "refusal": st.one_of(st.none(), st.lists(_token, max_size=1)),
                }
            ),
        ),
        "finish_reason": _str_or_none,
    },
    required=("index", "delta"),
)
_usage = _obj(
    {
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**6),
        "total_tokens": st.integers(0, 10**6),
        "completion_tokens_details": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=4), _json, max_size=2)
        ),
        "prompt_tokens_details": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=4), _json, max_size=2)
        ),
    }
)
_chunk = _obj(
    {
        "id": st.text(max_size=8),
        "object": st.just("chat.completion.chunk"),
        "created": st.integers(0, 2**40),
        "model": st.text(max_size=5),
        "system_fingerprint": _str_or_none,
        "service_tier": _str_or_none,
        "choices": st.lists(_choice, max_size=2),
        "usage": st.one_of(st.none(), _usage),
    },
    required=("choices",),
)


def _dumps(value: Any) -> str:
    # json (not orjson): it also writes integers beyond 64 bits.
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=1500, deadline=None)
@given(_chunk)
def test_generated_chunks_agree_with_pydantic(chunk: dict[str, Any]) -> None:
    check(_dumps(chunk))


def test_the_generator_reaches_both_sides() -> None:
    """Most generated chunks are decided by the builder, and some are left to pydantic."""
    outcomes: list[bool] = []

    @settings(max_examples=400, deadline=None, database=None)
    @given(_chunk)
    def run(chunk: dict[str, Any]) -> None:
        outcomes.append(check(_dumps(chunk)))

    run()
    assert outcomes.count(True) > len(outcomes) // 3
    assert outcomes.count(False) > len(outcomes) // 20


@settings(max_examples=300, deadline=None)
@given(_chunk, st.sampled_from([" ", "\n", "\t"]))
def test_whitespace_and_escapes_agree_with_pydantic(chunk: dict[str, Any], space: str) -> None:
    check(json.dumps(chunk, indent=space, ensure_ascii=True))


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "null",
        "[]",
        '"chunk"',
        "{",
        '{"choices": []',
        '{"choices": [],}',
        '{"choices": [] } x',
        '{"choices": [{"index": 0, "delta": {"content": "\\ud800"}}]}',
        '{"choices": [{"index": 0, "delta": {"content": "a\\u0000b"}}]}',
        '{"choices": [{"index": 0.0, "delta": {}}]}',
        '{"choices": [{"index": 1e2, "delta": {}}]}',
        '{"choices": [{"index": "1", "delta": {}}]}',
        '{"choices": [{"index": true, "delta": {}}]}',
        '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
        '{"choices": [{"index": 0, "delta": null}]}',
        '{"choices": [{"index": 0}]}',
        '{"choices": {}}',
        '{"choices": [], "created": "5"}',
        '{"choices": [], "created": 5.0}',
        '{"choices": [], "created": 123456789012345678901234567890}',
        '{"choices": [], "choices": [{"index": 0, "delta": {}}]}',
        '{"choices": [], "usage": {"prompt_tokens": -1}}',
        '{"choices": [], "usage": {"prompt_tokens_details": {"a": NaN}}}',
        '{"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [{"token": "a", '
        '"logprob": 0}]}}]}',
        '{"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [{"token": "a", '
        '"logprob": -1.5, "bytes": [1, 2.0]}]}}]}',
        '{"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {}}]}}]}',
        '{"error": {"message": "boom"}, "choices": []}',
    ],
)
def test_edge_payloads_agree_with_pydantic(raw: str) -> None:
    check(raw)


def test_a_large_batch_keeps_order_and_falls_back_only_where_needed() -> None:
    good = corpus_payloads()[:50]
    bad = '{"choices": [{"index": "1", "delta": {}}]}'  # lax: pydantic converts "1" to 1
    payloads = [*good[:25], bad, *good[25:]]
    assert C_BUILD is not None
    built = C_BUILD(payloads)
    assert [i for i, chunk in enumerate(built) if chunk is None] == [25]
    for raw, chunk in zip(payloads, built, strict=True):
        if chunk is not None:
            assert models_identical(chunk, validate(raw))


def test_duplicated_keys_are_left_to_pydantic() -> None:
    raw = '{"id": "a", "id": "b", "choices": [{"index": 0, "delta": {}, "index": 1}]}'
    assert build(raw) is None
    check(raw)
    assert build('{"choices": [], "x": {"k": 1, "k": 2}}') is None


@pytest.mark.parametrize(
    "raw",
    [
        '{"choices":[{"index":0,"delta":{"content":"tab\\tquote\\"slash\\/\\u00e9\\ud83d\\ude00"}}]}',
        '{"choices":[{"index":0,"delta":{"con\\u0074ent":"escaped key"}}]}',
        '{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \u4e2d \U0001f600"}}]}',
        ' \n{ "choices" : [ { "index" : 0 , "delta" : { } } ] }\r\n\t',
        # 18 digits: the longest integer literal the reader reads itself (longer ones go to
        # pydantic: test_long_integer_literals_agree_with_pydantic)
        '{"choices":[],"x":[1,-0,0.5,-1.5e3,1E+2,2e-2,123456789012345678,true,false,null]}',
        '{"choices":[],"x":{"a":{"b":[{"c":[]}]}},"y":"","z":{}}',
        '{"choices":[],"created":-0}',
        '{"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a","logprob":-2,'
        '"bytes":[],"top_logprobs":[]}]}}]}',
    ],
)
def test_json_the_reader_decides_itself(raw: str) -> None:
    assert check(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '{"choices":[],"x":1e400}',
        '{"choices":[],"x":' + "[" * 70 + "]" * 70 + "}",
        '{"choices":[],}',
        '{"choices":[],"x":[1,]}',
        '{"choices":[] "x":1}',
        '{"choices":[],"x":01}',
        '{"choices":[],"x":1.}',
        '{"choices":[],"x":.5}',
        '{"choices":[],"x":+1}',
        '{"choices":[],"x":-}',
        '{"choices":[],"x":tru}',
        '{"choices":[],"x":"\\x"}',
        '{"choices":[],"x":"\\u12"}',
        '{"choices":[],"x":"\\udc00"}',
        '{"choices":[],"x":"a\u0001b"}',
        '{"choices":[],"\u0001":1}',
        '{"choices":[]}}',
        '{"choices":[]',
        '{"choices":[{"index":0,"delta":{}}]',
        "{'choices':[]}",
        '{"choices":[],"x":"unterminated}',
    ],
)
def test_json_the_reader_leaves_to_pydantic(raw: str) -> None:
    assert build(raw) is None
    check(raw)


def test_rxchat_no_speedups_turns_the_extension_off() -> None:
    code = "import rxchat._fastbuild as f, rxchat._decode as d; print(f.build_chunks is None, d._build_all.__name__)"
    for value, expected in (("1", "True _build_with_pydantic"), ("0", "False _build_fast")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "RXCHAT_NO_SPEEDUPS": value},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == expected


# -- long integer literals: Python's int-string conversion limit (4,300 digits) ----------------

_LIMIT = 4300
_BIG_SIZES = [18, 19, 20, 40, _LIMIT - 1, _LIMIT, _LIMIT + 1, _LIMIT + 2, 2 * _LIMIT, 50_000]
_BIG_PLACES = {
    "unknown field": '{"x":%s,"choices":[]}',
    "created": '{"created":%s,"choices":[]}',
    "usage count": '{"choices":[],"usage":{"prompt_tokens":%s,"total_tokens":1}}',
    "usage details": '{"choices":[],"usage":{"completion_tokens_details":{"reasoning_tokens":%s}}}',
    "logprob bytes": '{"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a",'
    '"logprob":-1,"bytes":[1,%s]}]}}]}',
    "top logprob bytes": '{"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a",'
    '"logprob":-1,"top_logprobs":[{"token":"a","logprob":0,"bytes":[%s]}]}]}}]}',
    "choice index": '{"choices":[{"index":%s,"delta":{}}]}',
    "float field": '{"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a",'
    '"logprob":%s}]}}]}',
    "nested unknown": '{"choices":[{"index":0,"delta":{"x":{"y":[%s]}}}],"z":[]}',
    "unknown in tool call": '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,'
    '"extra":%s}]}}]}',
}


@pytest.mark.parametrize("size", _BIG_SIZES)
@pytest.mark.parametrize("sign", ["", "-"])
@pytest.mark.parametrize("place", list(_BIG_PLACES))
def test_long_integer_literals_agree_with_pydantic(size: int, sign: str, place: str) -> None:
    """The C reader never raises (it raised ValueError past the limit): it builds what pydantic
    builds, or leaves the payload to pydantic, which decides."""
    raw = _BIG_PLACES[place] % (sign + "9" * size)
    check(raw)
    fast = build(raw)  # never an exception
    if size > _LIMIT:
        assert fast is None
