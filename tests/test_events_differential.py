"""Differential tests: rxchat's stream state against the OpenAI SDK's ChatCompletionStreamState.

For every recorded stream in tests/fixtures/openai (request models rebuilt from MANIFEST.json) and for
generated streams, both states get the same chunks; after every chunk the events (type and every
field except ``choice_index``, compared through ``model_dump``) must be equal, and so must the
final completion (or the error both raise). ``reasoning.*`` events are rxchat's own and are left
out of the comparison; the reasoning text itself is compared through the snapshots.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any, Literal

import openai
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState as OpenAIState
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from rxchat import ChatCompletionStreamState, ChunkDecoder, pydantic_function_tool
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"
MANIFEST = json.loads((CORPUS / "MANIFEST.json").read_text())


# -- rebuilding the request of a recording ---------------------------------------------------

_TYPE_NAMES: dict[str, Any] = {
    "str": str,
    "float": float,
    "int": int,
    "bool": bool,
    "Literal": Literal,
}


def _type_of(expr: str) -> Any:
    """A type from its source text ("str", "Literal['c', 'f']"), without eval."""
    node = ast.parse(expr, mode="eval").body
    if isinstance(node, ast.Name):
        return _TYPE_NAMES[node.id]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        assert node.value.id == "Literal", expr
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return Literal[tuple(ast.literal_eval(arg) for arg in args)]
    raise AssertionError(f"unsupported type in MANIFEST.json: {expr}")


def _build_models() -> dict[str, type[pydantic.BaseModel]]:
    models: dict[str, type[pydantic.BaseModel]] = {}
    for name, spec in MANIFEST["models"].items():
        fields: dict[str, Any] = {}
        for field, declaration in spec.items():
            if field == "__doc__":
                continue
            type_text, _, default_text = declaration.partition(" = ")
            default = ast.literal_eval(default_text) if default_text else ...
            fields[field] = (_type_of(type_text), default)
        model = pydantic.create_model(name, __doc__=spec.get("__doc__"), **fields)
        models[name] = model
    return models


MODELS = _build_models()


def _tool(expr: str | dict[str, Any], factory: Any) -> Any:
    """A tool from MANIFEST.json: a dict, or "pydantic_function_tool(Model, name=..., ...)"."""
    if isinstance(expr, dict):
        return copy.deepcopy(expr)
    call = ast.parse(expr, mode="eval").body
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name), expr
    assert call.func.id == "pydantic_function_tool", expr
    (model_arg,) = call.args
    assert isinstance(model_arg, ast.Name)
    keywords = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    return factory(MODELS[model_arg.id], **keywords)


def _request_options(request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rxchat options, openai options) for a recorded request."""
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    response_format = request.get("response_format")
    if isinstance(response_format, str):
        ours["response_format"] = theirs["response_format"] = MODELS[response_format]
    elif response_format is not None:
        ours["response_format"] = theirs["response_format"] = response_format
    if "tools" in request:
        ours["tools"] = [_tool(t, pydantic_function_tool) for t in request["tools"]]
        theirs["input_tools"] = [_tool(t, openai.pydantic_function_tool) for t in request["tools"]]
    return ours, theirs


# -- comparison ------------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """A dump with None-valued keys removed (the two type sets differ in optional fields)."""
    if isinstance(value, dict):
        return {
            key: _normal(item)
            for key, item in value.items()
            if item is not None and key != "choice_index"
        }
    if isinstance(value, list):
        return [_normal(item) for item in value]
    return value


def _dump(model: Any) -> Any:
    # openai's snapshot types warn when `parsed` holds a model instance: not our concern here
    return _normal(model.model_dump(mode="json", warnings=False))


def _outcome(step: Any) -> tuple[str, Any]:
    try:
        result = step()
    except Exception as err:
        completion = getattr(err, "completion", None)
        return type(err).__name__, _dump(completion) if completion is not None else None
    return "ok", result


