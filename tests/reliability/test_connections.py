"""Connections the server closes, answers that break the rules of HTTP, redirects.

Each test talks to a hand-written server (:class:`faultkit.RawServer`) that sends exactly the
bytes of a misbehaving or hostile server over a real loopback socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp.client_proto
import aiohttp.http_parser
import openai
import pytest
from faultkit import (
    JSON_ANSWER,
    SSE_ANSWER,
    Handler,
    RawRequest,
    RawServer,
    answer_for,
    response_head,
    sse_chunk,
)

import rxchat
from rxchat import operators as ops

USER = [{"role": "user", "content": "Hi"}]

# Functional bound for "at once": a reader left to a timer, a retry backoff or the end of the
# answer would take seconds; typical is a millisecond. Generous for a loaded 2-core machine.
AT_ONCE = 1.0


# -- pooled keep-alive connections the server closed (issue 9, item 1) ------------------------


async def _close_after_answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    """llama.cpp's llama-server: a keep-alive answer, then the connection is closed."""
    writer.write(answer_for(request))
    await writer.drain()
    return False


def _close_when_the_next_request_comes() -> Handler:
    """The race of an idle timeout, made certain: the second request on a connection finds it
    closed (read, then a FIN without a byte of answer), as when the server's keep-alive timer
    fires while the request is on its way."""
    seen: dict[int, int] = {}

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        seen[request.connection] = seen.get(request.connection, 0) + 1
        if seen[request.connection] > 1:
            return False
        writer.write(answer_for(request))
        await writer.drain()
        return True

    return handler


@pytest.fixture(params=["closes_after_answer", "closes_idle_on_next_request"])
async def closing_server(request: pytest.FixtureRequest) -> AsyncIterator[RawServer]:
    handler = (
        _close_after_answer
        if request.param == "closes_after_answer"
        else _close_when_the_next_request_comes()
    )
    async with RawServer(handler) as server:
        yield server


ROUNDS = 6


async def test_like_the_openai_sdk_on_a_server_that_closes_after_each_answer() -> None:
    """The oracle: against llama-server's behaviour the openai SDK with max_retries=0 gets
    every answer; so does rxchat, request after request on one client."""
    async with RawServer(_close_after_answer) as server:
        async with openai.AsyncOpenAI(api_key="k", base_url=server.url, max_retries=0) as sdk:
            for _ in range(ROUNDS):
                stream = await sdk.chat.completions.create(
                    model="m",
                    messages=USER,
                    stream=True,  # type: ignore[arg-type]
                )
                text = "".join([c.choices[0].delta.content or "" async for c in stream])
                assert text == "Hello"
        async with rxchat.AsyncClient(api_key="k", base_url=server.url, max_retries=0) as client:
            for _ in range(ROUNDS):
                s = await client.chat.completions.create(model="m", messages=USER, stream=True)
                assert "".join([c.text or "" async for c in s]) == "Hello"


async def test_stale_pooled_connection_is_resent_at_once(closing_server: RawServer) -> None:
    """Every request succeeds with max_retries=0; each re-send is immediate and not a retry."""
    async with rxchat.AsyncClient(
        api_key="k", base_url=closing_server.url, max_retries=0
    ) as client:
        start = time.perf_counter()
        for i in range(ROUNDS):
            if i % 3 == 0:
                stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
                text = "".join([c.text or "" async for c in stream])
            elif i % 3 == 1:
                completion = await client.chat.completions.create(model="m", messages=USER)
                text = completion.choices[0].message.content or ""
            else:
                text = "".join([c.text or "" async for c in client.stream("m", "Hi")])
            assert text == "Hello"
        texts = await client.chat.completions.observe(model="m", messages=USER).pipe(
            ops.accumulate(), ops.final_completion()
        )
        assert texts.choices[0].message.content == "Hello"
        elapsed = time.perf_counter() - start
    assert elapsed < ROUNDS * 0.4  # a retry backoff (0.5 s at least) would show
    assert all(r.headers["x-rxchat-retry-count"] == "0" for r in closing_server.requests)


