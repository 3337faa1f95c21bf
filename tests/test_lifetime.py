"""Interpreter exit and fork() with synchronous clients in use (rxchat._portal, rxchat._lifetime).

Each scenario is a script run in its own interpreter against the mock server of the test (on the
test's loop, so in another process). Exit scenarios print ``ready`` where the program's work
ends; the test measures from that line to the process's exit. The bound is functional: before
the fix several of these never exited at all.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from dataclasses import dataclass

import aiohttp
import pytest

from rxchat.mock import MockServer

EXIT_BOUND = 10.0  # seconds from the end of the program's work to the process's exit
LONG = "mock?tokens=400&delay=0.05"  # a 20 s answer: still streaming when the program ends

PRELUDE = """
import sys, rxchat
URL, MODEL = sys.argv[1], sys.argv[2]
MSG = [{"role": "user", "content": "hi"}]
client = rxchat.Client(base_url=URL, api_key="k")
"""

EXIT_CASES = {
    # next() on the iterator of a started stream, the iterator kept in a global
    "create_iter_in_global": "it = iter(client.chat.completions.create(model=MODEL, messages=MSG, stream=True))\nnext(it)",
    "create_next": "s = client.chat.completions.create(model=MODEL, messages=MSG, stream=True)\nnext(s)",
    "create_started_unread": "s = client.chat.completions.create(model=MODEL, messages=MSG, stream=True)",
    "events_enter_next": "st = client.chat.completions.stream(model=MODEL, messages=MSG).__enter__()\nnext(st)",
    "events_iter_in_global": "st = client.chat.completions.stream(model=MODEL, messages=MSG).__enter__()\nit = iter(st)\nnext(it)",
    "edgee_iter_in_global": 'it = iter(client.stream(MODEL, "hi"))\nnext(it)',
    "edgee_send_stream": 's = client.send(MODEL, "hi", stream=True)\nnext(s)',
    "in_a_function_kept": textwrap.dedent(
        """
        def work():
            global kept
            kept = iter(client.stream(MODEL, "hi"))
            next(kept)
        work()
        """
    ),
    "observe_subscribed": textwrap.dedent(
        """
        import threading
        first = threading.Event()
        sub = client.chat.completions.observe(model=MODEL, messages=MSG).subscribe(
            lambda chunk: first.set())
        assert first.wait(20)
        """
    ),
    "daemon_thread_reading": textwrap.dedent(
        """
        import threading
        first = threading.Event()
        def read():
            for _ in client.stream(MODEL, "hi"):
                first.set()
        threading.Thread(target=read, daemon=True).start()
        assert first.wait(20)
        """
    ),
    "client_never_closed": 'client.chat.completions.create(model="mock?tokens=3", messages=MSG)',
    "atexit_handler_closes_it": textwrap.dedent(
        """
        import atexit
        s = client.chat.completions.create(model=MODEL, messages=MSG, stream=True)
        next(s)
        atexit.register(s.close)
        atexit.register(client.close)
        """
    ),
}


@dataclass
class Run:
    code: int | None
    stdout: str
    stderr: str
    exit_seconds: float | None  # None: still running after the bound (killed)


async def run_script(source: str, *args: str, bound: float = EXIT_BOUND) -> Run:
    """Run ``source``; time from its ``ready`` line (or its start) to its exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        source,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):  # start-up on a loaded machine, and the work itself
            while True:
                line = (await proc.stdout.readline()).decode()
                lines.append(line)
                if not line or line.strip() == "ready":
                    break
        ready = time.monotonic()
        try:
            async with asyncio.timeout(bound):
                rest = await proc.stdout.read()
                await proc.wait()
            exit_seconds: float | None = time.monotonic() - ready
        except TimeoutError:
            exit_seconds = None
            rest = b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines.append(rest.decode())
    return Run(proc.returncode, "".join(lines), (await stderr_task).decode(), exit_seconds)


