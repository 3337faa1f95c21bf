"""OpenAI-SDK-style code on rxchat: only the import changes.

Run: ``python examples/openai_style.py [BASE_URL]`` (against ``rxchat serve`` or any
OpenAI-compatible server; without a URL an embedded mock server is used).
"""

from __future__ import annotations

import contextlib
import os
import sys

from pydantic import BaseModel

import rxchat
from rxchat import Client as OpenAI  # was: from openai import OpenAI


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


class GetWeather(BaseModel):
    city: str
    country: str


def main(url: str) -> None:
    client = OpenAI(base_url=url, api_key="sk-unused-by-local-servers")
    messages = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]

    print("-- create(stream=True): chunks")
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()

    print("\n-- .stream(): typed events and a structured answer")
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Alice and Bob meet for lunch on Friday."}],
        response_format=CalendarEvent,
    ) as events:
        for event in events:
            if event.type == "content.delta":
                print(event.delta, end="", flush=True)
            elif event.type == "content.done":
                print(f"\nparsed: {event.parsed!r}")
        completion = events.get_final_completion()
    print("final:", completion.choices[0].message.parsed)

    print("\n-- .stream(): a tool call with parsed arguments")
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[rxchat.pydantic_function_tool(GetWeather, name="get_weather")],
    ) as events:
        for event in events:
            if event.type == "tool_calls.function.arguments.done":
                print(f"{event.name}({event.parsed_arguments!r})")

    print("\n-- errors are typed, and keep what arrived")
    try:
        with client.chat.completions.stream(
            model="gpt-4o?fault=error_after:5", messages=messages  # a mock option: fail mid-stream
        ) as events:
            events.until_done()
    except rxchat.APIError as err:
        partial = err.completion.choices[0].message.content if err.completion else ""
        print(f"{type(err).__name__}: {err} — kept {partial!r}")

    client.close()


def base_url() -> contextlib.AbstractContextManager[str]:
    """The base URL from the command line or ``$RXCHAT_BASE_URL``, else a mock server on a thread."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    return contextlib.nullcontext(url) if url else rxchat.mock.serve_in_thread(token_delay=0.01)


if __name__ == "__main__":
    with base_url() as url:
        main(url)
