"""The ``rxchat`` command, run as a subprocess against the embedded mock server on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import quote

import rxchat
from rxchat.mock import MockServer

CORPUS = Path(__file__).resolve().parent / "fixtures" / "openai"
SECRET = "sk-cli-test-0123456789abcdef"
TEXT = "Streams are values over time, and rxchat makes them typed."


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: no API key or base URL leaking in from outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"RXCHAT_API_KEY", "OPENAI_API_KEY", "RXCHAT_BASE_URL", "OPENAI_BASE_URL"}
    }
    env.update(extra)
    return env


async def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 45
) -> tuple[int, str, str]:
    """Run ``python -m rxchat ARGS``; the loop keeps serving the mock while it runs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else cli_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(stderr: str) -> str:
    lines = stderr.strip("\n").split("\n")
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


async def streamed_text(url: str, model: str, prompt: str) -> str:
    """The answer's text, read in-process with rxchat itself (the reference)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    parts: list[str] = []
    rxchat.chat_completion_stream(
        model=model, messages=[{"role": "user", "content": prompt}], base_url=url, api_key="k"
    ).subscribe(
        on_next=lambda c: parts.append(c.text or ""),
        on_error=done.set_exception,
        on_completed=lambda: done.set_result(None),
    )
    await done
    return "".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- demo ------------------------------------------------------------------------------------


async def test_demo_shows_the_three_parts_and_exits_0() -> None:
    code, out, err = await run_cli("demo", "--delay", "0")
    assert code == 0, err
    assert err == ""
    assert "1. A streamed answer" in out
    assert "rxchat turns a streamed chat completion into a reactive stream" in out
    assert "2. A structured answer" in out
    assert "partial: {" in out
    assert "done: Forecast(city=" in out
    assert "3. A tool call" in out
    assert "done: GetWeather(city=" in out
    # Fields fill in: the structured answer shows several partial values before the final one.
    section = out.split("2. A structured answer")[1].split("3. A tool call")[0]
    assert section.count("partial: ") >= 3


# -- chat ------------------------------------------------------------------------------------


async def test_chat_plain_output_is_the_streamed_text(mock_server: MockServer) -> None:
    model = "mock?text=" + quote(TEXT, safe="")
    code, out, err = await run_cli("chat", "Hi", "--base-url", mock_server.url, "--model", model)
    assert code == 0, err
    assert out == TEXT + "\n"
    assert err == ""


async def test_chat_output_equals_the_stream_read_in_process(mock_server: MockServer) -> None:
    code, out, err = await run_cli(
        "chat", "Tell me something", "--base-url", mock_server.url, "--model", "mock?tokens=50"
    )
    assert code == 0, err
    expected = await streamed_text(mock_server.url, "mock?tokens=50", "Tell me something")
    assert len(expected) > 50
    assert out == expected + "\n"


async def test_chat_reads_the_prompt_from_stdin(mock_server: MockServer) -> None:
    code, _out, err = await run_cli(
        "chat", "--base-url", mock_server.url, "--model", "mock?tokens=5", stdin=b"From stdin"
    )
    assert code == 0, err
    assert mock_server.requests[-1].body["messages"] == [{"role": "user", "content": "From stdin"}]


async def test_chat_sends_system_max_tokens_and_temperature(mock_server: MockServer) -> None:
    code, _out, err = await run_cli(
        "chat",
        "Hi",
        "--base-url",
        mock_server.url,
        "--model",
        "mock",
        "--system",
        "Be brief.",
        "--max-tokens",
        "3",
        "--temperature",
        "0.5",
    )
    assert code == 0, err
    body = mock_server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["max_tokens"], body["temperature"], body["stream"]) == (3, 0.5, True)
    assert "token limit" in one_line(err)  # the answer was cut: said on stderr, exit 0


async def test_chat_events_are_json_lines(mock_server: MockServer) -> None:
    model = "mock?text=" + quote(TEXT, safe="")
    code, out, err = await run_cli(
        "chat", "Hi", "--base-url", mock_server.url, "--model", model, "--events"
    )
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "chunk"
    assert "content.delta" in types
    assert types[-1] in {"content.done", "chunk"}
    assert "content.done" in types
    assert "".join(e["delta"] for e in events if e["type"] == "content.delta") == TEXT
    assert [e["content"] for e in events if e["type"] == "content.done"] == [TEXT]
    assert all("snapshot" not in e for e in events)
    assert all(
        e["chunk"]["object"] == "chat.completion.chunk" for e in events if e["type"] == "chunk"
    )


async def test_chat_json_schema_shows_fields_filling_in(
    mock_server: MockServer, tmp_path: Path
) -> None:
    schema = {
        "title": "City",
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
        "additionalProperties": False,
    }
    path = tmp_path / "city.json"
    path.write_text(json.dumps(schema))
    code, out, err = await run_cli(
        "chat",
        "A city?",
        "--base-url",
        mock_server.url,
        "--model",
        "mock",
        "--json-schema",
        str(path),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "  partial: {}"
    assert lines[-1].startswith("  done: {")
    final = eval(lines[-1].removeprefix("  done: "))  # a dict repr of plain JSON values
    assert set(final) == {"name", "population"} and isinstance(final["population"], int)
    assert mock_server.requests[-1].body["response_format"]["json_schema"]["schema"] == schema


async def test_chat_key_from_environment_never_printed() -> None:
    async with MockServer(api_key=SECRET) as server:
        for variable in ("RXCHAT_API_KEY", "OPENAI_API_KEY"):
            code, out, err = await run_cli(
                "chat",
                "Hi",
                "--base-url",
                server.url,
                "--model",
                "mock?tokens=5",
                "--events",
                env=cli_env(**{variable: SECRET}),
            )
            assert code == 0, err
            assert SECRET not in out + err


# -- errors: one line on stderr, non-zero exit, no traceback, no key ---------------------------


async def test_wrong_key_gives_a_one_line_401_error() -> None:
    wrong = "sk-wrong-key-abcdef0123456789"
    async with MockServer(api_key=SECRET) as server:
        code, out, err = await run_cli(
            "chat", "Hi", "--base-url", server.url, "--model", "mock", "--api-key", wrong
        )
    assert code == 1
    line = one_line(err)
    assert "401" in line and "AuthenticationError" in line
    assert out == ""
    assert wrong not in out + err
    assert SECRET not in out + err


async def test_missing_key_gives_a_one_line_401_error() -> None:
    async with MockServer(api_key=SECRET) as server:
        code, _out, err = await run_cli("chat", "Hi", "--base-url", server.url, "--model", "mock")
    assert code == 1
    assert "401" in one_line(err)


async def test_connection_refused_gives_a_one_line_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, out, err = await run_cli(
        "chat", "Hi", "--base-url", url, "--model", "m", "--api-key", SECRET, "--max-retries", "0"
    )
    assert code == 1
    line = one_line(err)
    assert line.startswith("rxchat: error: connection failed")
    assert SECRET not in out + err


async def test_timeout_gives_a_one_line_error(mock_server: MockServer) -> None:
    code, out, err = await run_cli(
        "chat",
        "Hi",
        "--base-url",
        mock_server.url,
        "--model",
        "mock?stall_first=10",
        "--timeout",
        "0.5",
        "--max-retries",
        "0",
        "--api-key",
        SECRET,
    )
    assert code == 1
    assert one_line(err).startswith("rxchat: error: timed out")
    assert SECRET not in out + err


async def test_idle_timeout_is_not_fooled_by_keepalives(mock_server: MockServer) -> None:
    # The server keeps the connection warm with comments while the model is stuck.
    code, out, err = await run_cli(
        "chat",
        "Hi",
        "--base-url",
        mock_server.url,
        "--model",
        "mock?tokens=10&stall_between=30&stall_after=3&keepalive=0.05",
        "--idle-timeout",
        "0.5",
        "--plain",
        "--api-key",
        SECRET,
    )
    assert code == 1
    assert "no model output" in one_line(err)
    planned = mock_server.streams[-1].texts[0]
    assert out.strip() and planned.startswith(out.strip())  # the partial answer was kept
    assert out.strip() != planned.strip()
    assert SECRET not in out + err


async def test_bad_url_is_a_usage_error() -> None:
    code, out, err = await run_cli(
        "chat", "Hi", "--base-url", "not a url", "--model", "m", "--api-key", SECRET
    )
    assert code == 2
    assert "base_url" in one_line(err)
    assert SECRET not in out + err


async def test_server_error_status(mock_server: MockServer) -> None:
    code, _out, err = await run_cli(
        "chat",
        "Hi",
        "--base-url",
        mock_server.url,
        "--model",
        "mock?status=503",
        "--max-retries",
        "0",
    )
    assert code == 1
    assert "503" in one_line(err)


async def test_invalid_chunk_gives_a_one_line_error_after_the_text(mock_server: MockServer) -> None:
    code, out, err = await run_cli(
        "chat", "Hi", "--base-url", mock_server.url, "--model", "mock?tokens=20&bad_json_after=4"
    )
    assert code == 1
    assert one_line(err).startswith("rxchat: error: invalid stream")
    assert len(out.strip()) > 0  # what arrived before the fault was shown


async def test_incomplete_stream_gives_a_one_line_error(mock_server: MockServer) -> None:
    code, _out, err = await run_cli(
        "chat", "Hi", "--base-url", mock_server.url, "--model", "mock?tokens=20&no_done=1"
    )
    assert code == 1
    assert one_line(err).startswith("rxchat: error: incomplete stream")


async def test_mid_stream_error_payload(mock_server: MockServer) -> None:
    code, _out, err = await run_cli(
        "chat", "Hi", "--base-url", mock_server.url, "--model", "mock?tokens=20&error_after=3"
    )
    assert code == 1
    assert "StreamAPIError" in one_line(err)


async def test_unreadable_json_schema_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    code, _, err = await run_cli(
        "chat",
        "Hi",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--json-schema",
        str(path),
    )
    assert code == 2
    assert "not valid JSON" in one_line(err)


async def test_missing_model_is_an_argparse_usage_error() -> None:
    code, _, err = await run_cli("chat", "Hi")
    assert code == 2
    assert "--model" in err


# -- replay ----------------------------------------------------------------------------------


def corpus_text(name: str) -> str:
    parts = []
    for block in (CORPUS / name).read_text().split("\n\n"):
        if block.startswith("data: {"):
            choices = json.loads(block[6:])["choices"]
            if choices:
                parts.append(choices[0]["delta"].get("content") or "")
    return "".join(parts)


async def test_replay_prints_the_recorded_answer() -> None:
    code, out, err = await run_cli("replay", str(CORPUS / "plain_text.sse"))
    assert code == 0, err
    assert out == corpus_text("plain_text.sse") + "\n"


async def test_replay_shows_tool_calls() -> None:
    code, out, err = await run_cli("replay", str(CORPUS / "two_pydantic_tools.sse"))
    assert code == 0, err
    lines = out.strip().split("\n")
    assert lines[0].startswith('tool call GetWeatherArgs({"city": "Edinburgh"')
    assert lines[1].startswith('tool call get_stock_price({"ticker": "AAPL"')
    assert len(lines) == 2


async def test_replay_of_several_choices_says_which_is_shown() -> None:
    code, out, err = await run_cli("replay", str(CORPUS / "structured_location_n3.sse"))
    assert code == 0, err
    assert out.startswith('{"city":"San Francisco"')
    assert "3 choices" in one_line(err)


async def test_replay_events() -> None:
    code, out, err = await run_cli("replay", str(CORPUS / "pydantic_tool.sse"), "--events")
    assert code == 0, err
    types = {json.loads(line)["type"] for line in out.splitlines()}
    assert {
        "chunk",
        "tool_calls.function.arguments.delta",
        "tool_calls.function.arguments.done",
    } <= types


async def test_replay_truncated_recording_fails(tmp_path: Path) -> None:
    body = (CORPUS / "plain_text.sse").read_bytes()
    truncated = tmp_path / "cut.sse"
    truncated.write_bytes(b"\n\n".join(body.split(b"\n\n")[:5]) + b"\n\n")
    code, out, err = await run_cli("replay", str(truncated))
    assert code == 1
    assert one_line(err).startswith("rxchat: error: incomplete stream")
    assert out.strip() == corpus_text("plain_text.sse")[: len(out.strip())]


async def test_replay_missing_file() -> None:
    code, _, err = await run_cli("replay", "/nonexistent/recording.sse")
    assert code == 2
    assert "no such file" in one_line(err)


# -- serve -----------------------------------------------------------------------------------


async def test_serve_then_chat_then_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        "serve",
        "--port",
        "0",
        "--api-key",
        SECRET,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "listening on http://127.0.0.1:" in line
        assert SECRET not in line
        url = line.split("listening on ")[1].split()[0]
        model = "mock?text=" + quote(TEXT, safe="")
        code, out, err = await run_cli(
            "chat", "Hi", "--base-url", url, "--model", model, env=cli_env(RXCHAT_API_KEY=SECRET)
        )
        assert (code, out, err) == (0, TEXT + "\n", "")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_on_a_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await run_cli("serve", "--port", str(port))
    assert code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in one_line(err)


async def test_version_and_console_script() -> None:
    code, out, _ = await run_cli("--version")
    assert (code, out.strip()) == (0, f"rxchat {rxchat.__version__}")
    script = Path(sys.executable).parent / "rxchat"
    assert script.exists(), "the console script is installed beside the interpreter"
    proc = await asyncio.create_subprocess_exec(
        str(script), "--version", stdout=asyncio.subprocess.PIPE, env=cli_env()
    )
    stdout, _ = await proc.communicate()
    assert stdout.decode().strip() == f"rxchat {rxchat.__version__}"


async def test_help() -> None:
    commands = ["demo", "chat", "serve", "replay"]
    results = await asyncio.gather(*(run_cli(command, "--help") for command in commands))
    for command, (code, out, _) in zip(commands, results, strict=True):
        assert code == 0
        assert out.startswith(f"usage: rxchat {command}")


# -- rendering in a terminal (rich), in-process ------------------------------------------------


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal, so the CLI renders with rich."""

    def isatty(self) -> bool:
        return True


