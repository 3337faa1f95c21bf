"""Chunk payloads as servers send them, byte for byte (spaces, key order, fields rxchat does not
know), and the SSE body that carries them: for tests of what rxchat keeps of the wire."""

from __future__ import annotations

__all__ = ["A", "B", "C", "sse"]

A = '{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}, "finish_reason": null}]}'
B = '{"choices":[{"delta":{"content":"llo"},"index":0,"finish_reason":null}],"x_vendor":{"k":[1,2]},"id":"c1"}'
C = '{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


def sse(*payloads: str) -> bytes:
    """``data:`` events of ``payloads``, each ended by a blank line."""
    return b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)