def assert_same_as_openai(
    dicts: list[dict[str, Any]],
    ours_options: dict[str, Any] | None = None,
    theirs_options: dict[str, Any] | None = None,
    *,
    chunks: list[ChatCompletionChunk] | None = None,
) -> list[list[Any]]:
    """Feed both states; assert equal events after every chunk and an equal final outcome.

    Returns rxchat's events per chunk (reasoning events included).
    """
    ours = ChatCompletionStreamState(**(ours_options or {}))
    theirs = OpenAIState(**(theirs_options or {}))
    our_chunks = chunks or [ChatCompletionChunk.from_wire(copy.deepcopy(d)) for d in dicts]
    all_events: list[list[Any]] = []
    for number, (data, chunk) in enumerate(zip(dicts, our_chunks, strict=True)):
        their_chunk = OpenAIChunk.model_validate(copy.deepcopy(data))
        their = _outcome(lambda c=their_chunk: [_dump(e) for e in theirs.handle_chunk(c)])
        events: list[Any] = []

        def step(c: ChatCompletionChunk = chunk, out: list[Any] = events) -> list[Any]:
            out.extend(ours.handle_chunk(c))
            return [_dump(e) for e in out if not e.type.startswith("reasoning.")]

        mine = _outcome(step)
        assert mine == their, f"chunk #{number}: {data}"
        all_events.append(events)
        if their[0] != "ok":
            return all_events
    assert _outcome(lambda: _dump(ours.get_final_completion())) == _outcome(
        lambda: _dump(theirs.get_final_completion())
    )
    return all_events


# -- the corpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFEST["streams"]))
def test_corpus_recording_matches_openai(name: str) -> None:
    chunks = ChunkDecoder().feed((CORPUS / name).read_bytes())
    assert chunks, name
    dicts = [chunk.to_dict() for chunk in chunks]
    ours, theirs = _request_options(MANIFEST["streams"][name]["request"])
    events = assert_same_as_openai(dicts, ours, theirs, chunks=chunks)
    assert sum(len(e) for e in events) > len(events)  # something besides chunk events


def test_every_corpus_recording_is_covered() -> None:
    assert {p.name for p in CORPUS.glob("*.sse")} == set(MANIFEST["streams"])


def test_corpus_choice_index_follows_the_choices() -> None:
    chunks = ChunkDecoder().feed((CORPUS / "structured_location_n3.sse").read_bytes())
    state = ChatCompletionStreamState(response_format=MODELS["Location"])
    seen: dict[int, str] = {}
    for chunk in chunks:
        for event in state.handle_chunk(chunk):
            if event.type == "content.delta":
                seen[event.choice_index] = event.snapshot
            if event.type == "chunk" and chunk.choices:
                assert event.choice_index == chunk.choices[0].index
    final = state.get_final_completion()
    assert sorted(seen) == [0, 1, 2]
    for index, content in seen.items():
        assert final.choices[index].message.content == content
        assert isinstance(final.choices[index].message.parsed, MODELS["Location"])


# -- generated streams -----------------------------------------------------------------------


def _chunk(*choices: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-gen",
        "object": "chat.completion.chunk",
        "created": 1727346000,
        "model": "gpt-test",
        "system_fingerprint": "fp_test",
        "choices": list(choices),
        **top,
    }