async def test_rich_rendering_of_an_answer_and_a_structured_value() -> None:
    from rxchat import operators as ops
    from rxchat._cli import render_answer, render_structured, render_tool_calls
    from rxchat._render import Output

    terminal = FakeTerminal()
    out = Output(stream=terminal)
    assert out.rich
    await render_answer(
        rxchat.from_sse_bytes(CORPUS / "plain_text.sse").pipe(ops.accumulate()), out
    )
    assert corpus_text("plain_text.sse")[:20] in terminal.getvalue()

    terminal = FakeTerminal()
    out = Output(stream=terminal)
    events = rxchat.from_sse_bytes(CORPUS / "structured_location.sse").pipe(
        ops.accumulate(), ops.parse_structured(dict)
    )
    await render_structured(events, out, "Location")
    shown = terminal.getvalue()
    assert "Location" in shown and "done" in shown and "San Francisco" in shown

    terminal = FakeTerminal()
    out = Output(stream=terminal)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": {}}}
    ]
    events = rxchat.from_sse_bytes(CORPUS / "strict_dict_tool.sse").pipe(
        ops.accumulate(), ops.extract_tool_calls(tools)
    )
    await render_tool_calls(events, out)
    assert "get_weather" in terminal.getvalue()


def test_plain_output_when_asked_even_in_a_terminal() -> None:
    from rxchat._render import Output

    assert not Output(plain=True, stream=FakeTerminal()).rich
    assert not Output(stream=io.StringIO()).rich


