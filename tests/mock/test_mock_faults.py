"""Every fault the mock server can inject, observed on the raw wire."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from mock_helpers import USER, Post, split_frames

from rxchat.mock import MockServer


def _data_frames(raw: bytes) -> list[bytes]:
    return [f for f in raw.split(b"\n\n") if f.startswith(b"data: ")]


async def test_drop_after_closes_mid_stream(post: Post, mock_server: MockServer) -> None:
    r = await post(stream=True, model="mock?tokens=10&drop_after=3")
    assert r.status == 200
    assert isinstance(r.error, aiohttp.ClientPayloadError)
    frames = split_frames(r.raw)
    assert len(frames) == 3
    assert all(orjson.loads(f[6:])["object"] == "chat.completion.chunk" for f in frames)
    assert b"[DONE]" not in r.raw
    rec = mock_server.streams[-1]
    assert rec.outcome == "dropped" and rec.chunks == 3


async def test_drop_after_zero_and_beyond_the_end(post: Post) -> None:
    r0 = await post(stream=True, headers={"X-Mock-Fault": "drop_after:0"})
    assert r0.raw == b"" and r0.error is not None
    beyond = await post(stream=True, model="mock?tokens=2&drop_after=99")
    assert beyond.error is not None
    assert len(split_frames(beyond.raw)) == 4  # every chunk, but no [DONE]
    assert b"[DONE]" not in beyond.raw


async def test_drop_on_non_streaming_request(post: Post) -> None:
    with pytest.raises(aiohttp.ClientError):
        await post(model="mock?drop_after=0")


async def test_stall_first_with_keepalive_comments(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=2&stall_first=0.25&keepalive=0.05")
    frames = split_frames(r.raw)
    comments = [f for f in frames if f.startswith(b":")]
    assert len(comments) >= 1
    assert all(f == b": keep-alive" for f in comments)
    first_data = next(i for i, f in enumerate(frames) if f.startswith(b"data: "))
    assert all(f.startswith(b":") for f in frames[:first_data])
    assert frames[-1] == b"data: [DONE]"
    assert len(_data_frames(r.raw)) == 5


async def test_stall_between_once_after_n(
    post: Post, http: aiohttp.ClientSession, mock_server: MockServer
) -> None:
    body = {
        "model": "mock?tokens=4&stall_between=0.3&stall_after=2&keepalive=0.1",
        "messages": USER,
        "stream": True,
    }
    arrivals: list[bytes] = []
    async with http.post(mock_server.url + "/chat/completions", json=body) as resp:
        buf = b""
        async for piece in resp.content.iter_any():
            buf += piece
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                arrivals.append(frame)
    kinds = [b":" if f.startswith(b":") else b"d" for f in arrivals]
    # two chunks, keep-alives during the stall, then the rest
    assert kinds[:2] == [b"d", b"d"]
    assert kinds[2:4] == [b":", b":"]
    assert kinds[4:] == [b":"] * (len(kinds) - 9) + [b"d"] * 5  # no keep-alive after the stall


async def test_stall_between_every_gap(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=2&stall_between=0.01")
    assert len(r.chunks) == 4 and r.frames[-1] == b"data: [DONE]"


async def test_stall_headers_and_stall_first_non_streaming(post: Post) -> None:
    r = await post(model="mock?tokens=2&stall_headers=0.05&stall_first=0.05")
    assert r.status == 200 and r.json["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (429, "requests"),
        (500, "server_error"),
        (503, "server_error"),
        (401, "invalid_request_error"),
        (408, "timeout"),
        (409, "invalid_request_error"),
        (418, "invalid_request_error"),
        (599, "server_error"),
    ],
)
async def test_status_fault(post: Post, status: int, type_: str) -> None:
    r = await post(stream=True, model=f"mock?status={status}")
    assert r.status == status
    body = r.json
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    assert "Retry-After" not in r.headers


async def test_retry_after_headers(post: Post) -> None:
    r = await post(stream=True, model="mock?status=429&retry_after=1.5&retry_after_ms=1500")
    assert r.status == 429
    assert r.headers["Retry-After"] == "1.5"
    assert r.headers["retry-after-ms"] == "1500"
    assert r.json["error"]["code"] == "rate_limit_exceeded"


async def test_fail_times_counts_per_key(post: Post) -> None:
    model = "mock?status=503&fail_times=2&tokens=1"
    statuses = [(await post(stream=True, model=model)).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    # Another key has its own counter; X-Mock-Key overrides the model string as the key.
    keyed = [
        (await post(stream=True, model="mock?fail_times=1", headers={"X-Mock-Key": k})).status
        for k in ("a", "a", "b", "b")
    ]
    assert keyed == [500, 200, 500, 200]


async def test_fail_times_non_streaming(post: Post) -> None:
    model = "mock?fail_times=1&status=429&retry_after=0"
    first = await post(model=model)
    second = await post(model=model)
    assert (first.status, second.status) == (429, 200)
    assert first.headers["Retry-After"] == "0"


async def test_bad_json_after(post: Post, mock_server: MockServer) -> None:
    r = await post(stream=True, model="mock?tokens=3&bad_json_after=2")
    frames = r.frames
    assert frames[2] == b"data: {not json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(frames[2][6:])
    assert frames[-1] == b"data: [DONE]"
    assert mock_server.streams[-1].outcome == "completed"


@pytest.mark.parametrize("event", [False, True])
async def test_error_frame_ends_stream(post: Post, mock_server: MockServer, event: bool) -> None:
    key = "event_error_after" if event else "error_after"
    r = await post(stream=True, model=f"mock?tokens=5&{key}=2")
    assert r.error is None
    frames = split_frames(r.raw)
    assert len(frames) == 3
    last = frames[-1]
    if event:
        assert last.startswith(b"event: error\ndata: ")
        last = last.split(b"\n", 1)[1]
    err = orjson.loads(last[6:])["error"]
    assert err["type"] == "server_error" and err["message"] and "code" in err
    assert b"[DONE]" not in r.raw
    assert mock_server.streams[-1].outcome == "error_frame"


async def test_unknown_shape_after(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=2&unknown_shape_after=1")
    odd = orjson.loads(r.frames[1][6:])
    assert odd == {"foo": 1, "choices": {"index": 0}}
    assert r.frames[-1] == b"data: [DONE]"


async def test_invalid_utf8_after(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=2&invalid_utf8_after=1")
    bad = r.frames[1]
    with pytest.raises(UnicodeDecodeError):
        bad.decode("utf-8")
    assert bad.startswith(b'data: {"id"')
    assert r.frames[-1] == b"data: [DONE]"


async def test_big_event(post: Post) -> None:
    size = 2_000_000
    r = await post(stream=True, model=f"mock?tokens=2&big_event={size}")
    contents = [c["choices"][0]["delta"].get("content", "") for c in r.chunks]
    assert len(contents[1]) == size
    assert max(len(f) for f in r.frames) > size
    js = await post(
        stream=True, model="mock?big_event=1000", response_format={"type": "json_object"}
    )
    assert isinstance(orjson.loads(js.content()), dict)


async def test_no_done(post: Post, mock_server: MockServer) -> None:
    r = await post(
        stream=True, model="mock?tokens=3&no_done=1", stream_options={"include_usage": True}
    )
    assert r.error is None
    assert b"[DONE]" not in r.raw
    assert all(c["choices"][0]["finish_reason"] is None for c in r.chunks)
    assert all(c["choices"] for c in r.chunks)
    assert len(r.chunks) == 4
    assert mock_server.streams[-1].outcome == "no_done"


async def test_drip_one_byte_at_a_time(
    mock_server: MockServer, http: aiohttp.ClientSession
) -> None:
    body = {"model": "mock?tokens=0&drip=1", "messages": USER, "stream": True}
    reads: list[bytes] = []
    async with http.post(mock_server.url + "/chat/completions", json=body) as resp:
        async for piece in resp.content.iter_any():
            reads.append(piece)
    raw = b"".join(reads)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert len(split_frames(raw)) == 3
    assert len(reads) > 20  # many tiny reads, not one body


async def test_faults_combine(post: Post, mock_server: MockServer) -> None:
    r = await post(
        stream=True,
        model="gpt-4o?tokens=6&fault=stall_first:0.01,bad_json_after:1,unknown_shape_after:2,drop_after:4",
        n=2,
    )
    assert r.error is not None
    frames = split_frames(r.raw)
    assert frames[1] == b"data: {not json"
    assert len([f for f in frames if f != b"data: {not json"]) == 5  # 4 chunks + the unknown shape
    assert mock_server.streams[-1].outcome == "dropped"


async def test_delay_paces_chunks(post: Post) -> None:
    r = await post(stream=True, model="mock?tokens=3&delay=0.01")
    assert len(r.chunks) == 5 and r.frames[-1] == b"data: [DONE]"


async def test_app_token_delay_default(http: aiohttp.ClientSession) -> None:
    async with MockServer(token_delay=0.002) as server:
        body: dict[str, Any] = {"model": "mock?tokens=2", "messages": USER, "stream": True}
        async with http.post(server.url + "/chat/completions", json=body) as resp:
            raw = await resp.read()
        assert raw.endswith(b"data: [DONE]\n\n")
