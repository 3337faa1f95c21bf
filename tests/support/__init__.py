"""What rxchat's own tests share: servers on their own threads, small request helpers.

``tests/`` is on ``sys.path`` in every run (pytest puts the directory of ``tests/conftest.py``
there), so a test anywhere below it imports ``from support import ThreadedMock, user``.
The pytest fixtures themselves are in ``tests/conftest.py``.
"""

from __future__ import annotations

from .threaded import ThreadedMock, user

__all__ = ["ThreadedMock", "user"]
