"""Helpers of the end-to-end suite: the target server, a plain reading of its wire, the oracle."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from llama_server import LlamaServer

import rxchat

T = TypeVar("T")

FINDINGS: list[str] = []
"""Facts about the server seen during the run, printed in the summary (and kept for the report)."""


def note(line: str) -> None:
    if line not in FINDINGS:
        FINDINGS.append(line)


@dataclass(frozen=True)
class Target:
    base_url: str  # the API root, ".../v1"
    model: str
    api_key: str | None
    llama: LlamaServer | None  # the llama-server this session started, else None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# Short prompts with small token limits keep each request to a second or two on 2 CPU cores.
# temperature 0 makes llama.cpp sample greedily, so the same request gives the same answer and
# rxchat's reading of one request can be compared with the reference reading of another.
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}


def finished(get: Callable[[], T]) -> T:
    """``get()``, or the completion a ``LengthFinishReasonError`` carries: the answers here are
    cut by small ``max_tokens`` on purpose, and ``get_final_completion()`` raises on a length
    finish as the openai SDK's does."""
    try:
        return get()
    except rxchat.LengthFinishReasonError as err:
        assert err.completion is not None
        return err.completion  # type: ignore[return-value]


async def afinished(awaitable: Awaitable[T]) -> T:
    """The async :func:`finished`."""
    try:
        return await awaitable
    except rxchat.LengthFinishReasonError as err:
        assert err.completion is not None
        return err.completion  # type: ignore[return-value]


def raw_stream(target: Target, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST ``body`` with ``stream: true`` and return every ``data:`` payload as JSON, in order
    (``[DONE]`` as the string ``"[DONE]"``): the wire as the server sent it, read plainly."""
    payloads: list[dict[str, Any]] = []
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST",
            f"{target.base_url}/chat/completions",
            json={"model": target.model, **body, "stream": True},
            headers=target.headers,
        ) as response,
    ):
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
                payloads.append("[DONE]" if data == "[DONE]" else json.loads(data))  # type: ignore[arg-type]
    return payloads


def raw_text(payloads: list[Any], choice: int = 0, field: str = "content") -> str:
    """The concatenated ``delta.<field>`` of one choice in raw payloads."""
    parts: list[str] = []
    for payload in payloads:
        if not isinstance(payload, dict):
            continue
        for c in payload.get("choices") or []:
            if c.get("index", 0) == choice:
                value = (c.get("delta") or {}).get(field)
                if isinstance(value, str):
                    parts.append(value)
    return "".join(parts)


def raw_finish(payloads: list[Any], choice: int = 0) -> str | None:
    reason = None
    for payload in payloads:
        if isinstance(payload, dict):
            for c in payload.get("choices") or []:
                if c.get("index", 0) == choice and c.get("finish_reason"):
                    reason = c["finish_reason"]
    return reason


def wait_idle(llama: LlamaServer, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Poll ``/slots`` until no slot is processing; return the slots (raises after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        slots: list[dict[str, Any]] = llama.get_json("/slots")
        if not any(slot.get("is_processing") for slot in slots):
            return slots
        if time.monotonic() > deadline:
            raise AssertionError(f"llama-server still processing after {timeout} s: {slots}")
        time.sleep(0.05)


def wait_busy(llama: LlamaServer, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Poll ``/slots`` until a slot is processing."""
    deadline = time.monotonic() + timeout
    while True:
        slots: list[dict[str, Any]] = llama.get_json("/slots")
        if any(slot.get("is_processing") for slot in slots):
            return slots
        if time.monotonic() > deadline:
            raise AssertionError(f"llama-server never started processing in {timeout} s")
        time.sleep(0.02)
