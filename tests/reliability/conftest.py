"""Fixtures of the reliability suite: a mock server on its own thread, the reference answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from faultkit import SENTINEL_KEY, reference_pieces
from support import ThreadedMock


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedMock]:
    """One mock server per module, on its own loop thread, requiring the sentinel key."""
    server = ThreadedMock(api_key=SENTINEL_KEY)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def pieces(threaded_server: ThreadedMock) -> list[str]:
    """The content pieces of the healthy answer every fault row is compared with."""
    return asyncio.run(reference_pieces(threaded_server.url))
