"""Every recorded OpenAI stream decodes the same whatever the read sizes, and replays unchanged."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from reactivex import Observable

import rxchat
from rxchat import ChatCompletionChunk, ChunkDecoder
from rxchat.errors import IncompleteStreamError, RxChatError

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"
RECORDINGS = sorted(CORPUS.glob("*.sse"))
MANIFEST: dict[str, Any] = json.loads((CORPUS / "MANIFEST.json").read_text())


def reference_chunks(body: bytes) -> list[ChatCompletionChunk]:
    """An independent reading of an LF-only recording: blocks split on blank lines."""
    chunks = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: ") and "\n" not in block, block
        payload = block[len("data: ") :]
        if payload == "[DONE]":
            break
        chunks.append(ChatCompletionChunk.model_validate(orjson.loads(payload)))
    return chunks


def decode(reads: Iterable[bytes]) -> list[ChatCompletionChunk]:
    decoder = ChunkDecoder()
    chunks: list[ChatCompletionChunk] = []
    for read in reads:
        chunks.extend(decoder.feed(read))
        assert decoder.error is None
    decoder.close()
    assert decoder.done
    return chunks


def random_reads(body: bytes, seed: int, largest: int) -> list[bytes]:
    rng = random.Random(seed)
    reads, at = [], 0
    while at < len(body):
        size = rng.randint(1, largest)
        reads.append(body[at : at + size])
        at += size
    return reads


def state(chunks: list[ChatCompletionChunk]) -> list[Any]:
    """Values and which fields were set: equal states mean equal chunks in every respect."""
    return [(c.model_dump(), c.model_dump(exclude_unset=True)) for c in chunks]


async def collect(observable: Observable[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    items: list[ChatCompletionChunk] = []
    observable.subscribe(
        on_next=items.append,
        on_error=lambda err: done.done() or done.set_exception(err),
        on_completed=lambda: done.done() or done.set_result(None),
    )
    await asyncio.wait_for(done, 10)
    return items


def test_corpus_matches_manifest() -> None:
    assert len(RECORDINGS) >= 12
    assert {p.name for p in RECORDINGS} == set(MANIFEST["streams"])


@pytest.fixture(params=RECORDINGS, ids=[p.name for p in RECORDINGS])
def recording(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_whole_body(recording: Path) -> None:
    body = recording.read_bytes()
    chunks = decode([body])
    assert state(chunks) == state(reference_chunks(body))
    assert len(chunks) == body.count(b"data: ") - 1  # every frame but [DONE]


def test_one_byte_reads(recording: Path) -> None:
    body = recording.read_bytes()
    assert state(decode([body[i : i + 1] for i in range(len(body))])) == state(decode([body]))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("largest", [3, 64, 1500])
def test_random_reads(recording: Path, seed: int, largest: int) -> None:
    body = recording.read_bytes()
    assert state(decode(random_reads(body, seed, largest))) == state(decode([body]))


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["CRLF", "CR"])
def test_other_line_ends(recording: Path, newline: bytes) -> None:
    body = recording.read_bytes()
    converted = body.replace(b"\n", newline)
    assert state(decode(random_reads(converted, 7, 50))) == state(decode([body]))


def test_finish_reason_as_recorded(recording: Path) -> None:
    chunks = decode([recording.read_bytes()])
    reasons = [c.finish_reason for c in chunks if c.finish_reason is not None]
    assert reasons, "every recording finishes"
    assert set(reasons) == {MANIFEST["streams"][recording.name]["finish_reason"]}


def test_chunks_re_encoded_decode_to_the_same_chunks(recording: Path) -> None:
    chunks = decode([recording.read_bytes()])
    body = (
        b"".join(b"data: " + c.to_json().encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )
    assert state(decode(random_reads(body, 3, 100))) == state(chunks)


def test_truncated_before_the_finish_is_incomplete(recording: Path) -> None:
    body = recording.read_bytes()
    chunks = decode([body])
    first_finish = next(
        i for i, c in enumerate(chunks) if any(ch.finish_reason for ch in c.choices)
    )
    frames = body.split(b"\n\n")
    truncated = b"\n\n".join(frames[:first_finish]) + b"\n\n"
    decoder = ChunkDecoder()
    got = [c for read in random_reads(truncated, 1, 200) for c in decoder.feed(read)]
    assert state(got) == state(chunks[:first_finish])
    with pytest.raises(IncompleteStreamError) as info:
        decoder.close()
    assert info.value.chunks_received == first_finish


# -- through rxchat.from_sse_bytes -----------------------------------------------------------


def test_from_sse_bytes_whole_body(recording: Path) -> None:
    body = recording.read_bytes()
    got: list[ChatCompletionChunk] = []
    errors: list[Exception] = []
    completed: list[bool] = []
    rxchat.from_sse_bytes(body).subscribe(
        on_next=got.append, on_error=errors.append, on_completed=lambda: completed.append(True)
    )
    assert errors == []
    assert completed == [True]
    assert state(got) == state(reference_chunks(body))


def test_from_sse_bytes_file_path(recording: Path) -> None:
    got: list[ChatCompletionChunk] = []
    rxchat.from_sse_bytes(str(recording)).subscribe(on_next=got.append)
    assert state(got) == state(decode([recording.read_bytes()]))
    again: list[ChatCompletionChunk] = []
    rxchat.from_sse_bytes(recording).subscribe(on_next=again.append)  # cold: read again
    assert state(again) == state(got)


def test_from_sse_bytes_one_byte_reads(recording: Path) -> None:
    body = recording.read_bytes()
    got: list[ChatCompletionChunk] = []
    rxchat.from_sse_bytes([body[i : i + 1] for i in range(len(body))]).subscribe(on_next=got.append)
    assert state(got) == state(decode([body]))


async def test_from_sse_bytes_async_random_reads(recording: Path) -> None:
    body = recording.read_bytes()

    async def reads() -> AsyncIterator[bytes]:
        for read in random_reads(body, 11, 40):
            await asyncio.sleep(0)
            yield read

    assert state(await collect(rxchat.from_sse_bytes(reads()))) == state(decode([body]))


def test_from_sse_bytes_truncated_recording_errors_after_its_chunks(recording: Path) -> None:
    body = recording.read_bytes()
    chunks = decode([body])
    first_finish = next(
        i for i, c in enumerate(chunks) if any(ch.finish_reason for ch in c.choices)
    )
    truncated = b"\n\n".join(body.split(b"\n\n")[:first_finish]) + b"\n\n"
    got: list[ChatCompletionChunk] = []
    errors: list[RxChatError] = []
    rxchat.from_sse_bytes(truncated).subscribe(on_next=got.append, on_error=errors.append)  # type: ignore[arg-type]
    assert state(got) == state(chunks[:first_finish])
    assert len(errors) == 1 and isinstance(errors[0], IncompleteStreamError)
