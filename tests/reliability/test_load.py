"""Many concurrent streams on one event loop: no chunk lost, duplicated, reordered or mixed up.

The smaller sibling of ``benchmarks/bench_load.py`` (functional only: no timing assertions).
Half the streams go through ``observe()`` subscriptions and half through ``create(stream=True)``
iterators, all at once on the test's loop; every stream's text is compared with the text the
mock server planned for that very request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faultkit import SENTINEL_KEY
from support import ThreadedMock

from rxchat import AsyncClient, Timeout

STREAMS = 200
TOKENS = 40


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"concurrent stream {i}"}]


async def test_concurrent_streams_are_exact(
    threaded_server: ThreadedMock, no_leftover_tasks: None
) -> None:
    server = threaded_server
    state = server.server.state
    first_stream = server.snapshot(lambda: len(state.streams))
    # Each stream waits 1 s for its first chunk: all of them are open at the same time.
    model = f"mock?tokens={TOKENS}&delay=0.002&stall_first=1"
    texts: list[list[str]] = [[] for _ in range(STREAMS)]
    counts = [0] * STREAMS
    errors: list[BaseException | None] = [None] * STREAMS
    open_now = 0
    open_max = 0

    def on_chunk(i: int, chunk: Any) -> None:
        nonlocal open_now, open_max
        if not counts[i]:
            open_now += 1
            open_max = max(open_max, open_now)
        counts[i] += 1
        if chunk.text:
            texts[i].append(chunk.text)

    async with AsyncClient(
        api_key=SENTINEL_KEY, base_url=server.url, max_retries=0, timeout=Timeout(read=30)
    ) as client:

        async def via_create(i: int) -> None:
            nonlocal open_now
            try:
                stream = await client.chat.completions.create(
                    model=model, messages=_prompt(i), stream=True
                )
                async for chunk in stream:
                    on_chunk(i, chunk)
            except Exception as err:
                errors[i] = err
            open_now -= 1

        async def via_observe(i: int) -> None:
            nonlocal open_now
            done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
            sub = client.chat.completions.observe(model=model, messages=_prompt(i)).subscribe(
                lambda c: on_chunk(i, c), done.set_result, lambda: done.set_result(None)
            )
            try:
                errors[i] = await done
            finally:
                sub.dispose()
            open_now -= 1

        async with asyncio.timeout(45):
            await asyncio.gather(
                *(via_observe(i) if i % 2 else via_create(i) for i in range(STREAMS))
            )

    # What the server planned for each request, matched through the request's prompt.
    def planned() -> dict[str, str]:
        prompts = {
            r.request_id: r.body["messages"][0]["content"]
            for r in state.requests
            if isinstance(r.body, dict) and r.body.get("stream")
        }
        return {prompts[s.request_id]: s.texts[0] for s in state.streams[first_stream:]}

    expected = server.snapshot(planned)
    assert [e for e in errors if e is not None] == []
    lost = [
        i
        for i in range(STREAMS)
        if "".join(texts[i]) != expected[_prompt(i)[0]["content"]] or counts[i] != TOKENS + 2
    ]
    assert lost == []
    assert len(set(expected.values())) == STREAMS  # every stream had its own text
    assert open_max > STREAMS // 2  # they really streamed side by side
