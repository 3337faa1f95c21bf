"""``n=2``: two choices in one stream. llama.cpp runs them as two tasks and interleaves their
chunks; the second choice's chunks can come first, which crashes the openai SDK's own stream
state with ``IndexError``. rxchat keys everything by ``choice.index``."""

from __future__ import annotations

from typing import Any

import openai
from e2ekit import Target, afinished, note, raw_finish, raw_stream, raw_text, user

import rxchat
from rxchat import operators as ops

PROMPT = "Write a short sentence about the sea."
# Not greedy: two greedy choices would be identical. A seed keeps the run reproducible.
PARAMS: dict[str, Any] = {"n": 2, "max_tokens": 8, "temperature": 1.0, "seed": 11}


def _first_choice_order(payloads: list[Any]) -> list[int]:
    order: list[int] = []
    for payload in payloads:
        if isinstance(payload, dict):
            for choice in payload.get("choices") or []:
                if choice.get("index", 0) not in order:
                    order.append(choice.get("index", 0))
    return order


def test_the_server_streams_two_choices(target: Target) -> None:
    payloads = raw_stream(target, {"messages": user(PROMPT), **PARAMS})
    order = _first_choice_order(payloads)
    assert sorted(order) == [0, 1], f"two choices, got indexes {order}"
    note(f"n=2: the first chunks came for choice {order[0]} (order of first appearance {order})")
    # What the openai SDK's own accumulator makes of the same server, for the record (not an
    # assertion: it is openai's behaviour, not rxchat's).
    client = openai.OpenAI(
        base_url=target.base_url, api_key=target.api_key or "sk-none", max_retries=0
    )
    with client:
        try:
            with client.chat.completions.stream(
                model=target.model, messages=user(PROMPT), **PARAMS
            ) as stream:
                stream.get_final_completion()
        except Exception as err:  # the point: which error, if any
            note(f"n=2: the openai SDK's stream helper failed: {type(err).__name__}: {err}")
        else:
            note("n=2: the openai SDK's stream helper read this stream without error")


async def test_two_choices_accumulate(target: Target) -> None:
    payloads = raw_stream(target, {"messages": user(PROMPT), **PARAMS})
    expected = {i: raw_text(payloads, i) for i in (0, 1)}
    async with (
        rxchat.AsyncClient(
            base_url=target.base_url, api_key=target.api_key, max_retries=0
        ) as client,
        client.chat.completions.stream(
            model=target.model, messages=user(PROMPT), **PARAMS
        ) as stream,
    ):
        deltas: dict[int, list[str]] = {0: [], 1: []}
        done: dict[int, str] = {}
        async for event in stream:
            if event.type == "content.delta":
                deltas[event.choice_index].append(event.delta)
            elif event.type == "content.done":
                done[event.choice_index] = event.content
        completion = await afinished(stream.get_final_completion())
    assert [c.index for c in completion.choices] == [0, 1]
    for i in (0, 1):
        assert completion.choices[i].message.content == "".join(deltas[i]) == done[i]
        assert completion.choices[i].finish_reason in ("stop", "length")
    # Seeded sampling makes the reference request give the same two answers.
    assert {i: completion.choices[i].message.content for i in (0, 1)} == expected
    assert {i: completion.choices[i].finish_reason for i in (0, 1)} == {
        i: raw_finish(payloads, i) for i in (0, 1)
    }


async def test_two_choices_on_the_reactive_source(target: Target) -> None:
    events = rxchat.chat_completion_stream(
        model=target.model,
        messages=user(PROMPT),
        base_url=target.base_url,
        api_key=target.api_key,
        **PARAMS,
    ).pipe(ops.accumulate(), ops.broadcast())
    first = events.pipe(ops.text())  # choice 0 by default
    seen: list[str] = []
    first.subscribe(seen.append)
    completion = await afinished(events.pipe(ops.final_completion()))
    assert len(completion.choices) == 2
    assert "".join(seen) == completion.choices[0].message.content
