"""raise_on_length: a truncated answer fails the stream after everything it carried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as rops
from reactivex.testing import ReactiveTest, TestScheduler

from rxchat import ChunkDecoder
from rxchat.errors import ContentFilterFinishReasonError, LengthFinishReasonError
from rxchat.operators import accumulate, raise_on_length
from rxchat.types import ChatCompletionChunk

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed


def chunk(*choices: dict[str, Any], **top: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.from_wire({"choices": list(choices), **top})


def choice(content: str | None = None, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {"index": index, "delta": delta, "finish_reason": finish}


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_marble_error_after_the_truncated_choice_and_its_usage() -> None:
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, chunk(choice("The answer was"))),
        on_next(220, chunk(choice(" cut", "length"))),
        on_next(230, chunk(usage=USAGE)),
        on_completed(240),
    )
    results = scheduler.start(
        lambda: xs.pipe(accumulate(), raise_on_length(), rops.map(lambda e: e.type))
    )
    assert [m.time for m in results.messages] == [210, 210, 220, 220, 220, 230, 240]
    assert [m.value.value for m in results.messages[:-1]] == [
        "chunk", "content.delta", "chunk", "content.delta", "content.done", "chunk",
    ]  # fmt: skip
    error = results.messages[-1].value.exception
    assert isinstance(error, LengthFinishReasonError)
    assert error.completion is not None
    assert error.completion.choices[0].message.content == "The answer was cut"
    assert error.completion.usage is not None and error.completion.usage.total_tokens == 7
    assert error.chunks_received == 3


def test_n2_fails_at_the_next_chunk_with_choices() -> None:
    items: list[Any] = []
    errors: list[Exception] = []
    reactivex.from_iterable(
        [
            chunk(choice("a", "length", index=0), choice("x", index=1)),
            chunk(choice("y", index=1)),
            chunk(choice("z", "stop", index=1)),
        ]
    ).pipe(accumulate(), raise_on_length()).subscribe(items.append, errors.append)
    assert isinstance(errors[0], LengthFinishReasonError)
    assert sum(1 for e in items if e.type == "chunk") == 1


def test_content_filter_only_when_asked() -> None:
    chunks = [chunk(choice("Some")), chunk(choice(None, "content_filter"))]
    for flag, expected in ((False, None), (True, ContentFilterFinishReasonError)):
        errors: list[Exception] = []
        completed: list[bool] = []
        reactivex.from_iterable(chunks).pipe(
            accumulate(), raise_on_length(content_filter=flag)
        ).subscribe(on_error=errors.append, on_completed=lambda done=completed: done.append(True))
        if expected is None:
            assert completed and not errors
        else:
            assert isinstance(errors[0], expected) and not completed
            assert errors[0].completion.choices[0].message.content == "Some"  # type: ignore[union-attr]


def test_on_chunks_the_error_still_carries_the_completion() -> None:
    chunks = ChunkDecoder().feed((CORPUS / "structured_max_tokens_1.sse").read_bytes())
    items: list[Any] = []
    errors: list[Exception] = []
    reactivex.from_iterable(chunks).pipe(raise_on_length()).subscribe(items.append, errors.append)
    assert items == chunks  # chunks pass through unchanged, the usage chunk included
    assert isinstance(errors[0], LengthFinishReasonError)
    assert errors[0].completion is not None
    assert errors[0].completion.choices[0].message.content == '{"'


def test_complete_answers_pass_unchanged() -> None:
    chunks = ChunkDecoder().feed((CORPUS / "plain_text.sse").read_bytes())
    items: list[Any] = []
    completed: list[bool] = []
    reactivex.from_iterable(chunks).pipe(accumulate(), raise_on_length()).subscribe(
        items.append, on_completed=lambda: completed.append(True)
    )
    assert completed and items[-1].type in ("chunk", "content.done")
    errors: list[Exception] = []
    reactivex.of(42).pipe(raise_on_length()).subscribe(on_error=errors.append)
    assert isinstance(errors[0], TypeError)
