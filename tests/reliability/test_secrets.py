"""The API key never leaks: not in errors (message, repr, body, cause chain, traceback), not in
reprs, not in log records at DEBUG (rxchat's and aiohttp's), not in the CLI's output — even when
a hostile or careless server echoes the key back in its error bodies and stream frames.
And TLS certificates are verified unless the user opts out explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import subprocess
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from faultkit import (
    CLI,
    HANG_GUARD,
    MESSAGES,
    SENTINEL_KEY,
    SURFACES,
    Fault,
    Outcome,
    Surface,
    cli_command,
    cli_env,
)
from support import ThreadedMock

from rxchat import AsyncClient, Client, chat_completion_stream
from rxchat._transport import HTTPTransport, Timeout
from rxchat.errors import APIConnectionError, AuthenticationError, RxChatError
from rxchat.mock import create_app

# -- a server that echoes the key it receives ---------------------------------------------------

_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "echo",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}],
}


def _sse(*frames: bytes) -> bytes:
    return b"".join(frames)


def _data(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _echo(request: web.Request) -> web.StreamResponse:
    key = request.headers.get("Authorization", "")[len("Bearer ") :]
    model = (await request.json())["model"]
    if model == "echo-401":
        body = {"error": {"message": f"Incorrect API key provided: {key}.", "code": key}}
        return web.json_response(body, status=401)
    if model == "echo-500-text":
        return web.Response(status=500, text=f"upstream rejected Authorization: Bearer {key}")
    if model == "echo-json-200":
        return web.json_response({"error": {"message": f"key {key} has no access"}})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    first = _data(_CHUNK)
    if model == "echo-error-frame":
        await resp.write(_sse(first, _data({"error": {"message": f"quota of {key} exceeded"}})))
    elif model == "echo-event-error":
        await resp.write(_sse(first, f"event: error\ndata: bad key {key}\n\n".encode()))
    elif model == "echo-bad-json":
        await resp.write(_sse(first, f"data: {{oops {key}\n\n".encode()))
    elif model == "echo-bad-shape":
        await resp.write(_sse(first, _data({"choices": {"key": key}})))
    return resp


ECHO_MODELS = [
    "echo-401",
    "echo-500-text",
    "echo-json-200",
    "echo-error-frame",
    "echo-event-error",
    "echo-bad-json",
    "echo-bad-shape",
]


class EchoServer(ThreadedMock):
    """The echoing app on its own loop thread (so sync clients and the CLI can reach it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = self.call(self._start())

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", _echo)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"

    def close(self) -> None:
        try:
            self.call(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class Named(Fault):
    """A row whose model is a fixed name (for the echo server)."""

    fixed: str = ""

    def model(self, key: str = "") -> str:
        return self.fixed


def _error_texts(err: BaseException | None) -> list[str]:
    if err is None:
        return []
    texts = [str(err), repr(err), "".join(traceback.format_exception(err))]
    for name in ("body", "response", "message", "completion"):
        texts.append(repr(getattr(err, name, None)))
    # What a traceback or a logger shows: the cause, or the context unless suppressed.
    cause = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    if cause is not None:
        texts += [str(cause), repr(cause)]
    return texts


def _assert_clean(texts: list[str], where: str) -> None:
    leaks = [t for t in texts if SENTINEL_KEY in t or "SENTINEL" in t]
    assert not leaks, f"{where}: the key leaked in {leaks[0][:300]!r}"


# -- every surface, every echoing answer ---------------------------------------------------------


@pytest.mark.parametrize("model", ECHO_MODELS)
@pytest.mark.parametrize("surface", [pytest.param(s, id=s.name) for s in SURFACES])
async def test_echoed_key_never_reaches_errors_or_logs(
    surface: Surface,
    model: str,
    echo_server: EchoServer,
    caplog: pytest.LogCaptureFixture,
    no_leftover_tasks: None,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: rxchat, aiohttp.*, asyncio
    fault = Named("echo", "", RxChatError, fixed=model)
    async with asyncio.timeout(HANG_GUARD):
        out = await surface.run(echo_server.url, fault)
    assert isinstance(out.error, RxChatError), out.error  # each echo is a failure
    texts = _error_texts(out.error)
    raw = getattr(out.error, "raw", None)
    if raw is not None:
        texts.append(raw)
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(r.args) for r in caplog.records]
    _assert_clean(texts, f"{surface.name} / {model}")


@pytest.fixture(scope="module")
def cli_echo_outcomes(echo_server: EchoServer) -> dict[str, Outcome]:
    async def run_all() -> dict[str, Outcome]:
        sem = asyncio.Semaphore(4)

        async def one(model: str) -> tuple[str, Outcome]:
            async with sem:
                fault = Named("echo", "", RxChatError, fixed=model)
                return model, await CLI.run(echo_server.url, fault)

        return dict(await asyncio.gather(*(one(m) for m in ECHO_MODELS)))

    return asyncio.run(run_all())


@pytest.mark.parametrize("model", ECHO_MODELS)
def test_cli_never_prints_the_key(model: str, cli_echo_outcomes: dict[str, Outcome]) -> None:
    out = cli_echo_outcomes[model]
    assert out.returncode == 1
    assert out.output.startswith("rxchat: error: ")
    _assert_clean([out.text, out.output], f"cli / {model}")


def test_cli_key_from_the_environment_is_never_printed(echo_server: EchoServer) -> None:
    for variable in ("RXCHAT_API_KEY", "OPENAI_API_KEY"):
        env = {**cli_env(), variable: SENTINEL_KEY}
        proc = subprocess.run(
            cli_command("chat", "hi", "--base-url", echo_server.url, "--model", "echo-401"),
            capture_output=True,
            env=env,
            timeout=HANG_GUARD,
            check=False,
        )
        assert proc.returncode == 1
        _assert_clean([proc.stdout.decode(), proc.stderr.decode()], f"cli / ${variable}")


# -- reprs and the key in the URL -------------------------------------------------------------


async def test_reprs_hide_the_key(threaded_server: ThreadedMock, no_leftover_tasks: None) -> None:
    url = threaded_server.url
    texts: list[str] = []
    async with AsyncClient(api_key=SENTINEL_KEY, base_url=url) as client:
        texts += [repr(client), str(client), repr(client._transport)]
        stream = await client.chat.completions.create(
            model="mock?tokens=3", messages=MESSAGES, stream=True
        )
        texts += [repr(stream), repr(stream.source)]
        async for chunk in stream:
            texts.append(repr(chunk))
        async with client.chat.completions.stream(model="mock?tokens=3", messages=MESSAGES) as s:
            texts += [repr(s), repr(s.response)]
            completion = await s.get_final_completion()
            texts.append(repr(completion))
        texts.append(repr(client.chat.completions.observe(model="m", messages=MESSAGES)))
    observable = chat_completion_stream(
        model="m", messages=MESSAGES, base_url=url, api_key=SENTINEL_KEY
    )
    texts.append(repr(observable))

    def sync_reprs() -> list[str]:
        with Client(api_key=SENTINEL_KEY, base_url=url) as client:
            found = [repr(client), str(client), repr(client.chat.completions)]
            with client.chat.completions.create(
                model="mock?tokens=3", messages=MESSAGES, stream=True
            ) as stream:
                found += [repr(stream), repr(stream.source)]
            return found

    texts += await asyncio.to_thread(sync_reprs)
    _assert_clean(texts, "reprs")


async def test_key_in_the_url_userinfo_is_not_shown(
    caplog: pytest.LogCaptureFixture, no_leftover_tasks: None
) -> None:
    """A base URL carrying credentials (``http://user:KEY@host``) is shown without them."""
    caplog.set_level(logging.DEBUG)
    # A closed port: the connection is refused and the error names the URL.
    url = f"http://user:{SENTINEL_KEY}@127.0.0.1:9/v1"
    errors: list[BaseException] = []
    async with AsyncClient(base_url=url, max_retries=0) as client:
        texts = [repr(client), client.base_url]
        try:
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        except APIConnectionError as err:
            errors.append(err)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | None] = loop.create_future()
    chat_completion_stream(model="m", messages=MESSAGES, base_url=url, max_retries=0).subscribe(
        on_error=done.set_result, on_completed=lambda: done.set_result(None)
    )
    errors.append(await done)  # type: ignore[arg-type]

    def sync() -> BaseException | None:
        with Client(base_url=url, max_retries=0) as client:
            texts.append(repr(client))
            try:
                client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            except APIConnectionError as err:
                return err
        return None

    errors.append(await asyncio.to_thread(sync))  # type: ignore[arg-type]
    assert all(isinstance(e, APIConnectionError) for e in errors), errors
    for err in errors:
        texts += _error_texts(err)
    _assert_clean(texts + [r.getMessage() for r in caplog.records], "url")


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
async def tls_url(tls_files: tuple[Path, Path]) -> AsyncIterator[str]:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(create_app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_tls_is_verified_by_default(tls_url: str, no_leftover_tasks: None) -> None:
    assert HTTPTransport(base_url=tls_url, api_key=None, timeout=Timeout())._verify_ssl is True
    errors: list[BaseException] = []
    async with AsyncClient(api_key=SENTINEL_KEY, base_url=tls_url, max_retries=2) as client:
        try:
            await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        except APIConnectionError as err:
            errors.append(err)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | None] = loop.create_future()
    chat_completion_stream(
        model="m", messages=MESSAGES, base_url=tls_url, api_key=SENTINEL_KEY
    ).subscribe(on_error=done.set_result, on_completed=lambda: done.set_result(None))
    errors.append(await done)  # type: ignore[arg-type]
    assert len(errors) == 2
    for err in errors:
        assert isinstance(err, APIConnectionError)
        assert "certificate" in str(err).lower() or "ssl" in str(err).lower(), str(err)


async def test_tls_verification_off_only_when_asked(tls_url: str, no_leftover_tasks: None) -> None:
    async with AsyncClient(api_key=SENTINEL_KEY, base_url=tls_url, verify_ssl=False) as client:
        stream = await client.chat.completions.create(
            model="mock?tokens=3", messages=MESSAGES, stream=True
        )
        texts = [chunk.text async for chunk in stream if chunk.text]
    assert len(texts) == 3


def test_environment_cannot_turn_verification_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Variables that turn TLS checks off in other tools do not reach rxchat's default."""
    for name in ("PYTHONHTTPSVERIFY", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, "0" if name == "PYTHONHTTPSVERIFY" else os.devnull)
    assert AsyncClient(api_key="k", base_url="https://example.invalid/v1")._verify_ssl is True


# -- everything reachable from an error (issue 10, item 8) ------------------------------------

SLASH_KEY = "sk-rxchat/SENTINEL/0123456789"
"""A key with "/" in it: a server writing JSON may echo it as ``sk-rxchat\\/SENTINEL\\/...``."""
URL_PASSWORD = "pw-SENTINEL-4242"


def reachable_texts(err: BaseException) -> list[str]:
    """str, repr and formatted traceback of ``err``, and the repr of everything reachable from
    it: attributes (``__dict__``, ``__slots__``, dataclass fields), container items, named-tuple
    fields, ``args``, ``__cause__`` / ``__context__`` to the end of the chain."""
    texts = ["".join(traceback.format_exception(err))]
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(err, 0)]
    while todo:
        value, depth = todo.pop()
        if id(value) in seen or depth > 12 or value is None:
            continue
        seen.add(id(value))
        texts.append(repr(value))
        if isinstance(value, str | bytes | int | float | bool):
            texts.append(str(value))
            continue
        children: list[object] = []
        if isinstance(value, BaseException):
            texts.append(str(value))
            children += [value.__cause__, value.__context__, *value.args]
        if isinstance(value, dict) or hasattr(value, "items"):
            try:
                for k, v in value.items():  # type: ignore[attr-defined]
                    children += [k, v]
            except Exception:
                pass
        if isinstance(value, list | tuple | set | frozenset):
            children += list(value)
        children += list(getattr(value, "__dict__", {}).values())
        for cls in type(value).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and not slot.startswith("__"):
                    children.append(getattr(value, slot, None))
        for name in ("request_info", "headers", "url", "real_url", "history", "message"):
            children.append(getattr(value, name, None))
        todo += [(c, depth + 1) for c in children]
    return texts


