"""One stream, many processes: a producer in one process, readers and a canceller in others,
on a real redis-server; processes and the server killed mid-stream."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _redis_support import RedisServer

from rxchat.mock import MockServer

WORKER = str(Path(__file__).with_name("log_worker.py"))
LEASE = 1.0
# Functional bounds (hang detection), not timing targets.
START_BOUND = 30.0
BOUND = 10.0


class Worker:
    """A log_worker.py process; its stdout read as JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *args: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        assert (await worker.line()) == {"ready": True}
        worker.lines.clear()
        return worker

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def line(self, timeout: float = START_BOUND) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            raise AssertionError(f"worker exited ({await self.process.wait()}) without output")
        item: dict[str, Any] = json.loads(raw)
        self.lines.append(item)
        return item

    async def until_end(self, timeout: float = START_BOUND) -> dict[str, Any]:
        while True:
            item = await self.line(timeout)
            if "end" in item:
                await asyncio.wait_for(self.process.wait(), BOUND)
                return item

    def positions(self) -> list[int]:
        return [item["p"] for item in self.lines if "p" in item]

    def text(self) -> str:
        return "".join(item["t"] or "" for item in self.lines if "p" in item)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


@pytest.fixture
async def workers() -> Any:
    """``await workers(args, ...)``: start workers in parallel (imports take long on a loaded
    machine), each ready for its ``go()``."""
    started: list[Worker] = []

    async def start(*commands: tuple[str, ...]) -> list[Worker]:
        new = await asyncio.gather(*(Worker.start(*args) for args in commands))
        started.extend(new)
        return list(new)

    yield start
    for worker in started:
        await worker.kill()


