"""Server-Sent Events framing (WHATWG HTML, "event stream" interpretation), sans-I/O.

A frame is ``field: value`` lines ended by a blank line. The value of a field runs to the end of
its line, and CR, LF and CRLF all end a line, so a payload that holds a line break must be sent as
several ``data:`` lines: the parser joins them with LF. (A CR or CRLF inside the payload therefore
arrives as LF: the event stream format cannot carry it. JSON payloads never hold a raw line
break, so every encoder of this package is byte-exact.) ``event:`` and ``id:`` values cannot hold a
line break at all, and an ``id`` holding NUL is ignored by the parser: both are rejected here.
"""

from __future__ import annotations

import re

from ._errors import RelayError

__all__ = ["comment", "frame"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


def _field_value(name: str, value: str) -> bytes:
    if "\n" in value or "\r" in value:
        raise RelayError(f"an SSE {name} cannot contain a line break: {value!r}")
    if name == "id" and "\0" in value:
        # "If the field value does not contain U+0000 NULL, then set the last event ID buffer"
        raise RelayError(f"an SSE id cannot contain NUL: {value!r}")
    return value.encode()


def data_lines(data: str | bytes) -> bytes:
    """``data:`` lines for a payload: one per line of it (an empty payload is one empty line)."""
    raw = data.encode() if isinstance(data, str) else data
    if b"\n" not in raw and b"\r" not in raw:
        return b"data: " + raw + b"\n"
    return b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK_BYTES.split(raw))


def frame(
    data: str | bytes,
    *,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
) -> bytes:
    """One Server-Sent Event, framed so that any parser gives back exactly ``data``.

    Args:
        data: the payload; each line of it becomes a ``data:`` line (``"a\\n\\nb"`` is three).
        event: the event type (``event:`` line), or ``None`` for the default ``message``.
        id: the event id (``id:`` line); a browser sends the last one back as ``Last-Event-ID``.
        retry: reconnection delay in milliseconds for the browser (``retry:`` line).

    Returns:
        The UTF-8 bytes of the frame, ending with the blank line that dispatches it.

    Raises:
        RelayError: ``event`` or ``id`` holds a line break (or ``id`` a NUL), or ``retry`` is
            not a non-negative integer.

    >>> frame("line one\\n\\nline two", id=7)
    b'id: 7\\ndata: line one\\ndata: \\ndata: line two\\n\\n'
    """
    head = b""
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise RelayError(f"retry must be a non-negative integer of milliseconds, not {retry!r}")
        head += b"retry: %d\n" % retry
    if id is not None:
        head += b"id: " + _field_value("id", str(id)) + b"\n"
    if event is not None:
        head += b"event: " + _field_value("event", event) + b"\n"
    return head + data_lines(data) + b"\n"


def comment(text: str = "") -> bytes:
    """An SSE comment (``: text``), ignored by parsers; keeps idle connections and proxies open.

    Each line of ``text`` becomes its own comment line.
    """
    lines = _LINE_BREAK.split(text) if text else [""]
    return b"".join(b": " + line.encode() + b"\n" if line else b":\n" for line in lines) + b"\n"
