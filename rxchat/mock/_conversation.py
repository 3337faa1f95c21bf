"""The conversation of a request: validated as the OpenAI API does, then read for the answer.

OpenAI rejects a malformed conversation with a 400 before any token is generated; the mock
does the same, with the API's messages and ``param`` spellings (schema checks say
``messages[2].content``, the conversation checks ``messages.[2].role``, as the API does).
What the mock reads from a valid conversation: a digest of all of it (so the answer depends
on the whole conversation), the text of the last user message, how many tool-calling rounds
the assistant made since then, and the tool results that end the conversation, if any.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Conversation", "ToolResult", "read_conversation"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLE_LIST = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"
_RESULT_CHARS = 400  # a tool result is quoted up to this length in the answer


class ConversationError(Exception):
    """A message the API would reject (turned into ``RequestError`` by the plan)."""

    def __init__(self, message: str, param: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One ``tool`` message of the last round: the call it answers and its content as text."""

    call_id: str
    name: str
    content: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the answer depends on."""

    messages: list[dict[str, Any]]
    digest: bytes
    last_user: str
    tool_rounds: int
    results: tuple[ToolResult, ...]


def message_text(content: Any) -> str:
    """The text of a message's ``content`` (a string, or the text parts of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _missing(param: str) -> ConversationError:
    return ConversationError(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _invalid_type(param: str, expected: str, value: Any) -> ConversationError:
    got = "null" if value is None else type(value).__name__
    if isinstance(value, bool):
        got = "boolean"
    elif isinstance(value, int | float):
        got = "number"
    elif isinstance(value, dict):
        got = "object"
    elif isinstance(value, list):
        got = "array"
    return ConversationError(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param,
        "invalid_type",
    )


def _check_parts(parts: list[Any], param: str, allowed: tuple[str, ...]) -> None:
    if not parts:
        raise ConversationError(
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param,
            "empty_array",
        )
    for j, part in enumerate(parts):
        p = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(p, "an object", part)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{p}.type")
        if kind not in allowed:
            listed = ", ".join(f"'{a}'" for a in allowed)
            raise ConversationError(
                f"Invalid value: '{kind}'. Supported values are: {listed}.",
                f"{p}.type",
                "invalid_value",
            )
        if kind in ("text", "refusal"):
            field = kind
            if field not in part:
                raise _missing(f"{p}.{field}")
            if not isinstance(part[field], str):
                raise _invalid_type(f"{p}.{field}", "a string", part[field])


_PARTS = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}


def _check_content(m: dict[str, Any], i: int, role: str) -> None:
    param = f"messages[{i}].content"
    may_be_null = role == "assistant" and (
        m.get("tool_calls") is not None or m.get("function_call") is not None
    )
    if "content" not in m:
        if may_be_null:
            return
        raise _missing(param)
    content = m["content"]
    if content is None:
        if may_be_null:
            return
        if role == "assistant":
            raise ConversationError(
                "Invalid value for 'content': expected a string, got null.",
                f"messages.[{i}].content",
            )
        raise _invalid_type(param, "one of a string or array of objects", None)
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(param, "one of a string or array of objects", content)
    _check_parts(content, param, _PARTS.get(role, ("text",)))


def _check_tool_calls(calls: Any, i: int) -> list[tuple[str, str]]:
    param = f"messages[{i}].tool_calls"
    if not isinstance(calls, list):
        raise _invalid_type(param, "an array", calls)
    if not calls:
        raise ConversationError(
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param,
            "empty_array",
        )
    out = []
    for j, call in enumerate(calls):
        p = f"{param}[{j}]"
        if not isinstance(call, dict):
            raise _invalid_type(p, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                raise _missing(f"{p}.{key}")
        if not isinstance(call["id"], str):
            raise _invalid_type(f"{p}.id", "a string", call["id"])
        if call["type"] != "function":
            raise ConversationError(
                f"Invalid value: '{call['type']}'. Supported values are: 'function'.",
                f"{p}.type",
                "invalid_value",
            )
        fn = call["function"]
        if not isinstance(fn, dict):
            raise _invalid_type(f"{p}.function", "an object", fn)
        for key in ("name", "arguments"):
            if key not in fn:
                raise _missing(f"{p}.function.{key}")
            if not isinstance(fn[key], str):
                raise _invalid_type(f"{p}.function.{key}", "a string", fn[key])
        out.append((call["id"], fn["name"]))
    return out


def _unanswered(pending: dict[str, str], at: int) -> ConversationError:
    ids = ", ".join(pending)
    return ConversationError(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: {ids}",
        f"messages.[{at}].role",
    )


def read_conversation(messages: Any, *, model: str, seed: Any) -> Conversation:
    """Validate ``messages`` as the OpenAI API does and read what the answer depends on.

    Raises:
        ConversationError: the first problem, in message order.
    """
    if not isinstance(messages, list) or not messages:
        raise ConversationError(
            "Invalid 'messages': expected a non-empty array of message objects.", "messages"
        )
    pending: dict[str, str] = {}  # call id -> function name, of the open tool-calls group
    group_at = -1  # index of the assistant message that opened the group
    last_user = ""
    rounds = 0
    results: list[ToolResult] = []
    h = hashlib.sha256()
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ConversationError(
                f"Invalid 'messages[{i}]': expected an object.", f"messages[{i}]"
            )
        if "role" not in m:
            raise _missing(f"messages[{i}].role")
        role = m["role"]
        if role not in ROLES:
            raise ConversationError(
                f"Invalid value: {role!r}. Supported values are: {_ROLE_LIST}.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if "name" in m and m["name"] is not None and not isinstance(m["name"], str):
            raise _invalid_type(f"messages[{i}].name", "a string", m["name"])
        if role != "tool" and pending:
            raise _unanswered(pending, group_at)
        _check_content(m, i, role)
        if role == "tool":
            if "tool_call_id" not in m:
                raise _missing(f"messages[{i}].tool_call_id")
            call_id = m["tool_call_id"]
            if not isinstance(call_id, str):
                raise _invalid_type(f"messages[{i}].tool_call_id", "a string", call_id)
            if group_at < 0:
                raise ConversationError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",  # sic: the API's spelling
                    f"messages.[{i}].role",
                )
            if call_id not in pending:
                raise ConversationError(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                )
            name = pending.pop(call_id)
            results.append(ToolResult(call_id, name, message_text(m.get("content"))))
        else:
            group_at = -1
            results = []
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = _check_tool_calls(m["tool_calls"], i)
            pending = dict(calls)
            group_at = i
            rounds += 1
        elif role == "user":
            last_user = message_text(m.get("content"))
            rounds = 0
        h.update(
            orjson.dumps(
                [role, m.get("content"), m.get("tool_calls"), m.get("tool_call_id")],
                option=orjson.OPT_SORT_KEYS,
            )
        )
        h.update(b"\x00")
    if pending:
        raise _unanswered(pending, group_at)
    h.update(str(seed).encode() + b"\x00" + model.encode())
    return Conversation(list(messages), h.digest(), last_user, rounds, tuple(results))


def answer_from_results(results: tuple[ToolResult, ...]) -> str:
    """The text answer after tool results: it quotes each result (deterministic, assertable)."""
    parts = []
    for r in results:
        text = " ".join(r.content.split())
        if len(text) > _RESULT_CHARS:
            text = text[: _RESULT_CHARS - 1] + "…"
        parts.append(f"{r.name} returned {text or '(nothing)'}")
    return "Based on the tool results: " + "; ".join(parts) + "."