def _choice(index: int = 0, finish_reason: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _tool_delta(
    index: int, arguments: str, *, id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    out: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    return out


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _content_stream(
    content: str, size: int, *, usage: bool = False, finish: str = "stop"
) -> list[dict[str, Any]]:
    chunks = [_chunk(_choice(role="assistant", content="", refusal=None))]
    chunks += [_chunk(_choice(content=piece)) for piece in _pieces(content, size)]
    chunks.append(_chunk(_choice(finish_reason=finish)))
    if usage:
        chunks.append(
            _chunk(
                usage={"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
            )
        )
    return chunks


def test_plain_text_one_character_per_chunk() -> None:
    text = "Héllo, wörld! 🌍 Streams\nare fun."
    events = assert_same_as_openai(_content_stream(text, 1))
    deltas = [e for chunk in events for e in chunk if e.type == "content.delta"]
    assert "".join(e.delta for e in deltas) == text
    assert deltas[-1].snapshot == text


def test_structured_content_one_character_per_chunk() -> None:
    content = '{"city": "San Francisco", "temperature": 61.5, "units": "f"}'
    model = MODELS["Location"]
    events = assert_same_as_openai(
        _content_stream(content, 1), {"response_format": model}, {"response_format": model}
    )
    done = [e for chunk in events for e in chunk if e.type == "content.done"]
    assert done[0].parsed == model(city="San Francisco", temperature=61.5, units="f")


def test_leading_whitespace_before_structured_content() -> None:
    content = '\n\n  {"city": "Paris", "temperature": 18, "units": "c"}'
    model = MODELS["Location"]
    events = assert_same_as_openai(
        _content_stream(content, 1), {"response_format": model}, {"response_format": model}
    )
    parsed = [e.parsed for chunk in events for e in chunk if e.type == "content.delta"]
    assert parsed[:5] == [None] * 5  # "", then whitespace only: not parsed
    assert parsed[5] == {}


def test_usage_only_final_chunk() -> None:
    dicts = _content_stream("Hello there", 3, usage=True)
    events = assert_same_as_openai(dicts)
    assert [e.type for e in events[-1]] == ["chunk"]
    assert events[-1][0].snapshot.usage.total_tokens == 46


def test_refusal_instead_of_structured_content() -> None:
    model = MODELS["Location"]
    dicts = [_chunk(_choice(role="assistant", content=None, refusal=""))]
    dicts += [_chunk(_choice(refusal=p)) for p in _pieces("I'm sorry, I can't help.", 4)]
    dicts.append(_chunk(_choice(finish_reason="stop")))
    events = assert_same_as_openai(dicts, {"response_format": model}, {"response_format": model})
    types = [e.type for chunk in events for e in chunk]
    assert "refusal.done" in types and "content.done" not in types


def test_reasoning_deltas_then_content() -> None:
    dicts = [_chunk(_choice(role="assistant", content=None))]
    dicts += [
        _chunk(_choice(reasoning_content=p, content=None)) for p in _pieces("Let me think.", 2)
    ]
    dicts += [_chunk(_choice(content=p)) for p in _pieces("The answer is 4.", 3)]
    dicts.append(_chunk(_choice(finish_reason="stop")))
    events = assert_same_as_openai(dicts)
    flat = [e for chunk in events for e in chunk]
    reasoning = [e for e in flat if e.type == "reasoning.delta"]
    assert "".join(e.delta for e in reasoning) == "Let me think."
    assert reasoning[-1].snapshot == "Let me think."
    types = [e.type for e in flat if e.type != "chunk"]
    first_content = types.index("content.delta")
    assert types[first_content - 1] == "reasoning.done"
    done = next(e for e in flat if e.type == "reasoning.done")
    assert done.content == "Let me think."
    snapshot = flat[0].snapshot
    assert snapshot.choices[0].message.reasoning_content == "Let me think."


def _weather_args(city: str) -> str:
    return json.dumps({"city": city, "country": "GB", "units": "c"})


def test_n2_parallel_tool_calls_interleaved() -> None:
    weather, stock = MODELS["GetWeatherArgs"], MODELS["GetStockPrice"]
    ours = {"tools": [pydantic_function_tool(weather), pydantic_function_tool(stock)]}
    theirs = {
        "input_tools": [
            openai.pydantic_function_tool(weather),
            openai.pydantic_function_tool(stock),
        ]
    }
    calls = {
        0: [
            ("GetWeatherArgs", _weather_args("Edinburgh")),
            ("GetStockPrice", '{"ticker": "AAPL", "exchange": "NASDAQ"}'),
        ],
        1: [("GetWeatherArgs", _weather_args("Glasgow"))],
    }
    dicts = [
        _chunk(
            _choice(0, role="assistant", content=None), _choice(1, role="assistant", content=None)
        )
    ]
    streams: dict[int, list[dict[str, Any]]] = {}
    for choice, choice_calls in calls.items():
        deltas = []
        for tool_index, (name, args) in enumerate(choice_calls):
            deltas.append(_tool_delta(tool_index, "", id=f"call_{choice}_{tool_index}", name=name))
            deltas += [_tool_delta(tool_index, piece) for piece in _pieces(args, 5)]
        streams[choice] = deltas
    longest = max(len(d) for d in streams.values())
    for step in range(longest):
        for choice, deltas in streams.items():
            if step < len(deltas):
                dicts.append(_chunk(_choice(choice, tool_calls=[deltas[step]])))
    dicts.append(
        _chunk(_choice(0, finish_reason="tool_calls"), _choice(1, finish_reason="tool_calls"))
    )
    dicts.append(_chunk(usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}))
    events = assert_same_as_openai(dicts, ours, theirs)
    done = [e for chunk in events for e in chunk if e.type == "tool_calls.function.arguments.done"]
    assert [(e.choice_index, e.index, e.name) for e in done] == [
        (0, 0, "GetWeatherArgs"),
        (0, 1, "GetStockPrice"),
        (1, 0, "GetWeatherArgs"),
    ]
    assert done[2].parsed_arguments == weather(city="Glasgow", country="GB", units="c")


def test_two_tool_calls_in_one_chunk() -> None:
    weather = MODELS["GetWeatherArgs"]
    dicts = [
        _chunk(_choice(role="assistant", content=None)),
        _chunk(
            _choice(
                tool_calls=[
                    _tool_delta(0, _weather_args("Leeds"), id="call_a", name="GetWeatherArgs"),
                    _tool_delta(1, _weather_args("York"), id="call_b", name="GetWeatherArgs"),
                ]
            )
        ),
        _chunk(_choice(finish_reason="tool_calls")),
    ]
    assert_same_as_openai(
        dicts,
        {"tools": [pydantic_function_tool(weather)]},
        {"input_tools": [openai.pydantic_function_tool(weather)]},
    )


def test_content_then_tool_call_completes_the_content_first() -> None:
    dicts = [
        _chunk(_choice(role="assistant", content="")),
        _chunk(_choice(content="Let me check.")),
        _chunk(_choice(tool_calls=[_tool_delta(0, "", id="call_1", name="lookup")])),
        _chunk(_choice(tool_calls=[_tool_delta(0, '{"q": "x"}')])),
        _chunk(_choice(finish_reason="tool_calls")),
    ]
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True},
    }
    events = assert_same_as_openai(dicts, {"tools": [tool]}, {"input_tools": [copy.deepcopy(tool)]})
    # as in the SDK: the chunk's delta events first, then what it completes
    assert [e.type for e in events[2]] == [
        "chunk",
        "tool_calls.function.arguments.delta",
        "content.done",
    ]
    assert [e.type for e in events[4]] == ["chunk", "tool_calls.function.arguments.done"]
    assert events[4][1].parsed_arguments == {"q": "x"}


