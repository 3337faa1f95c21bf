"""The ``rxchat`` command: ``demo``, ``chat``, ``serve``, ``replay``, ``tail``, ``cancel``.

Expected failures (a refused connection, 401, a timeout, a broken stream) print one line to
stderr and exit with status 1; usage errors (an unknown flag, a bad value, a missing file) exit
with 2; an answer the model refused exits with 3; Ctrl-C exits with 130. No traceback for any of
them. The API key is never printed: every message goes through :func:`rxchat.errors.redact_values`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field
from reactivex import Observable
from yarl import URL

from . import operators as ops
from ._cli_log import (
    LOG_COMMANDS,
    add_log_commands,
    add_publish_arguments,
    publish_and_show,
    run_log_command,
)
from ._cli_web import add_ui_arguments
from ._render import Output, ValueView, event_json
from ._sources import chat_completion_stream, from_sse_bytes, resolve_base_url
from ._structured import pydantic_function_tool, type_to_response_format_param
from ._transport import Timeout
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    InvalidChunkError,
    NotFoundError,
    RxChatError,
    redact_values,
)
from .events import ChatCompletionStreamEvent
from .types import ChatCompletionChunk

__all__ = ["main"]

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_STATUS_HELP = """exit status:
  0    the answer arrived whole
  1    a failure: connection, timeout, HTTP error status, broken or incomplete stream
  2    a usage error: unknown flag, bad value, missing or unreadable file
  3    the model refused (a refusal, or finish_reason content_filter)
  130  interrupted (Ctrl-C)"""


class UsageError(Exception):
    """A problem with the command line (exit status 2)."""


class Refused(Exception):
    """The model refused to answer (exit status 3); the message is its refusal."""


class Failure(Exception):
    """An expected failure whose message is ready to print (exit status 1)."""


# -- argument types: a bad value names its flag (argparse adds "argument --flag: ") -----------


def seconds(*, zero: bool) -> Callable[[str], float]:
    """A finite number of seconds, > 0 (or >= 0 when ``zero``)."""
    bound = ">= 0" if zero else "> 0"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, not {raw!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(
                f"expected a finite number of seconds {bound}, not {raw!r}"
            )
        return value

    return parse


def integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]``."""
    bound = f">= {lo}" if hi is None else f"from {lo} to {hi}"

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, not {raw!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, not {raw!r}")
        return value

    return parse


def finite(raw: str) -> float:
    """A finite number."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, not {raw!r}")
    return value


class Parser(argparse.ArgumentParser):
    """An argparse parser that names an unknown flag before complaining about a missing one.

    argparse checks required options before it reports unrecognized ones, so
    ``rxchat chat "Hi" --bogus`` would say that ``--model`` is missing. Subcommand parsers are
    of this class too (``add_subparsers`` uses the parent's class).
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._raw_args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def unknown_flags(self) -> list[str]:
        """The option-like words of the arguments that no option of this parser takes."""
        unknown: list[str] = []
        for word in getattr(self, "_raw_args", []):
            if word == "--":
                break
            if not word.startswith("-") or word == "-" or self._negative_number(word):
                continue
            name = word.split("=", 1)[0]
            if not any(option.startswith(name) for option in self._option_string_actions):
                unknown.append(word)
        return unknown

    def _negative_number(self, word: str) -> bool:
        try:
            float(word)
        except ValueError:
            return False
        return True

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            unknown = self.unknown_flags()
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        super().error(message)


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
    """``--events``: one JSON line per event.

    Raises:
        Refused: the model refused (after every event was printed).
    """
    stream = out.stream
    refusal: list[str] = []
    finish: list[str] = []

    def write(event: ChatCompletionStreamEvent) -> None:
        stream.write(event_json(event) + "\n")
        stream.flush()
        if event.choice_index != 0:
            return
        if event.type == "refusal.done":
            refusal.append(event.refusal)
        elif event.type == "chunk" and event.chunk.finish_reason is not None:
            finish.append(event.chunk.finish_reason)

    await drain(events, write)
    check_refusal("".join(refusal), finish[-1] if finish else None)


async def render_answer(events: Observable[ChatCompletionStreamEvent], out: Output) -> None:
    """The answer's text as it streams, then its tool calls; notes on stderr when it was cut or
    when other choices were not shown.

    Raises:
        Refused: the model refused (its refusal is not printed as an answer).
    """
    finish: list[str] = []
    calls: list[tuple[str, str]] = []
    choices: set[int] = set()
    refusal: list[str] = []

    with out.text_view() as view:

        def show(event: ChatCompletionStreamEvent) -> None:
            choices.add(event.choice_index)
            if event.choice_index != 0:
                return
            if event.type == "content.delta":
                view.append(event.delta)
            elif event.type == "refusal.delta":
                refusal.append(event.delta)
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
    check_refusal("".join(refusal), finish[-1] if finish else None)


def check_refusal(refusal: str, finish_reason: str | None) -> None:
    """Raise :class:`Refused` for a refusal or a ``content_filter`` finish."""
    if refusal:
        raise Refused(refusal)
    if finish_reason == "content_filter":
        raise Refused("the answer was stopped by the content filter (finish_reason content_filter)")


async def render_structured(
    events: Observable[ChatCompletionStreamEvent], out: Output, title: str
) -> None:
    """A JSON answer whose fields fill in as they arrive, then its validated value.

    Raises:
        Refused: the model refused.
    """
    refusal: list[str] = []
    finish: list[str] = []
    with out.value_view(title) as view:

        def show(event: ChatCompletionStreamEvent) -> None:
            if event.choice_index != 0:
                return
            if event.type == "content.delta":
                view.update(event.parsed)
            elif event.type == "content.done":
                view.finish(event.parsed)
            elif event.type == "refusal.done":
                refusal.append(event.refusal)
            elif event.type == "chunk" and event.chunk.finish_reason is not None:
                finish.append(event.chunk.finish_reason)

        await drain(events, show)
    check_refusal("".join(refusal), finish[-1] if finish else None)


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


# -- reading stdin, files and pipes ---------------------------------------------------------

_SNIFF = 4096  # bytes of the input kept to explain a replay that found no chunk


class ThreadedReads:
    """The reads of a file or pipe, passed on as they come; keeps the first bytes.

    The reads run in a daemon thread: a blocking read of a pipe in the loop's thread would keep
    Ctrl-C from interrupting the command (asyncio turns SIGINT into a cancellation of the main
    task, which a blocked read never sees), and a daemon thread left blocked does not delay exit.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.head = b""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        room = threading.Semaphore(8)  # reads in flight: the reader waits for the consumer
        fd = self._file.fileno()  # os.read holds no lock of the buffered file object, which
        # a daemon thread blocked in a read would hold at interpreter exit (a fatal error then)

        def hand_over(item: bytes | BaseException | None) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed: nobody reads any more
                return False
            return True

        def reader() -> None:
            try:
                while True:
                    room.acquire()
                    data = os.read(fd, 65536)
                    if not hand_over(data or None) or not data:
                        return
            except BaseException as err:  # delivered to the consumer as the read's error
                hand_over(err)

        threading.Thread(target=reader, name="rxchat-replay-reader", daemon=True).start()
        while True:
            item = await queue.get()
            room.release()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if len(self.head) < _SNIFF:
                self.head += item[: _SNIFF - len(self.head)]
            yield item

    def not_sse(self, name: str) -> str | None:
        """Why the input is not an SSE recording, when it plainly is not."""
        head = self.head.lstrip()
        if not head:
            return f"{name} is empty"
        if head.startswith((b"{", b"[")):
            return (
                f"{name} holds JSON, not an SSE stream: replay reads the body of a streamed "
                "answer (stream: true), lines of 'data: {...}'"
            )
        if b"data:" not in self.head:
            return (
                f"{name} is not an SSE recording (no 'data:' line in its first {_SNIFF} bytes); "
                "replay reads the body of a streamed answer, as saved by "
                "curl -N ... > answer.sse"
            )
        return None


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


def text_argument(text: str, what: str) -> str:
    """``text`` if it can be sent (UTF-8); an undecodable command-line word is a usage error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8 text") from None
    return text


async def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None and args.prompt != "-":
        return text_argument(args.prompt, "the prompt")
    if args.prompt is None and sys.stdin.isatty():
        raise UsageError('give a prompt: rxchat chat "Hello" --base-url URL --model M')
    data = b"".join([read async for read in ThreadedReads(sys.stdin.buffer)])  # Ctrl-C works
    try:
        prompt = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(
            f"the prompt read from stdin is not valid UTF-8 (byte {err.start})"
        ) from None
    if not prompt.strip():
        raise UsageError("the prompt read from stdin is empty")
    return prompt


def base_url_from(args: argparse.Namespace) -> tuple[str, str]:
    """The API root the request goes to and where it came from (a flag or a variable)."""
    if args.base_url:
        source = "--base-url"
    elif os.environ.get("RXCHAT_BASE_URL"):
        source = "$RXCHAT_BASE_URL"
    elif os.environ.get("OPENAI_BASE_URL"):
        source = "$OPENAI_BASE_URL"
    else:
        source = "the default base URL"
    url = resolve_base_url(args.base_url)
    try:
        parsed = URL(url)
    except ValueError as err:
        raise UsageError(f"{source} is not a valid URL: {err}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(
            f"{source} must be an absolute http(s) URL such as http://127.0.0.1:8000/v1 (the "
            f"API's base_url), not {str(parsed.with_user(None) if parsed.is_absolute() else parsed)!r}"
        )
    return url, source


def not_found_hint(base_url: str, source: str) -> str | None:
    """A hint for a 404 when the base URL lacks the API version (``/v1``)."""
    url = URL(base_url).with_user(None).with_query(None)
    if any(part.startswith("v") and part[1:].isdigit() for part in url.parts):
        return None
    suggestion = str(url.with_path(url.path.rstrip("/") + "/v1"))
    return f"hint: {source} has no API version; try {suggestion}"


async def run_chat(args: argparse.Namespace, out: Output) -> None:
    base_url, source = base_url_from(args)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": text_argument(args.system, "--system")})
    messages.append({"role": "user", "content": await read_prompt(args)})
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
                total=args.total_timeout if args.total_timeout > 0 else None,
                idle=args.idle_timeout if args.idle_timeout > 0 else None,
            ),
            max_retries=args.max_retries,
            **params,
        )
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None
    try:
        if args.publish:
            await publish_and_show(chunks, args, out, structured=response_format is not None)
            return
        await show_stream(chunks, args, out, structured=response_format is not None)
    except NotFoundError as err:
        hint = not_found_hint(base_url, source)
        if hint is None:
            raise
        raise Failure(f"{describe(err)} ({hint})") from err


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


