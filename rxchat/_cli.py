"""The ``rxchat`` command: ``demo``, ``chat``, ``serve``, ``replay``, ``tail``, ``cancel``.

Expected failures (a bad URL, a refused connection, 401, a timeout, a broken stream) print one
line to stderr and exit with status 1; usage errors exit with 2; Ctrl-C exits with 130. The API
key is never printed: every message goes through :func:`rxchat.errors.redact`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field
from reactivex import Observable

from . import __version__
from . import operators as ops
from ._cli_log import (
    LOG_COMMANDS,
    add_log_commands,
    add_publish_arguments,
    publish_and_show,
    run_log_command,
)
from ._cli_web import add_ui_arguments
from ._parsing import pydantic_function_tool, type_to_response_format_param
from ._render import Output, ValueView, event_json
from ._sources import chat_completion_stream, from_sse_bytes
from ._transport import Timeout
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    InvalidChunkError,
    RxChatError,
    redact,
)
from .events import ChatCompletionStreamEvent
from .types import ChatCompletionChunk

__all__ = ["main"]

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with the command line (exit status 2)."""


# -- running an Observable to its end on the current loop ------------------------------------


async def drain(observable: Observable[T], on_next: Callable[[T], None]) -> None:
    """Subscribe, call ``on_next`` for every item, return at completion, raise its error."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def on_error(err: Exception) -> None:
        if not finished.done():
            finished.set_exception(err)

    def on_completed() -> None:
        if not finished.done():
            finished.set_result(None)

    subscription = observable.subscribe(
        on_next=on_next, on_error=on_error, on_completed=on_completed
    )
    try:
        await finished
    finally:
        subscription.dispose()


# -- rendering a stream ----------------------------------------------------------------------


async def render_events(events: Observable[ChatCompletionStreamEvent], out: Output) -> None:
    """``--events``: one JSON line per event."""
    stream = out.stream

    def write(event: ChatCompletionStreamEvent) -> None:
        stream.write(event_json(event) + "\n")
        stream.flush()

    await drain(events, write)


async def render_answer(events: Observable[ChatCompletionStreamEvent], out: Output) -> None:
    """The answer's text (and a refusal's) as it streams, then its tool calls; notes on stderr
    when it was cut or when other choices were not shown."""
    finish: list[str] = []
    calls: list[tuple[str, str]] = []
    choices: set[int] = set()

    with out.text_view() as view:

        def show(event: ChatCompletionStreamEvent) -> None:
            choices.add(event.choice_index)
            if event.choice_index != 0:
                return
            if event.type == "content.delta" or event.type == "refusal.delta":
                view.append(event.delta)
            elif event.type == "tool_calls.function.arguments.done":
                calls.append((event.name, event.arguments))
            elif event.type == "chunk":
                reason = event.chunk.finish_reason
                if reason is not None:
                    finish.append(reason)

        await drain(events, show)
    for name, arguments in calls:
        out.line(f"tool call {name}({arguments})")
    if finish and finish[-1] == "length":
        print(
            "rxchat: note: the answer stopped at the token limit (finish_reason length)",
            file=sys.stderr,
        )
    if len(choices) > 1:
        print(
            f"rxchat: note: {len(choices)} choices were streamed; this shows choice 0 "
            "(--events prints them all)",
            file=sys.stderr,
        )


async def render_structured(
    events: Observable[ChatCompletionStreamEvent], out: Output, title: str
) -> None:
    """A JSON answer whose fields fill in as they arrive, then its validated value."""
    with out.value_view(title) as view:

        def show(event: ChatCompletionStreamEvent) -> None:
            if event.type == "content.delta" and event.choice_index == 0:
                view.update(event.parsed)
            elif event.type == "content.done" and event.choice_index == 0:
                view.finish(event.parsed)
            elif event.type == "refusal.done":
                view.finish(f"refused: {event.refusal}")

        await drain(events, show)


async def render_tool_calls(events: Observable[ChatCompletionStreamEvent], out: Output) -> None:
    """Tool calls whose arguments fill in as they arrive, then their validated arguments."""
    with ExitStack() as stack:
        views: dict[int, ValueView] = {}

        def view_of(index: int, name: str) -> ValueView:
            view = views.get(index)
            if view is None:
                view = views[index] = stack.enter_context(out.value_view(f"tool call {name}"))
            return view

        def show(event: ChatCompletionStreamEvent) -> None:
            if event.type == "tool_calls.function.arguments.delta":
                view_of(event.index, event.name).update(event.parsed_arguments)
            elif event.type == "tool_calls.function.arguments.done":
                view_of(event.index, event.name).finish(event.parsed_arguments)

        await drain(events, show)


# -- demo ------------------------------------------------------------------------------------

DEMO_ANSWER = (
    "rxchat turns a streamed chat completion into a reactive stream: typed chunks you pipe "
    "through operators, subscribe a UI to, and share between consumers with one request. "
    "This answer arrives token by token from the embedded mock server."
)


class Forecast(BaseModel):
    """A weather forecast (the structured answer of the demo)."""

    city: str = Field(description="the city")
    summary: str = Field(description="the sky in a few words")
    temperature_c: float
    wind_kph: int


class GetWeather(BaseModel):
    """Get the current weather for a city."""

    city: str
    country: str
    unit: str = Field(description="c or f")


async def run_demo(args: argparse.Namespace, out: Output) -> None:
    from .mock import serve

    messages = [{"role": "user", "content": "What's the weather like in Kyoto?"}]
    async with serve(token_delay=args.delay) as url:
        out.line(f"embedded mock server: {url}")
        out.line()

        out.heading(
            "1. A streamed answer — chat_completion_stream(...).pipe(ops.accumulate(), ops.text())"
        )
        answer = chat_completion_stream(
            model="mock?text=" + quote(DEMO_ANSWER, safe=""),
            messages=messages,
            base_url=url,
            api_key="sk-demo",
        )
        with out.text_view() as view:
            await drain(answer.pipe(ops.accumulate(), ops.text()), view.append)
        out.line()

        out.heading("2. A structured answer — ops.parse_structured(Forecast): fields fill in")
        structured = chat_completion_stream(
            model="mock?tokens=40",
            messages=messages,
            base_url=url,
            api_key="sk-demo",
            response_format=type_to_response_format_param(Forecast),
        )
        await render_structured(
            structured.pipe(ops.accumulate(), ops.parse_structured(Forecast, partial_strings=True)),
            out,
            "Forecast",
        )
        out.line()

        out.heading("3. A tool call — ops.extract_tool_calls([GetWeather]): arguments fill in")
        tool_call = chat_completion_stream(
            model="mock?tokens=40",
            messages=messages,
            base_url=url,
            api_key="sk-demo",
            tools=[pydantic_function_tool(GetWeather)],
            tool_choice="required",
        )
        await render_tool_calls(
            tool_call.pipe(
                ops.accumulate(), ops.extract_tool_calls([GetWeather], partial_strings=True)
            ),
            out,
        )
        out.line()
        out.line(
            'Next: `rxchat chat "Hello" --base-url URL --model M` against any OpenAI-compatible server.'
        )


# -- chat ------------------------------------------------------------------------------------


def api_key_from(args: argparse.Namespace) -> str | None:
    """``--api-key``, else ``RXCHAT_API_KEY``, else ``OPENAI_API_KEY``."""
    key: str | None = (
        args.api_key or os.environ.get("RXCHAT_API_KEY") or os.environ.get("OPENAI_API_KEY")
    )
    return key


def load_response_format(path: str) -> dict[str, Any]:
    """``--json-schema FILE``: a JSON schema, or a whole ``response_format`` / ``json_schema``."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read --json-schema {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"--json-schema {path} is not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise UsageError(f"--json-schema {path} must hold a JSON object")
    if document.get("type") == "json_schema" and isinstance(document.get("json_schema"), dict):
        return document
    if isinstance(document.get("schema"), dict):  # {"name": ..., "schema": {...}, "strict": ...}
        spec = {"name": Path(path).stem, **document}
        return {"type": "json_schema", "json_schema": spec}
    name = document.get("title") if isinstance(document.get("title"), str) else Path(path).stem
    return {"type": "json_schema", "json_schema": {"name": name, "schema": document}}


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.prompt != "-":
        prompt: str = args.prompt
        return prompt
    if args.prompt is None and sys.stdin.isatty():
        raise UsageError('give a prompt: rxchat chat "Hello" --base-url URL --model M')
    return sys.stdin.read()


