"""final_completion: one validated completion at the end, from events or chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import reactivex
from openai.lib.streaming.chat import ChatCompletionStreamState as OpenAIState
from openai.types.chat import ChatCompletionChunk as OpenAIChunk
from pydantic import BaseModel

from rxchat import ChunkDecoder, chat_completion_stream
from rxchat.errors import IncompleteStreamError, LengthFinishReasonError
from rxchat.mock import MockServer
from rxchat.operators import accumulate, final_completion, parse_structured

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


class Location(BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


def corpus(name: str) -> list[Any]:
    return ChunkDecoder().feed((CORPUS / name).read_bytes())


def collect(observable: reactivex.Observable[Any]) -> tuple[list[Any], list[Exception]]:
    items: list[Any] = []
    errors: list[Exception] = []
    observable.subscribe(items.append, errors.append)
    return items, errors


def normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def test_equals_openai_get_final_completion() -> None:
    chunks = corpus("structured_location_n3.sse")
    theirs = OpenAIState(response_format=Location)
    for c in chunks:
        theirs.handle_chunk(OpenAIChunk.model_validate(c.to_dict()))
    expected = normal(theirs.get_final_completion().model_dump(mode="json", warnings=False))
    for pipeline in (
        reactivex.from_iterable(chunks).pipe(
            accumulate(), parse_structured(Location), final_completion()
        ),
        reactivex.from_iterable(chunks).pipe(parse_structured(Location), final_completion()),
    ):
        items, errors = collect(pipeline)
        assert not errors and len(items) == 1
        assert normal(items[0].model_dump(mode="json")) == expected


def test_on_plain_chunks() -> None:
    items, errors = collect(
        reactivex.from_iterable(corpus("plain_text.sse")).pipe(final_completion())
    )
    assert not errors
    assert items[0].choices[0].message.content.startswith("I'm")
    assert items[0].choices[0].message.parsed is None


def test_cut_answer_and_empty_stream_are_errors() -> None:
    _, errors = collect(
        reactivex.from_iterable(corpus("structured_max_tokens_1.sse")).pipe(final_completion())
    )
    assert isinstance(errors[0], LengthFinishReasonError)
    assert errors[0].completion is not None and errors[0].completion.usage is not None
    _, errors = collect(reactivex.empty().pipe(final_completion()))
    assert isinstance(errors[0], IncompleteStreamError)


def test_upstream_error_passes_with_the_completion() -> None:
    cut = IncompleteStreamError("ended early")
    chunks = corpus("plain_text.sse")[:5]
    _, errors = collect(
        reactivex.concat(reactivex.from_iterable(chunks), reactivex.throw(cut)).pipe(
            accumulate(), final_completion()
        )
    )
    assert errors == [cut] and cut.completion is not None
    assert cut.completion.choices[0].message.content


async def test_await_on_a_loopback_stream(mock_server: MockServer) -> None:
    source = chat_completion_stream(
        model="mock?tokens=12",
        messages=[{"role": "user", "content": "hello"}],
        base_url=mock_server.url,
    )
    completion = await source.pipe(accumulate(), final_completion())
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content


def test_mixed_items() -> None:
    chunks = corpus("plain_text.sse")
    events, _ = collect(reactivex.from_iterable(chunks[:2]).pipe(accumulate()))
    _, errors = collect(reactivex.from_iterable([*events, chunks[2]]).pipe(final_completion()))
    assert isinstance(errors[0], TypeError)
    _, errors = collect(reactivex.of(object()).pipe(final_completion()))
    assert isinstance(errors[0], TypeError)
