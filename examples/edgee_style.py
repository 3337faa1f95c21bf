"""Edgee-SDK-style code on rxchat: only the import changes.

Run: ``python examples/edgee_style.py [BASE_URL]`` (against ``rxchat serve`` or any
OpenAI-compatible server; without a URL an embedded mock server is used).
"""

from __future__ import annotations

import contextlib
import os
import sys

import rxchat
from rxchat import Client as Edgee  # was: from edgee import Edgee
from rxchat import InputObject  # was: from edgee import InputObject


def main(url: str) -> None:
    edgee = Edgee("your-api-key", base_url=url)

    print("-- stream(model, str)")
    for chunk in edgee.stream("gpt-4o", "Tell me a story"):
        if chunk.text:
            print(chunk.text, end="", flush=True)
        if chunk.finish_reason:
            print(f"\nFinished: {chunk.finish_reason}")

    print("\n-- stream(model, dict)")
    for chunk in edgee.stream("gpt-4o", {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a poem about coding"},
        ]
    }):
        if chunk.text:
            print(chunk.text, end="", flush=True)
    print()

    print("\n-- stream(model, InputObject) with a tool")
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }]
    arguments = ""
    for chunk in edgee.stream("gpt-4o", InputObject(
        messages=[{"role": "user", "content": "What's the weather in Paris?"}], tools=tools
    )):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.function and call.function.arguments:
                arguments += call.function.arguments
    print("get_weather", arguments)

    print("\n-- send()")
    response = edgee.send(model="gpt-4o", input="What is the capital of France?")
    print(response.text)
    print(response.finish_reason, response.usage.total_tokens if response.usage else None)

    print("\n-- send(stream=True)")
    for chunk in edgee.send(model="gpt-4o", input="Count to five", stream=True):
        if chunk.text:
            print(chunk.text, end="", flush=True)
    print()
    edgee.close()


def base_url() -> contextlib.AbstractContextManager[str]:
    """The base URL from the command line or ``$RXCHAT_BASE_URL``, else a mock server on a thread."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    return contextlib.nullcontext(url) if url else rxchat.mock.serve_in_thread(token_delay=0.01)


if __name__ == "__main__":
    with base_url() as url:
        main(url)