def test_logprobs_generated() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}

    first = _choice(role="assistant", content="")
    first["logprobs"] = {"content": [], "refusal": None}
    dicts = [_chunk(first)]
    for token in ["Hel", "lo", "!"]:
        dicts.append(
            _chunk(
                {**_choice(content=token), "logprobs": {"content": [lp(token)], "refusal": None}}
            )
        )
    dicts.append(_chunk(_choice(finish_reason="stop")))
    events = assert_same_as_openai(dicts)
    deltas = [e for chunk in events for e in chunk if e.type == "logprobs.content.delta"]
    assert [len(e.snapshot) for e in deltas] == [1, 2, 3]


def test_length_finish_without_parsing_is_an_error_only_at_the_end() -> None:
    assert_same_as_openai(_content_stream("cut sho", 2, finish="length"))


def test_content_filter_with_structured_output() -> None:
    model = MODELS["Location"]
    assert_same_as_openai(
        _content_stream('{"city": "Pa', 3, finish="content_filter"),
        {"response_format": model},
        {"response_format": model},
    )


# -- hypothesis: any JSON object, any split ------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=15,
)
_json_objects = st.dictionaries(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=6), _json_values, max_size=5
)


class FreeObject(pydantic.RootModel[dict[str, Any]]):
    pass


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    document=_json_objects,
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 1]),
    data=st.data(),
)
def test_hypothesis_json_content_any_split(
    document: dict[str, Any], ascii_only: bool, indent: int | None, data: st.DataObject
) -> None:
    content = json.dumps(document, ensure_ascii=ascii_only, indent=indent)
    cuts = sorted(
        data.draw(
            st.sets(st.integers(min_value=1, max_value=max(1, len(content) - 1)), max_size=30)
        )
    )
    pieces = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)], strict=True) if a < b]
    dicts = [_chunk(_choice(role="assistant", content="", refusal=None))]
    dicts += [_chunk(_choice(content=piece)) for piece in pieces]
    dicts.append(_chunk(_choice(finish_reason="stop")))
    events = assert_same_as_openai(
        dicts, {"response_format": FreeObject}, {"response_format": FreeObject}
    )
    done = [e for chunk in events for e in chunk if e.type == "content.done"]
    assert done[0].parsed == FreeObject(document)


@settings(max_examples=60, deadline=None)
@given(
    city=st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    temperature=st.floats(allow_nan=False, allow_infinity=False, width=32),
    size=st.integers(min_value=1, max_value=9),
)
def test_hypothesis_tool_arguments_any_size(city: str, temperature: float, size: int) -> None:
    model = MODELS["Location"]
    args = json.dumps({"city": city, "temperature": temperature, "units": "c"})
    dicts = [_chunk(_choice(role="assistant", content=None))]
    dicts.append(_chunk(_choice(tool_calls=[_tool_delta(0, "", id="call_x", name="Location")])))
    dicts += [_chunk(_choice(tool_calls=[_tool_delta(0, p)])) for p in _pieces(args, size)]
    dicts.append(_chunk(_choice(finish_reason="tool_calls")))
    assert_same_as_openai(
        dicts,
        {"tools": [pydantic_function_tool(model)]},
        {"input_tools": [openai.pydantic_function_tool(model)]},
    )
