"""Fixtures of the relay tests: a real redis-server for the resume-across-processes tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _redis_support import RedisServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def relay_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    return f"relay{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def other_worker(
    relay_redis: RedisServer, redis_prefix: str, mock_server
) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The chat app in another process over the same Redis log; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "relay_worker.py"),
        relay_redis.url, redis_prefix, mock_server.url,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    try:
        yield line.decode().strip()
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
