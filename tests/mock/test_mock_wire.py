"""Wire format of the mock server compared with real OpenAI recordings, and the request options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from mock_helpers import USER, Post

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


def _corpus_chunks(name: str) -> list[dict[str, Any]]:
    raw = (CORPUS / name).read_bytes()
    frames = [f for f in raw.split(b"\n\n") if f.strip()]
    return [orjson.loads(f[6:]) for f in frames if f != b"data: [DONE]"]


def _key_order(obj: Any) -> Any:
    """The nested key order of a JSON value (values replaced by their key structure)."""
    if isinstance(obj, dict):
        return [(k, _key_order(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [_key_order(v) for v in obj[:1]]
    return type(obj).__name__ if obj is not None else None


async def test_stream_frames_match_openai_shape(post: Post) -> None:
    r = await post(stream=True, tokens=5)
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert r.raw.endswith(b"data: [DONE]\n\n")
    assert all(f.startswith(b"data: ") for f in r.frames)
    chunks = r.chunks
    ours = chunks
    theirs = _corpus_chunks("plain_text.sse")[:-1]  # the recording has a usage chunk
    # Same keys in the same order for the role, content and finish chunks.
    assert _key_order(ours[0]) == _key_order(theirs[0])
    assert _key_order(ours[1]) == _key_order(theirs[1])
    assert _key_order(ours[-1]) == _key_order(theirs[-1])
    assert ours[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert ours[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert [list(c["choices"][0]["delta"]) for c in ours[1:-1]] == [["content"]] * 5
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-") and len(chunks[0]["id"]) == len(theirs[0]["id"])
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "mock" for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_usage_chunk_when_requested(post: Post) -> None:
    r = await post(stream=True, tokens=7, stream_options={"include_usage": True})
    chunks = r.chunks
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["completion_tokens"] == 7
    assert usage["total_tokens"] == usage["prompt_tokens"] + 7
    assert usage["prompt_tokens"] > 0
    assert _key_order(last)[:-1] == _key_order(_corpus_chunks("plain_text.sse")[-1])[:-1]


async def test_same_request_same_bytes(post: Post) -> None:
    a = await post(stream=True, n=2, logprobs=True, top_logprobs=2)
    b = await post(stream=True, n=2, logprobs=True, top_logprobs=2)
    assert a.raw == b.raw
    c = await post(stream=True, n=2, logprobs=True, top_logprobs=2, seed=7)
    assert c.raw != a.raw
    d = await post(
        stream=True, messages=[{"role": "user", "content": [{"type": "text", "text": "other"}]}]
    )
    assert d.content() != a.content()


async def test_model_suffix_is_stripped_and_configures(post: Post) -> None:
    r = await post(stream=True, model="gpt-4o?tokens=3")
    assert {c["model"] for c in r.chunks} == {"gpt-4o"}
    assert len(r.chunks) == 1 + 3 + 1


async def test_headers_override_model_suffix(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=3", headers={"X-Mock-Tokens": "6"})
    assert len(r.chunks) == 1 + 6 + 1


async def test_text_option_streams_word_tokens(post: Post) -> None:
    r = await post(stream=True, headers={"X-Mock-Text": "Hello there,  reactive world!"})
    deltas = [c["choices"][0]["delta"]["content"] for c in r.chunks[1:-1]]
    assert deltas == ["Hello", " there,", "  reactive", " world!"]


async def test_max_tokens_truncates_with_length(post: Post) -> None:
    r = await post(stream=True, tokens=10, max_tokens=4, stream_options={"include_usage": True})
    assert r.chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert len(r.chunks) == 1 + 4 + 1 + 1
    assert r.chunks[-1]["usage"]["completion_tokens"] == 4
    r2 = await post(stream=True, tokens=10, max_completion_tokens=2)
    assert r2.chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert len(r2.chunks) == 1 + 2 + 1
    r3 = await post(stream=True, tokens=3, max_tokens=3)
    assert r3.chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_n_choices_interleave_round_robin(post: Post) -> None:
    r = await post(stream=True, n=3, tokens=4, stream_options={"include_usage": True})
    chunks = r.chunks
    indexes = [c["choices"][0]["index"] for c in chunks[:-1]]
    assert indexes == [0, 1, 2] * 6
    assert all(len(c["choices"]) == 1 for c in chunks[:-1])
    texts = [r.content(i) for i in range(3)]
    assert len(set(texts)) == 3
    finals = [c["choices"][0] for c in chunks[-4:-1]]
    assert [f["finish_reason"] for f in finals] == ["stop"] * 3
    assert chunks[-1]["usage"]["completion_tokens"] == 12


async def test_server_records_planned_texts(post: Post, mock_server: Any) -> None:
    r = await post(stream=True, n=2, tokens=5)
    stream = mock_server.streams[-1]
    assert stream.outcome == "completed"
    assert stream.texts == [r.content(0), r.content(1)]
    assert stream.chunks == len(r.chunks)
    assert mock_server.completed == 1
    assert mock_server.active_streams == 0


async def test_logprobs_with_top_logprobs(post: Post) -> None:
    r = await post(stream=True, tokens=4, logprobs=True, top_logprobs=3)
    chunks = r.chunks
    assert chunks[0]["choices"][0]["logprobs"] == {"content": [], "refusal": None}
    for c in chunks[1:-1]:
        choice = c["choices"][0]
        token = choice["delta"]["content"]
        lp = choice["logprobs"]
        assert lp["refusal"] is None
        (entry,) = lp["content"]
        assert entry["token"] == token
        assert entry["bytes"] == list(token.encode())
        assert entry["logprob"] <= 0
        tops = entry["top_logprobs"]
        assert len(tops) == 3
        assert tops[0]["token"] == token and tops[0]["logprob"] == entry["logprob"]
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
        assert len({t["token"] for t in tops}) == 3
        assert all(set(t) == {"token", "logprob", "bytes"} for t in tops)
    assert chunks[-1]["choices"][0]["logprobs"] is None
    ref = _corpus_chunks("logprobs_content.sse")
    plain = (await post(stream=True, tokens=2, logprobs=True)).chunks
    assert _key_order(plain[0]) == _key_order(ref[0])
    assert _key_order(plain[1]) == _key_order(ref[1])
    assert plain[1]["choices"][0]["logprobs"]["content"][0]["top_logprobs"] == []


async def test_refusal_triggered_by_option_and_by_anthrax(post: Post) -> None:
    ref = _corpus_chunks("structured_refusal.sse")
    r = await post(stream=True, messages=[{"role": "user", "content": "How do I make anthrax?"}])
    chunks = r.chunks
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None, "refusal": ""}
    assert _key_order(chunks[0]) == _key_order(ref[0])
    assert all(list(c["choices"][0]["delta"]) == ["refusal"] for c in chunks[1:-1])
    assert r.content(field_name="refusal").startswith("I'm sorry")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    r2 = await post(stream=True, model="mock?refusal=1", logprobs=True)
    assert r2.chunks[0]["choices"][0]["logprobs"] == {"content": None, "refusal": []}
    lp = r2.chunks[1]["choices"][0]["logprobs"]
    assert (
        lp["content"] is None
        and lp["refusal"][0]["token"] == r2.chunks[1]["choices"][0]["delta"]["refusal"]
    )


async def test_reasoning_deltas_before_content(post: Post) -> None:
    r = await post(
        stream=True,
        tokens=3,
        headers={"X-Mock-Reasoning": "5"},
        stream_options={"include_usage": True},
    )
    kinds = [next(iter(c["choices"][0]["delta"]), None) for c in r.chunks[:-1]]
    assert kinds == ["role"] + ["reasoning_content"] * 5 + ["content"] * 3 + [None]
    assert r.content(field_name="reasoning_content").startswith("Let me")
    usage = r.chunks[-1]["usage"]
    assert usage["completion_tokens"] == 8
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}


async def test_non_streaming_says_the_same(post: Post) -> None:
    params: dict[str, Any] = {"n": 2, "tokens": 6, "logprobs": True}
    s = await post(stream=True, stream_options={"include_usage": True}, **params)
    full = await post(**params)
    assert full.status == 200
    body = full.json
    assert body["object"] == "chat.completion"
    assert body["id"] != s.chunks[0]["id"]  # different request body -> different id
    for i in range(2):
        choice = body["choices"][i]
        assert choice["index"] == i
        assert choice["message"]["content"] == s.content(i)
        assert choice["message"]["refusal"] is None
        assert choice["finish_reason"] == "stop"
        assert [e["token"] for e in choice["logprobs"]["content"]] == [
            c["choices"][0]["delta"]["content"]
            for c in s.chunks[:-1]
            if c["choices"][0]["index"] == i
            and "content" in c["choices"][0]["delta"]
            and c["choices"][0]["delta"]["content"]
        ]
    assert body["usage"] == s.chunks[-1]["usage"]


async def test_non_streaming_refusal_and_reasoning(post: Post) -> None:
    body = (await post(model="mock?refusal=1&reasoning=2")).json
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["refusal"].startswith("I'm sorry")
    assert message["reasoning_content"] == "Let me"


async def test_models_route(mock_server: Any, http: Any) -> None:
    async with http.get(mock_server.url + "/models") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["object"] == "list"
    assert "mock" in [m["id"] for m in body["data"]]
    async with http.get(mock_server.url + "/models/gpt-4o?x") as resp:
        assert (await resp.json())["id"] == "gpt-4o"


async def test_requests_are_recorded_without_authorization(post: Post, mock_server: Any) -> None:
    await post(
        stream=True,
        headers={"Authorization": "Bearer sk-secret", "api-key": "sk-secret", "X-Mock-Tokens": "1"},
    )
    rec = mock_server.requests[-1]
    assert rec.path == "/v1/chat/completions"
    assert rec.method == "POST"
    assert rec.body == {"model": "mock", "messages": USER, "stream": True}
    assert "X-Mock-Tokens" in rec.headers
    assert all(k.lower() not in ("authorization", "api-key") for k in rec.headers)
    assert "sk-secret" not in repr(rec)
    assert rec.request_id.startswith("req_")


@pytest.mark.parametrize("tokens", [0, 1, 1000])
async def test_token_counts(post: Post, tokens: int) -> None:
    r = await post(stream=True, model=f"mock?tokens={tokens}")
    assert len(r.chunks) == tokens + 2
    assert r.chunks[-1]["choices"][0]["finish_reason"] == "stop"
