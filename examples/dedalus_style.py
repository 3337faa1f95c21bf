"""Dedalus-SDK-style code (async) on rxchat: only the import changes.

Run: ``python examples/dedalus_style.py [BASE_URL]`` (against ``rxchat serve`` or any
OpenAI-compatible server; without a URL an embedded mock server is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Literal

from pydantic import BaseModel

import rxchat
from rxchat import AsyncClient as AsyncDedalus  # was: from dedalus_labs import AsyncDedalus
from rxchat import ChatCompletionStreamState, LengthFinishReasonError


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


async def main(url: str) -> None:
    async with AsyncDedalus(api_key="your-api-key", base_url=url) as client:
        print("-- async streaming")
        stream = await client.chat.completions.create(
            model="openai/gpt-5-nano",
            messages=[{"role": "user", "content": "Write a short story"}],
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()

        print("\n-- structured output, streamed")
        async with client.chat.completions.stream(
            model="openai/gpt-5-nano",
            messages=[{"role": "user", "content": "What's the weather in SF?"}],
            response_format=Location,
        ) as events:
            last = None
            async for event in events:
                if event.type == "content.delta" and event.parsed and event.parsed != last:
                    last = event.parsed
                    print("partial:", last)
            completion = await events.get_final_completion()
        location = completion.choices[0].message.parsed
        print(f"{location.city}: {location.temperature}°{location.units}")

        print("\n-- manual accumulation")
        state = ChatCompletionStreamState()
        stream = await client.chat.completions.create(
            model="openai/gpt-5-nano",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
        )
        async for chunk in stream:
            state.handle_chunk(chunk)
        print(state.get_final_completion().choices[0].message.content)

        print("\n-- the length limit, as in the SDK")
        try:
            async with client.chat.completions.stream(
                model="openai/gpt-5-nano",
                messages=[{"role": "user", "content": "What's the weather in SF?"}],
                max_tokens=1,
                response_format=Location,
            ) as events:
                await events.until_done()
        except LengthFinishReasonError as err:
            print("truncated:", repr(err.completion.choices[0].message.content))


def base_url() -> contextlib.AbstractContextManager[str]:
    """The base URL from the command line or ``$RXCHAT_BASE_URL``, else a mock server on a thread."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    return contextlib.nullcontext(url) if url else rxchat.mock.serve_in_thread(token_delay=0.01)


if __name__ == "__main__":
    with base_url() as url:
        asyncio.run(main(url))