async def run_chat(args: argparse.Namespace, out: Output) -> None:
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": read_prompt(args)})
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    response_format = load_response_format(args.json_schema) if args.json_schema else None
    if response_format is not None:
        params["response_format"] = response_format
    try:
        chunks = chat_completion_stream(
            model=args.model,
            messages=messages,
            base_url=args.base_url,
            api_key=api_key_from(args),
            timeout=Timeout(
                connect=args.timeout,
                read=args.timeout,
                idle=args.idle_timeout if args.idle_timeout > 0 else None,
            ),
            max_retries=args.max_retries,
            **params,
        )
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    if args.publish:
        await publish_and_show(chunks, args, out, structured=response_format is not None)
        return
    await show_stream(chunks, args, out, structured=response_format is not None)


async def show_stream(
    chunks: Observable[ChatCompletionChunk],
    args: argparse.Namespace,
    out: Output,
    *,
    structured: bool,
) -> None:
    events = chunks.pipe(ops.accumulate())
    if structured:
        events = events.pipe(ops.parse_structured(dict, partial_strings=True))
    if args.events:
        await render_events(events, out)
    elif structured:
        await render_structured(events, out, "answer")
    else:
        await render_answer(events, out)


# -- replay ----------------------------------------------------------------------------------


async def run_replay(args: argparse.Namespace, out: Output) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {args.file}")
    await show_stream(from_sse_bytes(path), args, out, structured=False)