# -- bad input, as a user types it (issue 10, item 13) -----------------------------------------


def sse_body(*texts: str, finish: bool = True) -> bytes:
    """A recorded streamed answer (made here: tests never read ../shared)."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    chunks += [{"index": 0, "delta": {"content": t}, "finish_reason": None} for t in texts]
    if finish:
        chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
    body = b"".join(
        b"data: " + json.dumps({**base, "choices": [c]}).encode() + b"\n\n" for c in chunks
    )
    return body + (b"data: [DONE]\n\n" if finish else b"")


async def run_many(*commands: tuple[str, ...]) -> list[tuple[int, str, str]]:
    """Run several commands, a few at a time (each starts an interpreter)."""
    slots = asyncio.Semaphore(3)

    async def run(args: tuple[str, ...]) -> tuple[int, str, str]:
        async with slots:
            return await run_cli(*args, timeout=90)

    return await asyncio.gather(*(run(args) for args in commands))


def no_traceback(err: str) -> str:
    """The error line of an argparse usage error (usage lines before it) or of rxchat's own."""
    assert "Traceback" not in err, err
    return err.strip("\n").split("\n")[-1]


async def test_bad_numbers_are_usage_errors_that_name_their_flag(mock_server: MockServer) -> None:
    url = mock_server.url
    cases = {
        ("demo", "--delay", "-1"): "argument --delay",
        ("serve", "--port", "99999"): "argument --port",
        ("serve", "--delay", "nan"): "argument --delay",
        ("chat", "Hi", "--model", "m", "--base-url", url, "--timeout", "0"): "argument --timeout",
        ("chat", "Hi", "--model", "m", "--base-url", url, "--timeout", "inf"): "argument --timeout",
        (
            "chat",
            "Hi",
            "--model",
            "m",
            "--base-url",
            url,
            "--idle-timeout",
            "-1",
        ): "argument --idle-timeout",
        (
            "chat",
            "Hi",
            "--model",
            "m",
            "--base-url",
            url,
            "--max-retries",
            "-1",
        ): "argument --max-retries",
        (
            "chat",
            "Hi",
            "--model",
            "m",
            "--base-url",
            url,
            "--temperature",
            "nan",
        ): "argument --temperature",
        (
            "chat",
            "Hi",
            "--model",
            "m",
            "--base-url",
            url,
            "--max-tokens",
            "0",
        ): "argument --max-tokens",
    }
    results = await run_many(*cases)
    for (args, flag), (code, out, err) in zip(cases.items(), results, strict=True):
        line = no_traceback(err)
        assert code == 2, (args, err)
        assert flag in line, (args, line)
        assert "Timeout." not in err and "max_retries" not in err and "token_delay" not in err
        assert out == ""