def open_recording(name: str) -> IO[bytes]:
    """The recording to replay: ``-`` is stdin; a file, a FIFO or a device otherwise."""
    if name == "-":
        return sys.stdin.buffer
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{name} is a directory, not a recorded SSE body")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UsageError(f"no such file: {name}") from None
    except OSError as err:
        raise UsageError(f"cannot read {name}: {err.strerror or err}") from None


async def run_replay(args: argparse.Namespace, out: Output) -> None:
    name = "stdin" if args.file == "-" else args.file
    with ExitStack() as stack:
        file = open_recording(args.file)
        if file is not sys.stdin.buffer:
            stack.enter_context(file)
        reads = ThreadedReads(file)
        try:
            await show_stream(from_sse_bytes(reads), args, out, structured=False)
        except (IncompleteStreamError, InvalidChunkError) as err:
            why = reads.not_sse(name) if err.chunks_received == 0 else None
            if why is None:
                raise
            raise UsageError(why) from None
        except OSError as err:  # a read failed midway (an I/O error, a device gone)
            raise Failure(f"cannot read {name}: {err.strerror or err}") from None


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
            log=sys.stderr,
        )
    except OSError as err:
        raise UsageError(
            f"cannot serve on {args.host}:{args.port}: {err.strerror or err}"
        ) from None


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rxchat",
        description="Reactive streams for OpenAI-compatible chat completions.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rxchat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="watch a streamed answer, a structured answer and a tool call (embedded mock)"
    )
    demo.add_argument(
        "--delay", type=seconds(zero=True), default=0.03, help="seconds between tokens (0.03)"
    )
    demo.add_argument("--plain", action="store_true", help="plain text even in a terminal")

    chat = commands.add_parser(
        "chat",
        help="stream an answer from an OpenAI-compatible server",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    chat.add_argument("--max-tokens", type=integer(1), help="max_tokens of the request")
    chat.add_argument("--temperature", type=finite, help="temperature of the request")
    chat.add_argument(
        "--json-schema",
        metavar="FILE",
        help="ask for JSON matching this schema and show its fields as they fill in",
    )
    chat.add_argument("--events", action="store_true", help="print one JSON line per stream event")
    chat.add_argument(
        "--timeout",
        type=seconds(zero=False),
        default=60.0,
        help="connect/read timeout, seconds (60)",
    )
    chat.add_argument(
        "--idle-timeout",
        type=seconds(zero=True),
        default=300.0,
        help="give up after this many seconds without model output; keep-alive comments do "
        "not count (300; 0 = never)",
    )
    chat.add_argument(
        "--total-timeout",
        type=seconds(zero=True),
        default=0.0,
        help="give up after this many seconds in all, retries included (0 = never)",
    )
    chat.add_argument(
        "--max-retries", type=integer(0), default=2, help="retries before the answer begins (2)"
    )
    chat.add_argument("--plain", action="store_true", help="plain text even in a terminal")
    add_publish_arguments(chat)

    serve = commands.add_parser("serve", help="run the embedded mock server until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    serve.add_argument(
        "--port", type=integer(0, 65535), default=8000, help="TCP port (8000; 0 = any free port)"
    )
    serve.add_argument("--api-key", help="require this API key (401 otherwise)")
    serve.add_argument(
        "--delay", type=seconds(zero=True), default=0.0, help="seconds between tokens (0)"
    )
    add_ui_arguments(serve)

    replay = commands.add_parser(
        "replay",
        help="run a recorded SSE body through the pipeline",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "file", metavar="FILE.sse", help='a recorded streamed response body ("-": read stdin)'
    )
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
        print(f"rxchat: error: {redact_values(str(err), *secrets)}", file=sys.stderr)
        return EXIT_USAGE
    except Failure as err:
        print(f"rxchat: error: {redact_values(str(err), *secrets)}", file=sys.stderr)
        return EXIT_FAILURE
    except RxChatError as err:
        print(f"rxchat: error: {redact_values(describe(err), *secrets)}", file=sys.stderr)
        return EXIT_FAILURE
    except Refused as err:
        refusal = " ".join(str(err).split())
        print(f"rxchat: refusal: {redact_values(refusal, *secrets)}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
