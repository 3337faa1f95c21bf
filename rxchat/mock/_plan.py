"""Request validation and the deterministic answer plan (what each choice will say).

A plan is independent of the wire: the streaming writer turns it into chunks and the
non-streaming handler into one ``chat.completion``; both say exactly the same thing.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._conversation import (
    Conversation,
    ConversationError,
    answer_from_results,
    message_text,
    read_conversation,
)
from ._options import MockOptions
from ._schema import SchemaError, generate_instance

__all__ = ["ChoicePlan", "Plan", "RequestError", "ToolCallPlan", "build_plan", "logprob_entry"]

CREATED = 1_727_346_168
SYSTEM_FINGERPRINT = "fp_rxchat_mock"

_WORDS = (
    "stream", "token", "river", "signal", "event", "chunk", "observer", "lantern", "harbor",
    "reactive", "quiet", "bright", "amber", "meadow", "orbit", "pebble", "summit", "tidal",
    "willow", "cobalt", "ember", "falcon", "granite", "velvet", "answer", "future", "steady",
    "gentle", "rapid", "clear", "north", "morning", "thread", "window", "garden", "bridge",
    "flows", "carries", "returns", "becomes", "holds", "meets", "follows", "shapes",
    "the", "a", "of", "and", "to", "in", "with", "over",
)  # fmt: skip
_SPACED = (*(" " + w for w in _WORDS), ",", ",", ".", ".")
_REASONING_WORDS = (
    "consider", "the", "question", "first", "then", "check", "each", "step", "carefully",
    "so", "that", "answer", "is", "consistent", "and", "short", "maybe", "compare", "options",
)  # fmt: skip
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
_REFUSAL_TRIGGER = re.compile(r"\banthrax\b", re.IGNORECASE)
_WORD_TOKENS = re.compile(r"\s*\S+")
_JSON_TOKENS = re.compile(r"[A-Za-z0-9_]{1,6}|\s+|[^A-Za-z0-9_\s]{1,3}")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class RequestError(Exception):
    """A request the mock rejects with an OpenAI-style error body."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int = 400,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code
        self.type = type_


@dataclass(slots=True)
class ToolCallPlan:
    """One tool call of a choice: its id, function name and argument fragments."""

    id: str
    name: str
    pieces: list[str]


@dataclass(slots=True)
class ChoicePlan:
    """What one choice says: reasoning, then content, refusal or tool calls."""

    index: int
    mode: str  # "content" | "refusal" | "tools"
    reasoning: list[str]
    pieces: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str

    @property
    def text(self) -> str:
        """The full content (or refusal) text."""
        return "".join(self.pieces)

    @property
    def token_count(self) -> int:
        """Completion tokens this choice costs (one per streamed piece)."""
        return len(self.reasoning) + len(self.pieces) + sum(len(t.pieces) for t in self.tool_calls)


