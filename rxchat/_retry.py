"""Retry policy: which failures are retried and how long to wait (pure functions, no I/O).

The attempt loop in :mod:`rxchat._transport` asks :func:`should_retry_status` after a 4xx/5xx
answer and :func:`delay` before sleeping. A failure is only ever retried before the status line
of a 2xx answer arrived (a stream that began is never replayed, and neither is an answer the
server may have generated and billed); see ``docs/transport.md``.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

__all__ = [
    "MAX_RETRY_AFTER",
    "RETRY_STATUSES",
    "delay",
    "parse_retry_after",
    "should_retry_status",
]

RETRY_STATUSES = frozenset((408, 409, 429))
"""Retried besides every status >= 500."""

MAX_RETRY_AFTER = 60.0
"""Seconds; a longer server hint is ignored in favour of our backoff."""


def should_retry_status(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an error answer may succeed when sent again.

    The server's ``x-should-retry: true|false`` decides when present (as in the OpenAI SDK);
    otherwise 408, 409, 429 and every status >= 500.
    """
    should = headers.get("x-should-retry")
    if should == "true":
        return True
    if should == "false":
        return False
    return status in RETRY_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's retry hint in seconds, when it is given and reasonable (0 to 60 s).

    ``retry-after-ms`` wins over ``Retry-After``, which may be seconds or an HTTP date (a date in
    the past means now).
    """
    value: float | None = None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = None
    if value is None:
        raw = headers.get("retry-after")
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(raw)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    value = when.timestamp() - time.time()
    if value is None or not math.isfinite(value):
        return None
    if value < 0:
        value = 0.0  # a date in the past: retry now
    return value if value <= MAX_RETRY_AFTER else None


def delay(
    retry: int,
    headers: Mapping[str, str] | None,
    *,
    base: float,
    cap: float,
) -> float:
    """Seconds before retry number ``retry`` (0-based): the server's hint, else backoff.

    Backoff is ``min(cap, base * 2**retry)`` reduced by up to 25 % of jitter.
    """
    if headers is not None:
        hint = parse_retry_after(headers)
        if hint is not None:
            return hint
    nominal = min(cap, base * (2.0**retry))
    return nominal * (1.0 - 0.25 * random.random())