# -- serve -----------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> None:
    from .mock import run

    if args.ui:
        from ._cli_web import run_ui

        try:
            run_ui(args)
        except OSError as err:
            raise UsageError(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}") from None
        return

    def started(url: str) -> None:
        auth = " (an API key is required)" if args.api_key else ""
        print(f"rxchat mock server listening on {url}{auth} — Ctrl-C to stop", flush=True)

    try:
        run(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            token_delay=args.delay,
            on_start=started,
        )
    except OSError as err:
        raise UsageError(
            f"cannot serve on {args.host}:{args.port}: {err.strerror or err}"
        ) from None


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxchat",
        description="Reactive streams for OpenAI-compatible chat completions.",
    )
    parser.add_argument("--version", action="version", version=f"rxchat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="watch a streamed answer, a structured answer and a tool call (embedded mock)"
    )
    demo.add_argument("--delay", type=float, default=0.03, help="seconds between tokens (0.03)")
    demo.add_argument("--plain", action="store_true", help="plain text even in a terminal")

    chat = commands.add_parser("chat", help="stream an answer from an OpenAI-compatible server")
    chat.add_argument("prompt", nargs="?", help='the user message ("-" or nothing: read stdin)')
    chat.add_argument(
        "--base-url",
        help="API root including /v1 (default: $RXCHAT_BASE_URL, $OPENAI_BASE_URL, OpenAI)",
    )
    chat.add_argument("--model", required=True, help="model name")
    chat.add_argument(
        "--api-key", help="API key (default: $RXCHAT_API_KEY, then $OPENAI_API_KEY); never printed"
    )
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int, help="max_tokens of the request")
    chat.add_argument("--temperature", type=float, help="temperature of the request")
    chat.add_argument(
        "--json-schema",
        metavar="FILE",
        help="ask for JSON matching this schema and show its fields as they fill in",
    )
    chat.add_argument("--events", action="store_true", help="print one JSON line per stream event")
    chat.add_argument(
        "--timeout", type=float, default=60.0, help="connect/read timeout, seconds (60)"
    )
    chat.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="give up after this many seconds without model output; keep-alive comments do "
        "not count (300; 0 = never)",
    )
    chat.add_argument(
        "--max-retries", type=int, default=2, help="retries before the answer begins (2)"
    )
    chat.add_argument("--plain", action="store_true", help="plain text even in a terminal")
    add_publish_arguments(chat)

    serve = commands.add_parser("serve", help="run the embedded mock server until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (8000; 0 = any free port)")
    serve.add_argument("--api-key", help="require this API key (401 otherwise)")
    serve.add_argument("--delay", type=float, default=0.0, help="seconds between tokens (0)")
    add_ui_arguments(serve)

    replay = commands.add_parser("replay", help="run a recorded SSE body through the pipeline")
    replay.add_argument("file", metavar="FILE.sse", help="a recorded response body")
    replay.add_argument(
        "--events", action="store_true", help="print one JSON line per stream event"
    )
    replay.add_argument("--plain", action="store_true", help="plain text even in a terminal")
    add_log_commands(commands)
    return parser


def describe(err: BaseException) -> str:
    """One line saying what went wrong."""
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, APITimeoutError):
        return f"timed out: {message}"
    if isinstance(err, APIConnectionError):
        return f"connection failed: {message}"
    if isinstance(err, APIStatusError):
        return f"the server answered {err.status_code} ({type(err).__name__}): {message}"
    if isinstance(err, IncompleteStreamError):
        return f"incomplete stream: {message}"
    if isinstance(err, InvalidChunkError):
        return f"invalid stream: {message}"
    if isinstance(err, RxChatError):
        return f"{type(err).__name__}: {message}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rxchat`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    secrets = [getattr(args, "api_key", None)]
    secrets += [os.environ.get("RXCHAT_API_KEY"), os.environ.get("OPENAI_API_KEY")]
    out = Output(plain=getattr(args, "plain", False) or getattr(args, "events", False))
    try:
        if args.command == "serve":
            run_serve(args)
        elif args.command == "demo":
            asyncio.run(run_demo(args, out))
        elif args.command == "chat":
            asyncio.run(run_chat(args, out))
        elif args.command in LOG_COMMANDS:
            asyncio.run(run_log_command(args, out))
        else:
            asyncio.run(run_replay(args, out))
    except KeyboardInterrupt:
        print("rxchat: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`rxchat ... | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except UsageError as err:
        print(f"rxchat: error: {redact(str(err), *secrets)}", file=sys.stderr)
        return EXIT_USAGE
    except RxChatError as err:
        print(f"rxchat: error: {redact(describe(err), *secrets)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
