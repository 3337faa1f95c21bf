"""Cancellation closes the connection, and the server stops generating.

Each test asks for a long answer (up to 1500 tokens), takes a few chunks and stops: disposing
the subscription, leaving the stream's block, breaking out of the loop, cancelling the task.
llama-server notices the closed connection, logs that it cancels the task and releases the
slot long before the answer could have reached its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from typing import Any

from e2ekit import Target, note, user, wait_busy

import rxchat
from rxchat import operators as ops

MAX_TOKENS = 1500
TAKE = 3  # content deltas read before stopping


def long_request() -> list[dict[str, Any]]:
    # A nonce makes every prompt new, so no request starts from another's cached prompt.
    nonce = uuid.uuid4().hex[:12]
    return user(f"[{nonce}] Write a very long story about a dragon who learns to sail.")


PARAMS: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0.8, "seed": 3}

_LAUNCH = re.compile(r"launch_slot_: id +(\d+) \| task (\d+) \| processing task")


def assert_stopped_on_server(
    target: Target, surface: str, limit: int = MAX_TOKENS, timeout: float = 10.0
) -> None:
    """llama-server cancelled the last request it started and released its slot.

    The tests make one request at a time, so the last task launched is the one just stopped.
    llama-server logs ``cancel task, id_task = N`` when it sees the connection closed, then
    ``release: id S | task N | stop processing``; a request that ran to its end logs only
    the release.
    """
    if target.llama is None:
        note(f"cancel ({surface}): server-side stop not verified (not a local llama-server)")
        return
    started = time.monotonic()
    launches = _LAUNCH.findall(target.llama.log_text())
    assert launches, "llama-server logged no request"
    slot, task = launches[-1]
    cancelled = f"cancel task, id_task = {task}\n"
    released = re.compile(
        rf"release: id +{slot} \| task {task} \| stop processing: n_tokens = (\d+)"
    )
    while True:
        log = target.llama.log_text()
        release = released.search(log)
        if cancelled in log and release:
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"llama-server did not cancel task {task} within {timeout} s "
                f"(cancel logged: {cancelled in log}, slot released: {release is not None})"
            )
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    slots: list[dict[str, Any]] = target.llama.get_json("/slots")
    mine = next(s for s in slots if str(s["id"]) == slot)
    assert not mine["is_processing"] or str(mine.get("id_task")) != task
    note(
        f"cancel ({surface}): llama-server logged 'cancel task' for task {task} and released "
        f"slot {slot} within {elapsed * 1000:.0f} ms of the client stopping, of up to {limit} tokens asked for"
    )


async def test_dispose_the_subscription(target: Target) -> None:
    messages = long_request()
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
    await asyncio.to_thread(assert_stopped_on_server, target, "Observable dispose")


async def test_last_broadcast_subscriber_leaves(target: Target) -> None:
    messages = long_request()
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
    await asyncio.to_thread(assert_stopped_on_server, target, "last broadcast subscriber")


async def test_break_out_of_async_stream(target: Target) -> None:
    messages = long_request()
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
        await asyncio.to_thread(assert_stopped_on_server, target, "AsyncClient stream() block left")

        messages = long_request()
        chunks = await client.chat.completions.create(
            model=target.model, messages=messages, stream=True, **PARAMS
        )
        n = 0
        async for _ in chunks:
            n += 1
            if n >= TAKE:
                break
        await chunks.close()
        await asyncio.to_thread(assert_stopped_on_server, target, "AsyncStream close()")


async def test_cancel_the_consuming_task(target: Target) -> None:
    messages = long_request()
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
        await asyncio.to_thread(assert_stopped_on_server, target, "consuming task cancelled")


def test_sync_client_and_edgee_style(target: Target) -> None:
    with rxchat.Client(base_url=target.base_url, api_key=target.api_key, max_retries=0) as client:
        messages = long_request()
        with client.chat.completions.stream(
            model=target.model, messages=messages, **PARAMS
        ) as stream:
            n = 0
            for event in stream:
                if event.type == "content.delta":
                    n += 1
                    if n >= TAKE:
                        break
        assert_stopped_on_server(target, "sync Client stream() block left")

        messages = long_request()
        # Edgee style has no max_tokens: the server's default limit applies (--n-predict 64).
        for n, _ in enumerate(client.stream(target.model, {"messages": messages}), 1):
            if n >= TAKE:
                break
        assert_stopped_on_server(target, "Edgee-style stream, break", limit=64)