def new_id() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def test_producer_and_readers_in_other_processes(
    redis_server: RedisServer, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    sid = new_id()
    url, prefix = redis_server.url, redis_prefix
    model = "mock?tokens=80&delay=0.005"
    producer, *readers = await workers(
        ("produce", url, prefix, sid, mock_server.url, model),
        *[("read", url, prefix, sid, "0")] * 3,
    )
    producer.go()
    assert (await producer.line()) == {"published": sid}
    for reader in readers:
        reader.go()
    ends = await asyncio.gather(*(r.until_end() for r in readers))
    assert [e["end"] for e in ends] == ["completed"] * 3
    total = len(readers[0].positions())
    assert total > 80
    for reader in readers:
        assert reader.positions() == list(range(1, total + 1))
        assert reader.text() == mock_server.streams[0].texts[0]
    assert (await producer.until_end())["end"] == "completed"
    assert len(mock_server.requests) == 1


async def test_reader_killed_and_restarted_resumes_without_gap_or_duplicate(
    redis_server: RedisServer, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    sid = new_id()
    url, prefix = redis_server.url, redis_prefix
    model = "mock?tokens=400&delay=0.005"
    producer, first = await workers(
        ("produce", url, prefix, sid, mock_server.url, model), ("read", url, prefix, sid, "0")
    )
    producer.go()
    await producer.line()
    first.go()
    while len(first.positions()) < 30:
        await first.line()
    await first.kill()  # mid-stream, SIGKILL: no goodbye
    seen = first.positions()
    (second,) = await workers(("read", url, prefix, sid, str(seen[-1])))
    second.go()
    assert (await second.until_end())["end"] == "completed"
    resumed = second.positions()
    assert seen + resumed == list(range(1, len(seen) + len(resumed) + 1))
    assert first.text() + second.text() == mock_server.streams[0].texts[0]


async def test_producer_killed_gives_readers_producer_lost_within_the_lease(
    redis_server: RedisServer, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    sid = new_id()
    url, prefix = redis_server.url, redis_prefix
    model = "mock?tokens=5000&delay=0.01"
    producer, reader = await workers(
        ("produce", url, prefix, sid, mock_server.url, model, str(LEASE)),
        ("read", url, prefix, sid, "0", str(LEASE)),
    )
    producer.go()
    await producer.line()
    reader.go()
    while len(reader.positions()) < 10:
        await reader.line()
    loop = asyncio.get_running_loop()
    await producer.kill()
    killed_at = loop.time()
    end = await reader.until_end(BOUND)
    assert end["end"] == "ProducerLostError"
    # The lease expires at most LEASE after the last heartbeat; readers look every LEASE / 5.
    # (asyncio's loop clock is time.monotonic, the same clock in every process.)
    assert end["at"] - killed_at <= LEASE * 1.2 + 1.0
    assert end["content"] == reader.text()  # the partial completion: what was logged


async def test_cancel_from_a_third_process_stops_the_model_stream(
    redis_server: RedisServer, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    sid = new_id()
    url, prefix = redis_server.url, redis_prefix
    model = "mock?tokens=5000&delay=0.01"
    producer, reader, canceller = await workers(
        ("produce", url, prefix, sid, mock_server.url, model),
        ("read", url, prefix, sid, "0"),
        ("cancel", url, prefix, sid),
    )
    producer.go()
    await producer.line()
    reader.go()
    while len(reader.positions()) < 10:
        await reader.line()
    canceller.go()
    answer = await canceller.line()
    assert answer["cancelled"] is True
    record = await mock_server.wait_for_disconnect(BOUND)
    assert record.at - answer["at"] < 1.0  # functional bound; the benchmark measures it
    end = await reader.until_end(BOUND)
    assert end["end"] == "StreamCancelledError"
    assert end["content"] == reader.text()
    assert (await producer.until_end())["end"] == "cancelled"


@pytest.fixture
def own_redis() -> Any:
    servers: list[RedisServer] = []

    def make(persistent: bool) -> RedisServer:
        server = RedisServer(persistent=persistent)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


async def test_redis_killed_and_restarted_with_its_data_loses_nothing(
    own_redis: Any, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    server: RedisServer = own_redis(True)
    sid = new_id()
    url = server.url
    model = "mock?tokens=300&delay=0.01"
    producer, reader = await workers(
        ("produce", url, redis_prefix, sid, mock_server.url, model, "3"),
        ("read", url, redis_prefix, sid, "0", "3"),
    )
    producer.go()
    await producer.line()
    reader.go()
    while len(reader.positions()) < 40:
        await reader.line()
    server.kill()
    await asyncio.sleep(0.5)  # the model keeps streaming into the producer's buffer
    server.start()
    assert (await reader.until_end())["end"] == "completed"
    total = len(reader.positions())
    assert reader.positions() == list(range(1, total + 1))
    assert reader.text() == mock_server.streams[0].texts[0]
    assert (await producer.until_end())["end"] == "completed"
    assert mock_server.streams[0].outcome == "completed"  # the upstream was kept


async def test_redis_restarted_without_its_data_is_a_typed_error(
    own_redis: Any, redis_prefix: str, mock_server: MockServer, workers: Any
) -> None:
    server: RedisServer = own_redis(False)
    sid = new_id()
    url = server.url
    model = "mock?tokens=300&delay=0.01"
    producer, reader, late = await workers(
        ("produce", url, redis_prefix, sid, mock_server.url, model, "3"),
        ("read", url, redis_prefix, sid, "0", "3"),
        ("read", url, redis_prefix, sid, "0", "3"),
    )
    producer.go()
    await producer.line()
    reader.go()
    while len(reader.positions()) < 40:
        await reader.line()
    server.kill()
    await asyncio.sleep(0.3)
    server.start()  # empty: the stream's entries are gone
    end = await reader.until_end()
    assert end["end"] == "StreamDataLostError"
    positions = reader.positions()
    assert positions == list(range(1, len(positions) + 1))  # never a silent gap
    assert (await producer.until_end())["end"] == "error"
    assert mock_server.streams[0].outcome == "disconnected"  # the producer stopped the model
    # A reader arriving now is told too, not handed a stream with a hole.
    late.go()
    assert (await late.until_end())["end"] == "StreamDataLostError"
