"""Fixtures for the mock-server tests (``mock_server`` itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from mock_helpers import Post, make_post

from rxchat.mock import MockServer


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def post(mock_server: MockServer, http: aiohttp.ClientSession) -> Post:
    return make_post(mock_server.url, http)
