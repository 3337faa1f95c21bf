"""The fault x surface matrix, shared by ``test_faults.py`` and ``benchmarks/bench_faults.py``.

* The embedded mock server runs on its own event-loop thread (``support.ThreadedMock``), so
  that synchronous clients (which block their thread) and subprocesses can talk to it, and so
  that the server's work never runs on the loop under test.
* :data:`FAULTS` — each fault the mock can inject, with the outcome DESIGN.md defines for it.
* :data:`SURFACES` — each public way of reading a stream, run the same way: one request, every
  item collected, the error (if any) caught, the time to raise measured.
* :func:`check` — compares an :class:`Outcome` with the fault's expectation (shared, so the
  benchmark's table and the tests agree on what "green" means).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson

from rxchat import AsyncClient, Client, Timeout, chat_completion_stream
from rxchat.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    EventTooLargeError,
    IdleTimeoutError,
    IncompleteStreamError,
    InternalServerError,
    InvalidChunkError,
    RateLimitError,
    RxChatError,
    StreamAPIError,
)
from rxchat.operators import accumulate, idle_timeout

T = TypeVar("T")

SENTINEL_KEY = "sk-rxchat-SENTINEL-0123456789"
"""The API key of every surface: it must never show up in an error, a repr, a log or CLI output."""

TOKENS = 8  # content tokens of each answer: chunks are [role, 8 tokens, finish]
AFTER = 3  # "after N chunks" of the mid-stream faults
MESSAGES = [{"role": "user", "content": "Tell me about reliability."}]
HANG_GUARD = 15.0  # seconds: a surface that has not finished by then is hanging

READ = 0.25  # read timeout of the stall rows (seconds of socket silence)
IDLE = 0.5  # model-output idle timeout of the keep-alive stall row
TOTAL = 0.8  # total timeout of the keep-alive stall row on surfaces without an idle timeout
QUICK = Timeout(connect=5.0, read=5.0, total=None)  # rows that must not time out


# The mock on its own loop thread: tests/support/threaded.py (one class for every suite).


# -- outcomes ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one surface saw of one request."""

    error: BaseException | None
    elapsed: float  # seconds from the call to the error (or to the end of the stream)
    texts: list[str] = field(default_factory=list)  # content pieces delivered, in order
    chunks: int = 0  # chunks (or chunk events) delivered to the user
    completion_text: str | None = None  # the accumulated content: err.completion, or the final one
    output: str = ""  # CLI: stdout + stderr
    returncode: int | None = None  # CLI only

    @property
    def text(self) -> str:
        return "".join(self.texts)


def _content_of(completion: Any) -> str | None:
    if completion is None:
        return None
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return ""
    return choices[0].message.content or ""


