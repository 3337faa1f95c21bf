"""Wire types: unknown fields kept, shortcuts, and every route to a chunk equal to model_validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import rxchat
from rxchat import ChunkDecoder, SSEDecoder
from rxchat.errors import InvalidChunkError, StreamAPIError
from rxchat.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    ParsedChatCompletion,
    StreamChunk,
)

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"


def corpus_payloads() -> list[tuple[str, dict[str, Any]]]:
    """Every chunk payload of every recording, decoded by orjson."""
    payloads: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(CORPUS.glob("*.sse")):
        decoder = SSEDecoder()
        events = decoder.feed(path.read_bytes())
        decoder.flush()
        for number, sse in enumerate(events):
            if sse.data != "[DONE]":
                payloads.append((f"{path.name}#{number}", orjson.loads(sse.data)))
    return payloads


CORPUS_PAYLOADS = corpus_payloads()


def state(value: Any) -> Any:
    """Everything that makes a model what it is, recursively: type, fields set, values, extras."""
    if isinstance(value, BaseModel):
        return (
            type(value).__name__,
            sorted(value.model_fields_set),
            {name: state(item) for name, item in value.__dict__.items()},
            {name: state(item) for name, item in (value.__pydantic_extra__ or {}).items()},
            value.__pydantic_private__,
        )
    if isinstance(value, list):
        return [state(item) for item in value]
    if isinstance(value, dict):
        return {key: state(item) for key, item in value.items()}
    return (type(value).__name__, value)


def decoder_route(payload: dict[str, Any]) -> ChatCompletionChunk:
    """The chunk ChunkDecoder builds from the payload sent as one SSE event."""
    decoder = ChunkDecoder()
    chunks = decoder.feed(b"data: " + orjson.dumps(payload) + b"\n\n")
    if decoder.error is not None:
        raise decoder.error
    [chunk] = chunks
    return chunk


def assert_same_outcome(payload: dict[str, Any]) -> None:
    """Every route to a chunk builds what model_validate builds, or rejects what it rejects.

    Routes: ``from_wire`` (a decoded dict), ``from_json`` (the payload text, parsed and validated
    in one pass) and ``ChunkDecoder`` (SSE bytes).
    """
    text = orjson.dumps(payload)
    try:
        expected = ChatCompletionChunk.model_validate(copy.deepcopy(payload))
    except ValidationError as err:
        with pytest.raises(ValidationError) as info:
            ChatCompletionChunk.from_wire(copy.deepcopy(payload))
        assert info.value.errors() == err.errors()
        with pytest.raises(ValidationError) as info:
            ChatCompletionChunk.from_json(text)
        assert [(e["type"], e["loc"]) for e in info.value.errors()] == [
            (e["type"], e["loc"]) for e in err.errors()
        ]
        if all(
            e["type"] == "missing" and len(e["loc"]) == 3 and e["loc"][0] == "choices"
            and e["loc"][2] == "index"
            for e in err.errors()
        ):
            # The decoder's one difference (issue 9 item 6): a choice without index takes its
            # position in the list, then the chunk is what model_validate builds of that.
            filled = copy.deepcopy(payload)
            for position, choice in enumerate(filled["choices"]):
                choice.setdefault("index", position)
            assert decoder_route(payload) == ChatCompletionChunk.model_validate(filled)
            return
        expected_error = StreamAPIError if "error" in payload else InvalidChunkError
        with pytest.raises(expected_error) as decoder_info:
            decoder_route(payload)
        if expected_error is InvalidChunkError:
            assert getattr(decoder_info.value, "raw", None) == text.decode()
        return
    routes = {
        "from_wire": ChatCompletionChunk.from_wire(copy.deepcopy(payload)),
        "from_json": ChatCompletionChunk.from_json(text),
        "decoder": decoder_route(payload),
    }
    for route, got in routes.items():
        assert type(got) is ChatCompletionChunk, route
        assert state(got) == state(expected), route
        assert got == expected, route
        assert got.model_dump() == expected.model_dump(), route
        assert got.model_dump(exclude_unset=True) == expected.model_dump(exclude_unset=True)
        assert got.model_dump_json() == expected.model_dump_json(), route
        assert got.to_dict() == expected.to_dict(), route


# -- chunk shortcuts -------------------------------------------------------------------------


def _chunk(**choice: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.from_wire(
        {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, **choice}]}
    )


def test_text_role_finish_reason_of_first_choice() -> None:
    chunk = _chunk(delta={"role": "assistant", "content": "Hi"}, finish_reason=None)
    assert (chunk.text, chunk.role, chunk.finish_reason) == ("Hi", "assistant", None)
    done = _chunk(delta={}, finish_reason="stop")
    assert (done.text, done.role, done.finish_reason) == (None, None, "stop")


def test_shortcuts_look_at_the_first_choice_only() -> None:
    chunk = ChatCompletionChunk.from_wire(
        {
            "choices": [
                {"index": 1, "delta": {"content": "second"}, "finish_reason": "length"},
                {"index": 0, "delta": {"content": "first"}},
            ]
        }
    )
    assert chunk.text == "second"
    assert chunk.finish_reason == "length"


def test_usage_only_chunk() -> None:
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    chunk = ChatCompletionChunk.from_wire(payload)
    assert chunk.choices == []
    assert (chunk.text, chunk.role, chunk.finish_reason) == (None, None, None)
    assert isinstance(chunk.usage, CompletionUsage)
    assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens) == (3, 4)
    assert chunk.usage.total_tokens == 7
    assert chunk.usage.completion_tokens_details == {"reasoning_tokens": 0}


def test_stream_chunk_is_an_alias() -> None:
    assert StreamChunk is ChatCompletionChunk
    assert rxchat.StreamChunk is rxchat.ChatCompletionChunk


def test_defaults_for_missing_top_level_fields() -> None:
    chunk = ChatCompletionChunk.from_wire({"choices": []})
    assert (chunk.id, chunk.object, chunk.created, chunk.model) == (
        "",
        "chat.completion.chunk",
        0,
        "",
    )
    assert chunk.usage is None
    assert chunk.model_fields_set == {"choices"}
    assert chunk.to_dict() == {"choices": []}


def test_tool_call_and_logprobs_chunks_are_typed() -> None:
    chunk = ChatCompletionChunk.from_wire(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                    "logprobs": {
                        "content": [
                            {
                                "token": "a",
                                "logprob": -0.5,
                                "bytes": [97],
                                "top_logprobs": [{"token": "a", "logprob": -0.5, "bytes": [97]}],
                            }
                        ],
                        "refusal": None,
                    },
                }
            ]
        }
    )
    [call] = chunk.choices[0].delta.tool_calls or []
    assert call.function is not None
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"ci',
    )
    logprobs = chunk.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert logprobs.content[0].top_logprobs[0].logprob == -0.5


def test_reasoning_content_delta() -> None:
    chunk = _chunk(delta={"reasoning_content": "thinking"})
    assert chunk.choices[0].delta.reasoning_content == "thinking"
    assert chunk.text is None


# -- unknown fields are kept -----------------------------------------------------------------


def test_unknown_fields_kept_at_every_level() -> None:
    payload = {
        "id": "c",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "content": "x",
                    "audio": {"id": "a1"},
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": "{", "x_fn": 1}, "x_call": True}
                    ],
                },
                "content_filter_results": {"hate": {"filtered": False}},
            }
        ],
        "prompt_filter_results": [{"prompt_index": 0}],
        "usage": {"prompt_tokens": 1, "x_usage": "u"},
        "obfuscation": "abc",
    }
    chunk = ChatCompletionChunk.from_wire(copy.deepcopy(payload))
    # `obfuscation` and `delta.audio` are declared fields now (issue 9 item 5)
    assert chunk.model_extra == {"prompt_filter_results": [{"prompt_index": 0}]}
    assert chunk.obfuscation == "abc"
    choice = chunk.choices[0]
    assert choice.model_extra == {"content_filter_results": {"hate": {"filtered": False}}}
    assert choice.delta.model_extra == {}
    assert choice.delta.audio is not None and choice.delta.audio.id == "a1"
    call = (choice.delta.tool_calls or [])[0]
    assert call.model_extra == {"x_call": True}
    assert call.function is not None and call.function.model_extra == {"x_fn": 1}
    assert chunk.usage is not None and chunk.usage.model_extra == {"x_usage": "u"}
    # Nothing is lost on the way back out.
    assert chunk.to_dict() == payload
    assert orjson.loads(chunk.to_json()) == payload


def test_unknown_fields_kept_on_completions() -> None:
    payload = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello", "annotations": []},
                "finish_reason": "stop",
                "x_choice": 1,
            }
        ],
        "x_top": {"k": "v"},
    }
    completion = ChatCompletion.model_validate(payload)
    assert completion.text == "hello"
    assert completion.model_extra == {"x_top": {"k": "v"}}
    # `annotations` is a declared message field now (issue 9 item 5)
    assert completion.choices[0].message.annotations == []
    assert completion.to_dict() == payload


def test_parsed_chat_completion_carries_parsed_content() -> None:
    class Location(BaseModel):
        city: str
        temperature: float

    completion = ParsedChatCompletion[Location].model_validate(
        {
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "content": '{"city":"SF","temperature":61}',
                        "parsed": {"city": "SF", "temperature": 61},
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "function": {
                                    "name": "f",
                                    "arguments": "{}",
                                    "parsed_arguments": {"a": 1},
                                },
                            }
                        ],
                    },
                    "finish_reason": "stop",
                }
            ]
        }
    )
    message = completion.choices[0].message
    assert message.parsed == Location(city="SF", temperature=61)
    assert message.tool_calls is not None
    assert message.tool_calls[0].type == "function"
    assert message.tool_calls[0].function.parsed_arguments == {"a": 1}


# -- from_wire / from_json equal model_validate -----------------------------------------------------


def test_corpus_is_present() -> None:
    assert len(CORPUS_PAYLOADS) > 300


@pytest.mark.parametrize(("name", "payload"), CORPUS_PAYLOADS, ids=[n for n, _ in CORPUS_PAYLOADS])
def test_from_wire_equals_model_validate_on_corpus(name: str, payload: dict[str, Any]) -> None:
    assert_same_outcome(payload)


def test_fallback_does_not_see_a_payload_half_rebuilt() -> None:
    # The first choice fits the fast path, the second (a tool call) does not: the fallback must
    # validate the original payload, so the first choice's fields_set stays {index, delta}.
    payload = {
        "choices": [
            {"index": 0, "delta": {"content": "a"}},
            {"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}},
        ]
    }
    chunk = ChatCompletionChunk.from_wire(copy.deepcopy(payload))
    assert chunk.choices[0].model_fields_set == {"index", "delta"}
    assert chunk.to_dict() == payload
    assert_same_outcome(payload)


@pytest.mark.parametrize(
    "payload",
    [
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"choices": [{"index": "0", "delta": {"content": "x"}}]},
        {"choices": [{"index": "zero", "delta": {"content": "x"}}]},
        {"choices": [{"index": 0.0, "delta": {}}]},
        {"choices": [{"index": 0.5, "delta": {}}]},
        {"choices": [{"index": True, "delta": {}}]},
        {"choices": [{"index": None, "delta": {}}]},
        {"choices": [{"delta": {}}]},
        {"choices": [{"index": 0}]},
        {"choices": [{"index": 0, "delta": None}]},
        {"choices": [{"index": 0, "delta": "text"}]},
        {"choices": [{"index": 0, "delta": {"role": 1}}]},
        {"choices": [{"index": 0, "delta": {"refusal": ["no"]}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": {}}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]},
        {"choices": [{"index": 0, "delta": {}, "logprobs": "x"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {}}]}}]},
        {"choices": ["x"]},
        {"choices": {"index": 0}},
        {"choices": None},
        {"choices": []} | {"created": "1"},
        {"choices": []} | {"created": "soon"},
        {"choices": []} | {"created": 1.0},
        {"choices": []} | {"created": 1.5},
        {"choices": []} | {"created": True},
        {"choices": []} | {"id": 7},
        {"choices": []} | {"id": None},
        {"choices": []} | {"model": None},
        {"choices": []} | {"object": 1},
        {"choices": []} | {"system_fingerprint": 3},
        {"choices": []} | {"service_tier": False},
        {"choices": []} | {"usage": {"prompt_tokens": "x"}},
        {"choices": []} | {"usage": 3},
        {"foo": 1},
        {},
    ],
)
def test_wrong_types_rejected_or_coerced_exactly_as_model_validate(payload: dict[str, Any]) -> None:
    assert_same_outcome(payload)


def test_wrong_content_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionChunk.from_wire({"choices": [{"index": 0, "delta": {"content": 5}}]})
    assert info.value.errors()[0]["loc"] == ("choices", 0, "delta", "content")


def test_from_json() -> None:
    chunk = ChatCompletionChunk.from_json(b'{"choices":[{"index":0,"delta":{"content":"a"}}]}')
    assert chunk.text == "a"
    with pytest.raises(ValidationError):
        ChatCompletionChunk.from_json("[1]")
    with pytest.raises(ValidationError):
        ChatCompletionChunk.from_json("{not json")


def test_model_classes_build_the_same_through_either_route() -> None:
    chunk = _chunk(delta={"content": "x"})
    assert type(chunk.choices[0]) is ChunkChoice
    assert type(chunk.choices[0].delta) is ChoiceDelta
    rebuilt = ChatCompletionChunk.model_validate(chunk.model_dump())
    assert rebuilt == chunk


# Hypothesis: chunk-like dicts with right and wrong types at every field.

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, -2.5, 1e300]),
    st.text(max_size=5),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _maybe_wrong(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right type; wrong types come from ``corrupted`` below, one place at a time."""
    return right


