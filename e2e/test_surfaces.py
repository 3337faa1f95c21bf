"""Text streaming through every rxchat surface, each compared with a plain reading of the wire.

The requests are greedy (temperature 0), so the same request gives the same answer: rxchat's
text on each surface must equal the text of the reference request, read as plain JSON lines,
and the openai SDK's reading of the same request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from e2ekit import (
    GREEDY,
    Target,
    afinished,
    finished,
    note,
    raw_finish,
    raw_stream,
    raw_text,
    user,
)

import rxchat
from rxchat import operators as ops

PROMPT = "Name three colours of the rainbow, separated by commas."
PARAMS: dict[str, Any] = {"max_tokens": 12, **GREEDY}


@pytest.fixture(scope="module")
def reference(target: Target) -> tuple[str, str | None]:
    """The answer's text and finish reason, read from the wire as plain JSON."""
    payloads = raw_stream(target, {"messages": user(PROMPT), **PARAMS})
    assert payloads[-1] == "[DONE]", "the server ends its stream with [DONE]"
    text = raw_text(payloads)
    assert text, f"the model answered nothing: {payloads}"
    note(f"greedy answer to {PROMPT!r} (max_tokens 12): {text!r}, finish {raw_finish(payloads)}")
    return text, raw_finish(payloads)


def test_openai_sdk_reads_the_same_answer(
    target: Target, reference: tuple[str, str | None]
) -> None:
    # The oracle: the same request through the openai SDK gives the same text.
    client = openai.OpenAI(
        base_url=target.base_url, api_key=target.api_key or "sk-none", max_retries=0
    )
    with client:
        parts = []
        for chunk in client.chat.completions.create(
            model=target.model, messages=user(PROMPT), stream=True, **PARAMS
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == reference[0]


async def test_chat_completion_stream(target: Target, reference: tuple[str, str | None]) -> None:
    events = rxchat.chat_completion_stream(
        model=target.model,
        messages=user(PROMPT),
        base_url=target.base_url,
        api_key=target.api_key,
        **PARAMS,
    ).pipe(ops.accumulate(), ops.broadcast())
    deltas: list[str] = []
    events.pipe(ops.text()).subscribe(deltas.append)
    completion = await afinished(events.pipe(ops.final_completion()))
    choice = completion.choices[0]
    assert choice.message.content == reference[0]
    assert "".join(deltas) == reference[0]
    assert len(deltas) > 1, "the answer arrived in several deltas"
    assert choice.finish_reason == reference[1]
    assert choice.message.role == "assistant"


async def test_async_client_create_stream(
    target: Target, reference: tuple[str, str | None]
) -> None:
    async with rxchat.AsyncClient(base_url=target.base_url, api_key=target.api_key) as client:
        stream = await client.chat.completions.create(
            model=target.model, messages=user(PROMPT), stream=True, **PARAMS
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.text or "" for c in chunks) == reference[0]
    assert [c.finish_reason for c in chunks if c.finish_reason] == [reference[1]]


async def test_async_client_stream_events(
    target: Target, reference: tuple[str, str | None]
) -> None:
    async with (
        rxchat.AsyncClient(base_url=target.base_url, api_key=target.api_key) as client,
        client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), **PARAMS
        ) as stream,
    ):
        kinds = []
        deltas = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "content.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)
            elif event.type == "content.done":
                assert event.content == reference[0]
        completion = await afinished(stream.get_final_completion())
    assert "".join(deltas) == reference[0]
    assert kinds.count("content.done") == 1
    assert completion.choices[0].message.content == reference[0]
    assert completion.choices[0].finish_reason == reference[1]


async def test_async_client_create_without_stream(
    target: Target, reference: tuple[str, str | None]
) -> None:
    async with rxchat.AsyncClient(base_url=target.base_url, api_key=target.api_key) as client:
        completion = await client.chat.completions.create(
            model=target.model, messages=user(PROMPT), **PARAMS
        )
    assert completion.choices[0].message.content == reference[0]
    assert completion.choices[0].finish_reason == reference[1]
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_sync_client(target: Target, reference: tuple[str, str | None]) -> None:
    with rxchat.Client(base_url=target.base_url, api_key=target.api_key) as client:
        with client.chat.completions.create(
            model=target.model, messages=user(PROMPT), stream=True, **PARAMS
        ) as stream:
            text = "".join(chunk.text or "" for chunk in stream)
        with client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), **PARAMS
        ) as events:
            final = finished(events.get_final_completion)
        whole = client.chat.completions.create(model=target.model, messages=user(PROMPT), **PARAMS)
    assert text == reference[0]
    assert final.choices[0].message.content == reference[0]
    assert whole.choices[0].message.content == reference[0]