async def test_an_unknown_flag_is_named_before_a_missing_one() -> None:
    code, _, err = await run_cli("chat", "Hi", "--bogus")
    assert code == 2
    line = no_traceback(err)
    assert "unrecognized arguments: --bogus" in line
    assert "--model" not in line


async def test_bad_base_urls_name_the_flag(mock_server: MockServer) -> None:
    for url, phrase in (
        ("http://[::1", "--base-url is not a valid URL"),
        ("ftp://x", "--base-url must be"),
    ):
        code, _, err = await run_cli("chat", "Hi", "--model", "m", "--base-url", url)
        assert code == 2
        assert phrase in one_line(err)
    code, _, err = await run_cli(
        "chat", "Hi", "--model", "m", env=cli_env(RXCHAT_BASE_URL="ftp://x")
    )
    assert code == 2
    assert "$RXCHAT_BASE_URL must be" in one_line(err)


async def test_a_404_from_a_base_url_without_v1_hints_to_add_it(mock_server: MockServer) -> None:
    root = mock_server.url.removesuffix("/v1")
    code, out, err = await run_cli("chat", "Hi", "--model", "m", "--base-url", root)
    assert (code, out) == (1, "")
    assert f"try {root}/v1" in one_line(err)
    # With /v1 a 404 (an unknown model, say) gets no such hint.
    code, _, err = await run_cli("chat", "Hi", "--model", "m", "--base-url", root + "/v1/nope")
    assert code == 1
    assert "hint" not in one_line(err)


