"""The ``rxchat chat`` command against the server, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from e2ekit import GREEDY, Target, raw_stream, raw_text, user
from test_cancel import MAX_TOKENS, assert_stopped_on_server, long_request


def rxchat_chat(target: Target, *args: str, **kwargs: object) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "rxchat",
        "chat",
        "--base-url",
        target.base_url,
        "--model",
        target.model,
        "--max-retries",
        "0",
        *args,
    ]
    if target.api_key:
        command += ["--api-key", target.api_key]
    return command


ENV = {**os.environ, "NO_COLOR": "1"}


def test_chat_plain_text(target: Target) -> None:
    prompt = "Name two planets, separated by a comma."
    expected = raw_text(raw_stream(target, {"messages": user(prompt), "max_tokens": 8, **GREEDY}))
    done = subprocess.run(
        rxchat_chat(target, prompt, "--max-tokens", "8", "--temperature", "0", "--plain"),
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    # seed is not a CLI option; temperature 0 is greedy already
    assert done.stdout.rstrip("\n") == expected.rstrip("\n")


def test_chat_events(target: Target) -> None:
    done = subprocess.run(
        rxchat_chat(target, "Say hi.", "--max-tokens", "8", "--temperature", "0", "--events"),
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "chunk" and "content.delta" in kinds and kinds.count("content.done") == 1
    deltas = "".join(e["delta"] for e in events if e["type"] == "content.delta")
    assert deltas == next(e["content"] for e in events if e["type"] == "content.done")


def test_chat_json_schema(target: Target, tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    path = tmp_path / "person.json"
    path.write_text(json.dumps(schema))
    done = subprocess.run(
        rxchat_chat(
            target,
            "Invent a person as JSON.",
            "--json-schema",
            str(path),
            "--max-tokens",
            "60",
            "--temperature",
            "0",
            "--plain",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert '"name"' in done.stdout and '"age"' in done.stdout


def test_ctrl_c_stops_the_generation(target: Target) -> None:
    messages = long_request()
    process = subprocess.Popen(
        rxchat_chat(target, messages[0]["content"], "--max-tokens", str(MAX_TOKENS), "--plain"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**ENV, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        got = b""
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            got += os.read(process.stdout.fileno(), 64)
        assert got, "the answer started"
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert status == 130
    assert_stopped_on_server(target, "rxchat chat, Ctrl-C")
