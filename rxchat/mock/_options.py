"""Per-request mock options: parsed from a ``?query`` suffix on the model name and ``X-Mock-*`` headers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "MAX_BIG_EVENT",
    "MAX_PARALLEL_TOOLS",
    "MAX_TOKENS",
    "MAX_TOOL_TURNS",
    "MockOptions",
    "OptionError",
    "parse_options",
    "split_model",
]

# What one request may make the mock generate: the answer is planned whole before the first byte
# goes out, on the server's event loop, so an unbounded `tokens=` would stall every other client
# (1,000,000,000 tokens: two minutes and 15 GB). At the bounds a plan costs well under a second.
MAX_TOKENS = 1_000_000
"""Largest ``tokens=`` and ``reasoning=`` (about 6 MB of text, planned in 0.2 s)."""
MAX_BIG_EVENT = 128 << 20
"""Largest ``big_event=`` in bytes: twice rxchat's default ``max_event_bytes``."""
MAX_PARALLEL_TOOLS = 128
"""Largest ``parallel_tools=``."""
MAX_TOOL_TURNS = 1_000
"""Largest ``tool_turns=``."""


class OptionError(ValueError):
    """A mock option key is unknown or its value is malformed."""


@dataclass(frozen=True, slots=True)
class MockOptions:
    """Per-request knobs of the mock server (see the module docstring of ``rxchat.mock``)."""

    tokens: int = 24
    delay: float | None = None
    reasoning: int = 0
    refusal: bool = False
    parallel_tools: int = 1
    tool_turns: int = 1
    text: str | None = None
    key: str | None = None
    # faults
    drop_after: int | None = None
    stall_headers: float = 0.0
    stall_first: float = 0.0
    stall_between: float = 0.0
    stall_after: int | None = None
    keepalive: float | None = None
    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: int | None = None
    fail_times: int | None = None
    bad_json_after: int | None = None
    error_after: int | None = None
    event_error_after: int | None = None
    unknown_shape_after: int | None = None
    invalid_utf8_after: int | None = None
    big_event: int | None = None
    no_done: bool = False
    drip: bool = False
    drip_delay: float = 0.0
    # provider wire shapes (rxchat/mock/_providers.py)
    shape: tuple[str, ...] = ()

    @property
    def has_stream_faults(self) -> bool:
        """Whether the stream needs the per-frame (slow) writer."""
        return (
            self.drop_after is not None
            or self.stall_first > 0
            or self.stall_between > 0
            or self.bad_json_after is not None
            or self.error_after is not None
            or self.event_error_after is not None
            or self.unknown_shape_after is not None
            or self.invalid_utf8_after is not None
            or self.no_done
            or self.drip
        )


def _int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise OptionError(f"expected an integer, got {raw!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"in [{lo}, {hi:,}]"
            raise OptionError(f"expected an integer {bound}, got {value}")
        return value

    return parse


def _float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise OptionError(f"expected a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise OptionError(f"expected a finite number >= 0, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = _float(raw)
    if value <= 0:
        raise OptionError(f"expected a number > 0, got {raw!r}")
    return value


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("", "1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"expected a boolean (0/1/true/false), got {raw!r}")


def _str(raw: str) -> str:
    return raw


def _shapes(raw: str) -> tuple[str, ...]:
    from ._providers import SHAPES

    names = tuple(n.strip().lower() for n in raw.replace("+", ",").replace(" ", ",").split(","))
    names = tuple(n for n in names if n)
    for name in names:
        if name not in SHAPES:
            raise OptionError(f"unknown shape {name!r} (known: {', '.join(SHAPES)})")
    return names


def _retry_after(raw: str) -> str:
    _float(raw)
    return raw.strip()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "tokens": _int(0, MAX_TOKENS),
    "delay": _float,
    "reasoning": _int(0, MAX_TOKENS),
    "refusal": _bool,
    "parallel_tools": _int(1, MAX_PARALLEL_TOOLS),
    "tool_turns": _int(0, MAX_TOOL_TURNS),
    "text": _str,
    "key": _str,
    "drop_after": _int(0),
    "stall_headers": _float,
    "stall_first": _float,
    "stall_between": _float,
    "stall_after": _int(0),
    "keepalive": _positive_float,
    "status": _int(400, 599),
    "retry_after": _retry_after,
    "retry_after_ms": _int(0),
    "fail_times": _int(0),
    "bad_json_after": _int(0),
    "error_after": _int(0),
    "event_error_after": _int(0),
    "unknown_shape_after": _int(0),
    "invalid_utf8_after": _int(0),
    "big_event": _int(1, MAX_BIG_EVENT),
    "no_done": _bool,
    "drip": _bool,
    "drip_delay": _float,
    "shape": _shapes,
}

OPTION_KEYS: tuple[str, ...] = (*_PARSERS, "fault")


def split_model(model: str) -> tuple[str, str]:
    """Split ``"gpt-4o?tokens=5"`` into ``("gpt-4o", "tokens=5")``."""
    name, _, query = model.partition("?")
    return name, query


def _apply(values: dict[str, Any], key: str, raw: str, origin: str) -> None:
    key = key.strip().lower().replace("-", "_")
    if key == "fault":
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, arg = item.partition(":")
            if name.strip().lower().replace("-", "_") == "fault":
                raise OptionError(f"{origin}: nested `fault` is not allowed")
            _apply(values, name, arg if sep else "", origin)
        return
    parser = _PARSERS.get(key)
    if parser is None:
        known = ", ".join(OPTION_KEYS)
        raise OptionError(f"{origin}: unknown mock option {key!r} (known: {known})")
    try:
        values[key] = parser(raw)
    except OptionError as err:
        raise OptionError(f"{origin}: option {key!r}: {err}") from None


def parse_options(
    query: str,
    headers: Iterable[tuple[str, str]] | Mapping[str, str],
    *,
    defaults: MockOptions | None = None,
) -> MockOptions:
    """Build the options of one request; ``X-Mock-*`` headers override the model suffix.

    Args:
        query: the part of the model name after ``?`` (``"tokens=5&fault=drop_after:3"``).
        headers: request headers; only names starting with ``X-Mock-`` are read.
        defaults: the starting values (the app's defaults).

    Returns:
        The merged options.

    Raises:
        OptionError: an unknown key or a malformed value.
    """
    values: dict[str, Any] = {}
    if query:
        for key, raw in parse_qsl(query, keep_blank_values=True):
            _apply(values, key, raw, "model suffix")
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, raw in items:
        lname = name.lower()
        if lname.startswith("x-mock-"):
            _apply(values, lname[len("x-mock-") :], raw, f"header {name}")
    base = defaults if defaults is not None else MockOptions()
    if not values:
        return base
    return dataclasses.replace(base, **values)
