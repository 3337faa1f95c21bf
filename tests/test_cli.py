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