@pytest.mark.timeout(300)  # a dozen interpreters, a few at a time, on a loaded machine
async def test_exit_with_unfinished_sync_streams_is_prompt_and_quiet(
    mock_server: MockServer,
) -> None:
    names = list(EXIT_CASES)
    slots = asyncio.Semaphore(4)

    async def run_case(name: str) -> Run:
        async with slots:
            source = PRELUDE + EXIT_CASES[name] + '\nprint("ready", flush=True)\n'
            return await run_script(source, mock_server.url, LONG)

    runs = await asyncio.gather(*(run_case(name) for name in names))
    print({name: run.exit_seconds for name, run in zip(names, runs, strict=True)})
    outcomes = {
        name: (run.code, run.stderr, None if run.exit_seconds is None else "exited")
        for name, run in zip(names, runs, strict=True)
    }
    assert outcomes == {name: (0, "", "exited") for name in names}
    slowest = max(run.exit_seconds or 0.0 for run in runs)
    assert slowest < EXIT_BOUND
    # Each stream left open at exit was closed: the server saw its client go away.
    await mock_server.wait_for_idle(10)


async def test_a_call_after_the_shutdown_at_exit_is_a_typed_error(mock_server: MockServer) -> None:
    # An atexit handler registered *before* rxchat was imported runs after rxchat's shutdown.
    source = (
        textwrap.dedent(
            """
        import atexit, sys
        def late():
            try:
                client.chat.completions.create(model="mock?tokens=3", messages=MSG)
            except rxchat.APIConnectionError as err:
                print("typed:", "interpreter is exiting" in str(err), flush=True)
        atexit.register(late)
        """
        )
        + PRELUDE
        + 'client.chat.completions.create(model="mock?tokens=3", messages=MSG)\nprint("ready", flush=True)\n'
    )
    run = await run_script(source, mock_server.url, LONG)
    assert (run.code, run.stderr, run.exit_seconds is not None) == (0, "", True)
    assert "typed: True" in run.stdout


# -- fork ------------------------------------------------------------------------------------

