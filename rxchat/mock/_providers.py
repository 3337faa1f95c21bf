"""Provider wire shapes: the mock's answer reshaped the way another OpenAI-compatible server sends it.

Selected per request with the ``shape`` option (``model="mock?shape=azure"``, ``X-Mock-Shape:
gemini`` or ``fault=shape:vllm``; several comma-separated). Each shape follows the provider's
documented wire format:

``azure``
    Azure OpenAI's content filtering: a first frame with ``"object": ""``, no choices and the
    ``prompt_filter_results``; ``content_filter_results`` on every choice that carries output;
    and, after the finish chunks (the asynchronous filter), one chunk per choice whose choice has
    no ``delta``, only ``content_filter_offsets`` and ``content_filter_results``. Non-streamed:
    ``prompt_filter_results`` and per-choice ``content_filter_results``.
``gemini``
    Gemini's OpenAI-compatible endpoint: the first tool call of an answer carries
    ``"extra_content": {"google": {"thought_signature": "..."}}``, which must be sent back with
    the call on the next turn.
``vllm``
    vLLM's reasoning parsers: reasoning in ``delta.reasoning`` (``message.reasoning``) instead of
    ``reasoning_content``.
``openrouter``
    OpenRouter: reasoning in ``delta.reasoning`` plus ``reasoning_details`` entries
    (``{"type": "reasoning.text", "text", "index", "format"}``), and ``provider`` on every chunk.
``usage_details``
    ``usage`` with OpenAI's ``prompt_tokens_details`` (``cached_tokens``, ``audio_tokens``) and
    the whole ``completion_tokens_details``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

__all__ = ["SHAPES", "reshape_body", "reshape_frames"]

SHAPES = ("azure", "gemini", "vllm", "openrouter", "usage_details")

_SAFE = {"filtered": False, "severity": "safe"}
_FILTER_RESULTS = {
    "hate": _SAFE,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}
_PROMPT_FILTER_RESULTS = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            **_FILTER_RESULTS,
            "jailbreak": {"filtered": False, "detected": False},
        },
    }
]


def thought_signature(plan_id: str, call_id: str) -> str:
    """The deterministic stand-in for Gemini's opaque signature of a call."""
    digest = hashlib.sha256(f"{plan_id}/{call_id}".encode()).digest()
    return base64.b64encode(digest * 2).decode()


