"""``rxchat serve --ui``: the chat page over the embedded mock, as a user starts it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from relay_support import data_events

from rxchat._cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


async def test_serve_ui_serves_the_chat_page_and_streams() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rxchat", "serve", "--ui", "--port", "0", "--delay", "0.001",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("rxchat chat page on http://127.0.0.1:"), line
        assert "answers from the embedded mock at http://127.0.0.1:" in line
        page = line.split()[4]
        async with aiohttp.ClientSession() as http:
            async with http.get(page) as response:
                assert response.content_type == "text/html"
                assert "new EventSource(" in await response.text()
            body = {"mode": "structured", "messages": [{"role": "user", "content": "Hi"}]}
            async with http.post(f"{page}api/chat", json=body) as response:
                stream_id = (await response.json())["stream_id"]
            async with http.get(f"{page}api/streams/{stream_id}") as response:
                events = data_events(await response.read())
        assert [e for _, e, _ in events][-2:] == ["content.done", "done"]
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()


def test_ui_options_are_on_serve() -> None:
    args = build_parser().parse_args(
        ["serve", "--ui", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"]
    )
    assert (args.ui, args.base_url, args.model) == (True, "http://127.0.0.1:1/v1", "m")
    assert build_parser().parse_args(["serve"]).ui is False
