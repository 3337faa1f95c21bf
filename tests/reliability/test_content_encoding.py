"""Compressed bodies, inflated by rxchat itself in bounded pieces (issue 10, item 7).

A hand-written server sends gzip / deflate / unknown encodings, whole, split at every kind of
boundary, corrupt and truncated; the answers must be exactly what the uncompressed bytes give.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from faultkit import (
    JSON_ANSWER,
    SSE_ANSWER,
    RawRequest,
    RawServer,
    chunked,
    response_head,
    sse_chunk,
)

import rxchat

USER = [{"role": "user", "content": "hi"}]


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def zlib_deflate(data: bytes) -> bytes:
    return zlib.compress(data)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def encoded_server(
    body: bytes,
    encoding: str,
    *,
    stream: bool,
    parts: int = 0,
    status: str = "200 OK",
    json_body: bytes | None = None,
) -> RawServer:
    """Answers with ``body`` (already encoded), chunked in pieces of ``parts`` bytes; with
    ``json_body``, a request without ``stream: true`` gets that one as JSON."""

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        answer, ctype = body, "text/event-stream" if stream else "application/json"
        if json_body is not None and b'"stream":true' not in request.body:
            answer, ctype = json_body, "application/json"
        pieces = split(answer, parts) if parts else [answer]
        writer.write(
            response_head(
                status, content_type=ctype, content_encoding=encoding, transfer_encoding="chunked"
            )
        )
        for piece in pieces:
            writer.write(chunked(piece)[: -len(b"0\r\n\r\n")])
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    return RawServer(handler)


ENCODERS = {"gzip": gzip, "x-gzip": gzip, "deflate": zlib_deflate, "raw-deflate": raw_deflate}


@pytest.mark.parametrize("parts", [0, 1, 7], ids=["whole", "byte-by-byte", "7-byte-reads"])
@pytest.mark.parametrize("coding", list(ENCODERS))
async def test_compressed_stream_gives_the_same_chunks(coding: str, parts: int) -> None:
    header = "deflate" if coding == "raw-deflate" else coding
    encode = ENCODERS[coding]
    async with (
        encoded_server(
            encode(SSE_ANSWER), header, stream=True, parts=parts, json_body=encode(JSON_ANSWER)
        ) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream]
        answer = await client.chat.completions.create(model="m", messages=USER)
    assert pieces == ["Hel", "lo"]
    assert answer.choices[0].message.content == "Hello"
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_several_gzip_members_are_one_body() -> None:
    first, second = SSE_ANSWER[:40], SSE_ANSWER[40:]
    async with (
        encoded_server(gzip(first) + gzip(second), "gzip", stream=True, parts=5) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream]
    assert pieces == ["Hel", "lo"]


async def test_a_large_compressed_stream_arrives_whole() -> None:
    """Many chunks that inflate to far more than one read: nothing lost at piece boundaries."""
    texts = [f"tok{i} " * 20 for i in range(3000)]
    sse = b"".join(sse_chunk(t) for t in texts) + sse_chunk("", finish="stop") + b"data: [DONE]\n\n"
    async with (
        encoded_server(gzip(sse), "gzip", stream=True, parts=4096) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        pieces = [c.choices[0].delta.content async for c in stream]
    assert pieces == [*texts, ""]


async def test_corrupt_gzip_keeps_what_arrived_before_it() -> None:
    first = sse_chunk("Hel")
    second = gzip(SSE_ANSWER[len(first) :])
    # A whole first gzip member ("Hel"), then a second one whose deflate data is damaged.
    damaged = gzip(first) + second[:12] + bytes(64) + second[12:]
    async with (
        encoded_server(damaged, "gzip", stream=True, parts=8) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        pieces: list[str | None] = []
        with pytest.raises(rxchat.APIConnectionError) as info:
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            async for chunk in stream:
                pieces.append(chunk.choices[0].delta.content)
    assert "gzip data is corrupt" in str(info.value)
    assert pieces == ["Hel"]  # what inflated before the damage is delivered first


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_truncated_gzip_is_a_typed_error(stream: bool) -> None:
    payload = SSE_ANSWER.replace(b"data: [DONE]\n\n", b"") if stream else JSON_ANSWER
    body = gzip(payload)[:-6]  # the CRC and length trailer cut off
    async with (
        encoded_server(body, "gzip", stream=stream) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(rxchat.APIConnectionError) as info:
            result = await client.chat.completions.create(model="m", messages=USER, stream=stream)
            if stream:
                async for _ in result:
                    pass
    assert "ends before its end marker" in str(info.value)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_an_encoding_rxchat_does_not_decode_is_named(stream: bool) -> None:
    async with (
        encoded_server(b"\x8b\x02\x80not really brotli\x03", "br", stream=stream) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(rxchat.APIResponseValidationError) as info:
            await client.chat.completions.create(model="m", messages=USER, stream=stream)
    assert "Content-Encoding: br" in str(info.value)
    assert "gzip, deflate" in str(info.value)


async def test_an_error_body_in_an_unknown_encoding_keeps_the_status() -> None:
    async with (
        encoded_server(b"\x00\x01", "br", stream=True, status="503 Service Unavailable") as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(rxchat.APIStatusError) as info:
            await client.chat.completions.create(model="m", messages=USER, stream=True)
    assert info.value.status_code == 503


async def test_gzip_error_body_is_read() -> None:
    error = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
    async with (
        encoded_server(gzip(error), "gzip", stream=True, status="429 Too Many Requests") as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(rxchat.RateLimitError) as info:
            await client.chat.completions.create(model="m", messages=USER, stream=True)
    assert "slow down" in str(info.value)


def _peak_rss_mb(inflated_mib: int) -> int:
    """Peak RSS of a fresh interpreter that reads a gzip bomb twice (stream, whole)."""
    script = textwrap.dedent(
        """
        import asyncio, resource, sys
        sys.path.insert(0, sys.argv[1])
        import test_connections as t
        from faultkit import RawServer
        import rxchat

        async def main():
            bomb = t._gzip_bomb(int(sys.argv[2]) << 20)
            async with RawServer(t._bomb_handler(bomb)) as server:
                for stream in (True, False):
                    async with rxchat.AsyncClient(base_url=server.url, max_retries=0) as c:
                        try:
                            await c.chat.completions.create(model="m", messages=[], stream=stream)
                        except rxchat.APIResponseValidationError:
                            pass
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)

        asyncio.run(main())
        """
    )
    here = str(Path(__file__).parent)
    proc = subprocess.run(
        [sys.executable, "-c", script, here, str(inflated_mib)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return int(proc.stdout.split()[-1])


def test_gzip_bomb_costs_no_more_than_the_response_limit() -> None:
    """300 KB of gzip that inflates to 300 MiB: the process grows by about max_response_bytes
    (32 MiB, the bounded JSON answer) over the same run with a 1 MiB body, never by the bomb."""
    baseline = _peak_rss_mb(1)
    bomb = _peak_rss_mb(300)
    assert bomb - baseline < 64, f"peak RSS {bomb} MB with the bomb, {baseline} MB without"
