"""ChatCompletionStreamState: behaviour beyond parity with the OpenAI SDK (see the differential tests)."""

from __future__ import annotations

import copy
import gc
import json
import pickle
from typing import Any, Literal

import jiter
import pytest
from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypedDict

import rxchat
from rxchat import ChatCompletionStreamState, pydantic_function_tool
from rxchat.errors import (
    ContentFilterFinishReasonError,
    IncompleteStreamError,
    LengthFinishReasonError,
    StructuredOutputError,
    UnknownToolError,
)
from rxchat.events import (
    ChatCompletionStreamEvent,
    ChunkEvent,
    ContentDeltaEvent,
    ContentDoneEvent,
)
from rxchat.types import ChatCompletionChunk, ParsedChatCompletion


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


class GetWeather(BaseModel):
    city: str


def chunk(*choices: dict[str, Any], **top: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.from_wire(
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": list(choices), **top}
    )  # fmt: skip


def choice(index: int = 0, finish_reason: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish_reason}


def feed(state: ChatCompletionStreamState[Any], *chunks: ChatCompletionChunk) -> list[Any]:
    events: list[Any] = []
    for c in chunks:
        events.extend(state.handle_chunk(c))
    return events


def content_chunks(*pieces: str, finish: str = "stop") -> list[ChatCompletionChunk]:
    out = [chunk(choice(role="assistant", content=""))]
    out += [chunk(choice(content=p)) for p in pieces]
    out.append(chunk(choice(finish_reason=finish)))
    return out


# -- frames and choices ------------------------------------------------------------------------


def test_non_chunk_frames_are_ignored() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    azure = chunk(object="", prompt_filter_results=[{"prompt_index": 0}])
    assert state.handle_chunk(azure) == []
    assert state.chunks_handled == 0
    events = feed(state, *content_chunks("Hi"))
    assert [e.type for e in events] == [
        "chunk", "content.delta", "chunk", "content.delta", "chunk", "content.done",
    ]  # fmt: skip
    assert state.chunks_handled == 3


def test_usage_only_chunk_sets_usage_and_emits_only_the_chunk_event() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    feed(state, *content_chunks("Hi"))
    usage = chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    events = state.handle_chunk(usage)
    assert [e.type for e in events] == ["chunk"]
    assert events[0].choice_index == 0
    assert state.current_completion_snapshot.usage is not None
    assert state.get_final_completion().usage.total_tokens == 4  # type: ignore[union-attr]


def test_choices_of_n_greater_than_one_are_independent() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = feed(
        state,
        chunk(choice(0, role="assistant", content="A"), choice(1, role="assistant", content="x")),
        chunk(choice(1, content="y")),
        chunk(choice(0, content="B", finish_reason="stop")),
        chunk(choice(1, content="z", finish_reason="length")),
    )
    deltas = [(e.choice_index, e.snapshot) for e in events if e.type == "content.delta"]
    assert deltas == [(0, "A"), (1, "x"), (1, "xy"), (0, "AB"), (1, "xyz")]
    done = [(e.choice_index, e.content) for e in events if e.type == "content.done"]
    assert done == [(0, "AB"), (1, "xyz")]
    assert state.current_content(0) == "AB" and state.current_content(1) == "xyz"
    assert state.current_content(7) == ""
    # plain text: a "length" finish is only an error for the final completion, as in the SDKs
    with pytest.raises(LengthFinishReasonError) as info:
        state.get_final_completion()
    assert info.value.completion is not None
    assert [c.message.content for c in info.value.completion.choices] == ["AB", "xyz"]


def test_handle_chunk_accepts_dicts_and_rejects_other_things() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    data = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    original = copy.deepcopy(data)
    events = state.handle_chunk(data)  # type: ignore[arg-type]
    assert [e.type for e in events] == ["chunk", "content.delta"]
    assert data == original  # the caller's dict is not taken over
    with pytest.raises(TypeError, match="ChatCompletionChunk"):
        state.handle_chunk("data: {}")  # type: ignore[arg-type]


def test_snapshot_before_any_chunk_is_an_error() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    with pytest.raises(IncompleteStreamError):
        _ = state.current_completion_snapshot
    with pytest.raises(IncompleteStreamError):
        state.get_final_completion()
    assert state.current_content() == ""


# -- deferred event fields ----------------------------------------------------------------------


def test_delta_snapshots_keep_their_value_when_read_later() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = feed(state, *content_chunks("a", "b", "c", "d"))
    deltas = [e for e in events if isinstance(e, ContentDeltaEvent)]
    # read in reverse: each still gives the content as it was when the event was emitted
    assert [e.snapshot for e in reversed(deltas)] == ["abcd", "abc", "ab", "a", ""]


def test_retained_events_keep_their_partial_value() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
    text = '{"city": "Paris", "temperature": 18, "units": "c"}'
    events = feed(state, *content_chunks(*[text[i : i + 4] for i in range(0, len(text), 4)]))
    parsed = [e.parsed for e in events if isinstance(e, ContentDeltaEvent)]
    assert parsed[1] == {}
    assert parsed[4] == {"city": "Paris"}
    assert parsed[-1] == {"city": "Paris", "temperature": 18, "units": "c"}
    # every value is a separate snapshot
    assert parsed[-2] is not parsed[-1]


def test_a_kept_event_among_dropped_ones_keeps_its_values() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=dict)
    kept: list[Any] = []
    for c in content_chunks('{"a": [1', ", 2", ", 3", "]}"):
        for event in state.handle_chunk(c):
            if isinstance(event, ContentDeltaEvent) and event.delta == ", 2":
                kept.append(event)
        gc.collect()
    assert kept[0].parsed == {"a": [1, 2]}
    assert kept[0].snapshot == '{"a": [1, 2'