@dataclass(slots=True)
class Plan:
    """The whole answer to one request."""

    id: str
    model: str
    choices: list[ChoicePlan]
    logprobs: bool
    top_logprobs: int
    include_usage: bool
    stream: bool
    prompt_tokens: int
    options: MockOptions
    counter_key: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        """Sum of completion tokens over the choices."""
        return sum(c.token_count for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        """Sum of reasoning tokens over the choices."""
        return sum(len(c.reasoning) for c in self.choices)

    def usage(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object."""
        completion = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


def _digest(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\x00")
    return h.digest()


def _alnum(digest: bytes, n: int) -> str:
    value = int.from_bytes(digest, "big")
    out = []
    for _ in range(n):
        value, r = divmod(value, 62)
        out.append(_ALNUM[r])
    return "".join(out)


def _require(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise RequestError(message, param=param)


def _int_param(body: dict[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    if ok and hi is not None:
        ok = value <= hi
    bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
    _require(ok, f"Invalid '{name}': expected an integer {bound}, got {value!r}.", name)
    return int(value)


def _read_conversation(body: dict[str, Any], model: str) -> Conversation:
    _require("messages" in body, "Missing required parameter: 'messages'.", "messages")
    try:
        return read_conversation(body["messages"], model=model, seed=body.get("seed"))
    except ConversationError as err:
        raise RequestError(err.message, param=err.param, code=err.code) from None


def _validate_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if tools is None:
        return []
    _require(isinstance(tools, list), "Invalid 'tools': expected an array.", "tools")
    out = []
    for i, t in enumerate(tools):
        param = f"tools[{i}]"
        _require(
            isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("function"), dict),
            f"Invalid '{param}': expected {{'type': 'function', 'function': {{...}}}}.",
            param,
        )
        fn = t["function"]
        name = fn.get("name")
        _require(
            isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) is not None,
            f"Invalid '{param}.function.name': expected 1-64 letters, digits, '_' or '-'.",
            f"{param}.function.name",
        )
        params = fn.get("parameters", {"type": "object", "properties": {}})
        _require(
            isinstance(params, dict),
            f"Invalid '{param}.function.parameters': expected a JSON schema object.",
            f"{param}.function.parameters",
        )
        out.append(fn)
    return out


def _select_tools(
    body: dict[str, Any], tools: list[dict[str, Any]], opts: MockOptions, conv: Conversation
) -> list[dict[str, Any]]:
    """The tools the answer calls (none: a text answer).

    ``auto`` (or no ``tool_choice``): the first ``parallel_tools`` tools, rotated by one per
    tool round since the last user message, for ``tool_turns`` rounds; after that the
    answer is text. ``required`` and a named function always call, as the API forces them.
    """
    choice = body.get("tool_choice")
    if not tools:
        _require(
            choice is None or choice == "none",
            "Invalid 'tool_choice': only allowed when 'tools' are specified.",
            "tool_choice",
        )
        return []
    if choice == "none":
        return []
    if choice is None or choice in ("auto", "required"):
        if choice != "required" and conv.tool_rounds >= opts.tool_turns:
            return []
        k = opts.parallel_tools if body.get("parallel_tool_calls", True) is not False else 1
        start = conv.tool_rounds % len(tools)
        return [tools[(start + j) % len(tools)] for j in range(min(k, len(tools)))]
    if isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        for t in tools:
            if t["name"] == name:
                return [t]
        raise RequestError(
            f"Invalid 'tool_choice': no tool named {name!r} in 'tools'.", param="tool_choice"
        )
    raise RequestError(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
    )


def _response_format(body: dict[str, Any]) -> tuple[str, Any]:
    rf = body.get("response_format")
    if rf is None:
        return "text", None
    _require(
        isinstance(rf, dict), "Invalid 'response_format': expected an object.", "response_format"
    )
    kind = rf.get("type")
    if kind == "text":
        return "text", None
    if kind == "json_object":
        return "json_object", None
    if kind == "json_schema":
        js = rf.get("json_schema")
        _require(
            isinstance(js, dict),
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
        )
        _require(
            isinstance(js.get("name"), str) and bool(js.get("name")),
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
        )
        schema = js.get("schema", {})
        _require(
            isinstance(schema, dict),
            "Invalid 'response_format.json_schema.schema': expected an object.",
            "response_format.json_schema.schema",
        )
        return "json_schema", schema
    raise RequestError(
        f"Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema', got {kind!r}.",
        param="response_format.type",
    )


def _json_pieces(text: str) -> list[str]:
    return _JSON_TOKENS.findall(text)


def _text_tokens(rng: random.Random, n: int) -> list[str]:
    if n <= 0:
        return []
    first = rng.choice(_WORDS).capitalize()
    return [first, *rng.choices(_SPACED, k=n - 1)]


def _schema_json(schema: Any, seed: int, param: str) -> str:
    try:
        value = generate_instance(schema, seed)
    except (SchemaError, TypeError, ValueError, KeyError) as err:
        raise RequestError(f"Invalid schema for '{param}': {err}", param=param) from None
    return orjson.dumps(value).decode()


def build_plan(body: Any, opts: MockOptions, *, model_name: str) -> Plan:
    """Validate a ``/v1/chat/completions`` body and decide the answer.

    Args:
        body: the parsed JSON body.
        opts: the per-request mock options.
        model_name: the model name without its ``?`` suffix (echoed in responses).

    Returns:
        The plan.

    Raises:
        RequestError: the body is not a valid request.
    """
    conv = _read_conversation(body, model_name)
    messages = conv.messages
    stream = body.get("stream", False)
    _require(isinstance(stream, bool), "Invalid 'stream': expected a boolean.", "stream")
    n = _int_param(body, "n", 1, 128) or 1
    max_tokens = _int_param(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int_param(body, "max_tokens", 1)
    logprobs = body.get("logprobs", False) or False
    _require(isinstance(logprobs, bool), "Invalid 'logprobs': expected a boolean.", "logprobs")
    top = _int_param(body, "top_logprobs", 0, 20)
    _require(
        top is None or logprobs,
        "Invalid 'top_logprobs': 'logprobs' must be true when 'top_logprobs' is set.",
        "top_logprobs",
    )
    so = body.get("stream_options")
    include_usage = False
    if so is not None:
        _require(
            stream,
            "Invalid 'stream_options': only allowed when 'stream' is true.",
            "stream_options",
        )
        _require(
            isinstance(so, dict), "Invalid 'stream_options': expected an object.", "stream_options"
        )
        iu = so.get("include_usage", False)
        _require(
            isinstance(iu, bool),
            "Invalid 'stream_options.include_usage': expected a boolean.",
            "stream_options.include_usage",
        )
        include_usage = iu
    seed = body.get("seed")
    _require(
        seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
        "Invalid 'seed': expected an integer.",
        "seed",
    )
    tools = _validate_tools(body)
    called = _select_tools(body, tools, opts, conv)
    fmt, schema = _response_format(body)

    last_user = conv.last_user
    base = conv.digest
    request_digest = _digest(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), repr(opts).encode())
    refusal = opts.refusal or _REFUSAL_TRIGGER.search(last_user) is not None

    prompt_tokens = 3
    for m in messages:
        prompt_tokens += 4 + len(message_text(m.get("content")).split())
    if tools:
        prompt_tokens += len(orjson.dumps(tools)) // 4

    choices: list[ChoicePlan] = []
    for i in range(n):
        seed_i = int.from_bytes(_digest(base, str(i).encode())[:8], "big")
        rng = random.Random(seed_i)
        reasoning = (
            ["Let", " me", *(" " + w for w in rng.choices(_REASONING_WORDS, k=opts.reasoning - 2))]
            if opts.reasoning >= 2
            else ["Hmm"] * opts.reasoning
        )
        tool_calls: list[ToolCallPlan] = []
        pieces: list[str] = []
        json_mode = False
        if refusal:
            mode = "refusal"
            pieces = _WORD_TOKENS.findall(REFUSAL_TEXT)
        elif called:
            mode = "tools"
            for k, fn in enumerate(called):
                params = fn.get("parameters", {"type": "object", "properties": {}})
                args = _schema_json(params, seed_i + k, f"tools.{fn['name']}.parameters")
                call_id = "call_" + _alnum(_digest(request_digest, f"{i}:{k}".encode()), 24)
                tool_calls.append(ToolCallPlan(call_id, fn["name"], _json_pieces(args)))
        else:
            mode = "content"
            if fmt == "json_schema":
                json_mode = True
                pieces = _json_pieces(
                    _schema_json(schema, seed_i, "response_format.json_schema.schema")
                )
            elif fmt == "json_object":
                json_mode = True
                words = (
                    _text_tokens(rng, opts.tokens)
                    if opts.text is None
                    else _WORD_TOKENS.findall(opts.text)
                )
                doc = {"answer": "".join(words), "tokens": len(words), "source": "rxchat-mock"}
                pieces = _json_pieces(orjson.dumps(doc).decode())
            elif opts.text is not None:
                pieces = _WORD_TOKENS.findall(opts.text)
            elif conv.results:
                pieces = _WORD_TOKENS.findall(answer_from_results(conv.results))
            else:
                pieces = _text_tokens(rng, opts.tokens)
        if opts.big_event is not None and i == 0:
            json_mode = json_mode or mode == "tools"
            filler = (
                " " * opts.big_event
                if json_mode
                else ("abcdefghij" * (opts.big_event // 10 + 1))[: opts.big_event]
            )
            if mode == "tools" and tool_calls:
                tool_calls[0].pieces.insert(0, filler)
            else:
                pieces.insert(0, filler)
        finish = "tool_calls" if mode == "tools" else "stop"
        if max_tokens is not None:
            budget = max_tokens
            if len(reasoning) >= budget:
                reasoning = reasoning[:budget]
                budget = 0
            else:
                budget -= len(reasoning)
            total = len(pieces) + sum(len(t.pieces) for t in tool_calls)
            if total > budget:
                finish = "length"
                pieces = pieces[:budget]
                budget -= len(pieces)
                kept: list[ToolCallPlan] = []
                for t in tool_calls:
                    if budget <= 0:
                        break
                    t.pieces = t.pieces[:budget]
                    budget -= len(t.pieces)
                    kept.append(t)
                tool_calls = kept
        choices.append(ChoicePlan(i, mode, reasoning, pieces, tool_calls, finish))

    return Plan(
        id="chatcmpl-" + _alnum(request_digest, 29),
        model=model_name,
        choices=choices,
        logprobs=logprobs,
        top_logprobs=top or 0,
        include_usage=include_usage,
        stream=stream,
        prompt_tokens=prompt_tokens,
        options=opts,
        counter_key=opts.key if opts.key is not None else str(body.get("model")),
    )


def logprob_entry(token: str, position: int, top: int) -> dict[str, Any]:
    """A deterministic ``ChatCompletionTokenLogprob`` for ``token`` at ``position``."""
    h = zlib.crc32(token.encode()) ^ (position * 2654435761 & 0xFFFFFFFF)
    lp = -round((h % 1_000_000) / 1_000_000 * 2.5, 6)
    alts = []
    if top > 0:
        alts.append({"token": token, "logprob": lp, "bytes": list(token.encode())})
        j = 0
        while len(alts) < top:
            alt = _SPACED[(h + j * 7) % len(_SPACED)]
            j += 1
            if any(a["token"] == alt for a in alts):
                continue
            alts.append(
                {
                    "token": alt,
                    "logprob": round(lp - 0.5 - len(alts), 6),
                    "bytes": list(alt.encode()),
                }
            )
    return {"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": alts}
