"""The Vercel AI SDK (npm ``ai``, under Node) parses rxchat's UI message stream with its own code.

``npm ci`` installs the pinned ``ai`` into tests/browser/node/node_modules once (not committed).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import rxchat
from rxchat import relay
from rxchat.mock import MockServer

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def ai_sdk() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "these tests need node and npm on the PATH"
    if not (NODE_DIR / "node_modules" / "ai" / "package.json").exists():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR, check=True, timeout=300,
        )  # fmt: skip
    return NODE_DIR / "read_ui_stream.mjs"


async def run_sdk(script: Path, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node", str(script), *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=NODE_DIR,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)  # type: ignore[no-any-return]


async def sdk_reads_body(script: Path, body: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".sse") as file:
        file.write(body)
        file.flush()
        return await run_sdk(script, "file", file.name)


class GetWeather(BaseModel):
    city: str
    unit: str


async def test_use_chat_transport_reads_text_and_reasoning(
    ai_sdk: Path, mock_server: MockServer
) -> None:
    """The SDK's DefaultChatTransport (useChat's HTTP client) POSTs to the chat page's route."""
    from aiohttp import web

    app = relay.chat_app(base_url=mock_server.url, model="mock?tokens=25&reasoning=4&delay=0.005")
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        result = await run_sdk(ai_sdk, "url", f"http://127.0.0.1:{runner.addresses[0][1]}")
    finally:
        await runner.cleanup()
    assert result["errors"] == []
    message = result["message"]
    assert message["role"] == "assistant" and message["id"].startswith("chatcmpl-")
    parts = {part["type"]: part for part in message["parts"]}
    assert list(parts) == ["step-start", "reasoning", "text"]
    [record] = mock_server.streams
    assert parts["text"] == {"type": "text", "text": record.texts[0], "state": "done"}
    assert parts["reasoning"]["state"] == "done" and len(parts["reasoning"]["text"].split()) == 4
    assert result["snapshots"] > 25  # the message grew part by part, as useChat renders it
    kinds = [chunk["type"] for chunk in result["chunks"]]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert result["chunks"][-1] == {"type": "finish", "finishReason": "stop"}


async def test_tool_calls_and_finish(ai_sdk: Path, mock_server: MockServer) -> None:
    tools = [rxchat.pydantic_function_tool(GetWeather)]
    chunks = rxchat.chat_completion_stream(
        model="mock?parallel_tools=1", messages=[{"role": "user", "content": "Weather?"}],
        base_url=mock_server.url, api_key="k", tools=tools, tool_choice="required",
    )  # fmt: skip
    body = b"".join([data async for data in relay.sse(chunks, "ai-sdk-ui")])
    result = await sdk_reads_body(ai_sdk, body)
    assert result["errors"] == []
    [step, call] = result["message"]["parts"]
    assert step == {"type": "step-start"}
    assert call["type"] == "tool-GetWeather" and call["state"] == "input-available"
    GetWeather.model_validate(call["input"])
    assert call["toolCallId"].startswith("call_")
    assert result["chunks"][-1] == {"type": "finish", "finishReason": "tool-calls"}
    deltas = [c for c in result["chunks"] if c["type"] == "tool-input-delta"]
    assert json.loads("".join(d["inputTextDelta"] for d in deltas)) == call["input"]


async def test_error_and_abort_and_adversarial_text(ai_sdk: Path, mock_server: MockServer) -> None:
    text = 'line one\n\nline two\r\n"quoted" — ☃ \u2028 end'
    chunks = rxchat.chat_completion_stream(
        model="mock?error_after=4", messages=[{"role": "user", "content": "Hi"}],
        base_url=mock_server.url, api_key="k",
    )  # fmt: skip
    result = await sdk_reads_body(
        ai_sdk, b"".join([d async for d in relay.sse(chunks, "ai-sdk-ui")])
    )
    assert result["chunks"][-1]["type"] == "error"
    assert "StreamAPIError" in result["chunks"][-1]["errorText"]
    assert result["errors"], "the reader reports the error"

    def chunk(delta: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }

    items = [
        chunk({"role": "assistant"}),
        chunk({"content": text}),
        chunk({"content": "x" * 1_000_000}),
    ]
    encoder = relay.UIMessageStreamEncoder(message_id="m-1")
    messages = [m for item in items for m in encoder.encode(item)] + encoder.abort(
        "stopped by the user"
    )
    body = b"".join(relay.frame(data.decode(), id=n) for n, (_, data) in enumerate(messages, 1))
    result = await sdk_reads_body(ai_sdk, body)
    assert result["errors"] == []
    assert result["message"]["id"] == "m-1"
    [_, part] = result["message"]["parts"]
    assert part["text"] == text + "x" * 1_000_000
    assert result["chunks"][-1] == {"type": "abort", "reason": "stopped by the user"}