def test_event_models_behave_like_plain_pydantic_models() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
    events = feed(state, *content_chunks('{"city": "Rome", ', '"temperature": 20, "units": "c"}'))
    delta = events[3]
    assert isinstance(delta, ContentDeltaEvent)
    twin = copy.deepcopy(delta)
    assert twin == delta and twin.snapshot == '{"city": "Rome", '
    dumped = delta.model_dump()
    assert list(dumped) == ["type", "delta", "snapshot", "parsed", "choice_index"]
    assert dumped["parsed"] == {"city": "Rome"}
    assert 'snapshot=\'{"city": "Rome", \'' in repr(delta)
    restored = pickle.loads(pickle.dumps(events[4]))
    assert restored == events[4]
    adapter: TypeAdapter[ChatCompletionStreamEvent] = TypeAdapter(ChatCompletionStreamEvent)
    for event in events:
        if isinstance(event, ChunkEvent):
            continue
        again = adapter.validate_json(event.model_dump_json())
        assert again.type == event.type and again.model_dump() == event.model_dump()
    user_built = ContentDeltaEvent(delta="x", snapshot="x")
    assert user_built.type == "content.delta" and user_built.choice_index == 0


def test_chunk_event_snapshot_is_the_live_completion() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = feed(state, *content_chunks("Hel", "lo"))
    chunk_events = [e for e in events if isinstance(e, ChunkEvent)]
    # as in the SDKs: one completion object, up to date whenever it is read
    assert all(e.snapshot is chunk_events[0].snapshot for e in chunk_events)
    assert chunk_events[0].snapshot.choices[0].message.content == "Hello"
    final = state.get_final_completion()
    assert final is not chunk_events[0].snapshot
    state.handle_chunk(chunk(choice(content=" again")))
    assert final.choices[0].message.content == "Hello"  # the final completion stays as it was
    assert state.current_completion_snapshot.choices[0].message.content == "Hello again"


def test_snapshot_text_grows_without_recopying_when_not_retained() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    state.handle_chunk(chunk(choice(role="assistant", content="")))
    for i in range(2000):
        state.handle_chunk(chunk(choice(content=f"{i} ")))
        assert state.current_completion_snapshot.choices[0].message.content.endswith(f"{i} ")  # type: ignore[union-attr]
    assert state.current_content() == "".join(f"{i} " for i in range(2000))


# -- structured content -------------------------------------------------------------------------


