"""Edgee-style input and responses: ``client.stream(model, input)`` / ``client.send(model, input)``.

``input`` is a ``str`` (one user message), an :class:`InputObject`, or a ``dict`` with the same
keys. :class:`SendResponse` has the Edgee SDK's shortcuts (``.text``, ``.message``,
``.finish_reason``, ``.tool_calls``, ``.usage``) over the full :class:`~rxchat.types.ChatCompletion`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .types import ChatCompletion, CompletionUsage

__all__ = ["Choice", "Compression", "InputObject", "SendResponse", "edgee_request"]

# Per-request toggles of the Edgee gateway, sent as headers (ignored by other servers).
_COMPRESSION_HEADERS = {
    "tool_result_trimming": "X-Edgee-Compression-Tool-Result-Trimming",
    "tool_surface_reduction": "X-Edgee-Compression-Tool-Surface-Reduction",
    "output_brevity": "X-Edgee-Compression-Brevity",
}


@dataclass
class InputObject:
    """A structured Edgee-style input.

    Attributes:
        messages: the conversation, OpenAI message dicts (``{"role": ..., "content": ...}``).
        tools: function tools (``{"type": "function", "function": {...}}``), or ``None``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", ...}``.
        tags: labels for the Edgee gateway's analytics (sent in the body as ``tags``).
        tool_result_trimming: Edgee gateway compression toggle (a header); ``None`` leaves it.
        tool_surface_reduction: Edgee gateway compression toggle (a header).
        output_brevity: Edgee gateway compression toggle (a header).

    Example:
        >>> InputObject(messages=[{"role": "user", "content": "Hi"}]).messages[0]["role"]
        'user'
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tags: list[str] | None = None
    tool_result_trimming: bool | None = None
    tool_surface_reduction: bool | None = None
    output_brevity: bool | None = None


_INPUT_KEYS = tuple(f.name for f in dataclasses.fields(InputObject))


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise TypeError(
            f"input messages must be a list of message dicts, got {type(messages).__name__}"
        )
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(
                f"input messages[{i}] must be a dict like "
                f"{{'role': 'user', 'content': '...'}}, got {type(message).__name__}"
            )
        if "role" not in message:
            raise ValueError(f"input messages[{i}] has no 'role'")
        out.append(dict(message))
    if not out:
        raise ValueError("input messages must not be empty")
    return out


def edgee_request(
    input: str | InputObject | Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn an Edgee-style input into request-body fields and extra headers.

    Args:
        input: a ``str`` (one user message), an :class:`InputObject` or a mapping with the
            fields of :class:`InputObject`.

    Returns:
        ``(body_fields, headers)``: ``body_fields`` has ``messages`` and, when given,
        ``tools``, ``tool_choice``, ``tags``.

    Raises:
        TypeError: ``input`` or one of its fields has the wrong type.
        ValueError: an unknown key in a dict input, no ``messages``, or a message without a role.

    Example:
        >>> edgee_request("Hello")
        ({'messages': [{'role': 'user', 'content': 'Hello'}]}, {})
    """
    if isinstance(input, str):
        return {"messages": [{"role": "user", "content": input}]}, {}
    if isinstance(input, InputObject):
        values = {name: getattr(input, name) for name in _INPUT_KEYS}
    elif isinstance(input, Mapping):
        unknown = [k for k in input if k not in _INPUT_KEYS]
        if unknown:
            raise ValueError(
                f"unknown input key(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(_INPUT_KEYS)}"
            )
        if "messages" not in input:
            raise ValueError("a dict input needs 'messages'")
        values = {name: input.get(name) for name in _INPUT_KEYS}
    else:
        raise TypeError(
            f"input must be a str, an rxchat.InputObject or a dict, got {type(input).__name__}"
        )
    body: dict[str, Any] = {"messages": _check_messages(values["messages"])}
    tools = values["tools"]
    if tools is not None:
        if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
            raise TypeError(f"input tools must be a list of tool dicts, got {type(tools).__name__}")
        if tools:
            body["tools"] = list(tools)
    tool_choice = values["tool_choice"]
    if tool_choice is not None:
        if not isinstance(tool_choice, str | Mapping):
            raise TypeError(
                f"input tool_choice must be a str or a dict, got {type(tool_choice).__name__}"
            )
        body["tool_choice"] = tool_choice
    tags = values["tags"]
    if tags is not None:
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise TypeError("input tags must be a list of str")
        if tags:
            body["tags"] = list(tags)
    headers: dict[str, str] = {}
    for name, header in _COMPRESSION_HEADERS.items():
        value = values[name]
        if value is None:
            continue
        if not isinstance(value, bool):
            raise TypeError(f"input {name} must be a bool or None, got {type(value).__name__}")
        headers[header] = "true" if value else "false"
    return body, headers


@dataclass(frozen=True)
class Choice:
    """One choice of a :class:`SendResponse`; ``message`` is a plain dict, as in the Edgee SDK."""

    index: int
    message: dict[str, Any]
    finish_reason: str | None


@dataclass(frozen=True)
class Compression:
    """The Edgee gateway's compression report, when the server sends one."""

    saved_tokens: int
    cost_savings: int
    reduction: int
    time_ms: int


@dataclass(frozen=True)
class SendResponse:
    """The answer of ``client.send(model, input)`` without streaming.

    Attributes:
        choices: every choice, with ``message`` as a dict.
        usage: token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
        compression: the Edgee gateway's compression report, or ``None``.
        completion: the full :class:`~rxchat.types.ChatCompletion` the shortcuts read from.

    Example:
        >>> response = client.send("gpt-4o", "What is the capital of France?")  # doctest: +SKIP
        >>> response.text, response.finish_reason  # doctest: +SKIP
        ('Paris.', 'stop')
    """

    choices: list[Choice]
    usage: CompletionUsage | None = None
    compression: Compression | None = None
    completion: ChatCompletion | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_completion(cls, completion: ChatCompletion) -> SendResponse:
        """Build the response from a chat completion."""
        choices = [
            Choice(
                index=c.index,
                message=c.message.to_dict(),
                finish_reason=c.finish_reason,
            )
            for c in completion.choices
        ]
        compression = None
        raw = (completion.model_extra or {}).get("compression")
        if isinstance(raw, Mapping):
            try:
                compression = Compression(
                    saved_tokens=int(raw["saved_tokens"]),
                    cost_savings=int(raw["cost_savings"]),
                    reduction=int(raw["reduction"]),
                    time_ms=int(raw["time_ms"]),
                )
            except (KeyError, TypeError, ValueError):
                compression = None  # a malformed report is kept raw on .completion
        return cls(
            choices=choices, usage=completion.usage, compression=compression, completion=completion
        )

    @property
    def text(self) -> str | None:
        """Content of the first choice (``None`` when empty or absent)."""
        if self.choices:
            content = self.choices[0].message.get("content")
            if content:
                return str(content)
        return None

    @property
    def message(self) -> dict[str, Any] | None:
        """Message dict of the first choice."""
        return self.choices[0].message if self.choices else None

    @property
    def finish_reason(self) -> str | None:
        """Finish reason of the first choice."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """Tool calls of the first choice, as dicts (``None`` when there are none)."""
        if self.choices:
            calls = self.choices[0].message.get("tool_calls")
            if calls:
                return list(calls)
        return None
