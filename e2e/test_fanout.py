"""``observe()`` + ``ops.broadcast()``: two consumers, one request — counted on the server."""

from __future__ import annotations

import asyncio
from typing import Any

from e2ekit import GREEDY, Target, afinished, note, user, wait_idle

import rxchat
from rxchat import operators as ops

PROMPT = "List four animals that live in the sea."
PARAMS: dict[str, Any] = {"max_tokens": 12, "stream_options": {"include_usage": True}, **GREEDY}


def _prompt_tokens_seen(target: Target) -> float:
    """Prompt tokens the server has read so far (processed + taken from its cache)."""
    assert target.llama is not None
    m = target.llama.metrics()
    return m["llamacpp:prompt_tokens_total"] + m["llamacpp:prompt_tokens_cached_total"]


async def test_two_consumers_one_request(target: Target) -> None:
    async with rxchat.AsyncClient(
        base_url=target.base_url, api_key=target.api_key, max_retries=0
    ) as client:
        if target.llama is not None:
            wait_idle(target.llama)
            before = _prompt_tokens_seen(target)
        shared = client.chat.completions.observe(
            model=target.model, messages=user(PROMPT), **PARAMS
        ).pipe(ops.accumulate(), ops.broadcast())

        loop = asyncio.get_running_loop()
        text_a: list[str] = []
        kinds_b: list[str] = []
        finished: list[asyncio.Future[None]] = [loop.create_future(), loop.create_future()]

        def failed(i: int) -> Any:
            return lambda err: finished[i].done() or finished[i].set_exception(err)

        def completed(i: int) -> Any:
            return lambda: finished[i].done() or finished[i].set_result(None)

        # Consumer A: the text as it streams. Consumer B: every event; its callback raises once,
        # which must not break the stream for A.
        def b_on_next(event: Any) -> None:
            kinds_b.append(event.type)
            if len(kinds_b) == 2:
                raise RuntimeError("a failing subscriber callback")

        shared.pipe(ops.text()).subscribe(text_a.append, failed(0), completed(0))
        b_errors: list[Exception] = []
        shared.subscribe(
            b_on_next,
            lambda err: (b_errors.append(err), finished[1].done() or finished[1].set_result(None)),
            completed(1),
        )
        completion = await afinished(
            shared.pipe(ops.final_completion())
        )  # a third consumer, same request
        await asyncio.wait_for(asyncio.gather(*finished), 30)

    content = completion.choices[0].message.content
    assert content and "".join(text_a) == content
    assert kinds_b[0] == "chunk" and len(kinds_b) >= 2
    assert [type(e) for e in b_errors] == [RuntimeError], "B's own error goes to B's on_error"
    assert completion.usage is not None
    if target.llama is not None:
        wait_idle(target.llama)
        read = _prompt_tokens_seen(target) - before
        assert read == completion.usage.prompt_tokens, (
            f"the server read {read} prompt tokens; one request has {completion.usage.prompt_tokens}"
        )
        note(
            f"broadcast: 3 consumers, the server read {read:.0f} prompt tokens = one request's "
            f"{completion.usage.prompt_tokens} (llama-server /metrics)"
        )
    else:
        note("broadcast: one-request count not verified on the server (not a local llama-server)")


async def test_late_subscriber_catches_up(target: Target) -> None:
    events = rxchat.chat_completion_stream(
        model=target.model,
        messages=user(PROMPT),
        base_url=target.base_url,
        api_key=target.api_key,
        max_retries=0,
        **PARAMS,
    ).pipe(ops.accumulate(), ops.broadcast())
    early: list[str] = []
    started = asyncio.Event()

    def on_early(delta: str) -> None:
        early.append(delta)
        if len(early) == 3:
            started.set()

    sub = events.pipe(ops.text()).subscribe(on_early)
    await asyncio.wait_for(started.wait(), 30)
    # Joined after three deltas: the first event it sees carries the snapshot so far.
    late = await afinished(events.pipe(ops.final_completion()))
    sub.dispose()
    assert late.choices[0].message.content is not None
    assert late.choices[0].message.content.startswith("".join(early[:3]))
