"""The mock reads the conversation: tool results get a text answer, bad conversations a 400."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from mock_helpers import USER, Post

from rxchat.mock import MockServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


def _calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for tc in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
            if "id" in tc:
                calls[tc["index"]] = {
                    "id": tc["id"],
                    "type": "function",
                    "function": {"name": tc["function"]["name"], "arguments": ""},
                }
            else:
                calls[tc["index"]]["function"]["arguments"] += tc["function"]["arguments"]
    return [calls[k] for k in sorted(calls)]


def _assistant(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _results(calls: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    return [
        {"role": "tool", "tool_call_id": c["id"], "content": f"{answer} #{k}"}
        for k, c in enumerate(calls)
    ]


async def test_tool_results_get_a_text_answer_that_quotes_them(post: Post) -> None:
    first = await post(stream=True, tools=[WEATHER])
    calls = _calls(first.chunks)
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert first.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert "city" in json.loads(calls[0]["function"]["arguments"])

    messages = [*USER, _assistant(calls), *_results(calls, '{"temp": 18}')]
    second = await post(stream=True, tools=[WEATHER], messages=messages)
    assert _calls(second.chunks) == []
    assert second.chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert second.content() == 'Based on the tool results: get_weather returned {"temp": 18} #0.'

    whole = (await post(tools=[WEATHER], messages=messages)).json
    assert whole["choices"][0]["message"]["content"] == second.content()
    assert whole["choices"][0]["finish_reason"] == "stop"


async def test_tool_turns_rounds_rotate_the_tools_then_answer(post: Post) -> None:
    tools = [WEATHER, TIME]
    model = "mock?tool_turns=2"
    messages: list[dict[str, Any]] = list(USER)
    names = []
    for _ in range(2):
        r = await post(stream=True, tools=tools, model=model, messages=messages)
        calls = _calls(r.chunks)
        assert r.chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
        names.append([c["function"]["name"] for c in calls])
        messages += [
            _assistant(calls),
            *_results(calls, f"result of {calls[0]['function']['name']}"),
        ]
    assert names == [["get_weather"], ["get_time"]]
    final = await post(stream=True, tools=tools, model=model, messages=messages)
    assert final.content() == "Based on the tool results: get_time returned result of get_time #0."
    # A new user message starts the count again.
    again = await post(stream=True, tools=tools, model=model, messages=[*messages, *USER])
    assert [c["function"]["name"] for c in _calls(again.chunks)] == ["get_weather"]


async def test_parallel_results_all_quoted_and_required_always_calls(post: Post) -> None:
    model = "mock?parallel_tools=2"
    r = await post(stream=True, tools=[WEATHER, TIME], model=model)
    calls = _calls(r.chunks)
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    messages = [*USER, _assistant(calls), *reversed(_results(calls, "ok"))]
    answer = await post(stream=True, tools=[WEATHER, TIME], model=model, messages=messages)
    assert answer.content() == (
        "Based on the tool results: get_time returned ok #1; get_weather returned ok #0."
    )
    forced = await post(
        stream=True, tools=[WEATHER, TIME], tool_choice="required", messages=messages
    )
    assert [c["function"]["name"] for c in _calls(forced.chunks)] == ["get_time"]
    none_first = await post(stream=True, tools=[WEATHER], model="mock?tool_turns=0")
    assert _calls(none_first.chunks) == [] and none_first.content()


async def test_answers_depend_on_the_whole_conversation(post: Post) -> None:
    base = await post(stream=True)
    same = await post(stream=True)
    system = await post(stream=True, messages=[{"role": "system", "content": "Be brief"}, *USER])
    history = await post(
        stream=True,
        messages=[*USER, {"role": "assistant", "content": "Sure."}, *USER],
    )
    assert base.content() == same.content()
    assert len({base.content(), system.content(), history.content()}) == 3


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
ASSISTANT = {"role": "assistant", "content": None, "tool_calls": [CALL]}
TOOL = {"role": "tool", "tool_call_id": "call_1", "content": "done"}
ROLE_ERROR = (
    "Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
)


@pytest.mark.parametrize(
    ("messages", "message", "param", "code"),
    [
        pytest.param(
            [*USER, ASSISTANT, {**TOOL, "tool_call_id": "bogus"}],
            "Invalid parameter: 'tool_call_id' of 'bogus' not found in 'tool_calls' of previous message.",
            "messages.[2].tool_call_id",
            None,
            id="bogus-tool-call-id",
        ),
        pytest.param(
            [*USER, TOOL],
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            "messages.[1].role",
            None,
            id="tool-without-tool-calls",
        ),
        pytest.param(
            [*USER, ASSISTANT, TOOL, {**TOOL, "content": "again"}],
            "Invalid parameter: 'tool_call_id' of 'call_1' not found in 'tool_calls' of previous message.",
            "messages.[3].tool_call_id",
            None,
            id="answered-twice",
        ),
        pytest.param(
            [*USER, ASSISTANT],
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            "call_1",
            "messages.[1].role",
            None,
            id="unanswered-at-end",
        ),
        pytest.param(
            [*USER, {**ASSISTANT, "tool_calls": [CALL, {**CALL, "id": "call_2"}]}, TOOL, *USER],
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            "call_2",
            "messages.[1].role",
            None,
            id="one-of-two-unanswered",
        ),
        pytest.param(
            [{"role": "user"}],
            "Missing required parameter: 'messages[0].content'.",
            "messages[0].content",
            "missing_required_parameter",
            id="user-without-content",
        ),
        pytest.param(
            [{"role": "user", "content": None}],
            "Invalid type for 'messages[0].content': expected one of a string or array of "
            "objects, but got null instead.",
            "messages[0].content",
            "invalid_type",
            id="user-null-content",
        ),
        pytest.param(
            [*USER, {"role": "assistant", "content": None}],
            "Invalid value for 'content': expected a string, got null.",
            "messages.[1].content",
            None,
            id="assistant-null-content-no-calls",
        ),
        pytest.param(
            [*USER, ASSISTANT, {"role": "tool", "content": "x"}],
            "Missing required parameter: 'messages[2].tool_call_id'.",
            "messages[2].tool_call_id",
            "missing_required_parameter",
            id="tool-without-id",
        ),
        pytest.param(
            [*USER, ASSISTANT, {"role": "tool", "tool_call_id": "call_1"}],
            "Missing required parameter: 'messages[2].content'.",
            "messages[2].content",
            "missing_required_parameter",
            id="tool-without-content",
        ),
        pytest.param(
            [{"role": "robot", "content": "x"}],
            f"Invalid value: 'robot'. {ROLE_ERROR}",
            "messages[0].role",
            "invalid_value",
            id="unknown-role",
        ),
        pytest.param(
            [{"content": "x"}],
            "Missing required parameter: 'messages[0].role'.",
            "messages[0].role",
            "missing_required_parameter",
            id="no-role",
        ),
        pytest.param(
            [*USER, {**ASSISTANT, "tool_calls": [{"id": "c", "type": "function"}]}],
            "Missing required parameter: 'messages[1].tool_calls[0].function'.",
            "messages[1].tool_calls[0].function",
            "missing_required_parameter",
            id="tool-call-without-function",
        ),
        pytest.param(
            [*USER, {**ASSISTANT, "tool_calls": []}],
            "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.",
            "messages[1].tool_calls",
            "empty_array",
            id="empty-tool-calls",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text"}]}],
            "Missing required parameter: 'messages[0].content[0].text'.",
            "messages[0].content[0].text",
            "missing_required_parameter",
            id="text-part-without-text",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "video"}]}],
            "Invalid value: 'video'. Supported values are: 'text', 'image_url', 'input_audio', "
            "'file'.",
            "messages[0].content[0].type",
            "invalid_value",
            id="unknown-part-type",
        ),
    ],
)
async def test_conversation_errors_have_the_api_shape(
    post: Post, messages: list[Any], message: str, param: str, code: str | None
) -> None:
    for stream in (True, False):
        r = await post(stream=stream, messages=messages)
        assert r.status == 400
        assert r.json == {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }


async def test_valid_tool_conversations_are_accepted(post: Post) -> None:
    ok = [
        [*USER, ASSISTANT, TOOL],
        [*USER, ASSISTANT, TOOL, {"role": "assistant", "content": "It is done."}, *USER],
        [
            *USER,
            {**ASSISTANT, "content": "Let me check."},
            {**TOOL, "content": [{"type": "text", "text": "x"}]},
        ],
        [
            {"role": "developer", "content": "d"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
    ]
    for messages in ok:
        r = await post(stream=True, messages=messages)
        assert r.status == 200, r.raw


async def test_openai_sdk_sees_a_bad_request(mock_server: MockServer) -> None:
    async with openai.AsyncOpenAI(base_url=mock_server.url, api_key="k", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(
                model="mock",
                messages=[*USER, {**TOOL, "tool_call_id": "bogus"}],  # type: ignore[list-item]
            )
    assert info.value.status_code == 400
    assert info.value.param == "messages.[1].role"
    assert info.value.type == "invalid_request_error"