def test_sync_observe(target: Target, reference: tuple[str, str | None]) -> None:
    import threading

    with rxchat.Client(base_url=target.base_url, api_key=target.api_key) as client:
        done = threading.Event()
        deltas: list[str] = []
        errors: list[Exception] = []
        client.chat.completions.observe(model=target.model, messages=user(PROMPT), **PARAMS).pipe(
            ops.accumulate(), ops.text()
        ).subscribe(
            deltas.append,
            on_error=lambda err: (errors.append(err), done.set()),
            on_completed=done.set,
        )
        assert done.wait(30)
    assert not errors
    assert "".join(deltas) == reference[0]


async def test_edgee_style(target: Target) -> None:
    # Edgee's input has no max_tokens (nor seed, nor temperature): the answer is bounded by the
    # server's own limit (llama-server here: --n-predict 64), and at the server's default
    # sampling two requests need not agree, so each answer is checked on its own.
    prompt = "Say hello in one word."
    async with rxchat.AsyncClient(base_url=target.base_url, api_key=target.api_key) as client:
        chunks = [
            c async for c in client.stream(target.model, rxchat.InputObject(messages=user(prompt)))
        ]
    text = "".join(c.text or "" for c in chunks)
    assert text
    assert [c.finish_reason for c in chunks if c.finish_reason] in (["stop"], ["length"])
    with rxchat.Client(base_url=target.base_url, api_key=target.api_key) as sync_client:
        response = sync_client.send(target.model, {"messages": user(prompt)})
        streamed = list(sync_client.stream(target.model, prompt))
    assert response.text
    assert response.finish_reason in ("stop", "length")
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert "".join(c.text or "" for c in streamed)
    assert [c.finish_reason for c in streamed if c.finish_reason] in (["stop"], ["length"])


async def test_usage_in_the_stream(target: Target) -> None:
    payloads = raw_stream(
        target,
        {"messages": user(PROMPT), "stream_options": {"include_usage": True}, **PARAMS},
    )
    usage_payloads = [p for p in payloads if isinstance(p, dict) and p.get("usage")]
    assert usage_payloads, "the server sends usage when asked"
    raw_usage = usage_payloads[-1]["usage"]
    completion = await afinished(
        rxchat.chat_completion_stream(
            model=target.model,
            messages=user(PROMPT),
            base_url=target.base_url,
            api_key=target.api_key,
            stream_options={"include_usage": True},
            **PARAMS,
        ).pipe(ops.accumulate(), ops.final_completion())
    )
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == raw_usage["prompt_tokens"]
    assert completion.usage.completion_tokens == raw_usage["completion_tokens"]
    assert completion.usage.total_tokens == raw_usage["total_tokens"]
    extra = sorted(
        set(usage_payloads[-1])
        - {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    )
    if extra:
        # llama.cpp adds its own fields (timings); rxchat keeps unknown fields
        note(f"usage chunk carries server-specific fields {extra}; rxchat keeps them on the chunk")


async def test_logprobs(target: Target) -> None:
    body = {"messages": user(PROMPT), "logprobs": True, "top_logprobs": 2, **PARAMS}
    payloads = raw_stream(target, body)
    raw_tokens = [
        entry["token"]
        for p in payloads
        if isinstance(p, dict)
        for c in p.get("choices") or []
        for entry in ((c.get("logprobs") or {}).get("content") or [])
    ]
    assert raw_tokens, "the server streams logprobs when asked"
    params = {k: v for k, v in body.items() if k != "messages"}
    async with (
        rxchat.AsyncClient(base_url=target.base_url, api_key=target.api_key) as client,
        client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), **params
        ) as stream,
    ):
        streamed = [
            entry.token
            async for event in stream
            if event.type == "logprobs.content.delta"
            for entry in event.content
        ]
        final = await afinished(stream.get_final_completion())
    assert streamed == raw_tokens
    assert final.choices[0].logprobs is not None
    content = final.choices[0].logprobs.content or []
    assert [entry.token for entry in content] == raw_tokens
    assert all(len(entry.top_logprobs) <= 2 for entry in content)


async def test_concurrent_requests_on_one_client(
    target: Target, reference: tuple[str, str | None]
) -> None:
    # Two requests at once on one client (the server has two slots): both answers are whole.
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:

        async def one() -> str:
            stream = await client.chat.completions.create(
                model=target.model, messages=user(PROMPT), stream=True, **PARAMS
            )
            return "".join([c.text or "" async for c in stream])

        answers = await asyncio.gather(one(), one())
    assert answers == [reference[0], reference[0]]
