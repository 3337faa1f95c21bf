"""parse_structured: partial values equal jiter's for every prefix, validated at the end, no double parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jiter
import pytest
import reactivex
from pydantic import BaseModel
from reactivex import operators as rops

from rxchat import ChunkDecoder, chat_completion_stream, type_to_response_format_param
from rxchat.errors import LengthFinishReasonError, StructuredOutputError
from rxchat.mock import MockServer
from rxchat.operators import extract_tool_calls, final_completion, parse_structured
from rxchat.operators._accumulate import AccumulatedObservable, accumulate
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


class GetWeatherArgs(BaseModel):
    city: str
    country: str
    units: Literal["c", "f"] = "c"


def corpus(name: str) -> list[ChatCompletionChunk]:
    return ChunkDecoder().feed((CORPUS / name).read_bytes())


def run(observable: reactivex.Observable[Any]) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, (errors[0] if errors else None)


def stream(*pieces: str, finish: str = "stop") -> list[ChatCompletionChunk]:
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return [ChatCompletionChunk.from_wire(c) for c in chunks]


def deltas(events: list[Any]) -> list[Any]:
    return [e for e in events if e.type == "content.delta"]


def test_right_after_accumulate_it_reconfigures_it() -> None:
    source = reactivex.from_iterable(corpus("structured_location.sse"))
    fused = source.pipe(accumulate(), parse_structured(Location))
    assert isinstance(fused, AccumulatedObservable)
    assert fused.upstream is source and fused.options["response_format"] is Location
    direct = source.pipe(accumulate(response_format=Location))
    a, _ = run(fused.pipe(rops.map(lambda e: e.model_dump())))
    b, _ = run(direct.pipe(rops.map(lambda e: e.model_dump())))
    assert a == b


@pytest.mark.parametrize("partial_strings", [False, True])
def test_partial_values_equal_jiter_for_every_prefix(partial_strings: bool) -> None:
    content = json.dumps(
        {"city": "Zürich \"central\"", "temps": [1, -2.5, 3e2], "ok": True, "none": None,
         "nested": {"a": [{"b": "\\u00e9"}], "empty": {}}}
    )  # fmt: skip
    pieces = [content[i : i + 1] for i in range(len(content))]
    mode: Any = "trailing-strings" if partial_strings else True
    events, error = run(
        reactivex.from_iterable(stream(*pieces)).pipe(
            accumulate(), parse_structured(dict, partial_strings=partial_strings)
        )
    )
    assert error is None
    got = [e.parsed for e in deltas(events)][1:]
    prefixes = [content[: i + 1] for i in range(len(content))]
    expected = [
        jiter.from_json(p.encode(), partial_mode=mode) if p.strip() else None for p in prefixes
    ]
    assert got == expected
    done = next(e for e in events if e.type == "content.done")
    assert done.parsed == json.loads(content)


def test_on_chunks_it_accumulates_them() -> None:
    events, error = run(
        reactivex.from_iterable(corpus("structured_location.sse")).pipe(parse_structured(Location))
    )
    assert error is None
    done = next(e for e in events if e.type == "content.done")
    assert done.parsed == Location(city="San Francisco", temperature=61, units="f")
    assert events[0].snapshot.choices[0].message.parsed == done.parsed


def test_on_other_event_streams_it_derives_the_events_again() -> None:
    source = reactivex.from_iterable(corpus("structured_location.sse")).pipe(
        accumulate(), rops.filter(lambda e: e.type in ("chunk", "content.delta"))
    )
    events, error = run(source.pipe(parse_structured(Location)))
    assert error is None
    assert [e.type for e in events].count("content.done") == 1
    # events filtered before anything that carries the chunks cannot be re-derived
    no_chunks = reactivex.from_iterable(corpus("structured_location.sse")).pipe(
        accumulate(), rops.filter(lambda e: e.type != "chunk")
    )
    _, error = run(no_chunks.pipe(parse_structured(Location)))
    assert isinstance(error, TypeError) and "before any 'chunk' event" in str(error)


def test_keeps_the_upstream_tools() -> None:
    from rxchat import pydantic_function_tool

    tools = [pydantic_function_tool(GetWeatherArgs)]
    source = reactivex.from_iterable(corpus("pydantic_tool.sse"))
    for pipeline in (
        source.pipe(accumulate(tools=tools), parse_structured(Location)),
        source.pipe(
            accumulate(tools=tools), rops.filter(lambda e: True), parse_structured(Location)
        ),
        source.pipe(extract_tool_calls(tools), parse_structured(Location)),
    ):
        events, error = run(pipeline)
        assert error is None
        done = next(e for e in events if e.type == "tool_calls.function.arguments.done")
        assert isinstance(done.parsed_arguments, GetWeatherArgs)


@pytest.mark.parametrize("plain", [None, dict, {"type": "json_object"}])
def test_plain_json(plain: Any) -> None:
    events, error = run(
        reactivex.from_iterable(corpus("json_object.sse")).pipe(
            accumulate(), parse_structured(plain)
        )
    )
    assert error is None
    done = next(e for e in events if e.type == "content.done")
    assert done.parsed == json.loads(done.content)
    assert isinstance(done.parsed, dict)


def test_leading_whitespace_and_refusal() -> None:
    events, _ = run(
        reactivex.from_iterable(stream("\n ", ' {"a"', ": 1}")).pipe(parse_structured())
    )
    assert [e.parsed for e in deltas(events)] == [None, None, {}, {"a": 1}]
    refusal, error = run(
        reactivex.from_iterable(corpus("structured_refusal.sse")).pipe(parse_structured(Location))
    )
    assert error is None
    assert not deltas(refusal) or all(e.parsed is None for e in deltas(refusal))
    assert [e.type for e in refusal if e.type.endswith(".done")] == ["refusal.done"]


def test_invalid_content_is_a_typed_error_with_the_raw_text() -> None:
    events, error = run(
        reactivex.from_iterable(stream('{"city": "Rome", ', "oops")).pipe(
            parse_structured(Location)
        )
    )
    assert isinstance(error, StructuredOutputError)
    assert error.raw == '{"city": "Rome", oops'
    assert error.completion is not None
    assert deltas(events)[-1].parsed == {"city": "Rome"}

    _, error = run(
        reactivex.from_iterable(stream('{"city": "Rome"}')).pipe(parse_structured(Location))
    )
    assert isinstance(error, StructuredOutputError) and "temperature" in str(error)


def test_cut_answer_is_a_length_error() -> None:
    _, error = run(
        reactivex.from_iterable(corpus("structured_max_tokens_1.sse")).pipe(
            accumulate(), parse_structured(Location)
        )
    )
    assert isinstance(error, LengthFinishReasonError)
    assert error.completion is not None and error.completion.choices[0].message.content == '{"'


def test_bad_format_fails_at_call_time() -> None:
    with pytest.raises(TypeError):
        parse_structured(12)


async def test_loopback_structured_output_from_the_mock_server(mock_server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock",
        messages=[{"role": "user", "content": "weather?"}],
        base_url=mock_server.url,
        response_format=type_to_response_format_param(Location),
    )
    partial: list[Any] = []
    completion = await source.pipe(
        accumulate(),
        parse_structured(Location),
        rops.do_action(lambda e: partial.append(e.parsed) if e.type == "content.delta" else None),
        final_completion(),
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Location)
    content = completion.choices[0].message.content or ""
    assert parsed == Location.model_validate_json(content)
    assert partial[-1] == json.loads(content)
