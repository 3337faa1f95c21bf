"""message.to_param(): a final message sent back as a request message, without rxchat-only keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rxchat import ChatCompletionStreamState
from rxchat.types import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage


class GetWeather(BaseModel):
    city: str


def accumulate(*payloads: dict[str, Any], **options: Any) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState(**options)
    for payload in payloads:
        state.handle_chunk(ChatCompletionChunk.from_wire(payload))
    return state.get_final_completion()


def tool_payloads(**extra: Any) -> list[dict[str, Any]]:
    return [
        {
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
                                "function": {"name": "GetWeather", "arguments": ""},
                                **extra,
                            }
                        ],
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
    ]


def test_streamed_tool_call_message_has_no_rxchat_only_keys() -> None:
    completion = accumulate(*tool_payloads(), tools=[GetWeather])
    message = completion.choices[0].message
    assert message.tool_calls[0].function.parsed_arguments == GetWeather(city="Paris")
    assert message.to_param() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "GetWeather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }


def test_text_message_with_parsed_content() -> None:
    class Answer(BaseModel):
        n: int

    completion = accumulate(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": '{"n": 1}'}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        response_format=Answer,
    )
    message = completion.choices[0].message
    assert message.parsed == Answer(n=1)
    assert message.to_param() == {"role": "assistant", "content": '{"n": 1}'}


def test_non_streamed_message_keeps_unknown_fields_and_drops_output_only_ones() -> None:
    completion = ChatCompletion.model_validate(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "ok",
                        "refusal": None,
                        "annotations": [],
                        "audio": {
                            "id": "audio_1",
                            "data": "AAAA",
                            "expires_at": 1,
                            "transcript": "ok",
                        },
                        "reasoning_content": "thought",
                        "reasoning_details": [{"type": "reasoning.text"}],
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "index": 0,
                                "function": {"name": "f", "arguments": "{}"},
                                "extra_content": {"google": {"thought_signature": "sig=="}},
                            }
                        ],
                    },
                }
            ],
        }
    )
    message = completion.choices[0].message
    assert message.to_param() == {
        "role": "assistant",
        "content": "ok",
        "audio": {"id": "audio_1"},
        "reasoning_content": "thought",
        "reasoning_details": [{"type": "reasoning.text"}],
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "f", "arguments": "{}"},
                "extra_content": {"google": {"thought_signature": "sig=="}},
            }
        ],
    }
    without = message.to_param(reasoning=False)
    assert "reasoning_content" not in without
    assert message.tool_calls[0].to_param() == without["tool_calls"][0]


def test_to_param_has_only_keys_of_openai_request_message() -> None:
    from openai.types.chat import (
        ChatCompletionAssistantMessageParam,
        ChatCompletionMessageFunctionToolCallParam,
    )

    completion = accumulate(*tool_payloads(), tools=[GetWeather])
    param = completion.choices[0].message.to_param()
    assert set(param) <= set(ChatCompletionAssistantMessageParam.__annotations__)
    for call in param["tool_calls"]:
        assert set(call) == set(ChatCompletionMessageFunctionToolCallParam.__annotations__)


def test_plain_message_model() -> None:
    assert ChatCompletionMessage(content="hi").to_param() == {"role": "assistant", "content": "hi"}
