"""The skip for tests of the optional C reader (``rxchat._speedups``) itself.

The extension is built at install only when a C compiler is present; without it rxchat builds
every chunk with pydantic and the rest of the suite runs unchanged. Tests of the reader itself
are skipped then, with the reason printed (``-ra``). CI sets ``RXCHAT_EXPECT_SPEEDUPS=1`` where a
compiler is installed, so a silent build failure there fails these tests instead.
"""

from __future__ import annotations

import os

import pytest

import rxchat._fastbuild as fastbuild

C_READER_BUILT = fastbuild._speedups is not None
EXPECTED = os.environ.get("RXCHAT_EXPECT_SPEEDUPS", "") not in ("", "0")

requires_c_reader = pytest.mark.skipif(
    not C_READER_BUILT and not EXPECTED,
    reason="rxchat._speedups (the optional C reader) is not built: no C compiler at install",
)