def test_structured_content_validated_at_done_and_in_the_final_completion() -> None:
    state: ChatCompletionStreamState[Location] = ChatCompletionStreamState(response_format=Location)
    events = feed(state, *content_chunks('{"city": "Oslo", "temperature": -3, "units": "c"}'))
    done = next(e for e in events if isinstance(e, ContentDoneEvent))
    assert done.parsed == Location(city="Oslo", temperature=-3, units="c")
    final: ParsedChatCompletion[Location] = state.get_final_completion()
    assert final.choices[0].message.parsed == done.parsed
    assert state.current_completion_snapshot.choices[0].message.parsed == done.parsed


def test_content_that_cannot_be_json_fails_at_that_chunk() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
    feed(state, chunk(choice(role="assistant", content="")), chunk(choice(content='{"city": ')))
    with pytest.raises(StructuredOutputError) as info:
        state.handle_chunk(chunk(choice(content="Paris}")))
    err = info.value
    assert err.raw == '{"city": Paris}'
    assert err.completion is not None
    assert err.completion.choices[0].message.content == '{"city": Paris}'
    assert err.chunks_received == 3
    assert "position 9" in str(err)


def test_json_that_does_not_validate_fails_at_done_with_the_raw_text() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
    text = '{"city": "Oslo", "units": "kelvin"}'
    chunks = content_chunks(text)
    feed(state, *chunks[:-1])
    with pytest.raises(StructuredOutputError) as info:
        state.handle_chunk(chunks[-1])
    assert info.value.raw == text
    assert "Location" in str(info.value) and "temperature" in str(info.value)
    assert info.value.completion is not None


def test_plain_json_and_other_types() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=dict)
    events = feed(state, *content_chunks('[1, {"a": ', "true}]"))
    assert [e.parsed for e in events if e.type == "content.delta"] == [
        None,
        [1, {}],
        [1, {"a": True}],
    ]
    assert next(e for e in events if e.type == "content.done").parsed == [1, {"a": True}]

    class Movie(TypedDict):
        title: str
        year: int

    state = ChatCompletionStreamState(response_format=list[Movie])
    events = feed(state, *content_chunks('[{"title": "Up", "year": "2009"}]'))
    assert next(e for e in events if e.type == "content.done").parsed == [
        {"title": "Up", "year": 2009}
    ]


def test_response_format_parameter_dict_is_not_parsed() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(
        response_format={"type": "json_object"}
    )
    events = feed(state, *content_chunks('{"a": 1}'))
    assert all(getattr(e, "parsed", None) is None for e in events)


def test_partial_strings_option() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(
        response_format=dict, partial_strings=True
    )
    events = feed(state, *content_chunks('{"city": "San Fr', 'ancisco"}'))
    assert [e.parsed for e in events if e.type == "content.delta"][1] == {"city": "San Fr"}


def test_length_and_content_filter_raise_while_parsing() -> None:
    for finish, error in (
        ("length", LengthFinishReasonError),
        ("content_filter", ContentFilterFinishReasonError),
    ):
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
        chunks = content_chunks('{"city": "Li', finish=finish)
        feed(state, *chunks[:-1])
        with pytest.raises(error) as info:
            state.handle_chunk(chunks[-1])
        completion = info.value.completion
        assert completion is not None
        assert completion.choices[0].message.content == '{"city": "Li'
        assert completion.choices[0].finish_reason == finish
        assert info.value.chunks_received == 3


def test_bad_options_are_type_errors() -> None:
    with pytest.raises(TypeError):
        ChatCompletionStreamState(response_format=42)
    with pytest.raises(TypeError):
        ChatCompletionStreamState(tools=["get_weather"])
    with pytest.raises(TypeError):
        ChatCompletionStreamState(tools=[], input_tools=[])


# -- tool calls -------------------------------------------------------------------------------


