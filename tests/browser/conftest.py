"""Tests with real clients that are not Python: headless Chromium (the chat page) and the Vercel AI
SDK under Node (the UI message stream). They need ``/usr/bin/chromium`` + ``chromedriver``
(Debian: ``apt-get install chromium chromium-driver``), selenium, node and npm, so they run on
their own: ``RXCHAT_BROWSER_TESTS=1 python -m pytest -q -p no:cacheprovider tests/browser``.
Without ``RXCHAT_BROWSER_TESTS=1`` they are deselected (not collected as skips)."""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("RXCHAT_BROWSER_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    here = os.path.dirname(__file__)
    mine = [item for item in items if str(item.path).startswith(here)]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]
