"""The embedded mock server on a private event loop in a daemon thread, for sync clients,
other threads and subprocesses (the async tests use the ``mock_server`` fixture instead)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rxchat.mock import DisconnectRecord, MockServer

T = TypeVar("T")

__all__ = ["ThreadedMock", "user"]


class ThreadedMock:
    """A :class:`~rxchat.mock.MockServer` running on its own loop thread.

    ``url`` is the ``/v1`` base URL; ``server`` the MockServer itself, whose state is read
    with :meth:`snapshot` (on its own thread, never racing its writes) and whose coroutines
    run with :meth:`call` (from a thread) or :meth:`acall` (from a coroutine on another loop).
    """

    def __init__(self, *, name: str = "mock", **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()
        self.server = MockServer(**options)
        self.url: str = self.call(self.server.start())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """The same from a coroutine on another loop (without blocking that loop)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def snapshot(self, fn: Callable[[], T]) -> T:
        """Read server state on the server's own thread."""

        async def read() -> T:
            return fn()

        return self.call(read())

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> DisconnectRecord:
        return self.call(self.server.wait_for_disconnect(timeout, count=count), timeout + 1)

    def wait_for_idle(self, timeout: float = 5.0) -> None:
        self.call(self.server.wait_for_idle(timeout), timeout + 1)

    def close(self) -> None:
        """Stop the server and its thread."""
        try:
            self.call(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def __enter__(self) -> ThreadedMock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def user(text: str) -> list[dict[str, str]]:
    """One user message."""
    return [{"role": "user", "content": text}]