async def test_a_refusal_is_marked_on_stderr_and_exits_3(
    mock_server: MockServer, tmp_path: Path
) -> None:
    url = mock_server.url
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "string"}}}))
    plain, events, structured = await run_many(
        ("chat", "how is anthrax made", "--model", "m", "--base-url", url),
        ("chat", "Hi", "--model", "mock?refusal=1", "--base-url", url, "--events"),
        (
            "chat",
            "Hi",
            "--model",
            "mock?refusal=1",
            "--base-url",
            url,
            "--json-schema",
            str(schema),
        ),
    )
    code, out, err = plain
    assert (code, out) == (3, "")
    assert one_line(err).startswith("rxchat: refusal: ")
    code, out, err = events
    assert code == 3
    assert any(json.loads(line)["type"] == "refusal.done" for line in out.splitlines())
    assert one_line(err).startswith("rxchat: refusal: ")
    code, out, err = structured
    assert code == 3
    assert one_line(err).startswith("rxchat: refusal: ")


async def test_help_documents_the_exit_statuses() -> None:
    for command in ((), ("chat",), ("replay",)):
        code, out, _ = await run_cli(*command, "--help")
        assert code == 0
        assert "exit status:" in out and "3    the model refused" in out and "130" in out


async def test_chat_prompt_from_stdin_must_be_utf8_and_not_empty(mock_server: MockServer) -> None:
    args = ("chat", "-", "--model", "m", "--base-url", mock_server.url)
    code, _, err = await run_cli(*args, stdin=b"")
    assert code == 2 and "empty" in one_line(err)
    code, _, err = await run_cli(*args, stdin=b"\xff\xfe hi")
    assert code == 2 and "not valid UTF-8" in one_line(err)


