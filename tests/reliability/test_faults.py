"""Every fault the mock server injects, on every surface: the defined typed error, raised without
hanging, with everything received before it; never a silent success.

The table of faults and surfaces lives in ``faultkit.py`` (``benchmarks/bench_faults.py`` prints
the same matrix with the time each error took to raise).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from faultkit import (
    FAULTS_BY_NAME,
    HANG_GUARD,
    MESSAGES,
    SENTINEL_KEY,
    SURFACES_BY_NAME,
    Fault,
    Outcome,
    Surface,
    check,
    matrix,
    reference_pieces,
)
from support import ThreadedMock

from rxchat import AsyncClient, Client, chat_completion_stream
from rxchat.errors import APIConnectionError, APITimeoutError, IdleTimeoutError, RxChatError
from rxchat.types import ChatCompletionChunk

CASES = [pytest.param(f, s, id=f"{f.name}-{s.name}") for f, s in matrix()]


@pytest.mark.parametrize(("fault", "surface"), CASES)
async def test_fault_on_surface(
    fault: Fault,
    surface: Surface,
    threaded_server: ThreadedMock,
    pieces: list[str],
    no_leftover_tasks: None,
) -> None:
    server = threaded_server
    before = server.snapshot(lambda: len(server.server.requests))
    async with asyncio.timeout(HANG_GUARD):  # a hang fails here instead of blocking the suite
        out = await surface.run(server.url, fault)
    problems = check(fault, surface, out, pieces)
    assert not problems, problems
    requests = server.snapshot(lambda: len(server.server.requests)) - before
    assert requests == fault.requests, f"{requests} requests, expected {fault.requests}"


def test_every_fault_of_the_mock_is_in_the_matrix() -> None:
    """The matrix covers the fault keys the mock server documents."""
    import rxchat.mock

    doc = rxchat.mock.__doc__ or ""
    keys = [
        "drop_after",
        "stall_headers",
        "stall_first",
        "stall_between",
        "keepalive",
        "status",
        "retry_after",
        "fail_times",
        "bad_json_after",
        "error_after",
        "event_error_after",
        "unknown_shape_after",
        "invalid_utf8_after",
        "big_event",
        "no_done",
        "drip",
    ]
    options = " ".join(f.options for f in FAULTS_BY_NAME.values())
    for key in keys:
        assert f"{key}=" in doc, key
        assert f"{key}=" in options, f"no row injects {key}"
    covered = {s for _, s in ((f, s.name) for f, s in matrix())}
    assert covered == set(SURFACES_BY_NAME)


async def test_keepalives_do_not_reset_the_idle_timeout(
    threaded_server: ThreadedMock, pieces: list[str], no_leftover_tasks: None
) -> None:
    """The read timeout alone never fires while keep-alives flow; the idle timeout does."""
    fault = FAULTS_BY_NAME["stall_keepalive"]
    surface = SURFACES_BY_NAME["observe"]
    async with asyncio.timeout(HANG_GUARD):
        out = await surface.run(threaded_server.url, fault)
    assert isinstance(out.error, IdleTimeoutError), out.error
    assert out.error.chunks_received == fault.chunks
    # The socket's read timeout (READ) is shorter than the idle timeout: had the keep-alive
    # bytes not reset it, an APITimeoutError other than IdleTimeoutError would have come first.
    assert fault.timeout.read is not None and fault.idle is not None
    assert fault.timeout.read < fault.idle
    assert not (isinstance(out.error, APITimeoutError) and "read timeout" in str(out.error))


@pytest.mark.parametrize(
    "surface_name", ["observable", "async_create", "async_stream", "sync_create"]
)
async def test_drop_behind_a_slow_consumer_keeps_every_byte_received(
    surface_name: str, threaded_server: ThreadedMock, no_leftover_tasks: None
) -> None:
    """Chunks that reached the socket before the server closed it are delivered, then the error.

    A slow consumer (0.4 s on the first chunk) lets the rest of the body and the FIN arrive
    while the reader is not waiting on the socket; aiohttp then raises its payload error before
    returning the bytes it buffered, so they must be salvaged, not dropped.
    """
    url = threaded_server.url
    n = 20
    model = f"mock?tokens={n}&delay=0.005&drop_after={n}"
    full = await reference_pieces(url, f"mock?tokens={n}")
    expected = "".join(full[:n])
    texts: list[str] = []
    error: BaseException | None = None

    async with asyncio.timeout(HANG_GUARD):
        if surface_name == "observable":
            loop = asyncio.get_running_loop()
            done: asyncio.Future[BaseException | None] = loop.create_future()

            def on_next(chunk: ChatCompletionChunk) -> None:
                if not texts:
                    time.sleep(0.4)  # a synchronous subscriber that takes time
                texts.append(chunk.text or "")

            sub = chat_completion_stream(
                model=model, messages=MESSAGES, base_url=url, api_key=SENTINEL_KEY, max_retries=0
            ).subscribe(on_next, done.set_result, lambda: done.set_result(None))
            try:
                error = await done
            finally:
                sub.dispose()
        elif surface_name == "async_create":
            async with AsyncClient(api_key=SENTINEL_KEY, base_url=url, max_retries=0) as client:
                try:
                    stream = await client.chat.completions.create(
                        model=model, messages=MESSAGES, stream=True
                    )
                    async for chunk in stream:
                        if not texts:
                            await asyncio.sleep(0.4)  # an async consumer that takes time
                        texts.append(chunk.text or "")
                except Exception as err:
                    error = err
        elif surface_name == "async_stream":
            async with AsyncClient(api_key=SENTINEL_KEY, base_url=url, max_retries=0) as client:
                try:
                    async with client.chat.completions.stream(
                        model=model, messages=MESSAGES
                    ) as events:
                        async for event in events:
                            if event.type == "chunk":
                                if not texts:
                                    await asyncio.sleep(0.4)
                                texts.append(event.chunk.text or "")
                except Exception as err:
                    error = err
                    assert isinstance(err, RxChatError)
                    assert err.completion is not None
                    assert err.completion.choices[0].message.content == expected
        else:

            def run() -> BaseException | None:
                with Client(api_key=SENTINEL_KEY, base_url=url, max_retries=0) as client:
                    try:
                        for chunk in client.chat.completions.create(
                            model=model, messages=MESSAGES, stream=True
                        ):
                            if not texts:
                                time.sleep(0.4)  # the consuming thread is slow
                            texts.append(chunk.text or "")
                    except Exception as err:
                        return err
                return None

            error = await asyncio.to_thread(run)
    assert isinstance(error, APIConnectionError), error
    assert not isinstance(error, APITimeoutError)
    assert "".join(texts) == expected
    assert error.chunks_received == n


# -- the CLI: every fault through `rxchat chat` as a subprocess -----------------------------------

# One row per error class, a success and a retry (each run pays ~0.5 s of interpreter start-up;
# `python benchmarks/bench_faults.py --cli` runs every row).
CLI_ROWS = {
    "ok",
    "drop",
    "stall_first",
    "status_429",
    "status_503",
    "status_401",
    "retry_429",
    "bad_json",
    "event_error",
    "no_done",
}
CLI_PAIRS = [(f, s) for f, s in matrix(cli=True) if f.name in CLI_ROWS]


@pytest.fixture(scope="module")
def cli_outcomes(threaded_server: ThreadedMock) -> dict[str, Outcome]:
    """Each fault's CLI run; the subprocesses run side by side (each pays interpreter start-up)."""

    async def run_all() -> dict[str, Outcome]:
        sem = asyncio.Semaphore(4)

        async def one(fault: Fault, surface: Surface) -> tuple[str, Outcome]:
            async with sem:
                return fault.name, await surface.run(threaded_server.url, fault)

        return dict(await asyncio.gather(*(one(f, s) for f, s in CLI_PAIRS)))

    return asyncio.run(run_all())


@pytest.mark.parametrize(
    ("fault", "surface"), [pytest.param(f, s, id=f.name) for f, s in CLI_PAIRS]
)
def test_fault_on_cli(
    fault: Fault, surface: Surface, cli_outcomes: dict[str, Outcome], pieces: list[str]
) -> None:
    problems = check(fault, surface, cli_outcomes[fault.name], pieces)
    assert not problems, problems
