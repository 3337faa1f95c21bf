"""What one request may make the mock server generate is bounded (rxchat.mock._schema limits).

A schema that asks for a hundred million items used to occupy the server's event loop (and its
memory) for minutes, stalling every other client. Now it is a 400 in OpenAI's error shape that
names the limit, and other streams flow meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from rxchat.mock import MockServer, SchemaError, generate_instance
from rxchat.mock._options import MAX_BIG_EVENT, MAX_PARALLEL_TOOLS, MAX_TOKENS, MAX_TOOL_TURNS
from rxchat.mock._schema import MAX_STRING_LENGTH, MAX_TOTAL_CHARS, MAX_VALUES, matches

INTS = {"type": "integer"}
RECURSIVE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/node"}, "b": {"$ref": "#/$defs/node"}},
            "required": ["a", "b"],
        }
    },
    "$ref": "#/$defs/node",
}

# schema -> a phrase its 400 message must contain
HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "minItems_1e8": (
        {"type": "array", "minItems": 100_000_000, "items": INTS},
        "minItems 100000000",
    ),
    "nested_minItems": (
        {
            "type": "array",
            "minItems": 10_000,
            "items": {"type": "array", "minItems": 10_000, "items": INTS},
        },
        f"more than {MAX_VALUES} JSON values",
    ),
    "minLength": ({"type": "string", "minLength": 1_000_000_000}, "minLength 1000000000"),
    "many_long_strings": (
        {"type": "array", "minItems": 1000, "items": {"type": "string", "minLength": 90_000}},
        f"more than {MAX_TOTAL_CHARS} characters",
    ),
    "minProperties": ({"type": "object", "minProperties": 10**12}, "minProperties"),
    "wide_objects": (
        {
            "type": "object",
            "minProperties": 9_000,
            "additionalProperties": {"type": "object", "minProperties": 9_000},
        },
        f"more than {MAX_VALUES} JSON values",
    ),
    "recursion": (RECURSIVE, "recursion"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_generator_refuses_what_is_beyond_its_limits(name: str) -> None:
    schema, phrase = HOSTILE[name]
    with pytest.raises(SchemaError, match=phrase):
        generate_instance(schema, 0)


def test_within_the_limits_instances_still_validate() -> None:
    for schema in (
        {"type": "array", "minItems": MAX_VALUES // 2, "items": INTS},
        {"type": "string", "minLength": MAX_STRING_LENGTH},
        {"type": "object", "minProperties": 500},
        {
            "type": "array",
            "uniqueItems": True,
            "minItems": 2000,
            "items": {"type": "integer", "minimum": 0, "maximum": 10**9},
        },
    ):
        assert matches(schema, generate_instance(schema, 3))


def test_unique_items_use_json_equality() -> None:
    # 1 and 1.0 are the same JSON number; true is not 1.
    schema = {
        "type": "array",
        "uniqueItems": True,
        "minItems": 3,
        "items": {"enum": [1, 1.0, True, 2]},
    }
    for seed in range(20):
        value = generate_instance(schema, seed)
        assert len(value) >= 3 and matches(schema, value), value
        assert sum(1 for v in value if v == 1 and not isinstance(v, bool)) <= 1


def _request(schema: dict[str, Any], *, where: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "mock",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if where == "response_format":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": schema},
        }
    else:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        body["tool_choice"] = "required"
    return body


async def _steady_stream(http: aiohttp.ClientSession, url: str) -> float:
    """Stream a slow answer; returns the longest gap between two reads."""
    body = {
        "model": "mock?tokens=60&delay=0.02",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with http.post(url + "/chat/completions", json=body) as resp:
        assert resp.status == 200
        last = time.monotonic()
        gap = 0.0
        async for _ in resp.content.iter_any():
            now = time.monotonic()
            gap, last = max(gap, now - last), now
        return gap


@pytest.mark.parametrize("where", ["response_format", "tools"])
async def test_a_hostile_schema_is_a_400_and_other_clients_are_served(
    mock_server: MockServer, where: str
) -> None:
    async with aiohttp.ClientSession() as http:
        steady = asyncio.ensure_future(_steady_stream(http, mock_server.url))
        await asyncio.sleep(0.1)  # the steady stream is under way
        for name, (schema, phrase) in HOSTILE.items():
            async with asyncio.timeout(10):
                async with http.post(
                    mock_server.url + "/chat/completions", json=_request(schema, where=where)
                ) as resp:
                    status, data = resp.status, orjson.loads(await resp.read())
            assert status == 400, name
            error = data["error"]
            assert error["type"] == "invalid_request_error"
            assert phrase in error["message"], (name, error["message"])
            assert error["param"].startswith(where), error
        gap = await asyncio.wait_for(steady, 30)
    # The loop was never held for long: the steady stream's longest silence stayed short
    # (a functional bound; generating even one of these schemas took minutes before).
    assert gap < 2.0, gap


# -- options on the model name / X-Mock-* headers: bounded the same way -----------------------

OPTION_BOUNDS = [
    ("tokens", MAX_TOKENS),
    ("reasoning", MAX_TOKENS),
    ("big_event", MAX_BIG_EVENT),
    ("parallel_tools", MAX_PARALLEL_TOOLS),
    ("tool_turns", MAX_TOOL_TURNS),
]


@pytest.mark.parametrize(("option", "bound"), OPTION_BOUNDS, ids=[o for o, _ in OPTION_BOUNDS])
@pytest.mark.parametrize("via", ["model", "header"])
async def test_an_option_past_its_bound_is_a_400_naming_it(
    mock_server: MockServer, option: str, bound: int, via: str
) -> None:
    """``tokens=1000000000`` used to plan the whole answer first: two minutes and 15 GB."""
    body: dict[str, Any] = {
        "model": "mock",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {}
    if via == "model":
        body["model"] = f"mock?{option}={bound + 1}"
    else:
        headers[f"X-Mock-{option.replace('_', '-')}"] = str(bound + 1)
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(10):
            async with http.post(
                mock_server.url + "/chat/completions", json=body, headers=headers
            ) as resp:
                status, data = resp.status, orjson.loads(await resp.read())
    assert status == 400
    message = data["error"]["message"]
    assert repr(option) in message and f"{bound:,}" in message, message


async def test_the_largest_allowed_answer_is_served(mock_server: MockServer) -> None:
    body = {
        "model": f"mock?tokens={MAX_TOKENS}",
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(mock_server.url + "/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        data = orjson.loads(await resp.read())
    assert data["usage"]["completion_tokens"] == MAX_TOKENS
