"""Checked by tests/test_typing.py with ``mypy --strict``: each ``# E:`` line must be an error with
that text, each ``reveal_type`` must reveal the ``# R:`` type, and nothing else may be reported.

The request parameters are one ``TypedDict`` unpacked into every method: a misspelt name is a
type error, as with the openai SDK; ``create``'s return type still follows ``stream``.
"""

from __future__ import annotations

from typing import reveal_type

from pydantic import BaseModel

import rxchat

USER = [{"role": "user", "content": "hi"}]


class City(BaseModel):
    name: str


async def async_client(client: rxchat.AsyncClient) -> None:
    completions = client.chat.completions
    reveal_type(await completions.create(model="m", messages=USER))  # R: ChatCompletion
    reveal_type(await completions.create(model="m", messages=USER, stream=True))  # R: AsyncStream
    reveal_type(await completions.create(model="m", messages=USER, temperature=0.2, extra_body={"top_k": 1}))  # R: ChatCompletion
    await completions.create(model="m", messages=USER, temprature=0.2)  # E: Unexpected keyword argument "temprature"
    await completions.create(model="m", messages=USER, stream=True, temprature=0.2)  # E: Unexpected keyword argument "temprature"
    await completions.create(model="m", messages=USER, temperature="hot")  # E: No overload variant of "create"
    completions.observe(model="m", messages=USER, top_k=40)  # E: Unexpected keyword argument "top_k"
    async with completions.stream(model="m", messages=USER, response_format=City, seed=1) as stream:
        reveal_type((await stream.get_final_completion()).choices[0].message.parsed)  # R: City | None
    completions.stream(model="m", messages=USER, sed=1)  # E: Unexpected keyword argument "sed"
    await completions.parse(model="m", messages=USER, max_token=5)  # E: Unexpected keyword argument "max_token"
    completions.run_tools(model="m", messages=USER, tools=[], n=2)  # E: Unexpected keyword argument "n"
    reveal_type(completions)  # R: AsyncCompletions


def sync_client(client: rxchat.Client) -> None:
    completions = client.chat.completions
    reveal_type(completions.create(model="m", messages=USER))  # R: ChatCompletion
    reveal_type(completions.create(model="m", messages=USER, stream=True, timeout=5))  # R: Stream
    completions.create(model="m", messages=USER, temprature=0.2)  # E: Unexpected keyword argument "temprature"
    completions.observe(model="m", messages=USER, extra_query={"api-version": "1"}, timeoutt=1)  # E: Unexpected keyword argument "timeoutt"
    reveal_type(completions)  # R: Completions


def source() -> None:
    rxchat.chat_completion_stream(model="m", messages=USER, top_p=0.5, extra_body={"top_k": 1})
    rxchat.chat_completion_stream(model="m", messages=USER, top_k=40)  # E: Unexpected keyword argument "top_k"


def params_passed_around(client: rxchat.Client) -> None:
    params: rxchat.CompletionCreateParams = {"temperature": 0.2, "extra_body": {"top_k": 40}}
    reveal_type(client.chat.completions.create(model="m", messages=USER, **params))  # R: ChatCompletion
    bad: rxchat.CompletionCreateParams = {"temprature": 0.2}  # E: Extra key "temprature"
    client.chat.completions.create(model="m", messages=USER, **bad)
