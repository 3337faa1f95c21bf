"""``rxchat serve --ui``: the chat page (rxchat.relay.chat_app) over the mock or a real server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["add_ui_arguments", "run_ui"]


def add_ui_arguments(serve: argparse.ArgumentParser) -> None:
    """The ``--ui`` options of ``rxchat serve``."""
    serve.add_argument(
        "--ui", action="store_true", help="serve a chat page at / (streams through rxchat.relay)"
    )
    serve.add_argument(
        "--base-url", help="with --ui: answer from this API root (/v1) instead of the mock"
    )
    serve.add_argument("--model", default=None, help="with --ui: the model name (mock)")


async def serve_ui(args: argparse.Namespace, started: Callable[[str, str], None]) -> None:
    """Run the chat page (and the mock it answers from) until cancelled."""
    from aiohttp import web

    from .mock import MockServer
    from .relay import chat_app

    async with contextlib.AsyncExitStack() as stack:
        base_url = args.base_url
        if base_url is None:
            mock = MockServer(host=args.host, token_delay=args.delay or 0.03)
            base_url = await stack.enter_async_context(mock) and mock.url
        app = chat_app(base_url=base_url, model=args.model or "mock", api_key=args.api_key)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        started(f"http://{host}:{port}/", base_url)
        await asyncio.Event().wait()


def run_ui(args: argparse.Namespace) -> None:
    """``rxchat serve --ui``: print where the page is, serve until Ctrl-C.

    Raises:
        OSError: the port cannot be bound.
    """

    def started(page: str, base_url: str) -> None:
        source = "the embedded mock" if args.base_url is None else "the server"
        print(
            f"rxchat chat page on {page} (answers from {source} at {base_url}) — Ctrl-C to stop",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_ui(args, started))
