"""``rxchat chat ... --publish``, ``rxchat tail STREAM_ID``, ``rxchat cancel STREAM_ID``: the
stream log from three terminals (Redis: ``--redis URL`` or ``$REDIS_URL``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from reactivex import Observable

if TYPE_CHECKING:
    from ._log import StreamLog
    from ._render import Output
    from .types import ChatCompletionChunk

__all__ = [
    "LOG_COMMANDS",
    "add_log_commands",
    "add_publish_arguments",
    "publish_and_show",
    "run_log_command",
]

LOG_COMMANDS = ("tail", "cancel")


def _add_redis(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="the Redis of the stream log (default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )


def add_publish_arguments(chat: argparse.ArgumentParser) -> None:
    """``chat --publish [--stream-id ID] [--redis URL]``."""
    chat.add_argument(
        "--publish",
        action="store_true",
        help="publish the answer to the stream log and print its stream id on stderr "
        "(follow it with `rxchat tail ID`, stop it with `rxchat cancel ID`)",
    )
    chat.add_argument("--stream-id", help="with --publish: the stream id (default: a new one)")
    _add_redis(chat)


def add_log_commands(commands: Any) -> None:
    """Register ``tail`` and ``cancel``."""
    tail = commands.add_parser("tail", help="follow a published stream (from any process)")
    tail.add_argument("stream_id", metavar="STREAM_ID")
    tail.add_argument(
        "--after", type=int, default=0, metavar="N", help="start after chunk N (0: from the start)"
    )
    tail.add_argument("--events", action="store_true", help="print one JSON line per stream event")
    tail.add_argument("--plain", action="store_true", help="plain text even in a terminal")
    _add_redis(tail)
    cancel = commands.add_parser("cancel", help="stop a published stream (from any process)")
    cancel.add_argument("stream_id", metavar="STREAM_ID")
    _add_redis(cancel)


def _open_log(args: argparse.Namespace) -> StreamLog:
    from ._cli import UsageError

    try:
        from .redis import RedisStreamLog
    except ImportError as err:
        raise UsageError(str(err)) from None
    url = args.redis or os.environ.get("REDIS_URL") or None
    try:
        return RedisStreamLog(url)
    except ValueError as err:
        raise UsageError(f"--redis: {err}") from None


async def publish_and_show(
    chunks: Observable[ChatCompletionChunk],
    args: argparse.Namespace,
    out: Output,
    *,
    structured: bool,
) -> None:
    """Publish the answer, print its id, and show it as read back from the log. Leaving
    (Ctrl-C, an error) cancels the stream: this process is its producer."""
    from ._cli import UsageError, show_stream

    async with _open_log(args) as log:
        try:
            handle = await log.publish(chunks, stream_id=args.stream_id)
        except ValueError as err:
            raise UsageError(f"--stream-id: {err}") from None
        print(f"rxchat: stream {handle.stream_id}", file=sys.stderr, flush=True)
        await show_stream(log.read(handle.stream_id), args, out, structured=structured)


async def run_log_command(args: argparse.Namespace, out: Output) -> None:
    from ._cli import UsageError, show_stream

    async with _open_log(args) as log:
        if args.command == "tail":
            try:
                reader = log.read(args.stream_id, after=args.after)
            except ValueError as err:
                raise UsageError(str(err)) from None
            await show_stream(reader, args, out, structured=False)
        else:
            try:
                cancelled = await log.cancel(args.stream_id)
            except ValueError as err:
                raise UsageError(str(err)) from None
            if cancelled:
                out.line(f"cancelled {args.stream_id}")
            else:
                info = await log.info(args.stream_id)
                out.line(f"{args.stream_id} had already ended ({info.status})")