def tool_delta(index: int, arguments: str, **extra: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if "name" in extra:
        function["name"] = extra.pop("name")
    return {"index": index, "function": function, **extra}


def tool_stream(name: str, arguments: list[str], **first: Any) -> list[ChatCompletionChunk]:
    out = [chunk(choice(role="assistant", content=None))]
    out.append(
        chunk(
            choice(tool_calls=[tool_delta(0, "", name=name, id="call_1", type="function", **first)])
        )
    )
    out += [chunk(choice(tool_calls=[tool_delta(0, a)])) for a in arguments]
    out.append(chunk(choice(finish_reason="tool_calls")))
    return out


def test_pydantic_tool_arguments_partial_then_validated() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(tools=[GetWeather])
    events = feed(state, *tool_stream("GetWeather", ['{"ci', 'ty": "Ba', 'th"}']))
    deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert [e.parsed_arguments for e in deltas] == [None, {}, {}, {"city": "Bath"}]
    assert [e.arguments for e in deltas][-1] == '{"city": "Bath"}'
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert len(done) == 1 and done[0].parsed_arguments == GetWeather(city="Bath")
    call = state.get_final_completion().choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_1" and call.function.parsed_arguments == GetWeather(city="Bath")


def test_strict_and_non_strict_dict_tools() -> None:
    def tool(strict: bool) -> dict[str, Any]:
        return {"type": "function", "function": {"name": "f", "parameters": {}, "strict": strict}}

    for strict, expected in ((True, {"x": 1}), (False, None)):
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(tools=[tool(strict)])
        events = feed(state, *tool_stream("f", ['{"x":', " 1}"]))
        done = next(e for e in events if e.type == "tool_calls.function.arguments.done")
        assert done.parsed_arguments == expected


def test_unknown_tool_is_an_error_only_when_tools_were_given() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(tools=[GetWeather])
    chunks = tool_stream("launch_rocket", ['{"now": true}'])
    feed(state, *chunks[:-1])
    with pytest.raises(UnknownToolError) as info:
        state.handle_chunk(chunks[-1])
    assert info.value.name == "launch_rocket"
    assert info.value.completion is not None
    tool_calls = info.value.completion.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.arguments == '{"now": true}'

    untyped: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = feed(untyped, *chunks)
    done = next(e for e in events if e.type == "tool_calls.function.arguments.done")
    assert done.name == "launch_rocket" and done.parsed_arguments is None


def test_invalid_tool_arguments() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(tools=[GetWeather])
    chunks = tool_stream("GetWeather", ['{"city": 12}'])
    feed(state, *chunks[:-1])
    with pytest.raises(StructuredOutputError) as info:
        state.handle_chunk(chunks[-1])
    assert info.value.raw == '{"city": 12}'
    assert "GetWeather" in str(info.value)

    state = ChatCompletionStreamState(tools=[pydantic_function_tool(GetWeather)])
    chunks = tool_stream("GetWeather", ['{"city" "x"}'])
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        feed(state, *chunks)


def test_repeated_ids_and_names_are_not_duplicated() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    feed(
        state,
        chunk(choice(role="assistant")),
        chunk(choice(tool_calls=[tool_delta(0, '{"a"', id="call_9", name="f", type="function")])),
        chunk(choice(tool_calls=[tool_delta(0, ": 1}", id="call_9", name="f")])),
        chunk(choice(finish_reason="tool_calls")),
    )
    call = state.get_final_completion().choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == ("call_9", "f", '{"a": 1}')


# -- other deltas ----------------------------------------------------------------------------------


def test_unknown_delta_fields_are_accumulated_into_the_message() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    feed(
        state,
        chunk(choice(role="assistant", reasoning="Think", annotations=[{"n": 1}])),
        chunk(choice(reasoning="ing", annotations=[{"n": 2}], meta={"a": 1})),
        chunk(choice(content="ok", meta={"b": 2}, finish_reason="stop")),
    )
    message = state.get_final_completion().choices[0].message
    extra = message.model_extra
    # `reasoning` and `annotations` are declared message fields now (issue 9, items 4 and 5)
    assert message.reasoning == "Thinking"
    assert message.annotations is not None
    assert [a.to_dict() for a in message.annotations] == [{"n": 1}, {"n": 2}]
    assert extra == {"meta": {"a": 1, "b": 2}}


def test_legacy_function_call_deltas() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    feed(
        state,
        chunk(choice(role="assistant", function_call={"name": "f", "arguments": ""})),
        chunk(choice(function_call={"arguments": '{"x": '})),
        chunk(choice(function_call={"arguments": "1}"}, finish_reason="function_call")),
    )
    function_call = state.get_final_completion().choices[0].message.function_call
    assert function_call is not None
    assert (function_call.name, function_call.arguments) == ("f", '{"x": 1}')


def test_reasoning_done_at_finish_when_no_content_follows() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = feed(
        state,
        chunk(choice(role="assistant", reasoning_content="Hm")),
        chunk(choice(reasoning_content="m.", finish_reason="stop")),
    )
    assert [e.type for e in events] == [
        "chunk", "reasoning.delta", "chunk", "reasoning.delta", "reasoning.done",
    ]  # fmt: skip
    assert events[-1].content == "Hmm."
    assert state.get_final_completion().choices[0].message.reasoning_content == "Hmm."


def test_final_completion_dump_round_trips() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=Location)
    feed(state, *content_chunks('{"city": "Nice", "temperature": 22, "units": "c"}'))
    final = state.get_final_completion()
    data = json.loads(final.model_dump_json())
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["parsed"] == {
        "city": "Nice",
        "temperature": 22.0,
        "units": "c",
    }
    assert ParsedChatCompletion.model_validate(data).choices[0].message.content == (
        '{"city": "Nice", "temperature": 22, "units": "c"}'
    )