def _frame(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _usage_details(usage: dict[str, Any]) -> dict[str, Any]:
    details = dict(usage.get("completion_tokens_details") or {})
    details.setdefault("reasoning_tokens", 0)
    details.update(audio_tokens=0, accepted_prediction_tokens=0, rejected_prediction_tokens=0)
    prompt = int(usage.get("prompt_tokens", 0))
    return {
        **usage,
        "completion_tokens_details": details,
        "prompt_tokens_details": {"cached_tokens": prompt // 2, "audio_tokens": 0},
    }


def _reasoning_to(message: dict[str, Any], shape: str, first: bool) -> None:
    text = message.pop("reasoning_content", None)
    if text is None:
        return
    message["reasoning"] = text
    if shape == "openrouter":
        detail: dict[str, Any] = {"type": "reasoning.text", "text": text, "index": 0}
        if first:
            detail["format"] = "unknown"
        message["reasoning_details"] = [detail]


class _Reshaper:
    """Per-response state: which choices emitted output (for Azure's offsets), signed calls."""

    def __init__(self, shapes: tuple[str, ...], plan_id: str) -> None:
        self.shapes = shapes
        self.plan_id = plan_id
        self.chars: dict[int, int] = {}  # choice index -> output characters so far (Azure)
        self.signed = False  # Gemini signs the first call of the answer
        self.flushed = False
        self.reasoned: set[int] = set()  # choices whose reasoning started (OpenRouter)

    def chunk(self, body: dict[str, Any]) -> dict[str, Any]:
        shapes = self.shapes
        for choice in body.get("choices") or ():
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if "vllm" in shapes or "openrouter" in shapes:
                index = choice.get("index", 0)
                _reasoning_to(
                    delta,
                    "openrouter" if "openrouter" in shapes else "vllm",
                    index not in self.reasoned,
                )
                if "reasoning" in delta:
                    self.reasoned.add(index)
            if "gemini" in shapes and not self.signed:
                for call in delta.get("tool_calls") or ():
                    if call.get("id"):
                        call["extra_content"] = {
                            "google": {
                                "thought_signature": thought_signature(self.plan_id, call["id"])
                            }
                        }
                        self.signed = True
                        break
            if "azure" in shapes:
                index = choice.get("index", 0)
                text = (delta.get("content") or "") + (delta.get("refusal") or "")
                self.chars[index] = self.chars.get(index, 0) + len(text)
                choice["content_filter_results"] = _FILTER_RESULTS if text else {}
        if "openrouter" in shapes:
            body["provider"] = "Mock"
        if "usage_details" in shapes and isinstance(body.get("usage"), dict):
            body["usage"] = _usage_details(body["usage"])
        return body

    def filter_chunks(self, head: dict[str, Any]) -> Iterator[bytes]:
        """Azure's asynchronous-filter verdicts: a choice without ``delta`` per choice."""
        self.flushed = True
        for index, chars in sorted(self.chars.items()):
            yield _frame(
                {
                    "choices": [
                        {
                            "index": index,
                            "finish_reason": None,
                            "content_filter_offsets": {
                                "check_offset": 0,
                                "start_offset": 0,
                                "end_offset": chars,
                            },
                            "content_filter_results": _FILTER_RESULTS,
                        }
                    ],
                    "created": head.get("created", 0),
                    "id": head.get("id", ""),
                    "model": head.get("model", ""),
                    "object": "chat.completion.chunk",
                    "system_fingerprint": head.get("system_fingerprint"),
                }
            )


def reshape_frames(
    shapes: tuple[str, ...], plan_id: str, frames: Iterable[bytes]
) -> Iterator[bytes]:
    """The ``data:`` chunk frames of one answer, reshaped (``[DONE]`` is not among them)."""
    reshaper = _Reshaper(shapes, plan_id)
    azure = "azure" in shapes
    if azure:
        yield _frame(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": _PROMPT_FILTER_RESULTS,
            }
        )
    head: dict[str, Any] = {}
    finished: set[int] = set()
    for frame in frames:
        body = orjson.loads(frame[6:])
        choices = body.get("choices") or []
        if azure and not choices and not reshaper.flushed:
            # the usage chunk: the filter verdicts come before it
            yield from reshaper.filter_chunks(head)
        head = body
        yield _frame(reshaper.chunk(body))
        for choice in choices:
            if choice.get("finish_reason") is not None:
                finished.add(choice.get("index", 0))
    if azure and not reshaper.flushed and finished:
        yield from reshaper.filter_chunks(head)


def reshape_body(shapes: tuple[str, ...], body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` reshaped."""
    plan_id = str(body.get("id", ""))
    for position, choice in enumerate(body.get("choices") or ()):
        message = choice.get("message") or {}
        if "vllm" in shapes or "openrouter" in shapes:
            _reasoning_to(message, "openrouter" if "openrouter" in shapes else "vllm", True)
        if "gemini" in shapes and position == 0:
            calls = message.get("tool_calls") or []
            if calls:
                calls[0]["extra_content"] = {
                    "google": {"thought_signature": thought_signature(plan_id, calls[0]["id"])}
                }
        if "azure" in shapes:
            choice["content_filter_results"] = _FILTER_RESULTS
    if "azure" in shapes:
        body["prompt_filter_results"] = _PROMPT_FILTER_RESULTS
    if "openrouter" in shapes:
        body["provider"] = "Mock"
    if "usage_details" in shapes and isinstance(body.get("usage"), dict):
        body["usage"] = _usage_details(body["usage"])
    return body