async def test_stale_pooled_connection_sync_client(closing_server: RawServer) -> None:
    def run() -> list[str]:
        with rxchat.Client(api_key="k", base_url=closing_server.url, max_retries=0) as client:
            out = []
            for _ in range(ROUNDS // 2):
                out.append("".join(c.text or "" for c in client.stream("m", "Hi")))
                out.append(client.send("m", "Hi").text or "")
            return out

    assert await asyncio.to_thread(run) == ["Hello"] * ROUNDS


async def test_fresh_connection_failure_is_not_resent() -> None:
    """A server that closes every connection on the request: one request, then the error."""

    async def hang_up(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        return False

    async with RawServer(hang_up) as server:
        async with rxchat.AsyncClient(base_url=server.url, max_retries=0) as client:
            with pytest.raises(rxchat.APIConnectionError):
                await client.chat.completions.create(model="m", messages=USER, stream=True)
        assert len(server.requests) == 1


async def test_reused_connection_failing_after_the_status_line_is_not_resent() -> None:
    """The second request on a connection gets a status line and headers, then a FIN."""
    seen: list[int] = []

    async def head_then_close(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        seen.append(request.connection)
        if seen.count(request.connection) > 1:
            writer.write(response_head(content_type="text/event-stream", content_length="500"))
            await writer.drain()
            return False
        writer.write(answer_for(request))
        await writer.drain()
        return True

    async with RawServer(head_then_close) as server:
        async with rxchat.AsyncClient(base_url=server.url, max_retries=2) as client:
            await client.chat.completions.create(model="m", messages=USER)
            with pytest.raises(rxchat.APIConnectionError) as info:
                stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
                async for _ in stream:
                    pass
        assert len(server.requests) == 2  # never sent a third time
        # No parser status in the text (the URL's port may contain "400": left out).
        assert "400" not in str(info.value).replace(server.url, "")


# -- a 2xx answer is never sent twice (issue 10, item 11) --------------------------------------


async def _short_content_length(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    if b'"stream":true' in request.body:
        body = SSE_ANSWER[:40]
        head = response_head(content_type="text/event-stream", content_length="4000")
    else:
        body = JSON_ANSWER[:40]
        head = response_head(content_type="application/json", content_length="4000")
    writer.write(head + body)
    await writer.drain()
    return False


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_short_content_length_is_not_resent(stream: bool) -> None:
    async with RawServer(_short_content_length) as server:
        async with rxchat.AsyncClient(
            base_url=server.url, max_retries=2, timeout=rxchat.Timeout(read=5)
        ) as client:
            with pytest.raises(rxchat.APIConnectionError) as info:
                if stream:
                    s = await client.chat.completions.create(model="m", messages=USER, stream=True)
                    async for _ in s:
                        pass
                else:
                    await client.chat.completions.create(model="m", messages=USER)
        assert len(server.requests) == 1, "a 2xx answer was requested again (billed twice)"
        assert "400, message" not in str(info.value)


# -- closing the client while readers wait (issue 10, item 1) -----------------------------------


async def _stall_after_one_chunk(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        response_head(content_type="text/event-stream", transfer_encoding="chunked")
        + b"%x\r\n%s\r\n" % (len(sse_chunk("Hi")), sse_chunk("Hi"))
    )
    await writer.drain()
    await asyncio.sleep(60)
    return False


async def test_close_from_another_task_wakes_async_for() -> None:
    async with RawServer(_stall_after_one_chunk) as server:
        client = rxchat.AsyncClient(base_url=server.url, timeout=rxchat.Timeout(read=30))
        got: list[str] = []

        async def read() -> None:
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            async for chunk in stream:
                got.append(chunk.text or "")

        task = asyncio.create_task(read())
        while not got:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        await client.close()
        with pytest.raises(rxchat.APIConnectionError, match="closed") as info:
            await asyncio.wait_for(task, 5)
        assert time.perf_counter() - start < AT_ONCE
        assert got == ["Hi"] and info.value.chunks_received == 1


async def test_close_wakes_an_observe_subscription() -> None:
    async with RawServer(_stall_after_one_chunk) as server:
        client = rxchat.AsyncClient(base_url=server.url, timeout=rxchat.Timeout(read=30))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        got: list[str] = []
        client.chat.completions.observe(model="m", messages=USER).subscribe(
            lambda c: got.append(c.text or ""),
            done.set_result,
            lambda: done.set_result(None),
        )
        while not got:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        await client.close()
        err = await asyncio.wait_for(done, 5)
        assert isinstance(err, rxchat.APIConnectionError), err
        assert time.perf_counter() - start < AT_ONCE


async def test_close_from_another_thread_wakes_sync_for() -> None:
    async with RawServer(_stall_after_one_chunk) as server:
        client = rxchat.Client(base_url=server.url, timeout=rxchat.Timeout(read=30))
        got: list[str] = []

        def read() -> BaseException | None:
            try:
                for chunk in client.stream("m", "Hi"):
                    got.append(chunk.text or "")
            except BaseException as err:
                return err
            return None

        future = asyncio.ensure_future(asyncio.to_thread(read))
        while not got:
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        await asyncio.to_thread(client.close)
        err = await asyncio.wait_for(future, 5)
        assert isinstance(err, rxchat.APIConnectionError), err
        assert time.perf_counter() - start < AT_ONCE + 1.0  # two thread hops on a busy machine


async def test_stream_closed_by_another_task_wakes_its_reader() -> None:
    async with (
        RawServer(_stall_after_one_chunk) as server,
        rxchat.AsyncClient(base_url=server.url) as client,
    ):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        got: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                got.append(chunk.text or "")

        task = asyncio.create_task(read())
        while not got:
            await asyncio.sleep(0.01)
        await stream.close()
        with pytest.raises(rxchat.APIConnectionError):
            await asyncio.wait_for(task, 5)


# -- malformed chunked encoding (issue 10, item 2) ---------------------------------------------


@pytest.fixture(params=["c", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of aiohttp's response parsers (``AIOHTTP_NO_EXTENSIONS=1`` selects the Python one)."""
    if request.param == "python":
        monkeypatch.setattr(
            aiohttp.client_proto, "HttpResponseParser", aiohttp.http_parser.HttpResponseParserPy
        )
    elif aiohttp.http_parser.HttpResponseParser is aiohttp.http_parser.HttpResponseParserPy:
        pytest.skip("aiohttp's C parser is not built here")
    return str(request.param)


@pytest.mark.parametrize(
    "bad", [b"ZZZ\r\n", b"5\r\nabcdeXX", b"ff\r\nshort"], ids=["size", "crlf", "truncated"]
)
async def test_malformed_chunked_body(parser: str, bad: bytes) -> None:
    chunks = [sse_chunk(t) for t in ("a", "b", "c")]

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(response_head(content_type="text/event-stream", transfer_encoding="chunked"))
        writer.write(b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(bad)
        await writer.drain()
        await asyncio.sleep(0.05)
        return False

    async with (
        RawServer(handler) as server,
        rxchat.AsyncClient(
            base_url=server.url, timeout=rxchat.Timeout(read=2), max_retries=0
        ) as client,
    ):
        got: list[str] = []
        start = time.perf_counter()
        with pytest.raises(rxchat.APIConnectionError) as info:
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            async for chunk in asyncio_timeout_guard(stream):
                got.append(chunk.text or "")
        elapsed = time.perf_counter() - start
    assert got == ["a", "b", "c"]
    assert elapsed < 2.0 + AT_ONCE  # within the read timeout
    message = str(info.value).replace(server.url, "")  # its port may contain "400"
    assert "400" not in message and "message=" not in message, message


async def asyncio_timeout_guard(
    stream: rxchat.AsyncStream,
) -> AsyncIterator[rxchat.ChatCompletionChunk]:
    """Iterate, but fail the test (not hang) after 6 s."""
    async with asyncio.timeout(6):
        async for chunk in stream:
            yield chunk


# -- redirects (issue 10, item 10) ------------------------------------------------------------


async def test_same_origin_307_is_followed_with_the_body() -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.target.startswith("/v1/"):
            writer.write(
                response_head(
                    "307 Temporary Redirect", location="/v2/chat/completions", content_length="0"
                )
            )
        else:
            writer.write(answer_for(request))
        await writer.drain()
        return True

    async with RawServer(handler) as server:
        async with rxchat.AsyncClient(api_key="sk-same-origin-key", base_url=server.url) as client:
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            assert "".join([c.text or "" async for c in stream]) == "Hello"
        second = server.requests[1]
        assert second.target == "/v2/chat/completions"
        assert second.body == server.requests[0].body
        assert second.headers["authorization"] == "Bearer sk-same-origin-key"


@pytest.mark.parametrize(
    "status", ["307 Temporary Redirect", "308 Permanent Redirect", "302 Found"]
)
async def test_cross_origin_redirect_sends_nothing_there(status: str) -> None:
    async def elsewhere(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer_for(request))
        await writer.drain()
        return True

    async with RawServer(elsewhere) as other:

        async def redirect(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
            writer.write(
                response_head(status, location=f"{other.url}/chat/completions", content_length="0")
            )
            await writer.drain()
            return True

        async with (
            RawServer(redirect) as server,
            rxchat.AsyncClient(
                api_key="sk-redirect-key",
                base_url=server.url,
                default_headers={"api-key": "azure-style-key"},
                max_retries=2,
            ) as client,
        ):
            with pytest.raises(rxchat.APIStatusError) as info:
                await client.chat.completions.create(model="m", messages=USER, stream=True)
        assert other.requests == []  # not the body, not a header: nothing went there
        assert len(server.requests) == 1
        assert info.value.status_code == int(status[:3])
        assert "redirect" in str(info.value) and "base_url" in str(info.value)


async def test_redirect_from_a_same_origin_hop_to_another_origin_is_refused() -> None:
    async with RawServer(_answer) as other:

        async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
            location = "/v1/next" if request.target.endswith("completions") else other.url + "/x"
            writer.write(
                response_head("307 Temporary Redirect", location=location, content_length="0")
            )
            await writer.drain()
            return True

        async with (
            RawServer(handler) as server,
            rxchat.AsyncClient(api_key="sk-k-k-k", base_url=server.url) as client,
        ):
            with pytest.raises(rxchat.APIStatusError):
                await client.chat.completions.create(model="m", messages=USER)
        assert other.requests == [] and len(server.requests) == 2


async def _answer(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer_for(request))
    await writer.drain()
    return True


# -- base URL query, default_query, Content-Type case (issue 9, item 6) ------------------------


async def test_base_url_query_is_kept_and_default_query_added() -> None:
    async with RawServer(_answer) as server:
        base = server.url.replace("/v1", "/openai/deployments/gpt4?api-version=2024-06-01")
        async with rxchat.AsyncClient(base_url=base, default_query={"extra": 1}) as client:
            await client.chat.completions.create(model="m", messages=USER)
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
            async for _ in stream:
                pass
            with_options = client.with_options(max_retries=0)
            await with_options.chat.completions.create(model="m", messages=USER)
            await with_options.close()
        observable = rxchat.chat_completion_stream(
            model="m", messages=USER, base_url=base, default_query={"extra": "2"}
        )
        await observable
        targets = [r.target for r in server.requests]
    want = "/openai/deployments/gpt4/chat/completions?api-version=2024-06-01&extra="
    assert targets == [want + "1"] * 3 + [want + "2"]


async def test_extra_query_is_added_to_this_request_only() -> None:
    async with RawServer(_answer) as server:
        base = server.url + "?api-version=1"
        async with rxchat.AsyncClient(base_url=base, default_query={"d": 1}) as client:
            completions = client.chat.completions
            await completions.create(model="m", messages=USER, extra_query={"q": 2, "d": 3})
            stream = await completions.create(
                model="m", messages=USER, stream=True, extra_query={"q": "s"}
            )
            async for _ in stream:
                pass
            await completions.observe(model="m", messages=USER, extra_query={"q": 0.5})
            await completions.create(model="m", messages=USER)
            with pytest.raises(TypeError, match="extra_query must map str to str or numbers"):
                await completions.create(model="m", messages=USER, extra_query={"q": None})  # type: ignore[dict-item]
        targets = [r.target for r in server.requests]
    want = "/v1/chat/completions?api-version=1&d="
    assert targets == [want + "3&q=2", want + "1&q=s", want + "1&q=0.5", want + "1"]


def test_sync_client_takes_default_query() -> None:
    client = rxchat.Client(base_url="http://127.0.0.1:9/v1", default_query={"api-version": "1"})
    assert client._async._transport.url("/chat/completions").endswith(
        "/v1/chat/completions?api-version=1"
    )
    client.close()


async def test_json_content_type_is_case_insensitive() -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        body = b'{"error": {"message": "deployment not ready", "code": "busy"}}'
        writer.write(
            response_head(
                content_type="Application/JSON; charset=utf-8", content_length=str(len(body))
            )
            + body
        )
        await writer.drain()
        return True

    async with RawServer(handler) as server, rxchat.AsyncClient(base_url=server.url) as client:
        with pytest.raises(rxchat.APIError, match="deployment not ready") as info:
            await client.chat.completions.create(model="m", messages=USER, stream=True)
    assert info.value.code == "busy"


# -- timeouts before the body (issue 10, item 4) ----------------------------------------------

TRICKLE = 0.2  # seconds between two bytes of a trickling server


def _trickle(head: bytes, body: bytes = b"", *, trickle_head: bool) -> Handler:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if trickle_head:
            for i in range(len(head)):
                writer.write(head[i : i + 1])
                await writer.drain()
                await asyncio.sleep(TRICKLE)
            return False
        writer.write(head)
        await writer.drain()
        for _ in range(10_000):  # an endless body, one byte at a time
            writer.write(body[:1] or b" ")
            await writer.drain()
            await asyncio.sleep(TRICKLE)
        return False

    return handler


PHASES = {
    "trickled_head": (
        _trickle(response_head(content_type="text/event-stream") + b"x" * 100, trickle_head=True),
        rxchat.APITimeoutError,
    ),
    "trickled_503_body": (
        _trickle(
            response_head("503 Service Unavailable", content_type="application/json"),
            b"{",
            trickle_head=False,
        ),
        rxchat.InternalServerError,
    ),
    "trickled_200_json_body": (
        _trickle(response_head(content_type="application/json"), b"{", trickle_head=False),
        rxchat.APITimeoutError,
    ),
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("phase", list(PHASES))
async def test_each_phase_before_the_body_is_bounded(phase: str, stream: bool) -> None:
    """connect=1, read=1: the head, an error body and a JSON body each end within ~read s."""
    handler, error = PHASES[phase]
    async with (
        RawServer(handler) as server,
        rxchat.AsyncClient(
            base_url=server.url,
            timeout=rxchat.Timeout(connect=1, read=1, idle=1),
            max_retries=0,
        ) as client,
    ):
        start = time.perf_counter()
        with pytest.raises(error) as info:
            async with asyncio.timeout(10):
                await client.chat.completions.create(model="m", messages=USER, stream=stream)
        elapsed = time.perf_counter() - start
    assert elapsed < 2 + 1 + AT_ONCE, f"{phase}: {elapsed:.2f} s"
    if error is rxchat.APITimeoutError:
        assert "read timeout" in str(info.value)


async def test_cli_total_timeout_bounds_a_trickled_head() -> None:
    from faultkit import cli_command, cli_env

    handler, _ = PHASES["trickled_head"]
    async with RawServer(handler) as server:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *cli_command(
                "chat",
                "hi",
                "--base-url",
                server.url,
                "--model",
                "m",
                "--timeout",
                "30",
                "--total-timeout",
                "1",
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        elapsed = time.perf_counter() - start
    assert proc.returncode == 1
    assert b"timed out" in err, err
    assert elapsed < 30  # bounded by --total-timeout, not by --timeout (interpreter start-up aside)


# -- bounded bodies (issue 10, item 7) --------------------------------------------------------


def _gzip_bomb(inflated: int) -> bytes:
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    out = [compressor.compress(b'{"padding": "')]
    for _ in range(inflated >> 20):
        out.append(compressor.compress(block))
    out.append(compressor.compress(b'"}'))
    out.append(compressor.flush())
    return b"".join(out)


def _bomb_handler(bomb: bytes, status: str = "200 OK") -> Handler:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            response_head(
                status,
                content_type="application/json",
                content_encoding="gzip",
                content_length=str(len(bomb)),
            )
            + bomb
        )
        await writer.drain()
        return False

    return handler


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_gzip_bomb_json_answer_is_bounded(stream: bool) -> None:
    bomb = _gzip_bomb(64 << 20)  # 64 MiB of JSON in ~64 KB
    async with (
        RawServer(_bomb_handler(bomb)) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        client._transport.max_response_bytes = 4 << 20
        with pytest.raises(rxchat.APIResponseValidationError) as info:
            await client.chat.completions.create(model="m", messages=USER, stream=stream)
    assert len(str(info.value)) < 1000
    if not stream:
        assert "max_response_bytes" in str(info.value)


async def test_gzip_bomb_error_body_is_bounded() -> None:
    bomb = _gzip_bomb(64 << 20)
    handler = _bomb_handler(bomb, "500 Internal Server Error")
    async with (
        RawServer(handler) as server,
        rxchat.AsyncClient(base_url=server.url, max_retries=0) as client,
    ):
        with pytest.raises(rxchat.InternalServerError) as info:
            await client.chat.completions.create(model="m", messages=USER, stream=True)
    body = info.value.body
    assert isinstance(body, str) and len(body) <= 1 << 20


# The peak memory of a 300 MiB bomb: tests/reliability/test_content_encoding.py.


# -- the same class of bug elsewhere: every waiter of a closed client gets a typed error -------


async def _head_then_silence(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    ctype = "text/event-stream" if b'"stream":true' in request.body else "application/json"
    writer.write(response_head(content_type=ctype, transfer_encoding="chunked"))
    await writer.drain()
    await asyncio.sleep(60)
    return False


async def test_close_wakes_every_kind_of_waiter() -> None:
    """Waiting for the first body byte, for a whole JSON body, and for a free pooled
    connection (aiohttp cancels those waiters: a raw CancelledError in the caller's task)."""
    async with RawServer(_head_then_silence) as server:
        client = rxchat.AsyncClient(base_url=server.url, max_retries=0, timeout=None)
        client._transport._connection_limit = 2  # the third request waits for a connection

        async def first_byte() -> None:
            await client.chat.completions.create(model="m", messages=USER, stream=True)

        async def whole() -> None:
            await client.chat.completions.create(model="m", messages=USER)

        tasks = [asyncio.create_task(first_byte()), asyncio.create_task(whole())]
        while len(server.requests) < 2:
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(whole()))  # waits for the pool
        await asyncio.sleep(0.1)
        start = time.perf_counter()
        await client.close()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        assert time.perf_counter() - start < AT_ONCE
    for result in results:
        assert isinstance(result, rxchat.APIConnectionError), repr(result)
        assert "closed" in str(result)


async def test_a_cancelled_caller_still_sees_cancellation() -> None:
    """The closed-client mapping does not swallow a real cancellation of the caller."""
    async with RawServer(_head_then_silence) as server, rxchat.AsyncClient(
        base_url=server.url, timeout=None
    ) as client:
        task = asyncio.create_task(client.chat.completions.create(model="m", messages=USER))
        while not server.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
