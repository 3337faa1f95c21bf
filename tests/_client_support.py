"""Helpers for the client tests: the mock server on its own loop thread (for sync clients)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from rxchat.mock import MockServer

T = TypeVar("T")


class ThreadedMock:
    """A MockServer running on a private event loop in a daemon thread."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mock", daemon=True)
        self.thread.start()
        self.server = MockServer(**options)
        self.url: str = self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> Any:
        return self.call(self.server.wait_for_disconnect(timeout, count=count), timeout + 1)

    def wait_for_idle(self, timeout: float = 5.0) -> None:
        self.call(self.server.wait_for_idle(timeout), timeout + 1)

    def close(self) -> None:
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def user(text: str) -> list[dict[str, str]]:
    """One user message."""
    return [{"role": "user", "content": text}]