def test_partial_values_read_in_any_order_after_the_stream() -> None:
    text = '{"a": [1, 2, {"b": "c"}], "d": null}'
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(response_format=dict)
    events = feed(state, *content_chunks(*text))
    deltas = [e for e in events if isinstance(e, ContentDeltaEvent)][1:]
    backwards = [e.parsed for e in reversed(deltas)][::-1]
    expected = [
        jiter.from_json(text[: i + 1].encode(), partial_mode=True) for i in range(len(text))
    ]
    assert backwards == expected
    assert [e.parsed for e in deltas] == expected  # in order, after the backward pass
    assert expected[-1] == {"a": [1, 2, {"b": "c"}], "d": None}


def test_choices_in_index_order_whatever_order_they_arrive_in() -> None:
    # llama.cpp streams n=2 with the second choice's first chunk before the first's.
    def chunk(index: int, **delta: object) -> rxchat.ChatCompletionChunk:
        finish = delta.pop("finish", None)
        return rxchat.ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            }
        )

    state = rxchat.ChatCompletionStreamState()
    for c in [
        chunk(1, role="assistant", content="b"),
        chunk(0, role="assistant", content="a"),
        chunk(1, content="B", finish="stop"),
        chunk(0, content="A", finish="stop"),
    ]:
        state.handle_chunk(c)
    snapshot = state.current_completion_snapshot
    assert [c.index for c in snapshot.choices] == [0, 1]
    final = state.get_final_completion()
    assert [(c.index, c.message.content) for c in final.choices] == [(0, "aA"), (1, "bB")]


def test_a_whole_completion_is_handled_as_one_chunk() -> None:
    # What parse() does with a non-streamed answer: the same parsing as a stream.
    completion = rxchat.ChatCompletion.model_validate(
        {
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{
                "index": 0, "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant", "content": '{"city":"Kyoto","temperature":21,"units":"c"}',
                    "reasoning_content": "Hmm.", "vendor_field": 1,
                    "tool_calls": [{"id": "t1", "type": "function", "function": {
                        "name": "Location", "arguments": '{"city":"Oslo","temperature":3,"units":"c"}',
                    }}],
                },
            }],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )  # fmt: skip
    state: ChatCompletionStreamState[Location] = ChatCompletionStreamState(
        response_format=Location, tools=[pydantic_function_tool(Location)]
    )
    events = state.handle_completion(completion)
    types = [e.type for e in events]
    assert types[0] == "chunk" and "content.done" in types and "reasoning.done" in types
    assert "tool_calls.function.arguments.delta" in types  # done: as the SDK, none in one chunk
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.parsed == Location(city="Kyoto", temperature=21, units="c")
    assert message.reasoning_content == "Hmm." and message.model_extra == {"vendor_field": 1}
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.parsed_arguments == Location(
        city="Oslo", temperature=3, units="c"
    )
    assert final.id == "c1" and final.usage is not None and final.usage.total_tokens == 3
