"""Incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Sans-I/O: feed it bytes as they arrive, in any split, and it returns the events completed so far.
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import EventTooLargeError

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event (treat it as immutable; not frozen because a frozen dataclass costs
    four times as much to build, and one is built per chunk).

    Attributes:
        data: the data buffer, lines joined with ``"\\n"``.
        event: the event type, ``"message"`` when the stream gave none.
        id: the last event ID seen so far in the stream (it persists across events).
        retry: the reconnection time in milliseconds carried by this event's block, if any.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """Parse :attr:`data` as JSON (orjson)."""
        return orjson.loads(self.data)


class SSEDecoder:
    """Turn a byte stream into :class:`ServerSentEvent` objects, one read at a time.

    Any split of the same bytes into ``feed`` calls gives the same events. There is no line-length
    limit unless ``max_event_bytes`` is set, which bounds the memory one event may take: the
    characters of the event's ``data`` lines as received (field name and line end included) plus
    the line being read may not exceed it (for ASCII text, characters are bytes). Over the limit,
    :class:`~rxchat.errors.EventTooLargeError` is raised; events completed earlier in the same
    read are returned first and the error is kept in :attr:`error` and raised by the next
    ``feed`` or ``flush``, so no split of the bytes loses an event.

    >>> decoder = SSEDecoder()
    >>> decoder.feed(b"data: hel")
    []
    >>> decoder.feed(b"lo\\n\\n")
    [ServerSentEvent(data='hello', event='message', id='', retry=None)]
    """

    __slots__ = (
        "_comments",
        "_data",
        "_error",
        "_event",
        "_last_id",
        "_line_parts",
        "_line_size",
        "_max",
        "_only_payloads",
        "_payload_mode",
        "_pending_cr",
        "_reconnect",
        "_retry",
        "_size",
        "_started",
        "_utf8",
        "discarded_chars",
    )

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._pending_cr = False
        self._line_parts: list[str] = []  # an unfinished line, kept in pieces: no O(n^2) joins
        self._line_size = 0
        self._data: list[str] = []
        self._size = 0  # characters buffered for the current event
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        self._reconnect: int | None = None
        self._comments = 0
        self._max = max_event_bytes
        self._error: EventTooLargeError | None = None
        self._payload_mode = False  # in a feed_payloads call
        self._only_payloads = False  # whether the last one returned data strings only
        self.discarded_chars = 0

    @property
    def last_event_id(self) -> str:
        """The last event ID buffer (persists across events, as per the spec)."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds set by the last valid ``retry:`` field, or None.

        As per the spec, a ``retry:`` field sets it when the line is read, whether or not its
        block is dispatched (a block with ``retry:`` and no ``data`` dispatches nothing).
        """
        return self._reconnect

    @property
    def error(self) -> EventTooLargeError | None:
        """A fault found after the events the last ``feed`` returned; the next call raises it."""
        return self._error

    @property
    def comments(self) -> int:
        """How many comment lines (``:`` keep-alives) were seen."""
        return self._comments

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one read and return the events it completed (possibly none).

        Raises:
            EventTooLargeError: an event exceeded ``max_event_bytes`` (see the class docstring).
        """
        return self._feed(data, False)

    def feed_payloads(self, data: bytes) -> list[str | ServerSentEvent]:
        """Like :meth:`feed`, but an event of the default type with one ``data`` line and no
        ``retry`` comes as its data string alone (the value its ``data`` would be; for ids see
        :attr:`last_event_id`). Cheaper: nearly every event an LLM server sends is one.
        :attr:`all_payloads` tells whether the returned list holds strings only.
        """
        return self._feed(data, True)

    @property
    def all_payloads(self) -> bool:
        """Whether the last :meth:`feed_payloads` returned data strings only."""
        return self._only_payloads

    def _feed(self, data: bytes, plain: bool) -> list[Any]:
        self._payload_mode = self._only_payloads = plain
        if self._error is not None:
            raise self._error
        text = self._utf8.decode(data)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":  # one leading BOM is stripped, as per the spec
                text = text[1:]
        if self._pending_cr:
            # CR at the end of the last read, LF at the start of this one: one line end.
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            self._pending_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            if text:
                self._line_parts.append(text)
                self._line_size += len(text)
                self._check_size()
            return []
        if self._line_parts:
            text = "".join(self._line_parts) + text
            self._line_parts.clear()
        self._line_size = 0
        events: list[Any] = []
        try:
            self._feed_lines(text, events, plain)
        except EventTooLargeError as err:
            if not events:
                raise
            self._error = err  # deliver what completed before the fault; raise on the next call
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: as per the spec, an event not ended by a blank line is discarded.

        Returns an empty list; :attr:`discarded_chars` tells how much was dropped, so callers can
        report a truncated stream instead of losing it silently.
        """
        if self._error is not None:
            raise self._error
        rest = self._utf8.decode(b"", final=True)
        self.discarded_chars = (
            len(rest) + self._line_size + sum(len(d) + 1 for d in self._data)
        )
        self._line_parts.clear()
        self._line_size = 0
        self._data.clear()
        self._size = 0
        self._event = ""
        self._retry = None
        return []

    def _feed_lines(self, text: str, events: list[Any], plain: bool) -> None:
        """Process ``text``, which starts at a line start, keeping an unfinished last line."""
        start = 0
        if self._data or self._event or self._retry is not None:
            # Finish the block in progress line by line, up to its blank line.
            if text[0] == "\n":
                end = 0
            else:
                end = text.find("\n\n")
                if end < 0:
                    self._general_lines(text, events)
                    return
                for line in text[:end].split("\n"):
                    self._process_line(line, events)
                end += 1
            self._process_line("", events)
            start = end + 1
        if plain and self._fast_payloads(text[start:] if start else text, events):
            return
        # At a block boundary with empty buffers: a block that is one "data:" line (nearly every
        # block an LLM server sends) is dispatched without the line-by-line machinery. The result
        # is the same as _process_line would give.
        blocks = (text[start:] if start else text).split("\n\n")
        tail = blocks.pop()
        limit = self._max
        for block in blocks:
            if block.startswith("data:") and "\n" not in block:
                if limit is not None and len(block) + 1 > limit:
                    raise EventTooLargeError(limit)
                value = block[6:] if block.startswith(" ", 5) else block[5:]
                if plain:
                    events.append(value)
                else:
                    events.append(ServerSentEvent(value, "message", self._last_id, None))
            else:
                for line in block.split("\n"):
                    self._process_line(line, events)
                self._process_line("", events)
        if tail:
            self._general_lines(tail, events)

    def _fast_payloads(self, text: str, events: list[Any]) -> bool:
        """At a block boundary with empty buffers: when every complete line of ``text``
        alternates ``data: ...`` / blank (what LLM servers send), append the data strings and
        return True, with the same outcome as the line-by-line rules; else change nothing.

        Tested on whole lists in C rather than line by line: the blank lines with ``any``, the
        ``data: `` prefixes with ``min``/``max`` (a string starts with ``"data: "`` exactly when
        it sorts between ``"data: "`` and ``"data:!"``, ``"!"`` being the character after space).
        """
        lines = text.split("\n")
        tail = lines.pop()  # unfinished line
        last = lines.pop() if len(lines) & 1 else None  # a line whose blank line is to come
        data = lines[0::2]
        limit = self._max
        if not (
            data
            and not any(lines[1::2])
            and min(data) >= "data: "
            and max(data) < "data:!"
            and (limit is None or max(map(len, data)) < limit)
        ):
            return False
        events += [line[6:] for line in data]
        if last is not None:
            self._process_line(last, events)
        if tail:
            self._line_parts.append(tail)
            self._line_size = len(tail)
            self._check_size()
        return True

    def _general_lines(self, text: str, events: list[Any]) -> None:
        lines = text.split("\n")
        tail = lines.pop()
        for line in lines:
            self._process_line(line, events)
        if tail:
            self._line_parts.append(tail)
            self._line_size = len(tail)
            self._check_size()

    def _check_size(self) -> None:
        if self._max is not None and self._size + self._line_size > self._max:
            raise EventTooLargeError(self._max)

    def _process_line(self, line: str, events: list[Any]) -> None:
        if line.startswith("data:"):  # the hot path
            self._data.append(line[6:] if line.startswith("data: ") else line[5:])
            self._size += len(line) + 1
            if self._max is not None and self._size > self._max:
                raise EventTooLargeError(self._max)
            return
        if not line:
            if self._data:
                if (
                    self._payload_mode
                    and len(self._data) == 1
                    and not self._event
                    and self._retry is None
                ):
                    events.append(self._data[0])
                else:
                    self._only_payloads = False
                    events.append(
                        ServerSentEvent(
                            "\n".join(self._data),
                            self._event or "message",
                            self._last_id,
                            self._retry,
                        )
                    )
            # As per the spec, no dispatch when the data buffer is empty, but buffers reset.
            self._data.clear()
            self._size = 0
            self._event = ""
            self._retry = None
            return
        if self._max is not None and self._size + len(line) + 1 > self._max:
            # Checked on every whole line, so whether the limit trips never depends on how the
            # line was split into reads (a partial line is always shorter than the whole one).
            raise EventTooLargeError(self._max)
        colon = line.find(":")
        if colon == 0:
            self._comments += 1
            return
        if colon < 0:
            field, value = line, ""
        else:
            field = line[:colon]
            value = line[colon + 2 :] if line.startswith(" ", colon + 1) else line[colon + 1 :]
        if field == "data":
            self._data.append(value)
            self._size += len(line) + 1
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:  # as per the spec, an id with NUL is ignored
                self._last_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self._retry = self._reconnect = int(value)
        # any other field is ignored, as per the spec
