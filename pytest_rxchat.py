"""pytest fixtures for testing your own code against rxchat's mock server (installed with rxchat).

pytest loads this plugin in every run where rxchat is installed (the ``pytest11`` entry point),
so it imports nothing but pytest: rxchat, aiohttp and the server load only when a test asks for
a fixture. ``-p no:rxchat`` turns it off.

Fixtures:
    ``rxchat_mock``: a :class:`rxchat.mock.ThreadedMockServer` started for the test (on its own
    thread, so synchronous code and async tests both work); script its answers and faults with
    ``rxchat_mock.script("Hello!", {"status": 429})`` or ``rxchat_mock.set_options(delay=0.01)``.
    ``rxchat_mock_url``: its base URL, ``"http://127.0.0.1:PORT/v1"``.
    ``rxchat_mock_env``: the same server, with ``OPENAI_BASE_URL`` / ``RXCHAT_BASE_URL`` pointing
    at it and a dummy ``OPENAI_API_KEY``, for code that reads its configuration from the
    environment.

Marker:
    ``@pytest.mark.rxchat_mock(*answers, **options)`` scripts the test's ``rxchat_mock`` before
    the test starts: ``answers`` as for ``script()``, ``options`` as for ``set_options()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rxchat.mock import ThreadedMockServer

__all__ = ["rxchat_mock", "rxchat_mock_env", "rxchat_mock_url"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rxchat_mock(*answers, **options): script the rxchat_mock fixture's answers (text or "
        "mock options per request) and options for every request",
    )


@pytest.fixture
def rxchat_mock(request: pytest.FixtureRequest) -> Iterator[ThreadedMockServer]:
    """rxchat's mock server on its own thread for this test; ``.url``, ``.script(...)``, records."""
    from rxchat.mock import ThreadedMockServer

    with ThreadedMockServer() as server:
        for marker in reversed(list(request.node.iter_markers("rxchat_mock"))):
            server.script(*marker.args)
            if marker.kwargs:
                server.set_options(**marker.kwargs)
        yield server


@pytest.fixture
def rxchat_mock_url(rxchat_mock: ThreadedMockServer) -> str:
    """The base URL (``http://127.0.0.1:PORT/v1``) of this test's ``rxchat_mock``."""
    return rxchat_mock.url


@pytest.fixture
def rxchat_mock_env(
    rxchat_mock: ThreadedMockServer, monkeypatch: pytest.MonkeyPatch
) -> ThreadedMockServer:
    """This test's ``rxchat_mock``, with the OpenAI / rxchat environment variables pointing at it."""
    monkeypatch.setenv("OPENAI_BASE_URL", rxchat_mock.url)
    monkeypatch.setenv("RXCHAT_BASE_URL", rxchat_mock.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rxchat-mock")
    monkeypatch.delenv("RXCHAT_API_KEY", raising=False)
    return rxchat_mock