FORK_SCRIPT = PRELUDE + textwrap.dedent(
    """
    import os
    short = "mock?tokens=5"
    print("parent:", client.chat.completions.create(model=short, messages=MSG).choices[0].message.content is not None)
    half = client.chat.completions.create(model="mock?tokens=30&delay=0.02", messages=MSG, stream=True)
    observed = client.chat.completions.observe(model=short, messages=MSG)
    next(half)
    pid = os.fork()
    if pid == 0:
        # The child: the same client works, with connections of its own.
        text = client.chat.completions.create(model=short, messages=MSG).choices[0].message.content
        chunks = list(client.chat.completions.create(model=short, messages=MSG, stream=True))
        with client.chat.completions.stream(model=short, messages=MSG) as events:
            final = events.get_final_completion()
        # An Observable made in the parent subscribes on the child's own loop.
        import threading
        done = threading.Event()
        seen = []
        observed.subscribe(seen.append, lambda err: done.set(), done.set)
        assert done.wait(20) and len(seen) == 7, seen
        print("child:", bool(text), len(chunks), final.choices[0].finish_reason, flush=True)
        # The stream the parent opened before the fork is the parent's.
        try:
            next(half)
        except rxchat.APIConnectionError as err:
            print("child: parent's stream:", type(err).__name__, "os.fork()" in str(err), flush=True)
        half.close()
        client.close()
        sys.exit(0)  # a normal exit: atexit handlers and finalizers run in the child
    _, status = os.waitpid(pid, 0)
    print("child status:", os.waitstatus_to_exitcode(status), flush=True)
    # The parent's connections were not touched: its half-read stream goes on, and a request
    # on its pooled connection is answered (a read timeout of 3 s would fire otherwise).
    rest = list(iter(lambda: next(half, None), None))  # next() began it: go on with next()
    again = client.with_options(timeout=rxchat.Timeout(connect=3, read=3), max_retries=0)
    print("parent after:", len(rest) > 0, again.chat.completions.create(model=short, messages=MSG).choices[0].finish_reason, flush=True)
    again.close()
    client.close()
    print("ready", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
async def test_sync_client_works_in_a_forked_child_and_the_parent_is_untouched(
    mock_server: MockServer,
) -> None:
    run = await run_script(FORK_SCRIPT, mock_server.url, LONG)
    assert (run.code, run.stderr) == (0, ""), run
    lines = run.stdout.splitlines()
    assert "parent: True" in lines
    assert "child: True 7 stop" in lines  # role, 5 tokens, finish
    assert "child: parent's stream: APIConnectionError True" in lines
    assert "child status: 0" in lines
    assert "parent after: True stop" in lines
    assert run.exit_seconds is not None


ASYNC_FORK_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys, rxchat
    URL = sys.argv[1]
    MSG = [{"role": "user", "content": "hi"}]
    client = rxchat.AsyncClient(base_url=URL, api_key="k")
    async def ask():
        return (await client.chat.completions.create(model="mock?tokens=5", messages=MSG)).choices[0].finish_reason
    loop = asyncio.new_event_loop()
    print("parent:", loop.run_until_complete(ask()), flush=True)
    pid = os.fork()
    if pid == 0:
        # The parent's loop cannot run here: asyncio.run()'s new loop takes the client over.
        async def child():
            reason = await ask()
            await client.close()
            return reason
        print("child:", asyncio.run(child()), flush=True)
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    async def parent():
        reason = await ask()
        await client.close()
        return reason
    print("parent after:", os.waitstatus_to_exitcode(status), loop.run_until_complete(parent()), flush=True)
    loop.close()
    print("ready", flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() exists on POSIX only")
async def test_async_client_works_in_a_forked_child(mock_server: MockServer) -> None:
    # An AsyncClient is bound to one loop; a forked child's new loop may take it over, since
    # the parent's loop can never run there.
    run = await run_script(ASYNC_FORK_SCRIPT, mock_server.url)
    assert (run.code, run.stderr) == (0, ""), run
    assert run.stdout.splitlines()[:3] == ["parent: stop", "child: stop", "parent after: 0 stop"]


def test_aiohttp_connector_closed_flag() -> None:
    """rxchat._lifetime.abandon_session relies on aiohttp's private ``BaseConnector._closed``:
    with it set, the connector counts as closed and its ``_close()`` does nothing."""

    async def main() -> None:
        connector = aiohttp.TCPConnector()
        assert connector._closed is False
        connector._closed = True
        assert connector.closed
        assert connector._close() == []
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector())
        inner = session.connector
        session.detach()
        assert session.closed
        assert inner is not None
        await inner.close()

    asyncio.run(main())


async def test_client_finalizers_run_after_the_portal_is_marked_exiting(
    mock_server: MockServer,
) -> None:
    """A client made after importing rxchat has a finalizer that closes its transport at exit.
    It must run after the portal's shutdown marked the loop as exiting, or it wakes a daemon
    thread's reader with an error (a traceback at exit in about 1 run of 15; the wrong order in
    about half the runs). A spy on the transport's wake-up records whether the loop was marked."""
    source = textwrap.dedent(
        """
        import atexit, sys, threading
        seen = []
        atexit.register(lambda: print("woken while exiting:", seen, flush=True))  # runs last
        import rxchat
        from rxchat import _lifetime, _transport
        wake = _transport.HTTPTransport._interrupt_streams
        def spy(self):
            seen.append(self._loop in _lifetime.exiting_loops)
            wake(self)
        _transport.HTTPTransport._interrupt_streams = spy
        client = rxchat.Client(base_url=sys.argv[1], api_key="k")
        first = threading.Event()
        def read():
            for _ in client.stream(sys.argv[2], "hi"):
                first.set()
        threading.Thread(target=read, daemon=True).start()
        assert first.wait(20)
        print("ready", flush=True)
        """
    )
    slots = asyncio.Semaphore(3)

    async def once() -> Run:
        async with slots:  # a fast stream: chunks keep arriving while the program exits
            return await run_script(source, mock_server.url, "mock?tokens=4000&delay=0.001")

    runs = await asyncio.gather(*(once() for _ in range(8)))
    for run in runs:
        assert (run.code, run.stderr) == (0, "")
        woken = run.stdout.split("woken while exiting: ", 1)[1].strip()
        assert woken.startswith("[True") and "False" not in woken, run.stdout
