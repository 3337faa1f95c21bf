"""The chat page in headless Chromium: text streams in, a reload resumes, stop closes upstream."""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

import rxchat
from rxchat import relay
from rxchat.mock import MockServer

CHROMIUM = os.environ.get("RXCHAT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RXCHAT_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT = Path(
    os.environ.get("RXCHAT_SCREENSHOT", Path(tempfile.gettempdir()) / "rxchat-chat-page.png")
)


@pytest.fixture
def browser() -> Any:
    profile = tempfile.mkdtemp(prefix="rxchat-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1000,800",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def page(mock_server: MockServer) -> AsyncIterator[str]:
    """The chat page on loopback, answering from the mock (slow enough to reload mid-answer)."""
    from aiohttp import web

    app = relay.chat_app(
        base_url=mock_server.url, model="mock?tokens=120&delay=0.03", keepalive=1.0
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll a browser-side condition (selenium calls block: run them in a thread)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def state_of(driver: Any) -> str:
    return str(driver.execute_script("return document.body.dataset.state"))


def ask(driver: Any, mode: str) -> None:
    Select(driver.find_element(By.ID, "mode")).select_by_visible_text(mode)
    driver.find_element(By.ID, "send").click()


async def test_text_streams_in_and_a_reload_resumes_it(
    browser: Any, page: str, mock_server: MockServer
) -> None:
    await asyncio.to_thread(browser.get, page)
    await asyncio.to_thread(ask, browser, "text")
    lengths = []
    for words in (3, 12):  # the text grows while the answer streams
        await until(
            lambda w=words: len(text_of(browser, "answer").split()) >= w, what=f"{words} words"
        )
        lengths.append(len(text_of(browser, "answer")))
    assert lengths[0] < lengths[1]
    assert state_of(browser) == "streaming"
    before = text_of(browser, "answer")
    await asyncio.to_thread(browser.refresh)  # reload in the middle of the answer
    await until(lambda: state_of(browser) == "done", what="the answer to finish after the reload")
    [record] = mock_server.streams
    expected = record.texts[0]
    assert text_of(browser, "answer") == expected  # all of it, nothing twice
    assert expected.startswith(before.rstrip())
    assert record.outcome == "completed" and len(mock_server.requests) == 1
    shot = await asyncio.to_thread(browser.get_screenshot_as_png)
    SCREENSHOT.write_bytes(shot)
    print(f"\nscreenshot of the chat page: {SCREENSHOT}")
    answer = await asyncio.to_thread(
        lambda: browser.find_element(By.ID, "answer").screenshot_as_png
    )
    assert _dark_pixel_share(answer) > 0.01, "the answer box shows no text"


async def test_stop_closes_the_upstream(browser: Any, page: str, mock_server: MockServer) -> None:
    await asyncio.to_thread(browser.get, page)
    await asyncio.to_thread(ask, browser, "text")
    await until(lambda: len(text_of(browser, "answer").split()) >= 5, what="some text")
    await asyncio.to_thread(lambda: browser.find_element(By.ID, "stop").click())
    await until(lambda: state_of(browser) == "stopped", what="the page to show the stop")
    disconnect = await mock_server.wait_for_disconnect(timeout=5)
    assert disconnect.chunks < 120
    assert mock_server.streams[0].outcome == "disconnected"
    assert "stopped" in text_of(browser, "status")


async def test_structured_answer_and_tool_calls_fill_in(browser: Any, page: str) -> None:
    await asyncio.to_thread(browser.get, page)
    await asyncio.to_thread(ask, browser, "structured")
    await until(lambda: state_of(browser) == "done", what="the structured answer")
    shown = rxchat.relay._page.Answer.model_validate_json(text_of(browser, "structured"))
    assert shown.title and shown.points
    await asyncio.to_thread(ask, browser, "tools")
    await until(lambda: state_of(browser) == "done", what="the tool call")
    tools = text_of(browser, "tools")
    assert tools.startswith("✓ get_weather(") and '"city":' in tools


def _dark_pixel_share(png: bytes) -> float:
    """Share of dark pixels in a PNG (8-bit RGB/RGBA, as Chromium writes them): text is there."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    assert header is not None
    width, height, depth, color = header[0], header[1], header[2], header[3]
    assert depth == 8 and color in (2, 6)
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    dark = 0
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (
                    line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 0xFF
        dark += sum(
            1 for i in range(0, stride, channels) if line[i] + line[i + 1] + line[i + 2] < 300
        )
        previous = line
    return dark / (width * height)
