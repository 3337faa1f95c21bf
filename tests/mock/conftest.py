"""Fixtures for the mock-server tests: a running ``MockServer`` and a tiny raw HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from mock_helpers import Post, make_post

from rxchat.mock import MockServer


@pytest.fixture
async def mock_server() -> AsyncIterator[MockServer]:
    """A mock server on a free loopback port; ``mock_server.url`` is the ``/v1`` base URL."""
    async with MockServer() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def post(mock_server: MockServer, http: aiohttp.ClientSession) -> Post:
    return make_post(mock_server.url, http)