_str_or_none = st.one_of(st.none(), st.text(max_size=6))
_tool_call = st.fixed_dictionaries(
    {"index": _maybe_wrong(st.integers(0, 3))},
    optional={
        "id": _maybe_wrong(_str_or_none),
        "type": _maybe_wrong(st.just("function")),
        "function": _maybe_wrong(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": _maybe_wrong(_str_or_none),
                    "arguments": _maybe_wrong(_str_or_none),
                },
            )
        ),
    },
)
_delta = st.fixed_dictionaries(
    {},
    optional={
        "role": _maybe_wrong(st.one_of(st.none(), st.just("assistant"))),
        "content": _maybe_wrong(_str_or_none),
        "refusal": _maybe_wrong(_str_or_none),
        "reasoning_content": _maybe_wrong(_str_or_none),
        "tool_calls": _maybe_wrong(st.one_of(st.none(), st.lists(_tool_call, max_size=2))),
        "x_extra": _json,
    },
)
_logprobs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "content": st.one_of(
                st.none(),
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "token": _maybe_wrong(st.text(max_size=3)),
                            "logprob": _maybe_wrong(st.floats(-5, 0)),
                        },
                        optional={
                            "bytes": st.lists(st.integers(0, 255), max_size=3),
                            "top_logprobs": st.just([]),
                        },
                    ),
                    max_size=2,
                ),
            )
        }
    ),
)
_choice = st.fixed_dictionaries(
    {"index": _maybe_wrong(st.integers(0, 3)), "delta": _maybe_wrong(_delta)},
    optional={
        "logprobs": _maybe_wrong(_logprobs),
        "finish_reason": _maybe_wrong(
            st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls"]))
        ),
        "x_choice": _json,
    },
)
_usage = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": _maybe_wrong(st.integers(0, 9)),
        "completion_tokens": _maybe_wrong(st.integers(0, 9)),
        "total_tokens": _maybe_wrong(st.integers(0, 9)),
    },
)
_chunk_dict = st.fixed_dictionaries(
    {"choices": _maybe_wrong(st.lists(_choice, max_size=3))},
    optional={
        "id": _maybe_wrong(st.text(max_size=6)),
        "object": _maybe_wrong(st.just("chat.completion.chunk")),
        "created": _maybe_wrong(st.integers(0, 2**40)),
        "model": _maybe_wrong(st.text(max_size=6)),
        "system_fingerprint": _maybe_wrong(_str_or_none),
        "service_tier": _maybe_wrong(st.one_of(st.none(), st.just("default"))),
        "usage": _maybe_wrong(st.one_of(st.none(), _usage)),
        "x_top": _json,
    },
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def chunk_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Chunk-like payloads with the right types (a composite keeps hypothesis' repr short)."""
    payload: dict[str, Any] = draw(_chunk_dict)
    return payload


@st.composite
def corrupted_chunk_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A chunk-like payload with one value replaced by any JSON value (or one key removed)."""
    payload = draw(chunk_dicts())
    path = draw(st.sampled_from(_paths(payload)))
    parent: Any = payload
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(_json)
    return payload


@settings(max_examples=200, deadline=None)
@given(chunk_dicts())
def test_from_wire_equals_model_validate_on_generated_chunks(payload: dict[str, Any]) -> None:
    assert_same_outcome(payload)


@settings(max_examples=400, deadline=None)
@given(corrupted_chunk_dicts())
def test_from_wire_rejects_or_accepts_like_model_validate(payload: dict[str, Any]) -> None:
    assert_same_outcome(payload)


@settings(max_examples=150, deadline=None)
@given(st.one_of(chunk_dicts(), corrupted_chunk_dicts()))
def test_from_wire_equals_model_validate_after_a_json_round_trip(payload: dict[str, Any]) -> None:
    # What the decoder really hands over: orjson output (exact builtin types only).
    assert_same_outcome(orjson.loads(orjson.dumps(payload)))
