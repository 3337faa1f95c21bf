"""The stream log's two uses of pydantic instance state (``rxchat/_log/_models.py``), checked
against pydantic itself: an upgrade that changes either fails here."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import rxchat
from rxchat._log._codec import ChunkEntry, encode_chunk, encode_chunks, load_chunks
from rxchat._log._models import as_logged, plain

CHUNKS: list[dict[str, Any]] = [
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "system_fingerprint": "fp", "choices": [{"index": 0, "delta": {"role": "assistant",
     "content": "", "refusal": None}, "logprobs": None, "finish_reason": None}]},
    {"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "a\nb \"q\" \u2028"}, "finish_reason": None}]},
    {"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        "finish_reason": None}]},
    {"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "x"},
     "logprobs": {"content": [{"token": "x", "logprob": -0.5, "bytes": [120],
     "top_logprobs": [{"token": "x", "logprob": -0.5, "bytes": [120]}]}], "refusal": None},
     "finish_reason": None}]},
    {"id": "c1", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3,
     "completion_tokens": 4, "total_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 1}}},
    {"id": "c1", "created": 1, "model": "m", "provider_extra": {"k": [1, 2]}, "choices": [
        {"index": 0, "delta": {"reasoning_content": "think", "weird": 1}, "finish_reason": "stop"}]},
]  # fmt: skip


@pytest.mark.parametrize("data", CHUNKS)
def test_plain_encoding_is_pydantic_exclude_unset(data: dict[str, Any]) -> None:
    chunk = rxchat.ChatCompletionChunk.from_wire(dict(data))
    assert orjson.loads(encode_chunk(chunk)) == chunk.model_dump(mode="json", exclude_unset=True)
    assert orjson.loads(encode_chunk(chunk)) == orjson.loads(orjson.dumps(data))
    assert b"\n" not in encode_chunk(chunk)  # the entry format relies on it


def test_plain_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="cannot log"):
        plain(object())


def test_read_back_chunks_are_the_same_models_with_positions() -> None:
    chunks = [rxchat.ChatCompletionChunk.from_wire(dict(d)) for d in CHUNKS]
    fields = encode_chunks(5, [encode_chunk(c).decode() for c in chunks])
    entry = ChunkEntry(5, 5 + len(chunks) - 1, fields[b"d"])
    back = list(load_chunks(entry, "s1", 0))
    assert [c.position for c in back] == list(range(5, 5 + len(chunks)))
    for original, logged in zip(chunks, back, strict=True):
        assert isinstance(logged, rxchat.LoggedChunk)
        assert isinstance(logged, rxchat.ChatCompletionChunk)
        assert logged.stream_id == "s1"
        assert logged.to_dict() == original.to_dict()
        assert logged.model_fields_set == original.model_fields_set
        assert logged.__pydantic_extra__ == original.__pydantic_extra__
        assert logged.model_copy().position == logged.position
    # Resuming inside an entry skips what was seen.
    assert [c.position for c in load_chunks(entry, "s1", 7)] == list(range(8, 5 + len(chunks)))


def test_as_logged_keeps_the_object_and_its_fields() -> None:
    chunk = rxchat.ChatCompletionChunk.from_wire(dict(CHUNKS[1]))
    before = chunk.to_dict()
    logged = as_logged(chunk, 42, "abc")
    assert logged is chunk and type(logged) is rxchat.LoggedChunk
    assert (logged.position, logged.stream_id, logged.to_dict()) == (42, "abc", before)
    assert "_position" not in logged.to_json()
