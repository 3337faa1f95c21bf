"""``buffer_text``: coalesce text deltas into one string per time window (UI frame rates), or
into whole lines, sentences or pieces between a separator (loggers, speech, line protocols)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SerialDisposable, SingleAssignmentDisposable

from ..types import ChatCompletionChunk
from ._support import check_seconds, time_scheduler

__all__ = ["buffer_text"]


def _text_of(item: object) -> str | None:
    """The text an item carries, ``None`` for items that carry none (other event types)."""
    if type(item) is str:
        return item
    if isinstance(item, ChatCompletionChunk):
        return item.text
    kind = getattr(item, "type", None)
    if kind == "content.delta":
        delta = getattr(item, "delta", None)
        if isinstance(delta, str):
            return delta
        raise TypeError(f"buffer_text: a content.delta event without a str delta: {item!r}")
    if isinstance(kind, str):
        return None  # chunk, content.done, tool_calls.*, ...: no new text
    if isinstance(item, str):
        return str(item)
    raise TypeError(
        "buffer_text takes str deltas, content.delta events or chat-completion chunks, "
        f"not {type(item).__name__}"
    )


def buffer_text(
    seconds: float | None = None,
    *,
    by: Literal["line", "sentence"] | None = None,
    separator: str | None = None,
    keepends: bool = False,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Any]], Observable[str]]:
    """Coalesce text into one ``str`` per time window, or per line, sentence or separator.

    **By time** (``seconds``), to render at a UI frame rate: the first text after a quiet period
    opens a window of ``seconds``; everything that arrives until it closes is joined and emitted
    as one string. Text is never lost, reordered or duplicated, and no empty string is emitted.

    **By text** (``by="line"``, ``by="sentence"`` or ``separator="..."``), for a logger, speech
    or a line protocol: one string per whole piece, emitted as soon as its end arrives, whatever
    the deltas' boundaries; the remainder (a last line without a newline) is flushed at the end.

    * ``by="line"``: lines end at ``"\n"`` (``"\r\n"`` is one line end). An empty line is
      emitted as ``""``, as ``str.splitlines`` gives it.
    * ``by="sentence"``: a sentence ends after ``.``, ``!``, ``?`` or ``…`` (and any closing quotes
      or brackets) followed by whitespace, right after a CJK end mark (``。``, U+FF01, U+FF1F),
      and at a newline. The rule is textual: ``3.14`` does not split, ``Dr. No`` does.
      Whitespace between sentences is the separator; no empty sentence is emitted.
    * ``separator="..."``: pieces between occurrences of a literal string, as ``str.split``
      gives them (without the empty piece after a final separator).

    With ``keepends=True`` each piece keeps its line end, separator or following whitespace, so
    joining the output gives exactly the input; by default they are dropped.

    Both kinds flush the pending text when the source completes, and before passing on an error.
    Accepts ``str`` deltas (``ops.text()``), events (the ``delta`` of ``content.delta`` events;
    other event types carry no new text and are skipped) and chunks (``chunk.text``, the first
    choice).

    ::

        source:          -a-b-----c-d-e----|
        buffer_text(3):  ----ab-------cde--|      (one string per window of 3)

        source:               -"a"-"b\nc"-"d\n"-"e"-|
        buffer_text(by=line): -----"ab"----"cd"------"e"|

    Args:
        seconds: the window length, e.g. ``1 / 30`` for 30 updates per second.
        by: ``"line"`` or ``"sentence"`` instead of a time window.
        separator: a non-empty string to split at instead of a time window.
        keepends: keep each piece's line end, separator or following whitespace (``by`` and
            ``separator`` only).
        scheduler: timer scheduler (``seconds`` only); default: the subscribe scheduler, else
            the running loop. Splitting by text needs no timer.

    Returns:
        An operator ``Observable[str | event | chunk] -> Observable[str]``.

    Raises:
        TypeError: (``on_error``, after flushing) an item that carries no text of a known kind;
            (at call time) not exactly one of ``seconds``, ``by`` and ``separator``, or
            ``seconds`` is not a number.
        ValueError: ``seconds`` is not finite and > 0, ``by`` is unknown, ``separator`` is empty.

    >>> events.pipe(ops.text(), ops.buffer_text(1 / 30)).subscribe(label.set_text)  # doctest: +SKIP
    >>> events.pipe(ops.text(), ops.buffer_text(by="line")).subscribe(log.info)  # doctest: +SKIP
    """
    given = (("seconds", seconds), ("by", by), ("separator", separator))
    chosen = [name for name, value in given if value is not None]
    if len(chosen) != 1:
        raise TypeError(
            "buffer_text takes exactly one of seconds=, by= and separator=, "
            f"not {', '.join(chosen) or 'none'}"
        )
    if seconds is None:
        if scheduler is not None:
            raise TypeError("buffer_text: scheduler= applies to seconds= only (no timer here)")
        if by is not None:
            if by == "line":
                return _by_text(lambda: _SeparatorSplitter("\n", keepends, strip_cr=True))
            if by == "sentence":
                return _by_text(lambda: _SentenceSplitter(keepends))
            raise ValueError(f'buffer_text: by= is "line" or "sentence", not {by!r}')
        if not isinstance(separator, str):
            raise TypeError(f"buffer_text: separator must be a str, not {separator!r}")
        if not separator:
            raise ValueError("buffer_text: separator must not be empty")
        sep = separator
        return _by_text(lambda: _SeparatorSplitter(sep, keepends, strip_cr=False))
    if keepends:
        raise TypeError("buffer_text: keepends= applies to by= and separator= only")
    return _by_time(check_seconds("buffer_text", seconds), scheduler)


def _by_time(
    window: float, scheduler: abc.SchedulerBase | None
) -> Callable[[Observable[Any]], Observable[str]]:
    def operator(source: Observable[Any]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = time_scheduler(scheduler, subscribe_scheduler)
            lock = threading.RLock()
            parts: list[str] = []
            timer = SerialDisposable()
            upstream = SingleAssignmentDisposable()
            stopped = False

            def take() -> str:
                text = "".join(parts)
                parts.clear()
                return text

            def flush(_: abc.SchedulerBase, __: Any = None) -> None:
                with lock:
                    if stopped or not parts:
                        return
                    text = take()
                observer.on_next(text)

            def on_next(item: Any) -> None:
                nonlocal stopped
                try:
                    text = _text_of(item)
                except TypeError as err:
                    upstream.dispose()
                    on_error(err)
                    return
                if not text:
                    return
                with lock:
                    if stopped:
                        return
                    parts.append(text)
                    if len(parts) == 1:  # a new window opens
                        timer.disposable = sched.schedule_relative(window, flush)

            def finish() -> str | None:
                """Stop; the pending text ("" when none), or None when already stopped."""
                nonlocal stopped
                with lock:
                    if stopped:
                        return None
                    stopped = True
                    text = take()
                timer.dispose()
                return text

            def on_error(err: Exception) -> None:
                text = finish()
                if text is None:
                    return
                if text:
                    observer.on_next(text)
                observer.on_error(err)

            def on_completed() -> None:
                text = finish()
                if text is None:
                    return
                if text:
                    observer.on_next(text)
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(upstream, timer)

        return Observable(subscribe)

    return operator


# -- by text -----------------------------------------------------------------------------------
# Sans-I/O splitters: feed(text) -> the pieces it completes; flush() -> the remainder or None.
# Each character is looked at once and pending text is kept as a list of parts, so a long piece
# costs linear time however many deltas it arrives in.


class _SeparatorSplitter:
    """Pieces between occurrences of ``sep`` (``"\n"`` for lines, then ``strip_cr`` too)."""

    def __init__(self, sep: str, keepends: bool, *, strip_cr: bool) -> None:
        self._sep = sep
        self._keepends = keepends
        self._strip_cr = strip_cr
        self._parts: list[str] = []
        # The pending text's last len(sep) - 1 characters, where a separator split across
        # deltas begins ("" for one-character separators).
        self._tail = ""

    def feed(self, text: str) -> list[str]:
        sep, n = self._sep, len(self._sep)
        window = self._tail + text
        if sep not in window:
            self._parts.append(text)
            self._tail = window[-(n - 1) :] if n > 1 else ""
            return []
        # ``window`` starts with the tail of the pending text: keep the pending text before it.
        pending = "".join(self._parts)
        pending = pending[: len(pending) - len(self._tail)]
        self._parts = [pending] if pending else []
        pieces: list[str] = []
        at = 0
        while (found := window.find(sep, at)) != -1:
            self._parts.append(window[at:found])
            piece = "".join(self._parts)
            self._parts.clear()
            if self._keepends:
                piece += sep
            elif self._strip_cr and piece.endswith("\r"):
                piece = piece[:-1]
            pieces.append(piece)
            at = found + n
        rest = window[at:]
        if rest:
            self._parts.append(rest)
        self._tail = rest[-(n - 1) :] if n > 1 else ""
        return pieces

    def flush(self) -> str | None:
        text = "".join(self._parts)
        self._parts.clear()
        self._tail = ""
        if not text:
            return None
        if self._strip_cr and not self._keepends and text.endswith("\r"):
            text = text[:-1]  # a last line ended by a lone CR before the end of the stream
        return text


_ENDS = frozenset(".!?\u2026\u3002\uff01\uff1f")  # with the ellipsis and CJK marks
_WIDE_ENDS = frozenset("\u3002\uff01\uff1f")  # full-width: the sentence ends without a following space
_CLOSERS = frozenset("\"')]}\u00bb\u201d\u2019\u300d\u300f\uff09")  # with », curly quotes, CJK brackets
_TEXT, _END, _SPACE = 0, 1, 2  # in a sentence / after its end mark / in the whitespace after it


class _SentenceSplitter:
    """Sentences: an end mark (and closers) then whitespace, a full-width end mark, a newline."""

    def __init__(self, keepends: bool) -> None:
        self._keepends = keepends
        self._sentence: list[str] = []
        self._space: list[str] = []  # whitespace after the sentence (the separator)
        self._state = _TEXT
        self._wide = False

    def _take(self) -> str | None:
        sentence = "".join(self._sentence)
        space = "".join(self._space)
        self._sentence.clear()
        self._space.clear()
        text = sentence + space if self._keepends else sentence.strip()
        return text or None

    def feed(self, text: str) -> list[str]:
        pieces: list[str] = []
        start = 0  # text[start:i] is not saved yet; it belongs to the current state's list
        for i, ch in enumerate(text):
            state = self._state
            if state == _SPACE:
                if ch.isspace():
                    continue
                self._space.append(text[start:i])
                start = i
                if (piece := self._take()) is not None:
                    pieces.append(piece)
                state = _TEXT
            elif state == _END:
                if ch in _CLOSERS:
                    continue
                if ch in _ENDS:
                    self._wide = ch in _WIDE_ENDS
                    continue
                if ch.isspace():
                    self._sentence.append(text[start:i])
                    start = i
                    self._state = _SPACE
                    continue
                if self._wide:
                    self._sentence.append(text[start:i])
                    start = i
                    if (piece := self._take()) is not None:
                        pieces.append(piece)
                state = _TEXT
            # In a sentence.
            if ch == "\n":
                self._sentence.append(text[start:i])
                start = i
                state = _SPACE
            elif ch in _ENDS:
                state = _END
                self._wide = ch in _WIDE_ENDS
            self._state = state
        rest = text[start:]
        if rest:
            (self._space if self._state == _SPACE else self._sentence).append(rest)
        return pieces

    def flush(self) -> str | None:
        self._state = _TEXT
        return self._take()


def _by_text(
    make_splitter: Callable[[], _SeparatorSplitter | _SentenceSplitter],
) -> Callable[[Observable[Any]], Observable[str]]:
    def operator(source: Observable[Any]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            splitter = make_splitter()  # per subscription
            lock = threading.RLock()
            upstream = SingleAssignmentDisposable()
            stopped = False

            def on_next(item: Any) -> None:
                try:
                    text = _text_of(item)
                except TypeError as err:
                    upstream.dispose()
                    on_error(err)
                    return
                if not text:
                    return
                with lock:
                    if stopped:
                        return
                    pieces = splitter.feed(text)
                for piece in pieces:
                    observer.on_next(piece)

            def finish() -> tuple[bool, str | None]:
                nonlocal stopped
                with lock:
                    if stopped:
                        return False, None
                    stopped = True
                    return True, splitter.flush()

            def on_error(err: Exception) -> None:
                first, rest = finish()
                if not first:
                    return
                if rest is not None:
                    observer.on_next(rest)
                observer.on_error(err)

            def on_completed() -> None:
                first, rest = finish()
                if not first:
                    return
                if rest is not None:
                    observer.on_next(rest)
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=subscribe_scheduler
            )
            return upstream

        return Observable(subscribe)

    return operator