# -- faults --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One fault and its defined outcome.

    ``error`` is the expected exception class, ``None`` for a stream that must succeed; ``chunks``
    is how many chunks are delivered before the error (the partial output); ``requests`` how many
    HTTP requests the server must see (retries).
    """

    name: str
    options: str  # mock options (the model's query suffix)
    error: type[BaseException] | None
    chunks: int | None = None
    timeout: Timeout = QUICK
    idle: float | None = None  # ops.idle_timeout on the reactive surfaces
    max_retries: int = 0
    max_event_bytes: int | None = None
    status: int | None = None
    requests: int = 1
    expect_text: str = "prefix"  # "prefix": the first `chunks` pieces; "all"; "utf8"; "big"
    raw: str | None = None  # InvalidChunkError.raw must contain this
    message: str | None = None  # the error message must contain this
    what: str = ""  # one line for the docs / benchmark table
    timed: bool = False  # the time to raise is a timeout (shown in the table)

    def model(self, key: str = "") -> str:
        opts = f"tokens={TOKENS}" + (f"&{self.options}" if self.options else "")
        if "fail_times" in opts:
            opts += f"&key={key or uuid.uuid4().hex}"
        return f"mock?{opts}"


FAULTS: list[Fault] = [
    Fault("ok", "", None, expect_text="all", what="healthy stream (control)"),
    Fault(
        "drop",
        f"drop_after={AFTER}",
        APIConnectionError,
        AFTER,
        what=f"TCP connection closed after {AFTER} chunks",
    ),
    Fault(
        "stall_headers",
        "stall_headers=30",
        APITimeoutError,
        0,
        timeout=Timeout(connect=5.0, read=READ),
        what="no response headers (read timeout)",
        timed=True,
    ),
    Fault(
        "stall_first",
        "stall_first=30",
        APITimeoutError,
        0,
        timeout=Timeout(connect=5.0, read=READ),
        what="headers, then silence before the first chunk (read timeout)",
        timed=True,
    ),
    Fault(
        "stall_between",
        f"stall_between=30&stall_after={AFTER}",
        APITimeoutError,
        AFTER,
        timeout=Timeout(connect=5.0, read=READ),
        what=f"silence after {AFTER} chunks (read timeout)",
        timed=True,
    ),
    Fault(
        "stall_keepalive",
        f"stall_between=30&stall_after={AFTER}&keepalive=0.05",
        APITimeoutError,
        AFTER,
        timeout=Timeout(connect=5.0, read=READ, total=TOTAL, idle=IDLE),
        idle=IDLE,
        what=f"': keep-alive' every 50 ms but no output after {AFTER} chunks",
        timed=True,
    ),
    Fault(
        "status_429",
        "status=429&retry_after=0",
        RateLimitError,
        0,
        max_retries=2,
        status=429,
        requests=3,
        what="429 + Retry-After: 0 on every attempt (2 retries, then raised)",
    ),
    Fault(
        "status_500",
        "status=500&retry_after=0",
        InternalServerError,
        0,
        max_retries=2,
        status=500,
        requests=3,
        what="500 on every attempt",
    ),
    Fault(
        "status_503",
        "status=503&retry_after=0",
        InternalServerError,
        0,
        max_retries=2,
        status=503,
        requests=3,
        what="503 on every attempt",
    ),
    Fault(
        "status_401",
        "status=401",
        AuthenticationError,
        0,
        max_retries=2,
        status=401,
        requests=1,
        what="401 (never retried)",
    ),
    Fault(
        "retry_429",
        "status=429&retry_after=0&fail_times=2",
        None,
        max_retries=2,
        requests=3,
        expect_text="all",
        what="429 twice, then the answer (fail_times=2 < 1 + max_retries)",
    ),
    Fault(
        "retry_503",
        "status=503&retry_after=0&fail_times=2",
        None,
        max_retries=2,
        requests=3,
        expect_text="all",
        what="503 twice, then the answer",
    ),
    Fault(
        "bad_json",
        f"bad_json_after={AFTER}",
        InvalidChunkError,
        AFTER,
        raw="{not json",
        what=f"'data: {{not json' after {AFTER} chunks",
    ),
    Fault(
        "error_frame",
        f"error_after={AFTER}",
        StreamAPIError,
        AFTER,
        message="mock error_after fault",
        what=f'data: {{"error": ...}} after {AFTER} chunks',
    ),
    Fault(
        "event_error",
        f"event_error_after={AFTER}",
        StreamAPIError,
        AFTER,
        message="mock error_after fault",
        what=f"event: error + data after {AFTER} chunks",
    ),
    Fault(
        "unknown_shape",
        f"unknown_shape_after={AFTER}",
        InvalidChunkError,
        AFTER,
        raw='"foo"',
        what=f"a chunk whose 'choices' is an object, after {AFTER} chunks",
    ),
    Fault(
        "invalid_utf8",
        f"invalid_utf8_after={AFTER}",
        None,
        expect_text="utf8",
        what="invalid UTF-8 bytes in a chunk: U+FFFD, as the SSE spec decodes",
    ),
    Fault(
        "big_event",
        "big_event=10000000",
        None,
        expect_text="big",
        what="one 10 MB event, no limit set: delivered whole",
    ),
    Fault(
        "big_event_limited",
        "big_event=10000000",
        EventTooLargeError,
        1,
        max_event_bytes=1_000_000,
        message="max_event_bytes=1000000",
        what="one 10 MB event with max_event_bytes=1 MB",
    ),
    Fault(
        "no_done",
        "no_done=1",
        IncompleteStreamError,
        1 + TOKENS,
        what="body ends without finish_reason and without [DONE]",
    ),
    Fault("drip", "drip=1", None, expect_text="all", what="the body written one byte at a time"),
]

FAULTS_BY_NAME = {f.name: f for f in FAULTS}


# -- surfaces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """One public way of reading a stream."""

    name: str
    run: Callable[[str, Fault], Awaitable[Outcome]]
    accumulates: bool  # errors carry .completion (the partial answer)
    idle_timeout: bool  # model-output idle timeout (ops.idle_timeout, Timeout(idle=...), --idle-timeout)
    max_event_bytes: bool  # the option exists on this surface
    what: str
    total_timeout: bool = True  # Timeout(total=...) can be set
    cli: bool = False  # a subprocess: judged on exit status, stdout and stderr


def _client_kwargs(url: str, fault: Fault) -> dict[str, Any]:
    return {
        "api_key": SENTINEL_KEY,
        "base_url": url,
        "timeout": fault.timeout,
        "max_retries": fault.max_retries,
        "max_event_bytes": fault.max_event_bytes,
    }


async def _subscribe(observable: Any, fault: Fault, *, events: bool = False) -> Outcome:
    """Subscribe on the running loop; collect every item; wait for the end or the error.

    With ``events``, the chunks go through ``ops.accumulate()`` and the items are events.
    """
    if fault.idle is not None:
        observable = observable.pipe(idle_timeout(fault.idle))
    if events:
        observable = observable.pipe(accumulate())
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | None] = loop.create_future()
    out = Outcome(None, 0.0)
    last_snapshot: list[Any] = [None]

    def on_next(item: Any) -> None:
        if not events:
            out.chunks += 1
            if item.text:
                out.texts.append(item.text)
        elif item.type == "chunk":
            out.chunks += 1
            last_snapshot[0] = item.snapshot
        elif item.type == "content.delta" and item.delta:
            out.texts.append(item.delta)

    def finish(err: BaseException | None) -> None:
        if not done.done():
            out.elapsed = time.perf_counter() - start
            done.set_result(err)

    start = time.perf_counter()
    subscription = observable.subscribe(on_next, finish, lambda: finish(None))
    try:
        out.error = await done
    finally:
        subscription.dispose()
    if out.error is not None and isinstance(out.error, RxChatError):
        out.completion_text = _content_of(out.error.completion)
    elif events:
        out.completion_text = _content_of(last_snapshot[0])
    return out


def _source(url: str, fault: Fault) -> Any:
    return chat_completion_stream(
        model=fault.model(),
        messages=MESSAGES,
        base_url=url,
        api_key=SENTINEL_KEY,
        timeout=fault.timeout,
        max_retries=fault.max_retries,
    )


async def run_observable(url: str, fault: Fault) -> Outcome:
    return await _subscribe(_source(url, fault), fault)


async def run_rx_accumulate(url: str, fault: Fault) -> Outcome:
    return await _subscribe(_source(url, fault), fault, events=True)


async def run_observe(url: str, fault: Fault) -> Outcome:
    async with AsyncClient(**_client_kwargs(url, fault)) as client:
        observable = client.chat.completions.observe(model=fault.model(), messages=MESSAGES)
        return await _subscribe(observable, fault)


async def run_async_create(url: str, fault: Fault) -> Outcome:
    out = Outcome(None, 0.0)
    start = time.perf_counter()
    async with AsyncClient(**_client_kwargs(url, fault)) as client:
        try:
            stream = await client.chat.completions.create(
                model=fault.model(), messages=MESSAGES, stream=True
            )
            async with stream:
                async for chunk in stream:
                    out.chunks += 1
                    if chunk.text:
                        out.texts.append(chunk.text)
        except Exception as err:
            out.error = err
        out.elapsed = time.perf_counter() - start
    return out


async def run_async_stream(url: str, fault: Fault) -> Outcome:
    out = Outcome(None, 0.0)
    start = time.perf_counter()
    async with AsyncClient(**_client_kwargs(url, fault)) as client:
        try:
            async with client.chat.completions.stream(
                model=fault.model(), messages=MESSAGES
            ) as stream:
                async for event in stream:
                    if event.type == "chunk":
                        out.chunks += 1
                    elif event.type == "content.delta" and event.delta:
                        out.texts.append(event.delta)
                completion = await stream.get_final_completion()
                out.completion_text = _content_of(completion)
        except Exception as err:
            out.error = err
            if isinstance(err, RxChatError):
                out.completion_text = _content_of(err.completion)
        out.elapsed = time.perf_counter() - start
    return out


def _sync_create(url: str, fault: Fault) -> Outcome:
    out = Outcome(None, 0.0)
    start = time.perf_counter()
    with Client(**_client_kwargs(url, fault)) as client:
        try:
            with client.chat.completions.create(
                model=fault.model(), messages=MESSAGES, stream=True
            ) as stream:
                for chunk in stream:
                    out.chunks += 1
                    if chunk.text:
                        out.texts.append(chunk.text)
        except Exception as err:
            out.error = err
        out.elapsed = time.perf_counter() - start
    return out


def _sync_stream(url: str, fault: Fault) -> Outcome:
    out = Outcome(None, 0.0)
    start = time.perf_counter()
    with Client(**_client_kwargs(url, fault)) as client:
        try:
            with client.chat.completions.stream(model=fault.model(), messages=MESSAGES) as stream:
                for event in stream:
                    if event.type == "chunk":
                        out.chunks += 1
                    elif event.type == "content.delta" and event.delta:
                        out.texts.append(event.delta)
                out.completion_text = _content_of(stream.get_final_completion())
        except Exception as err:
            out.error = err
            if isinstance(err, RxChatError):
                out.completion_text = _content_of(err.completion)
        out.elapsed = time.perf_counter() - start
    return out


async def run_sync_create(url: str, fault: Fault) -> Outcome:
    return await asyncio.to_thread(_sync_create, url, fault)


async def run_sync_stream(url: str, fault: Fault) -> Outcome:
    return await asyncio.to_thread(_sync_stream, url, fault)


SURFACES: list[Surface] = [
    Surface(
        "observable",
        run_observable,
        accumulates=False,
        idle_timeout=True,
        max_event_bytes=False,
        what="rxchat.chat_completion_stream(...) subscribed (+ ops.idle_timeout)",
    ),
    Surface(
        "rx_accumulate",
        run_rx_accumulate,
        accumulates=True,
        idle_timeout=True,
        max_event_bytes=False,
        what="chat_completion_stream(...).pipe(ops.idle_timeout, ops.accumulate()) subscribed",
    ),
    Surface(
        "observe",
        run_observe,
        accumulates=False,
        idle_timeout=True,
        max_event_bytes=True,
        what="AsyncClient.chat.completions.observe(...) subscribed (+ ops.idle_timeout)",
    ),
    Surface(
        "async_create",
        run_async_create,
        accumulates=False,
        idle_timeout=True,
        max_event_bytes=True,
        what="await AsyncClient.chat.completions.create(stream=True); async for chunk",
    ),
    Surface(
        "async_stream",
        run_async_stream,
        accumulates=True,
        idle_timeout=True,
        max_event_bytes=True,
        what="async with AsyncClient.chat.completions.stream(...); async for event",
    ),
    Surface(
        "sync_create",
        run_sync_create,
        accumulates=False,
        idle_timeout=True,
        max_event_bytes=True,
        what="Client.chat.completions.create(stream=True); for chunk",
    ),
    Surface(
        "sync_stream",
        run_sync_stream,
        accumulates=True,
        idle_timeout=True,
        max_event_bytes=True,
        what="with Client.chat.completions.stream(...); for event",
    ),
]

SURFACES_BY_NAME = {s.name: s for s in SURFACES}


def applicable(fault: Fault, surface: Surface) -> bool:
    """Whether the fault's configuration exists on the surface.

    Left out: ``max_event_bytes`` where the surface has no such option, and the keep-alive stall
    where the surface has neither a model-output idle timeout nor a total timeout (keep-alive
    bytes reset the read timeout, so nothing there can end that stall early).
    """
    if fault.max_event_bytes is not None and not surface.max_event_bytes:
        return False
    return not (fault.idle is not None and not (surface.idle_timeout or surface.total_timeout))


def matrix(*, cli: bool = False) -> list[tuple[Fault, Surface]]:
    """Every (fault, surface) pair that can be configured (the CLI's pairs with ``cli=True``)."""
    surfaces = [CLI] if cli else SURFACES
    return [(f, s) for f in FAULTS for s in surfaces if applicable(f, s)]


# -- the reference answer -------------------------------------------------------------------


async def reference_pieces(url: str, model: str = f"mock?tokens={TOKENS}") -> list[str]:
    """The content piece of every chunk of a healthy stream, read with plain aiohttp.

    Independent of rxchat's decoder on purpose: it is what the server sent.
    """
    body = {"model": model, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {SENTINEL_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/chat/completions", json=body, headers=headers) as resp,
    ):
        raw = await resp.read()
    pieces: list[str] = []
    for frame in raw.split(b"\n\n"):
        if not frame.startswith(b"data: ") or frame == b"data: [DONE]":
            continue
        choices = orjson.loads(frame[6:])["choices"]
        pieces.append((choices[0]["delta"].get("content") or "") if choices else "")
    return pieces


# -- expectations ----------------------------------------------------------------------------


def expected_error(fault: Fault, surface: Surface) -> type[BaseException] | None:
    """The error class this surface must raise for the fault."""
    if fault.name == "stall_keepalive":
        # Keep-alive comments reset the socket's read timeout (any byte does); the model-output
        # idle timeout (every surface has one) catches the stall, never the total timeout.
        return IdleTimeoutError if surface.idle_timeout else APITimeoutError
    return fault.error


def _expected_text(fault: Fault, pieces: list[str]) -> str:
    if fault.expect_text == "all":
        return "".join(pieces)
    if fault.expect_text == "utf8":
        return "".join(pieces[:AFTER]) + "\ufffd\ufffd bad \ufffd" + "".join(pieces[AFTER:])
    if fault.expect_text == "big":
        return ("abcdefghij" * 1_000_000) + "".join(pieces)
    raise AssertionError(fault.expect_text)


def check(fault: Fault, surface: Surface, out: Outcome, pieces: list[str]) -> list[str]:
    """Every way ``out`` differs from the fault's defined outcome (empty: green)."""
    if surface.cli:
        return check_cli(fault, out, pieces)
    problems: list[str] = []
    err = out.error
    want = expected_error(fault, surface)
    if want is None:
        if err is not None:
            problems.append(f"expected success, got {type(err).__name__}: {err}")
            return problems
        expected = _expected_text(fault, pieces)
        if out.text != expected:
            problems.append(
                f"text differs: got {len(out.text)} chars {out.text[:60]!r}..., "
                f"expected {len(expected)} chars {expected[:60]!r}..."
            )
        if surface.accumulates and out.completion_text != expected:
            problems.append("final completion content differs from the streamed text")
        return problems
    if err is None:
        problems.append(f"silent success: expected {want.__name__}")
        return problems
    if not isinstance(err, want):
        problems.append(f"expected {want.__name__}, got {type(err).__name__}: {err}")
        return problems
    if fault.name == "drop" and isinstance(err, APITimeoutError):
        problems.append("a dropped connection is not a timeout")
    if fault.status is not None:
        assert isinstance(err, APIStatusError)
        if err.status_code != fault.status:
            problems.append(f"status_code {err.status_code} != {fault.status}")
    if fault.raw is not None:
        raw = getattr(err, "raw", None)
        if not isinstance(raw, str) or fault.raw not in raw:
            problems.append(f".raw {raw!r} does not contain {fault.raw!r}")
    if fault.message is not None and fault.message not in str(err):
        problems.append(f"message {str(err)!r} lacks {fault.message!r}")
    assert isinstance(err, RxChatError)
    if fault.chunks is not None:
        if err.chunks_received != fault.chunks:
            problems.append(f"chunks_received {err.chunks_received} != {fault.chunks}")
        if out.chunks != fault.chunks:
            problems.append(f"{out.chunks} chunks delivered before the error != {fault.chunks}")
        partial = "".join(pieces[: fault.chunks])
        if out.text != partial:
            problems.append(f"partial text {out.text!r} != {partial!r}")
        if surface.accumulates and fault.chunks > 0 and out.completion_text != partial:
            problems.append(f"err.completion content {out.completion_text!r} != {partial!r}")
    for text in (str(err), repr(err), str(err.__cause__ or "")):
        if SENTINEL_KEY in text:
            problems.append("the API key appears in the error")
    return problems


def describe_partial(fault: Fault, surface: Surface, out: Outcome) -> str:
    """A short 'what of the partial output was preserved' cell."""
    err = out.error
    if err is None:
        return f"all {out.chunks} chunks, {len(out.text)} chars"
    n = getattr(err, "chunks_received", 0)
    cell = f"{out.chunks} chunks delivered, chunks_received={n}"
    if surface.accumulates:
        completion = out.completion_text
        cell += f", .completion={len(completion)} chars" if completion is not None else ""
    if isinstance(err, InvalidChunkError):
        cell += f", .raw={err.raw[:12]!r}"
    if isinstance(err, APIStatusError):
        cell += f", status={err.status_code}"
    return cell


# -- the CLI as a subprocess ------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: no inherited keys or URLs, the repo importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RXCHAT_", "OPENAI_")) and k not in ("PYTHONWARNINGS",)
    }
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    return env


def cli_command(*args: str) -> list[str]:
    """The ``rxchat`` console script's entry point run by this interpreter (no PATH needed)."""
    return [
        sys.executable,
        "-c",
        "import sys; from rxchat._cli import main; sys.exit(main())",
        *args,
    ]


# One line on stderr per error class (see rxchat._cli.describe).
CLI_MARKERS: dict[type[BaseException], str] = {
    APITimeoutError: "timed out: ",
    RateLimitError: "429 (RateLimitError)",
    AuthenticationError: "401 (AuthenticationError)",
    InternalServerError: "(InternalServerError)",
    APIConnectionError: "connection failed: ",
    InvalidChunkError: "invalid stream: ",
    IncompleteStreamError: "incomplete stream: ",
    StreamAPIError: "StreamAPIError: ",
}


def cli_args(url: str, fault: Fault) -> list[str]:
    """``rxchat chat`` for one fault row (plain output, the sentinel key)."""
    return [
        "chat",
        str(MESSAGES[0]["content"]),
        "--base-url",
        url,
        "--model",
        fault.model(),
        "--api-key",
        SENTINEL_KEY,
        "--plain",
        "--max-retries",
        str(fault.max_retries),
        "--timeout",
        str(fault.timeout.read),
        *(["--idle-timeout", str(fault.idle)] if fault.idle is not None else []),
    ]


async def run_cli_surface(url: str, fault: Fault) -> Outcome:
    """Run ``rxchat chat`` as a subprocess; its exit status, stdout and stderr are the outcome."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cli_command(*cli_args(url, fault)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    try:
        async with asyncio.timeout(HANG_GUARD):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    out = Outcome(None, time.perf_counter() - start)
    out.returncode = proc.returncode
    out.texts = [stdout.decode("utf-8", "replace")]
    out.output = stderr.decode("utf-8", "replace")
    return out


def check_cli(fault: Fault, out: Outcome, pieces: list[str]) -> list[str]:
    """The CLI's defined outcome: status 0 and the whole text, or status 1, the partial text on
    stdout and one ``rxchat: error: ...`` line on stderr naming the failure; never the key."""
    problems: list[str] = []
    stdout, stderr = out.text, out.output
    if SENTINEL_KEY in stdout or SENTINEL_KEY in stderr:
        problems.append("the API key was printed")
    if "Traceback" in stderr:
        problems.append("a traceback was printed")
    if fault.error is None:
        if out.returncode != 0:
            problems.append(f"exit status {out.returncode}: {stderr.strip()}")
        if stdout.rstrip("\n") != _expected_text(fault, pieces):
            problems.append(f"stdout {stdout[:60]!r}... is not the whole answer")
        return problems
    if out.returncode != 1:
        problems.append(f"exit status {out.returncode}, expected 1")
    lines = stderr.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith("rxchat: error: "):
        problems.append(f"stderr is not one error line: {stderr!r}")
    marker = next(m for cls, m in CLI_MARKERS.items() if issubclass(fault.error, cls))
    if marker not in stderr:
        problems.append(f"stderr lacks {marker!r}: {stderr.strip()!r}")
    if fault.status is not None and str(fault.status) not in stderr:
        problems.append(f"stderr lacks the status {fault.status}")
    partial = "".join(pieces[: fault.chunks or 0])
    if stdout.rstrip("\n") != partial:
        problems.append(f"stdout {stdout!r} is not the partial answer {partial!r}")
    return problems


CLI = Surface(
    "cli",
    run_cli_surface,
    accumulates=False,
    idle_timeout=True,
    max_event_bytes=False,
    total_timeout=False,
    cli=True,
    what="rxchat chat PROMPT --plain --timeout T --max-retries R (a subprocess)",
)


def run_cli(
    args: list[str], *, timeout: float = HANG_GUARD, env: dict[str, str] | None = None
) -> Outcome:
    """Run the CLI to completion; ``error`` stays ``None`` (see ``returncode`` and ``output``)."""
    start = time.perf_counter()
    proc = subprocess.run(
        cli_command(*args),
        capture_output=True,
        timeout=timeout,
        env=env or cli_env(),
        check=False,
    )
    out = Outcome(None, time.perf_counter() - start)
    out.returncode = proc.returncode
    out.output = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    out.texts = [proc.stdout.decode("utf-8", "replace")]
    return out


# -- hostile servers: raw HTTP/1.1 over asyncio streams ----------------------------------------

Handler = Callable[["RawRequest", asyncio.StreamWriter], Awaitable[bool]]
"""Answers one request; returns True to keep the connection open for the next one."""


@dataclass
class RawRequest:
    """One request as a raw server received it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # which TCP connection it came on (0, 1, ...)


class RawServer:
    """A hand-written HTTP/1.1 server on 127.0.0.1 that answers with whatever bytes a test wants.

    aiohttp.web cannot send what a hostile or careless server sends (a bad chunk size, a short
    ``Content-Length``, a trickled status line, a FIN behind the answer), so the bytes are
    written by hand. ``handler(request, writer)`` answers each request and returns whether the
    connection stays open. Every request is recorded in :attr:`requests`. Runs on the loop it
    is started on (``async with RawServer(handler) as server``) or, with :meth:`threaded`, on
    its own loop thread (for sync clients and subprocesses).
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[RawRequest] = []
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> RawServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = self.connections
        self.connections += 1
        try:
            while True:
                request = await self._read_request(reader, number)
                if request is None:
                    break
                self.requests.append(request)
                if not await self.handler(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader, number: int) -> RawRequest | None:
        line = await reader.readline()
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return RawRequest(method, target, headers, body, number)


class ThreadedRawServer:
    """A :class:`RawServer` on its own loop thread."""

    def __init__(self, handler: Handler) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = RawServer(handler)
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[RawRequest]:
        return self.server.requests

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def sse_chunk(text: str, *, finish: str | None = None) -> bytes:
    """One ``data:`` frame of a chat-completion chunk."""
    chunk = {
        "id": "raw-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "raw",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


SSE_ANSWER = sse_chunk("Hel") + sse_chunk("lo", finish="stop") + b"data: [DONE]\n\n"
"""A whole streamed answer: "Hello"."""

JSON_ANSWER = orjson.dumps(
    {
        "id": "raw-1",
        "object": "chat.completion",
        "created": 1,
        "model": "raw",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "finish_reason": "stop",
            }
        ],
    }
)


def chunked(*parts: bytes) -> bytes:
    """``parts`` in chunked transfer encoding, with the final zero-size chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def response_head(status: str = "200 OK", **headers: str) -> bytes:
    """A status line and headers (``content_type="x"`` becomes ``Content-Type: x``)."""
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{k.replace('_', '-').title()}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_for(request: RawRequest) -> bytes:
    """A whole keep-alive answer to ``request``: SSE when it asked for a stream, else JSON."""
    if b'"stream":true' in request.body:
        return response_head(
            content_type="text/event-stream", transfer_encoding="chunked"
        ) + chunked(SSE_ANSWER)
    return response_head(
        content_type="application/json", content_length=str(len(JSON_ANSWER))
    ) + JSON_ANSWER