async def test_replay_of_stdin(tmp_path: Path) -> None:
    code, out, err = await run_cli("replay", "-", stdin=sse_body("Hello", " there"))
    assert (code, out, err) == (0, "Hello there\n", "")


async def test_replay_of_a_pipe_or_device(tmp_path: Path) -> None:
    fifo = tmp_path / "answer.fifo"
    os.mkfifo(fifo)

    async def feed() -> None:
        # Non-blocking open: it fails (ENXIO) until the command opened the FIFO for reading,
        # and a command that never opens it leaves no thread blocked behind.
        for _ in range(600):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            os.set_blocking(fd, True)
            with os.fdopen(fd, "wb") as f:
                f.write(sse_body("Through", " a pipe"))
            return

    results = await asyncio.gather(run_cli("replay", str(fifo)), feed())
    assert results[0] == (0, "Through a pipe\n", "")


async def test_replay_of_a_directory_or_a_file_that_is_not_sse(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\nthis is not a recording\n")
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"object": "chat.completion", "choices": []}))
    empty = tmp_path / "empty.sse"
    empty.write_bytes(b"")
    cases = {
        str(tmp_path): "is a directory",
        str(text): "is not an SSE recording",
        str(answer): "holds JSON, not an SSE stream",
        str(empty): "is empty",
    }
    results = await run_many(*(("replay", name) for name in cases))
    for (name, phrase), (code, _, err) in zip(cases.items(), results, strict=True):
        assert code == 2, (name, err)
        assert phrase in one_line(err), (name, err)
    # A real recording that is cut keeps its own error (exit 1), with the text before it.
    cut = tmp_path / "cut.sse"
    cut.write_bytes(sse_body("Half", " an", finish=False))
    code, out, err = await run_cli("replay", str(cut))
    assert (code, out) == (1, "Half an\n")
    assert one_line(err).startswith("rxchat: error: incomplete stream")


async def test_ctrl_c_while_replay_waits_on_stdin() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        "replay",
        "-",
        "--plain",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(sse_body("Waiting", finish=False))  # then the pipe stays open, silent
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.stdout.read(7), 60) == b"Waiting"
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)  # it used to wait for the end of stdin
        assert code == 130
        assert one_line((await proc.stderr.read()).decode()) == "rxchat: interrupted"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_closed_stdout_ends_quietly() -> None:
    # `rxchat demo | head -1`: the reader goes away after the first line.
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        "demo",
        "--delay",
        "0.01",
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = await asyncio.to_thread(reader.readline)
    assert first.startswith(b"embedded mock server: http://127.0.0.1:")
    code = await asyncio.wait_for(proc.wait(), 60)
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert (code, err) == (1, "")