def _assert_nothing_reachable(err: BaseException, *secrets: str, where: str) -> None:
    from rxchat.errors import secret_forms

    forms = {f for s in secrets for f in secret_forms(s)}
    forms |= {"SENTINEL"}
    for text in reachable_texts(err):
        for form in forms:
            assert form not in text, f"{where}: {form!r} reachable in {text[:400]!r}"


async def _hostile(request: Any, writer: asyncio.StreamWriter) -> bool:
    """Answers that make aiohttp raise with the request headers attached, or that echo the key."""
    from faultkit import response_head

    auth = request.headers.get("authorization", "")
    key = auth.partition(" ")[2]
    model = orjson.loads(request.body)["model"]
    if model == "huge-header":
        writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    elif model == "bad-status-line":
        writer.write(f"HTTP/1.1 2x0 {auth}\r\n\r\n".encode())
    elif model == "bad-header-echo":
        writer.write(f"HTTP/1.1 200 OK\r\nX-Echo {auth}\r\n\r\n".encode())
    elif model == "json-escaped-401":
        escaped = key.replace("/", "\\/")
        body = (
            f'{{"error": {{"message": "bad key {escaped}", "code": "{escaped}", "param": "{escaped}", "type": "t"}}}}'
        ).encode()
        writer.write(
            response_head(
                "401 Unauthorized",
                content_type="application/json",
                content_length=str(len(body)),
                www_authenticate=f'Bearer realm="{auth}"',
            )
            + body
        )
    elif model == "redirect-loop":
        writer.write(
            response_head(
                "307 Temporary Redirect",
                location=f"/v1/loop/{key}",
                content_length="0",
                x_echo=auth,
            )
        )
        await writer.drain()
        return True
    await writer.drain()
    return False


