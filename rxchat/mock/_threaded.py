"""The mock server on its own thread: for synchronous code, plain pytest and any test framework.

``MockServer`` runs on the caller's event loop, so synchronous code (``rxchat.Client``, the openai
SDK's ``OpenAI``, ``requests``) would block the loop that serves it. ``ThreadedMockServer`` runs the
same server on a private loop in a daemon thread, and offers the same records and waits as plain
blocking methods. Answers and faults can be scripted per request (:meth:`script`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from ._options import MockOptions
from ._records import DisconnectRecord, MockState, RequestRecord, StreamRecord
from ._script import Answer, Script
from ._server import MockServer

__all__ = ["ThreadedMockServer", "ThreadedServerURL", "serve_in_thread"]

_T = TypeVar("_T")


class ThreadedMockServer:
    """The mock server on a private event loop in a daemon thread.

    Args:
        host: interface to bind (``127.0.0.1`` by default; the mock is not meant for networks).
        port: TCP port, ``0`` for a free one.
        api_key: require ``Authorization: Bearer <api_key>``.
        token_delay: default seconds between chunks.
        state: a ``MockState`` to record into (new by default).
        defaults: default per-request options.

    Example:
        >>> with ThreadedMockServer() as server:                  # doctest: +SKIP
        ...     client = rxchat.Client(base_url=server.url, api_key="sk-unused")
        ...     server.script("Hello!", {"status": 429, "retry_after": "0"})
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        token_delay: float = 0.0,
        state: MockState | None = None,
        defaults: MockOptions | None = None,
    ) -> None:
        self.server = MockServer(
            host=host,
            port=port,
            api_key=api_key,
            token_delay=token_delay,
            state=state,
            defaults=defaults,
        )
        self._script = Script()
        self.server.app.middlewares.append(self._script.middleware)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Start the loop thread and the server.

        Returns:
            The base URL including ``/v1``, e.g. ``"http://127.0.0.1:54321/v1"``.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        with self._lock:
            if self._loop is not None:
                raise RuntimeError("ThreadedMockServer already started")
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="rxchat-mock-server", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
        try:
            return self._call(self.server.start(), timeout)
        except BaseException:
            self._stop_loop()
            raise

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server (streams still running are cancelled) and its thread. Idempotent."""
        if self._loop is None:
            return
        try:
            self._call(self.server.close(), timeout)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("ThreadedMockServer is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def __enter__(self) -> ThreadedMockServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- scripting ----------------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """Queue answers for the next chat requests, one per request, in order.

        Each answer is the text to stream (``"Hello!"``) or a mapping of the mock's per-request
        options: faults (``{"status": 429, "retry_after": "0"}``, ``{"drop_after": 3}``), pacing
        (``{"delay": 0.05}``), content (``{"text": "...", "reasoning": 5}``) — the keys of the
        model-suffix table in :mod:`rxchat.mock`. They win over options the request carries.
        When the queue is empty, requests get the options of :meth:`set_options` (else the
        mock's usual deterministic answer).

        Raises:
            OptionError: (a ``ValueError``) an unknown option or a malformed value, at once.
            TypeError: a value that is not a str, number or bool.
        """
        self._script.add(*answers)

    def set_options(self, **options: Any) -> None:
        """Options for every following chat request (replacing earlier ones), e.g. ``delay=0.01``.

        A scripted answer's own options win over these.

        Raises:
            OptionError: (a ``ValueError``) an unknown option or a malformed value.
            TypeError: a value that is not a str, number or bool.
        """
        self._script.set_options(**options)

    def reset(self) -> None:
        """Forget the scripted answers not taken yet and the options of :meth:`set_options`."""
        self._script.reset()

    @property
    def pending_answers(self) -> int:
        """Scripted answers not taken by a request yet."""
        return self._script.pending

    # -- records ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT/v1``).

        Raises:
            RuntimeError: the server is not started.
        """
        return self.server.url

    @property
    def state(self) -> MockState:
        """Everything the server records."""
        return self.server.state

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, in order (without the ``Authorization`` header)."""
        return self.server.requests

    @property
    def streams(self) -> list[StreamRecord]:
        """Every streamed response and its outcome."""
        return self.server.streams

    @property
    def disconnects(self) -> list[DisconnectRecord]:
        """Streams whose client went away."""
        return self.server.disconnects

    @property
    def completed(self) -> int:
        """Number of streams that ended with ``[DONE]``."""
        return self.server.completed

    @property
    def active_streams(self) -> int:
        """Streams being written right now."""
        return self.server.active_streams

    def wait_for_disconnect(self, timeout: float = 5.0, *, count: int = 1) -> DisconnectRecord:
        """Block until the ``count``-th disconnect; returns the latest record.

        Raises:
            TimeoutError: not seen within ``timeout`` seconds.
        """
        return self._call(self.server.wait_for_disconnect(timeout, count=count), timeout + 5)

    def wait_for_idle(self, timeout: float = 5.0) -> None:
        """Block until no stream is active.

        Raises:
            TimeoutError: still active after ``timeout`` seconds.
        """
        self._call(self.server.wait_for_idle(timeout), timeout + 5)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        started = self._loop is not None
        return f"ThreadedMockServer(url={self.server.url if started else None!r})"


class ThreadedServerURL(str):
    """The base URL yielded by ``serve_in_thread()``: a ``str`` that also carries ``.server``."""

    server: ThreadedMockServer

    def __new__(cls, url: str, server: ThreadedMockServer) -> ThreadedServerURL:
        self = super().__new__(cls, url)
        self.server = server
        return self


@contextmanager
def serve_in_thread(
    host: str = "127.0.0.1", port: int = 0, **app_options: Any
) -> Iterator[ThreadedServerURL]:
    """Run the mock server on its own thread for the duration of a ``with`` block.

    For synchronous code and tests: nothing here needs a running event loop.

    Args:
        host: interface to bind.
        port: TCP port (``0`` picks a free one).
        **app_options: ``api_key``, ``token_delay``, ``state``, ``defaults``.

    Yields:
        The base URL (a ``str`` subclass; ``url.server`` is the ``ThreadedMockServer``, with the
        records, blocking waits and :meth:`~ThreadedMockServer.script`).

    Example:
        >>> with rxchat.mock.serve_in_thread() as url:             # doctest: +SKIP
        ...     client = rxchat.Client(base_url=url, api_key="sk-unused")
    """
    with ThreadedMockServer(host=host, port=port, **app_options) as server:
        yield ThreadedServerURL(server.url, server)
