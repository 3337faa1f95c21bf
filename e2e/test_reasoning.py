"""Reasoning deltas (``delta.reasoning_content``, as llama.cpp streams them).

Gemma 3 270M is not a reasoning model: with its own chat template it never emits reasoning
(the first test checks and records that). To exercise the reasoning path on a real server all
the same, a second llama-server runs the same model with a Gemma-style chat template that opens
a ``<think>`` block at the start of the answer (``templates/gemma3-think.jinja``): llama.cpp's
template analysis then parses what the model writes, inside the open block, as reasoning and
streams it as ``reasoning_content`` deltas. The text is the model's own; the split into
reasoning and content is the server's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import GREEDY, Target, finished, note, raw_stream, raw_text, user
from llama_server import ensure_installed, start_server

import rxchat

PARAMS: dict[str, Any] = {"max_tokens": 12, **GREEDY}
PROMPT = "Is 17 a prime number? Think about it first."
TEMPLATE = Path(__file__).parent / "templates" / "gemma3-think.jinja"


def test_what_the_model_under_test_emits(target: Target) -> None:
    payloads = raw_stream(target, {"messages": user(PROMPT), **PARAMS})
    fields = {
        name
        for p in payloads
        if isinstance(p, dict)
        for c in p.get("choices") or []
        for name in (c.get("delta") or {})
        if name in ("reasoning_content", "reasoning")
    }
    if fields:
        note(f"the model under test streams reasoning as {sorted(fields)}")
    else:
        note("the model under test streams no reasoning (Gemma 3 270M is not a reasoning model)")
    # Either way rxchat's reading agrees with the wire.
    with (
        rxchat.Client(base_url=target.base_url, api_key=target.api_key, max_retries=0) as client,
        client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), **PARAMS
        ) as stream,
    ):
        reasoning = "".join(e.delta for e in stream if e.type == "reasoning.delta")
    assert reasoning == raw_text(payloads, field="reasoning_content") + raw_text(
        payloads, field="reasoning"
    )


@pytest.fixture(scope="module")
def thinking_server(target: Target) -> Iterator[Target]:
    if target.llama is None:
        pytest.fail(
            "the reasoning server is a second local llama-server; run without --base-url, or "
            "deselect this test: -k 'not thinking'"
        )
    with start_server(
        ensure_installed(),
        extra_args=("--chat-template-file", str(TEMPLATE), "--reasoning-format", "deepseek"),
    ) as server:
        yield Target(base_url=server.base_url, model=target.model, api_key=None, llama=server)


def test_thinking_template_streams_reasoning(thinking_server: Target) -> None:
    payloads = raw_stream(thinking_server, {"messages": user(PROMPT), **PARAMS})
    raw_reasoning = raw_text(payloads, field="reasoning_content")
    raw_content = raw_text(payloads)
    assert raw_reasoning, (
        f"llama.cpp streamed no reasoning_content with the thinking template: {payloads[:4]}"
    )
    note(
        f"thinking template: llama.cpp streamed {len(raw_reasoning)} characters of "
        f"reasoning_content and {len(raw_content)} of content"
    )

    deltas: list[str] = []
    done: list[Any] = []
    with (
        rxchat.Client(base_url=thinking_server.base_url, max_retries=0) as client,
        client.chat.completions.stream(
            model=thinking_server.model, messages=user(PROMPT), **PARAMS
        ) as stream,
    ):
        for event in stream:
            if event.type == "reasoning.delta":
                deltas.append(event.delta)
            elif event.type == "reasoning.done":
                done.append(event)
        completion = finished(stream.get_final_completion)
    message = completion.choices[0].message
    assert "".join(deltas) == raw_reasoning
    assert [e.content for e in done] == [raw_reasoning]
    assert message.reasoning_content == raw_reasoning
    assert (message.content or "") == raw_content