HOSTILE_MODELS = [
    "huge-header",
    "bad-status-line",
    "bad-header-echo",
    "json-escaped-401",
    "redirect-loop",
]


@pytest.mark.parametrize("model", HOSTILE_MODELS)
@pytest.mark.parametrize("credentials", ["api_key", "url_password"])
async def test_nothing_reachable_from_an_error_holds_a_secret(
    model: str, credentials: str, no_leftover_tasks: None
) -> None:
    from faultkit import RawServer

    async with RawServer(_hostile) as server:
        if credentials == "api_key":
            options: dict[str, Any] = {"api_key": SLASH_KEY, "base_url": server.url}
            secrets = [SLASH_KEY]
        else:
            url = server.url.replace("http://", f"http://user:{URL_PASSWORD}@")
            options = {"base_url": url}
            secrets = [URL_PASSWORD]
        errors: list[BaseException] = []
        async with AsyncClient(max_retries=0, **options) as client:
            for stream in (True, False):
                try:
                    await client.chat.completions.create(model=model, messages=MESSAGES, stream=stream)
                except RxChatError as err:
                    errors.append(err)
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        chat_completion_stream(model=model, messages=MESSAGES, max_retries=0, **options).subscribe(
            on_error=done.set_result, on_completed=lambda: done.set_result(None)
        )
        errors.append(await done)  # type: ignore[arg-type]

        def sync() -> BaseException | None:
            with Client(max_retries=0, **options) as sync_client:
                try:
                    sync_client.chat.completions.create(model=model, messages=MESSAGES)
                except RxChatError as err:
                    return err
            return None

        errors.append(await asyncio.to_thread(sync))  # type: ignore[arg-type]
    assert len(errors) == 4 and all(isinstance(e, RxChatError) for e in errors), errors
    for err in errors:
        _assert_nothing_reachable(err, *secrets, where=f"{model} / {credentials}")


async def test_redaction_removes_the_value_not_what_looks_like_a_key() -> None:
    """The mock's own 401 message survives word for word; only the key's value is removed."""
    from rxchat.mock import MockServer

    async with MockServer(api_key="the-right-key") as server, AsyncClient(
        api_key=None, base_url=server.url, max_retries=0
    ) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.chat.completions.create(model="m", messages=MESSAGES)
    assert "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)" in str(info.value)
    from rxchat.errors import redact_values

    assert redact_values("key sk-abc\\/def and sk-abc/def", "sk-abc/def") == "key *** and ***"
    assert redact_values("Bearer sk-someone-elses-0123456789", "sk-mine-000") == (
        "Bearer sk-someone-elses-0123456789"
    )
