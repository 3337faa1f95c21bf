"""Servers' quirks at the decoder and state level (issue 9 items 2-4 and 6, issue 10 items 5-6).

Each test failed before its fix: Azure's choices without ``delta``, unknown tool-call fields
dropped, ``delta.reasoning`` ignored, ``retry:`` without data dropped, choices without ``index``
rejected, n > 1 truncation taken for a complete answer, long integer literals raising a raw
``ValueError`` from the C reader.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import reactivex.operators as rxo
from aiohttp import web

import rxchat
from rxchat import ChatCompletionStreamState, ChunkDecoder, SSEDecoder
from rxchat import operators as ops
from rxchat.errors import IncompleteStreamError, InvalidChunkError
from rxchat.types import ChatCompletionChunk


def sse(*payloads: Any, done: bool = False) -> bytes:
    body = b"".join(
        b"data: " + (p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n\n"
        for p in payloads
    )
    return body + (b"data: [DONE]\n\n" if done else b"")


def head(**extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", **extra}


def text_chunk(index: int, text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return head(choices=[{"index": index, "delta": delta, "finish_reason": finish}])


FILTER = {"hate": {"filtered": False, "severity": "safe"}}
AZURE_VERDICT = head(
    choices=[
        {
            "index": 0,
            "finish_reason": None,
            "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 5},
            "content_filter_results": FILTER,
        }
    ]
)
USAGE = head(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})


def decode(body: bytes, **options: Any) -> tuple[list[ChatCompletionChunk], Exception | None]:
    decoder = ChunkDecoder(**options)
    chunks = decoder.feed(body)
    error: Exception | None = decoder.error
    if error is None:
        try:
            decoder.close()
        except IncompleteStreamError as err:
            error = err
    return chunks, error


# -- issue 9 item 2: Azure's content-filter chunks without delta ------------------------------


def test_azure_choice_without_delta_is_accepted_and_keeps_its_filter_results() -> None:
    body = sse(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [],
        },
        text_chunk(0, "Hello"),
        text_chunk(0, None, "stop"),
        AZURE_VERDICT,
        USAGE,
        done=True,
    )
    chunks, error = decode(body)
    assert error is None and len(chunks) == 5
    verdict = chunks[3].choices[0]
    assert verdict.delta.content is None and verdict.delta.to_dict() == {}
    assert verdict.model_extra["content_filter_results"] == FILTER
    assert chunks[3].to_dict()["choices"][0] == AZURE_VERDICT["choices"][0]  # no delta added
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    types = [[e.type for e in state.handle_chunk(chunk)] for chunk in chunks]
    assert types[0] == []  # object "" stays ignored
    assert types[3] == ["chunk"]  # no content event
    final = state.get_final_completion()
    assert final.choices[0].message.content == "Hello"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.total_tokens == 5


def test_azure_verdict_through_from_sse_bytes_and_operators() -> None:
    body = sse(text_chunk(0, "Hi"), text_chunk(0, None, "stop"), AZURE_VERDICT, USAGE, done=True)
    final = rxchat.from_sse_bytes(body).pipe(ops.final_completion(), rxo.to_list()).run()[0]
    assert final.choices[0].message.content == "Hi" and final.usage.total_tokens == 5


# -- issue 9 item 3: unknown fields survive accumulation -------------------------------------


def test_unknown_tool_call_function_choice_and_completion_fields_survive() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    chunks = [
        head(
            provider="P",
            choices=[
                {
                    "index": 0,
                    "native": "a",
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "", "strict_hint": "x"},
                                "extra_content": {"google": {"thought_signature": "c2ln"}},
                            }
                        ],
                    },
                }
            ],
        ),
        head(
            provider="P",
            late={"k": 1},
            choices=[
                {
                    "index": 0,
                    "late_choice": [1],
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",  # repeated id: kept once
                                "function": {"arguments": "{}", "strict_hint": "y"},
                                "extra_content": {"google": {"more": "m"}},
                            }
                        ]
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        ),
    ]
    snapshots = []
    for data in chunks:
        state.handle_chunk(ChatCompletionChunk.from_wire(data))
        call = state.current_completion_snapshot.choices[0].message.tool_calls[0]
        snapshots.append(call.model_extra["extra_content"])
    final = state.get_final_completion()
    choice = final.choices[0]
    call = choice.message.tool_calls[0]
    assert call.id == "call_1"
    assert call.model_extra["extra_content"] == {
        "google": {"thought_signature": "c2ln", "more": "m"}
    }
    assert call.function.model_extra == {"strict_hint": "xy"}  # strings appended, as the SDK
    assert choice.model_extra == {"native": "a", "late_choice": [1]}
    assert final.model_extra == {"provider": "P", "late": {"k": 1}}
    assert snapshots[0] == {"google": {"thought_signature": "c2ln"}}  # the live snapshot too
    # the final completion does not change when the state goes on
    state.handle_chunk(
        ChatCompletionChunk.from_wire(
            head(
                choices=[
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [{"index": 0, "extra_content": {"google": {"z": 1}}}]
                        },
                    }
                ]
            )
        )
    )
    assert call.model_extra["extra_content"] == {
        "google": {"thought_signature": "c2ln", "more": "m"}
    }
    sent = choice.message.to_param()["tool_calls"][0]
    assert sent == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}", "strict_hint": "xy"},
        "extra_content": {"google": {"thought_signature": "c2ln", "more": "m"}},
    }


def test_lists_of_objects_in_unknown_fields_merge_by_index() -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for details in (
        [{"type": "reasoning.text", "text": "Th", "index": 0}],
        [{"type": "reasoning.text", "text": "ink", "index": 0}],
        [{"type": "reasoning.encrypted", "data": "e", "index": 1}],
    ):
        state.handle_chunk(
            ChatCompletionChunk.from_wire(
                head(choices=[{"index": 0, "delta": {"reasoning_details": details}}])
            )
        )
    message = state.get_final_completion().choices[0].message
    assert message.model_extra["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Think", "index": 0},
        {"type": "reasoning.encrypted", "data": "e", "index": 1},
    ]


# -- issue 9 item 4: reasoning under either name ----------------------------------------------


@pytest.mark.parametrize("name", ["reasoning", "reasoning_content"])
def test_reasoning_under_either_field_name(name: str) -> None:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    events = []
    for delta, finish in (
        ({"role": "assistant", name: "Let"}, None),
        ({name: " me"}, None),
        ({"content": "Hi"}, "stop"),
    ):
        chunk = head(choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        events += state.handle_chunk(ChatCompletionChunk.from_wire(chunk))
    kinds = [(e.type, getattr(e, "field", None)) for e in events if e.type != "chunk"]
    assert kinds == [
        ("reasoning.delta", name),
        ("reasoning.delta", name),
        ("reasoning.done", name),
        ("content.delta", None),
        ("content.done", None),
    ]
    assert events[3].snapshot == "Let me"
    message = state.get_final_completion().choices[0].message
    assert getattr(message, name) == "Let me"
    other = "reasoning_content" if name == "reasoning" else "reasoning"
    assert getattr(message, other) is None
    assert message.to_param()[name] == "Let me" and other not in message.to_param()


# -- issue 9 item 6: retry without data, choices without index --------------------------------


def test_retry_field_in_a_block_without_data_sets_the_reconnection_time() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 2500\n\n") == []
    assert decoder.retry == 2500
    assert decoder.feed(b"retry: soon\n\n: c\n\n") == [] and decoder.retry == 2500
    [event] = decoder.feed(b"retry: 10\ndata: x\n\n")
    assert (event.retry, decoder.retry) == (10, 10)
    chunks = ChunkDecoder()
    chunks.feed(b"retry: 700\n\n")
    assert chunks.retry == 700


def test_choice_without_index_takes_its_position() -> None:
    chunks, error = decode(
        sse(
            {"choices": [{"delta": {"content": "Hello"}}]},
            {"choices": [{"delta": {"content": "!"}, "finish_reason": "stop"}, {"delta": {}}]},
            done=True,
        )
    )
    assert error is None
    assert [(c.index, c.delta.content) for c in chunks[1].choices] == [(0, "!"), (1, None)]
    assert chunks[0].text == "Hello"
    # still an error when something else is wrong too
    _, error = decode(sse({"choices": [{"delta": {"content": 5}}]}))
    assert isinstance(error, InvalidChunkError)


# -- issue 10 item 5: n > 1 truncation ---------------------------------------------------------


def n2_cut() -> bytes:
    """Choice 0 finishes, choice 1 is cut mid-sentence; no [DONE]."""
    return sse(
        text_chunk(0, "Done."),
        text_chunk(1, "Half a"),
        text_chunk(0, None, "stop"),
    )


def test_n2_truncation_is_incomplete() -> None:
    chunks, error = decode(n2_cut())
    assert len(chunks) == 3
    assert isinstance(error, IncompleteStreamError)
    assert "before choice 1 finished" in str(error)
    # finished choices: complete, also with an Azure verdict (finish_reason null) after them
    _, error = decode(
        sse(
            text_chunk(0, "a"),
            text_chunk(1, "b"),
            text_chunk(0, None, "stop"),
            text_chunk(1, None, "stop"),
            AZURE_VERDICT,
        )
    )
    assert error is None


def test_usage_asked_for_must_arrive_without_done() -> None:
    body = sse(text_chunk(0, "a"), text_chunk(0, None, "stop"))
    asked = {"stream": True, "stream_options": {"include_usage": True}}
    _, error = decode(body, request=asked)
    assert isinstance(error, IncompleteStreamError) and "usage" in str(error)
    assert decode(body + sse(USAGE), request=asked)[1] is None
    assert decode(body, request={"stream": True})[1] is None
    assert decode(body + b"data: [DONE]\n\n", request=asked)[1] is None


def test_n2_truncation_through_final_completion_keeps_the_partial_completion() -> None:
    with pytest.raises(IncompleteStreamError) as info:
        rxchat.from_sse_bytes(n2_cut()).pipe(ops.final_completion(), rxo.to_list()).run()
    partial = info.value.completion
    assert partial is not None
    assert [c.message.content for c in partial.choices] == ["Done.", "Half a"]
    assert [c.finish_reason for c in partial.choices] == ["stop", None]


@pytest.fixture
async def cut_server() -> Any:
    """A server whose streamed answer is the n=2 cut body (or a usage-less answer)."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        usage = (body.get("stream_options") or {}).get("include_usage")
        payload = sse(text_chunk(0, "a"), text_chunk(0, None, "stop")) if usage else n2_cut()
        return web.Response(body=payload, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("usage", [False, True])
async def test_truncation_on_every_surface(cut_server: str, usage: bool) -> None:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if usage else {}
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(IncompleteStreamError) as info:
        await rxchat.chat_completion_stream(
            model="m", messages=messages, base_url=cut_server, n=2, **extra
        ).pipe(ops.final_completion())
    assert info.value.completion is not None
    async with rxchat.AsyncClient(base_url=cut_server, api_key="k", max_retries=0) as client:
        with pytest.raises(IncompleteStreamError) as info:
            async with client.chat.completions.stream(
                model="m", messages=messages, n=2, **extra
            ) as stream:
                await stream.get_final_completion()
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content == ("a" if usage else "Done.")


# -- issue 10 item 6: long integer literals ----------------------------------------------------


@pytest.mark.parametrize("digits", [4299, 4300, 4301, 5000, 100_000])
@pytest.mark.parametrize(
    "where",
    ["unknown", "created", "usage", "bytes", "unknown_nested"],
)
def test_long_integer_literals_give_what_the_pure_path_gives(digits: int, where: str) -> None:
    big = "9" * digits
    payload = {
        "unknown": '{"x":%s,"choices":[]}',
        "created": '{"created":%s,"choices":[]}',
        "usage": '{"choices":[],"usage":{"prompt_tokens":%s}}',
        "bytes": '{"choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"a",'
        '"logprob":0,"bytes":[%s]}]}}]}',
        "unknown_nested": '{"choices":[{"index":0,"delta":{"x":[{"y":%s}]}}]}',
    }[where] % big
    first = sse(text_chunk(0, "kept"))
    decoder = ChunkDecoder()
    chunks = decoder.feed(first + b"data: " + payload.encode() + b"\n\n")
    from rxchat import _decode

    pure = ChunkDecoder()
    saved = _decode._build_all
    _decode._build_all = _decode._build_with_pydantic
    try:
        pure_chunks = pure.feed(first + b"data: " + payload.encode() + b"\n\n")
    finally:
        _decode._build_all = saved
    assert [c.text for c in chunks] == [c.text for c in pure_chunks]
    assert chunks[0].text == "kept"
    assert type(decoder.error) is type(pure.error)
    if pure.error is not None:
        assert isinstance(decoder.error, InvalidChunkError)
        assert str(decoder.error) == str(pure.error)
    else:
        assert [c.to_dict() for c in chunks] == [c.to_dict() for c in pure_chunks]
