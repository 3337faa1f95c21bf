"""Tests with real clients that are not Python: headless Chromium (the chat page) and the Vercel AI
SDK under Node (the UI message stream). They need ``/usr/bin/chromium`` + ``chromedriver``
(Debian: ``apt-get install chromium chromium-driver``), selenium, node and npm, so they run on
their own: ``RXCHAT_BROWSER_TESTS=1 python -m pytest -q -p no:cacheprovider tests/browser``.
Without ``RXCHAT_BROWSER_TESTS=1`` their modules are not collected (neither passes nor skips)."""

from __future__ import annotations

import os

ENABLED = os.environ.get("RXCHAT_BROWSER_TESTS") == "1"


# Not imported at all when disabled: the default run has no selenium to import (the browser
# extra brings it), and a module that is not collected is neither a pass nor a skip.
collect_ignore_glob = [] if ENABLED else ["test_*.py"]
