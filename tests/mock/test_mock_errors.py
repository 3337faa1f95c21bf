"""HTTP errors of the mock server: auth, bad requests, unknown routes — all in OpenAI's error shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from mock_helpers import USER, Post, make_post

from rxchat.mock import MockServer, serve


def _error(raw: bytes) -> dict[str, Any]:
    body = orjson.loads(raw)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


async def test_api_key_required(http: aiohttp.ClientSession) -> None:
    key = "sk-correct-horse-battery"
    async with MockServer(api_key=key) as server:
        post = make_post(server.url, http)
        missing = await post(stream=True)
        assert missing.status == 401
        assert _error(missing.raw)["type"] == "invalid_request_error"
        wrong = await post(stream=True, headers={"Authorization": "Bearer sk-wrong-key-123"})
        assert wrong.status == 401
        err = _error(wrong.raw)
        assert err["code"] == "invalid_api_key"
        assert "sk-wrong-key-123" not in wrong.raw.decode()
        assert key not in wrong.raw.decode()
        not_bearer = await post(stream=True, headers={"Authorization": key})
        assert not_bearer.status == 401
        ok = await post(stream=True, headers={"Authorization": f"Bearer {key}"}, tokens=2)
        assert ok.status == 200 and len(ok.chunks) == 4
        async with http.get(server.url + "/models") as resp:
            assert resp.status == 401
        assert all("authorization" not in {h.lower() for h in r.headers} for r in server.requests)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "", "messages": USER}, "model"),
        ({"model": 3, "messages": USER}, "model"),
        ({"model": "mock"}, "messages"),
        ({"model": "mock", "messages": []}, "messages"),
        ({"model": "mock", "messages": "hi"}, "messages"),
        ({"model": "mock", "messages": ["hi"]}, "messages[0]"),
        ({"model": "mock", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "mock", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "mock", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "mock", "messages": USER, "n": 0}, "n"),
        ({"model": "mock", "messages": USER, "n": "2"}, "n"),
        ({"model": "mock", "messages": USER, "max_tokens": -1}, "max_tokens"),
        ({"model": "mock", "messages": USER, "max_tokens": True}, "max_tokens"),
        ({"model": "mock", "messages": USER, "logprobs": "yes"}, "logprobs"),
        ({"model": "mock", "messages": USER, "top_logprobs": 2}, "top_logprobs"),
        ({"model": "mock", "messages": USER, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        (
            {"model": "mock", "messages": USER, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        (
            {
                "model": "mock",
                "messages": USER,
                "stream": True,
                "stream_options": {"include_usage": 1},
            },
            "stream_options.include_usage",
        ),
        ({"model": "mock", "messages": USER, "seed": "x"}, "seed"),
        ({"model": "mock", "messages": USER, "tools": {}}, "tools"),
        ({"model": "mock", "messages": USER, "tools": [{"type": "function"}]}, "tools[0]"),
        (
            {
                "model": "mock",
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "a b"}}],
            },
            "tools[0].function.name",
        ),
        ({"model": "mock", "messages": USER, "tool_choice": "auto"}, "tool_choice"),
        (
            {
                "model": "mock",
                "messages": USER,
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": {"type": "function", "function": {"name": "b"}},
            },
            "tool_choice",
        ),
        (
            {"model": "mock", "messages": USER, "response_format": {"type": "xml"}},
            "response_format.type",
        ),
        (
            {"model": "mock", "messages": USER, "response_format": {"type": "json_schema"}},
            "response_format.json_schema",
        ),
        (
            {
                "model": "mock",
                "messages": USER,
                "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
            },
            "response_format.json_schema.name",
        ),
    ],
)
async def test_bad_bodies_are_400(post: Post, body: dict[str, Any], param: str) -> None:
    r = await post(body=body)
    assert r.status == 400, r.raw
    err = _error(r.raw)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"text"'])
async def test_unparseable_or_non_object_body_is_400(post: Post, raw: bytes) -> None:
    r = await post(raw_body=raw)
    assert r.status == 400
    _error(r.raw)


@pytest.mark.parametrize(
    "model",
    [
        "mock?bogus=1",
        "mock?tokens=abc",
        "mock?tokens=-1",
        "mock?delay=nan",
        "mock?status=200",
        "mock?fault=nope:1",
        "mock?refusal=maybe",
    ],
)
async def test_bad_mock_options_are_400(post: Post, model: str) -> None:
    r = await post(model=model)
    assert r.status == 400
    err = _error(r.raw)
    assert err["code"] == "invalid_mock_option"
    assert err["param"] == "model"


async def test_bad_mock_header_is_400(post: Post) -> None:
    r = await post(headers={"X-Mock-Drop-After": "soon"})
    assert r.status == 400
    assert "X-Mock-Drop-After" in _error(r.raw)["message"]


async def test_unknown_route_is_404_with_openai_body(
    mock_server: MockServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(mock_server.url + "/completions", json={}) as resp:
        assert resp.status == 404
        err = _error(await resp.read())
    assert err["code"] == "unknown_url"
    async with http.get(mock_server.url.removesuffix("/v1") + "/nothing") as resp:
        assert resp.status == 404
        _error(await resp.read())
    async with http.get(mock_server.url + "/chat/completions") as resp:
        assert resp.status == 405
        _error(await resp.read())


async def test_serve_yields_a_url_string_with_the_server() -> None:
    async with serve(token_delay=0.0) as url, aiohttp.ClientSession() as http:
        assert isinstance(url, str)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert url == url.server.url == str(url.server)
        r = await make_post(url, http)(stream=True, tokens=1)
        assert r.status == 200
        assert url.server.completed == 1
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(url + "/models"):
            pass


async def test_server_lifecycle_errors() -> None:
    server = MockServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    await server.start()
    try:
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.close()
        await server.close()
    with pytest.raises(ValueError):
        MockServer(token_delay=-1)
