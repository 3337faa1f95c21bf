"""From the familiar client into the reactive API: ``client.chat.completions.observe(...)``.

One request, shared by several consumers with ``ops.broadcast()``: a live text view, a structured
parse of the same answer, and the final completion.

Run: ``python examples/reactive_observe.py [BASE_URL]`` (against ``rxchat serve`` or any
OpenAI-compatible server; without a URL an embedded mock server is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from pydantic import BaseModel

import rxchat
from rxchat import operators as ops


class Recipe(BaseModel):
    title: str
    steps: list[str]


async def main(url: str) -> None:
    async with rxchat.AsyncClient(base_url=url) as client:
        print("-- text deltas")
        texts = client.chat.completions.observe(
            model="gpt-4o", messages=[{"role": "user", "content": "Tell me a story"}]
        ).pipe(ops.accumulate(), ops.text())
        done = asyncio.Event()
        texts.subscribe(
            on_next=lambda delta: print(delta, end="", flush=True),
            on_completed=done.set,
            on_error=lambda err: (print(f"\nerror: {err!r}"), done.set()),
        )
        await done.wait()
        print()

        print("\n-- one request, three consumers")
        shared = client.chat.completions.observe(
            model="gpt-4o",
            messages=[{"role": "user", "content": "A pancake recipe, please."}],
            response_format=Recipe,
        ).pipe(ops.parse_structured(Recipe), ops.broadcast())

        steps_seen: list[int] = [0]

        def on_event(event: object) -> None:
            # the partial value of the JSON so far, parsed incrementally
            parsed = getattr(event, "parsed", None)
            if getattr(event, "type", "") == "content.delta" and isinstance(parsed, dict):
                steps = len(parsed.get("steps", []))
                if steps != steps_seen[0]:
                    steps_seen[0] = steps
                    print(f"  [a step began: {steps} so far]")

        shared.pipe(ops.text()).subscribe(lambda delta: print(delta, end="", flush=True))
        shared.subscribe(on_event)
        completion = await shared.pipe(ops.final_completion())
        recipe = completion.choices[0].message.parsed
        print(f"\nparsed: {recipe!r}")


def base_url() -> contextlib.AbstractContextManager[str]:
    """The base URL from the command line or ``$RXCHAT_BASE_URL``, else a mock server on a thread."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    return contextlib.nullcontext(url) if url else rxchat.mock.serve_in_thread(token_delay=0.01)


if __name__ == "__main__":
    with base_url() as url:
        asyncio.run(main(url))
