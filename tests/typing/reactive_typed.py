"""Checked by tests/test_typing.py with ``mypy --strict``: every ``reveal_type`` below is asserted.

The reactive path types ``message.parsed`` like the client path does, and chains that mix
rxchat's and reactivex's generic operators keep type-checking.
"""

from __future__ import annotations

from typing import Any, reveal_type

import reactivex
from pydantic import BaseModel
from reactivex import Observable
from reactivex import operators as rx

import rxchat
from rxchat import operators as ops


class City(BaseModel):
    name: str
    population: int


chunks: Observable[rxchat.ChatCompletionChunk] = reactivex.empty()
events = chunks.pipe(ops.accumulate())

# parse_structured(City) then final_completion(): City | None, as client.chat.completions.stream
direct = chunks.pipe(ops.parse_structured(City), ops.final_completion())
reveal_type(direct)  # R: Observable[ParsedChatCompletion[City]]
after_events = events.pipe(ops.parse_structured(City), ops.final_completion())
reveal_type(after_events)  # R: Observable[ParsedChatCompletion[City]]
with_pass_through = chunks.pipe(
    ops.accumulate(),
    ops.parse_structured(City),
    ops.raise_on_length(),
    ops.idle_timeout(5),
    ops.first_chunk_timeout(5),
    ops.broadcast(),
    ops.final_completion(),
)
reveal_type(with_pass_through)  # R: Observable[ParsedChatCompletion[City]]

# reactivex's own operators: before parse_structured, after final_completion, or in a second pipe
# (mypy cannot infer one pipe() with a reactivex generic operator right between the two).
stop: Observable[int] = reactivex.empty()
reveal_type(chunks.pipe(rx.take_until(stop), ops.parse_structured(City), ops.final_completion()))  # R: Observable[ParsedChatCompletion[City]]
stoppable = chunks.pipe(ops.parse_structured(City), rx.take_until(stop))
reveal_type(stoppable.pipe(ops.final_completion()))  # R: Observable[ParsedChatCompletion[City]]


async def parsed_city() -> City | None:
    completion = await direct
    parsed = completion.choices[0].message.parsed
    reveal_type(parsed)  # R: City | None
    return parsed


async def client_path(client: rxchat.AsyncClient) -> None:
    async with client.chat.completions.stream(
        model="m", messages=[], response_format=City
    ) as stream:
        completion = await stream.get_final_completion()
    reveal_type(completion.choices[0].message.parsed)  # R: City | None


# Without a model: Any (events) or nothing parsed (chunks carry no parsed content).
reveal_type(events.pipe(ops.final_completion()))  # R: Observable[ParsedChatCompletion[Any]]
reveal_type(events.pipe(ops.raise_on_length(), ops.final_completion()))  # R: Observable[ParsedChatCompletion[Any]]
reveal_type(chunks.pipe(ops.final_completion()))  # R: Observable[ParsedChatCompletion[Never]]
reveal_type(chunks.pipe(ops.raise_on_length(), ops.final_completion()))  # R: Observable[ParsedChatCompletion[Never]]
reveal_type(chunks.pipe(ops.parse_structured(), ops.final_completion()))  # R: Observable[ParsedChatCompletion[Any]]

# Generic pass-through operators keep the item type, alone and with reactivex's own.
reveal_type(chunks.pipe(ops.raise_on_length()))  # R: Observable[ChatCompletionChunk]
reveal_type(events.pipe(ops.broadcast(), ops.text()))  # R: Observable[str]
texts: Observable[str] = events.pipe(ops.text())
reveal_type(texts.pipe(ops.idle_timeout(1), rx.map(len)))  # R: Observable[int]
reveal_type(texts.pipe(rx.filter(bool), ops.broadcast()))  # R: Observable[str]

# Typed partial objects: Partial[City], fields seen as Any.
partials = chunks.pipe(ops.partial_objects(City))
reveal_type(partials)  # R: Observable[Partial[City]]


def use(partial: rxchat.Partial[City]) -> Any:
    return partial.population
