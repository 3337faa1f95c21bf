"""Running the mock app: ``MockServer`` (tests), ``serve()`` (context manager), ``run()`` (CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Any, TextIO

from aiohttp import web

from ._app import create_app
from ._options import MockOptions
from ._records import DisconnectRecord, MockState, RequestRecord, StreamRecord

__all__ = ["MockServer", "ServerURL", "run", "serve"]


class MockServer:
    """The mock server on a loopback port, with its recorded state.

    Args:
        host: interface to bind (``127.0.0.1`` by default; the mock is not meant for networks).
        port: TCP port, ``0`` for a free one.
        api_key: require ``Authorization: Bearer <api_key>``.
        token_delay: default seconds between chunks.
        state: a ``MockState`` to record into (new by default).
        defaults: default per-request options.

    Example:
        >>> async def main():
        ...     async with MockServer() as server:
        ...         print(server.url)   # http://127.0.0.1:PORT/v1
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
        self.host = host
        self.port = port
        self.state = state if state is not None else MockState()
        # Cancel handlers when their client goes away: the mock notices a disconnect at
        # once instead of at its next write or poll.
        self.state.handler_cancellation = True
        self.app = create_app(
            api_key=api_key, token_delay=token_delay, state=self.state, defaults=defaults
        )
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    async def start(self) -> str:
        """Bind and start serving.

        Returns:
            The base URL including ``/v1``, e.g. ``"http://127.0.0.1:54321/v1"``.

        Raises:
            RuntimeError: already started.
            OSError: the port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("MockServer already started")
        runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.1
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._url = f"http://{self.host}:{self.port}/v1"
        return self._url

    async def close(self) -> None:
        """Stop serving; streams still running are cancelled. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT/v1``).

        Raises:
            RuntimeError: the server is not started.
        """
        if self._url is None:
            raise RuntimeError("MockServer is not started")
        return self._url

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, in order (without the ``Authorization`` header)."""
        return self.state.requests

    @property
    def streams(self) -> list[StreamRecord]:
        """Every streamed response and its outcome."""
        return self.state.streams

    @property
    def active_streams(self) -> int:
        """Streams being written right now."""
        return self.state.active_streams

    @property
    def disconnects(self) -> list[DisconnectRecord]:
        """Streams whose client went away, with chunks written and the monotonic time noticed."""
        return self.state.disconnects

    @property
    def completed(self) -> int:
        """Number of streams that ended with ``[DONE]``."""
        return self.state.completed

    async def wait_for_disconnect(
        self, timeout: float = 5.0, *, count: int = 1
    ) -> DisconnectRecord:
        """Wait for the ``count``-th disconnect; returns the latest record.

        Raises:
            TimeoutError: not seen within ``timeout`` seconds.
        """
        return await self.state.wait_for_disconnect(timeout, count=count)

    async def wait_for_idle(self, timeout: float = 5.0) -> None:
        """Wait until no stream is active.

        Raises:
            TimeoutError: still active after ``timeout`` seconds.
        """
        await self.state.wait_for_idle(timeout)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"MockServer(url={self._url!r})"

    async def __aenter__(self) -> MockServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ServerURL(str):
    """The base URL yielded by ``serve()``: a plain ``str`` that also carries ``.server``."""

    server: MockServer

    def __new__(cls, url: str, server: MockServer) -> ServerURL:
        self = super().__new__(cls, url)
        self.server = server
        return self


@asynccontextmanager
async def serve(
    host: str = "127.0.0.1", port: int = 0, **app_options: Any
) -> AsyncIterator[ServerURL]:
    """Run the mock server for the duration of an ``async with`` block.

    Args:
        host: interface to bind.
        port: TCP port (``0`` picks a free one).
        **app_options: ``api_key``, ``token_delay``, ``state``, ``defaults`` (see ``create_app``).

    Yields:
        The base URL (a ``str`` subclass; ``url.server`` is the ``MockServer``).

    Example:
        >>> async def main():
        ...     async with rxchat.mock.serve() as url:
        ...         client = rxchat.AsyncClient(base_url=url, api_key="unused")
    """
    server = MockServer(host=host, port=port, **app_options)
    url = await server.start()
    try:
        yield ServerURL(url, server)
    finally:
        await server.close()


def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_start: Callable[[str], None] | None = None,
    log: TextIO | None = None,
    **app_options: Any,
) -> None:
    """Serve until interrupted (Ctrl-C); used by ``rxchat serve --port N``.

    Args:
        host: interface to bind.
        port: TCP port.
        on_start: called with the base URL once listening; by default the URL is printed.
        log: write a line per request and per outcome here (``rxchat serve``: stderr).
        **app_options: ``api_key``, ``token_delay``, ``defaults`` (see ``create_app``).

    Raises:
        OSError: the port cannot be bound.
    """

    async def main() -> None:
        server = MockServer(host=host, port=port, **app_options)
        if log is not None:
            from ._log import request_log

            outer, inner = request_log(log, api_key=app_options.get("api_key"))
            server.app.middlewares.insert(0, outer)
            server.app.middlewares.append(inner)
        async with server:
            if on_start is not None:
                on_start(server.url)
            else:
                print(f"rxchat mock server listening on {server.url}", flush=True)
            await asyncio.Event().wait()

    with suppress(KeyboardInterrupt):
        asyncio.run(main())
