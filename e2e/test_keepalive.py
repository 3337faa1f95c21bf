"""Several requests in a row on one client with ``max_retries=0``.

llama-server closes the connection after each streamed answer. A client that pools connections
sends the next request on the dead one; the request must go out again at once on a fresh
connection, without counting as a retry, whatever ``max_retries`` is (issue 9, item 1). The openai
SDK, against the same server, is the oracle: it never fails here.
"""

from __future__ import annotations

import threading
from typing import Any

import openai
from e2ekit import GREEDY, Target, afinished, finished, user

import rxchat
from rxchat import operators as ops

ROUNDS = 3
PARAMS: dict[str, Any] = {"max_tokens": 4, **GREEDY}


def prompt(i: int) -> list[dict[str, Any]]:
    return user(f"Reply with the number {i}.")


def test_openai_sdk_oracle(target: Target) -> None:
    client = openai.OpenAI(
        base_url=target.base_url, api_key=target.api_key or "sk-none", max_retries=0
    )
    with client:
        for i in range(ROUNDS):
            with client.chat.completions.create(
                model=target.model, messages=prompt(i), stream=True, **PARAMS
            ) as stream:
                assert [c for c in stream if c.choices and c.choices[0].finish_reason]


async def test_async_create_stream_in_a_row(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        for i in range(ROUNDS):
            stream = await client.chat.completions.create(
                model=target.model, messages=prompt(i), stream=True, **PARAMS
            )
            finishes = [c.finish_reason async for c in stream if c.finish_reason]
            assert len(finishes) == 1, f"request {i}"


async def test_async_stream_events_in_a_row(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        for i in range(ROUNDS):
            async with client.chat.completions.stream(
                model=target.model, messages=prompt(i), **PARAMS
            ) as stream:
                completion = await afinished(stream.get_final_completion())
            assert completion.choices[0].finish_reason in ("stop", "length"), f"request {i}"


async def test_async_mixed_streamed_and_whole_in_a_row(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        for i in range(ROUNDS):
            if i % 2:
                whole = await client.chat.completions.create(
                    model=target.model, messages=prompt(i), **PARAMS
                )
                assert whole.choices[0].finish_reason is not None, f"request {i}"
            else:
                stream = await client.chat.completions.create(
                    model=target.model, messages=prompt(i), stream=True, **PARAMS
                )
                assert [c async for c in stream], f"request {i}"


async def test_observe_in_a_row(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        for i in range(ROUNDS):
            completion = await afinished(
                client.chat.completions.observe(
                    model=target.model, messages=prompt(i), **PARAMS
                ).pipe(ops.accumulate(), ops.final_completion())
            )
            assert completion.choices[0].finish_reason is not None, f"request {i}"


async def test_edgee_style_in_a_row(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        for i in range(ROUNDS):
            chunks = [c async for c in client.stream(target.model, f"Reply with the number {i}.")]
            assert [c for c in chunks if c.finish_reason], f"request {i}"
            response = await client.send(target.model, f"Reply with the number {i}.")
            assert response.finish_reason is not None, f"request {i}"


def observe_to_end(client: rxchat.Client, target: Target, i: int) -> tuple[bool, list[Exception]]:
    done = threading.Event()
    errors: list[Exception] = []
    client.chat.completions.observe(model=target.model, messages=prompt(i), **PARAMS).subscribe(
        on_error=lambda err: (errors.append(err), done.set()), on_completed=done.set
    )
    return done.wait(30), errors


def test_sync_client_in_a_row(target: Target) -> None:
    with rxchat.Client(base_url=target.base_url, api_key=target.api_key, max_retries=0) as client:
        for i in range(ROUNDS):
            with client.chat.completions.create(
                model=target.model, messages=prompt(i), stream=True, **PARAMS
            ) as stream:
                assert [c for c in stream if c.finish_reason], f"request {i}"
            with client.chat.completions.stream(
                model=target.model, messages=prompt(i), **PARAMS
            ) as events:
                assert finished(events.get_final_completion).choices[0].finish_reason, (
                    f"request {i}"
                )
            done, errors = observe_to_end(client, target, i)
            assert done and not errors, f"request {i}: {errors}"
            assert [c for c in client.stream(target.model, f"Reply with {i}.") if c.finish_reason]
