"""Cancellation closes the connection, and the server stops generating.

Each test asks for a long answer (up to 1500 tokens), takes a few chunks and stops: disposing
the subscription, leaving the stream's block, breaking out of the loop, cancelling the task.
llama-server notices the closed connection and releases the slot; its ``/slots`` endpoint then
shows the slot idle with far fewer tokens generated than asked for. The request carries a
nonce in its prompt so the slot that served it can be told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from support import Target, note, user, wait_busy

import rxchat
from rxchat import operators as ops

MAX_TOKENS = 1500
TAKE = 3  # content deltas read before stopping


def long_request() -> tuple[str, list[dict[str, Any]]]:
    nonce = uuid.uuid4().hex[:12]
    return nonce, user(f"[{nonce}] Write a very long story about a dragon who learns to sail.")


PARAMS: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0.8, "seed": 3}


def assert_stopped_on_server(
    target: Target, nonce: str, surface: str, limit: int = MAX_TOKENS, timeout: float = 10.0
) -> None:
    """The slot that served ``nonce`` is idle again and generated less than asked."""
    if target.llama is None:
        note(f"cancel ({surface}): server-side stop not verified (not a local llama-server)")
        return
    started = time.monotonic()
    while True:
        slots: list[dict[str, Any]] = target.llama.get_json("/slots")
        mine = [s for s in slots if nonce in str(s.get("prompt", ""))]
        if mine and not mine[0].get("is_processing"):
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"the slot of {nonce} still busy {timeout} s after the cancel: {mine or slots}"
            )
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    decoded = mine[0]["next_token"][0]["n_decoded"]
    assert decoded < limit / 3, f"the server generated {decoded} of {limit} tokens"
    note(
        f"cancel ({surface}): llama-server released the slot {elapsed * 1000:.0f} ms after the "
        f"cancel, {decoded} of {limit} tokens generated (/slots)"
    )


async def test_dispose_the_subscription(target: Target) -> None:
    nonce, messages = long_request()
    got: list[str] = []
    enough = asyncio.Event()

    def on_next(delta: str) -> None:
        got.append(delta)
        if len(got) >= TAKE:
            enough.set()

    subscription = (
        rxchat.chat_completion_stream(
            model=target.model,
            messages=messages,
            base_url=target.base_url,
            api_key=target.api_key,
            max_retries=0,
            **PARAMS,
        )
        .pipe(ops.accumulate(), ops.text())
        .subscribe(on_next)
    )
    await asyncio.wait_for(enough.wait(), 30)
    subscription.dispose()
    await asyncio.to_thread(assert_stopped_on_server, target, nonce, "Observable dispose")


async def test_last_broadcast_subscriber_leaves(target: Target) -> None:
    nonce, messages = long_request()
    shared = rxchat.chat_completion_stream(
        model=target.model,
        messages=messages,
        base_url=target.base_url,
        api_key=target.api_key,
        max_retries=0,
        **PARAMS,
    ).pipe(ops.accumulate(), ops.text(), ops.broadcast())
    got: list[str] = []
    enough = asyncio.Event()

    def on_next(delta: str) -> None:
        got.append(delta)
        if len(got) >= TAKE:
            enough.set()

    first = shared.subscribe(on_next)
    second = shared.subscribe(lambda _: None)
    await asyncio.wait_for(enough.wait(), 30)
    first.dispose()
    if target.llama is not None:
        await asyncio.to_thread(wait_busy, target.llama)  # one subscriber left: still running
    second.dispose()
    await asyncio.to_thread(assert_stopped_on_server, target, nonce, "last broadcast subscriber")


async def test_break_out_of_async_stream(target: Target) -> None:
    nonce, messages = long_request()
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        async with client.chat.completions.stream(
            model=target.model, messages=messages, **PARAMS
        ) as stream:
            n = 0
            async for event in stream:
                if event.type == "content.delta":
                    n += 1
                    if n >= TAKE:
                        break
        await asyncio.to_thread(
            assert_stopped_on_server, target, nonce, "AsyncClient stream() block left"
        )

        nonce, messages = long_request()
        chunks = await client.chat.completions.create(
            model=target.model, messages=messages, stream=True, **PARAMS
        )
        n = 0
        async for _ in chunks:
            n += 1
            if n >= TAKE:
                break
        await chunks.close()
        await asyncio.to_thread(assert_stopped_on_server, target, nonce, "AsyncStream close()")


async def test_cancel_the_consuming_task(target: Target) -> None:
    nonce, messages = long_request()
    enough = asyncio.Event()
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:

        async def consume() -> None:
            stream = await client.chat.completions.create(
                model=target.model, messages=messages, stream=True, **PARAMS
            )
            n = 0
            async for _ in stream:
                n += 1
                if n >= TAKE:
                    enough.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(enough.wait(), 30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(assert_stopped_on_server, target, nonce, "consuming task cancelled")


def test_sync_client_and_edgee_style(target: Target) -> None:
    with rxchat.Client(base_url=target.base_url, api_key=target.api_key, max_retries=0) as client:
        nonce, messages = long_request()
        with client.chat.completions.stream(
            model=target.model, messages=messages, **PARAMS
        ) as stream:
            n = 0
            for event in stream:
                if event.type == "content.delta":
                    n += 1
                    if n >= TAKE:
                        break
        assert_stopped_on_server(target, nonce, "sync Client stream() block left")

        nonce, messages = long_request()
        # Edgee style has no max_tokens: the server's default limit applies (--n-predict 64).
        for n, _ in enumerate(client.stream(target.model, {"messages": messages}), 1):
            if n >= TAKE:
                break
        assert_stopped_on_server(target, nonce, "Edgee-style stream, break", limit=64)
