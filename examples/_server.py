"""Where the examples send their requests.

``python examples/<name>.py [BASE_URL]``: the base URL (including ``/v1``) comes from the command
line, else from ``$RXCHAT_BASE_URL`` (e.g. ``rxchat serve`` → ``http://127.0.0.1:8000/v1``); with
neither, the embedded mock server is started on a background thread for the run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rxchat.mock import MockServer


@contextmanager
def base_url() -> Iterator[str]:
    """The base URL to use for this run (an embedded mock server when none is configured)."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RXCHAT_BASE_URL")
    if url:
        yield url
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="mock-server", daemon=True)
    thread.start()
    server = MockServer(token_delay=0.01)
    url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    print(f"(no base URL given: using the embedded mock server at {url})\n")
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
