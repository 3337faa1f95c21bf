"""Incremental (sans-I/O) parser for JSON that arrives in text deltas.

`PartialJSONParser` turns a growing JSON document into the value it denotes *so far*,
doing work proportional to each delta rather than re-parsing the whole prefix (the
O(n^2) pattern of a "jiter re-parse per chunk").

For every prefix ``P`` of a valid JSON document, after feeding ``P`` in any split into
deltas, ``parser.value`` equals ``jiter.from_json(P.encode(), partial_mode=True)``; with
``partial_strings=True`` it equals ``partial_mode="trailing-strings"``. Where jiter
raises for a prefix (empty or whitespace-only text, or a top-level scalar that is not
usable yet, such as ``-``, ``tru`` or an unterminated string without
``partial_strings``) ``value`` is ``None``.

What "usable so far" means, exactly as jiter decides it:

* an unterminated string is left out (its object key too), unless ``partial_strings``,
  in which case its decoded text so far is used; an escape sequence that is cut short
  (``\\u00``), and a high surrogate still waiting for its low half, are left out;
* an object key is only used once its value has started to be usable; an unterminated
  key, or a key with its colon but no value yet, is left out;
* a number is used as soon as the text so far is a complete number (``12`` -> ``12``,
  ``1.5`` -> ``1.5``) and left out while it ends in ``-``, ``.``, ``e``, ``e+`` ...;
  ints stay ``int`` (any size up to Python's int string-conversion limit), anything with a
  fraction or exponent is ``float`` (``1e400`` -> ``inf``);
* ``true`` / ``false`` / ``null`` are left out until complete;
* open arrays and objects are included with the members completed so far;
* duplicate object keys: the last one wins, at the position of the first.

Unlike jiter's partial mode, invalid JSON is never accepted: the `feed` that makes the
text invalid (including any non-whitespace after a complete top-level value) raises
`PartialJSONError` naming the position and the offending character; the parser then stays
failed (every later `feed` / `finish` raises the same error) and `value` keeps showing
what was parsed before the offending character. Only RFC 8259 JSON is accepted (no
``NaN`` / ``Infinity``, which jiter allows); lone surrogates, escaped or raw, are rejected
as jiter does; ints longer than Python's int string-conversion limit (4300 digits by
default) are rejected, as jiter rejects them.

Cost. `feed` does work proportional to the delta: tokens are matched with compiled regular
expressions (whole strings, keys with their colon, separators, numbers), never one Python
step per character of a string body. A token cut by the end of a delta is kept as raw text
and matched again with the next delta while it is short (at most 256 characters); longer
strings and numbers are streamed piece by piece, so no text is re-scanned more than a
bounded number of times.

Snapshots: `value` returns a new object whenever the value changed since the last call
(and the same object otherwise). Containers that are already closed never change again
and are *shared* between snapshots; the containers still open (the path from the root to
the current position) are shallow-copied. A snapshot therefore costs
O(sum of the lengths of the open containers) + O(length of a trailing partial string):
small for typical nested objects, but O(width) for a wide open array or object (see
benchmarks/bench_partial_json.py: ~12 µs per snapshot on average while a 1 MB top-level
array of 10k records streams in, against ~2.5 µs per delta of parsing).
Treat snapshots as read-only: mutating a closed container inside one would show in later
snapshots.

Nesting depth is unlimited by default (an explicit stack, no recursion); pass
``max_depth`` to reject deeper documents with a `PartialJSONError`. Not thread-safe.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Final, cast

from .errors import RxChatError

__all__ = ["PartialJSONError", "PartialJSONParser"]


class PartialJSONError(RxChatError, ValueError):
    """The text fed so far is not a prefix of any valid JSON document (or ends too early).

    Attributes:
        text: all the text fed so far, including the delta that made it invalid.
        position: 0-based character offset of the offending character in ``text``
            (``len(text)`` when the input ended too early).
    """

    def __init__(self, message: str, *, text: str, position: int) -> None:
        super().__init__(message)
        self.text = text
        self.position = position


# Parser states. A token cut by the end of a delta (a short string or key without escapes,
# a number, a literal) is kept as raw text in `_carry` and scanned again, whole, with the
# next delta; the state stays the one where the token started. Long strings, strings with
# escapes and long numbers are instead streamed through the _STRING / _NUMBER states, so
# that no text is ever scanned more than _CARRY_MAX times.
_VALUE: Final = 0  # expecting a value (top level, after ':' or after ',' in an array)
_ARRAY_FIRST: Final = 1  # just after '[': a value or ']'
_KEY_FIRST: Final = 2  # just after '{': a key or '}'
_KEY: Final = 3  # after ',' in an object: a key
_AFTER: Final = 4  # after a member value: ',' or the closing bracket
_COLON: Final = 5  # after a key: ':'
_STRING: Final = 6  # inside a streamed string (key or value)
_NUMBER: Final = 7  # inside a streamed number
_DONE: Final = 8  # the top-level value is complete: only whitespace may follow

_CARRY_MAX: Final = 256

# Number phases (inside _NUMBER). Terminal phases are complete numbers.
_N_MINUS: Final = 0  # "-"
_N_ZERO: Final = 1  # "0" / "-0"            (terminal)
_N_INT: Final = 2  # "12"                   (terminal)
_N_DOT: Final = 3  # "1."
_N_FRAC: Final = 4  # "1.5"                 (terminal)
_N_E: Final = 5  # "1e"
_N_ESIGN: Final = 6  # "1e-"
_N_EXP: Final = 7  # "1e5"                  (terminal)
_TERMINAL: Final = (False, True, True, False, True, False, False, True)

_MISSING: Final[Any] = object()

_WS: Final = " \t\n\r"
_DIGITS: Final = "0123456789"
_NUMBER_START: Final = "-0123456789"
_NUMBER_CHARS: Final = "0123456789.eE+-"
_HEX: Final = "0123456789abcdefABCDEF"
_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_LITERALS: Final[dict[str, tuple[str, Any]]] = {
    "t": ("true", True),
    "f": ("false", False),
    "n": ("null", None),
}

# These patterns can match the empty string, so their match() never returns None.
_AlwaysMatch = Callable[[str, int], "re.Match[str]"]
_skip_ws: Final = cast(_AlwaysMatch, re.compile(r"[ \t\n\r]*").match)
_digit_run: Final = cast(_AlwaysMatch, re.compile(r"[0-9]*").match)
_number_run: Final = cast(_AlwaysMatch, re.compile(r"[0-9.eE+\-]*").match)
# A run of string characters that need no decoding.
_str_run: Final = cast(_AlwaysMatch, re.compile(r'[^"\\\x00-\x1f\ud800-\udfff]*').match)
# A whole string without escapes, closing quote included.
_simple_str: Final = re.compile(r'"([^"\\\x00-\x1f\ud800-\udfff]*)"').match
# A whole key without escapes and its colon, with the whitespace around them.
_key_colon: Final = re.compile(
    r'[ \t\n\r]*"([^"\\\x00-\x1f\ud800-\udfff]*)"[ \t\n\r]*:[ \t\n\r]*'
).match
# A separator or closing bracket, with the whitespace around it.
_separator: Final = re.compile(r"[ \t\n\r]*([,\]}])[ \t\n\r]*").match
# A whole number; groups 1/2 (fraction/exponent) make it a float.
_full_number: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?").match
# Text that can still grow into a number ("-", "1.", "1e+", ...).
_viable_number: Final = re.compile(
    r"-?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*|(?:\.[0-9]+)?[eE][+-]?[0-9]*)?)?"
).fullmatch


def _number(tok: str, m: re.Match[str]) -> Any:
    return float(tok) if m.lastindex else int(tok)


class PartialJSONParser:
    """Incremental JSON parser: feed text deltas, read the partial value at any time.

    Args:
        partial_strings: include the text so far of a trailing unterminated string value
            (jiter's ``partial_mode="trailing-strings"``).
        max_depth: reject documents nesting arrays/objects deeper than this
            (``None``: unlimited).
        partial_numbers: show a number that is still being written as its longest valid
            prefix (``"57."`` -> ``57``, ``"1e+"`` -> ``1``; ``"-"`` shows nothing) instead of
            leaving it out (beyond jiter; used by typed partial objects).

    Example:
        >>> p = PartialJSONParser()
        >>> p.feed('{"city": "San Fr')
        >>> p.value
        {}
        >>> p.feed('ancisco", "temperature": 6')
        >>> p.value
        {'city': 'San Francisco', 'temperature': 6}
        >>> p.feed("5}")
        >>> p.finish()
        {'city': 'San Francisco', 'temperature': 65}
    """

    __slots__ = (
        "_carry",
        "_chunks",
        "_error",
        "_fed",
        "_finished",
        "_hi",
        "_keys",
        "_max_depth",
        "_nparts",
        "_nphase",
        "_partial_numbers",
        "_partial_strings",
        "_root",
        "_snap",
        "_snap_version",
        "_sparts",
        "_stack",
        "_state",
        "_str_key",
        "_tail",
        "_version",
    )

    def __init__(
        self,
        *,
        partial_strings: bool = False,
        max_depth: int | None = None,
        partial_numbers: bool = False,
    ) -> None:
        if max_depth is not None and max_depth < 1:
            raise ValueError("max_depth must be None or >= 1")
        self._partial_strings = partial_strings
        self._partial_numbers = partial_numbers
        self._max_depth = max_depth if max_depth is not None else sys.maxsize
        self._state = _VALUE
        self._stack: list[Any] = []  # open containers, outermost first
        self._keys: list[Any] = []  # per open container: the key of the member being parsed
        self._root: Any = _MISSING  # the completed top-level value
        self._carry = ""  # raw text of a token cut by the end of the last delta
        self._chunks: list[str] = []  # the text fed so far, in pieces (error reports, `text`)
        self._tail: list[str] = []  # the latest deltas, not yet merged into _chunks
        self._fed = 0  # characters fed so far
        self._sparts: list[str] = []  # decoded pieces of the streamed string
        self._str_key = False  # the streamed string is an object key
        self._hi = 0  # a high surrogate waiting for its low half (0: none)
        self._nparts: list[str] = []  # text pieces of the streamed number
        self._nphase = _N_MINUS
        self._version = 0  # bumped whenever the value may have changed
        self._snap: Any = None
        self._snap_version = 0  # version of the cached snapshot (0: none yet; value None)
        self._error: PartialJSONError | None = None
        self._finished = False

    # ------------------------------------------------------------------ public API

    @property
    def value(self) -> Any:
        """The value denoted by the text so far, as jiter's partial mode would give it.

        Returns:
            A snapshot that later feeds never change (closed containers inside it are
            shared with later snapshots: treat it as read-only); the same object while the
            value has not changed; ``None`` while there is nothing usable at the top level
            (empty or whitespace-only text, ``-``, ``tru``, ``"abc`` without
            ``partial_strings``: prefixes for which jiter raises).
        """
        return self.snapshot()

    @property
    def complete(self) -> bool:
        """True once a whole top-level value has been parsed (only whitespace may follow).

        A top-level number counts as complete only once something follows it (whitespace)
        or at `finish`, since more digits could still arrive.
        """
        return self._state == _DONE

    @property
    def text(self) -> str:
        """All the text fed so far."""
        chunks = self._chunks
        tail = self._tail
        if tail:
            chunks.extend(tail)
            tail.clear()
        if len(chunks) > 1:
            chunks[:] = ["".join(chunks)]
        return chunks[0] if chunks else ""

    def feed(self, text: str) -> None:
        """Append a text delta.

        Args:
            text: the next piece of the document (any split is fine, even mid-escape).

        Raises:
            PartialJSONError: the text fed so far cannot be the start of valid JSON
                (raised again by every later call once it happened), or `finish` was
                already called.
            TypeError: ``text`` is not a ``str`` (decode bytes first).
        """
        if self._error is not None:
            raise self._error
        if self._finished:
            raise PartialJSONError(
                "feed() called after finish()", text=self.text, position=self._fed
            )
        if type(text) is not str:
            raise TypeError(f"feed() takes str, not {type(text).__name__}")
        if not text:
            return
        tail = self._tail
        tail.append(text)
        if len(tail) >= 128:
            # Keep the text in pieces of 128 deltas, not one object per delta.
            self._chunks.append("".join(tail))
            tail.clear()
        carry = self._carry
        if carry:
            self._carry = ""
            s = carry + text
            base = self._fed - len(carry)
        else:
            s = text
            base = self._fed
        self._fed += len(text)
        try:
            n = len(s)
            i = 0
            state = self._state
            stack = self._stack
            keys = self._keys
            changed = False  # the value may have changed (bump the version once, at the end)
            while i < n:
                if state == _AFTER:
                    m = _separator(s, i)
                    if m is None:
                        i = _skip_ws(s, i).end()
                        if i < n:
                            if type(stack[-1]) is list:
                                raise self._fail(
                                    "expected ',' or ']' after an array element", base + i, state
                                )
                            raise self._fail(
                                "expected ',' or '}' after an object member", base + i, state
                            )
                        break
                    i = m.end()
                    c = m.group(1)
                    top = stack[-1]
                    if c == ",":
                        if type(top) is list:
                            state = _VALUE
                            continue
                        m = _key_colon(s, i)
                        if m is not None:
                            keys[-1] = m.group(1)
                            i = m.end()
                            state = _VALUE
                        else:
                            state = _KEY
                        continue
                    if (c == "]") is not (type(top) is list):
                        if c == "]":
                            raise self._fail(
                                "expected ',' or '}' after an object member",
                                base + m.start(1),
                                state,
                            )
                        raise self._fail(
                            "expected ',' or ']' after an array element", base + m.start(1), state
                        )
                    # close the container: the value does not change
                    keys.pop()
                    stack.pop()
                    if stack:
                        parent = stack[-1]
                        if type(parent) is list:
                            parent.append(top)
                        else:
                            parent[keys[-1]] = top
                    else:
                        self._root = top
                        state = _DONE
                    continue
                if state <= _ARRAY_FIRST:  # a value is expected
                    c = s[i]
                    if c == '"':
                        m = _simple_str(s, i)
                        if m is not None:
                            v: Any = m.group(1)
                            i = m.end()
                        else:
                            self._state = state
                            i = self._string_start(s, i, base, False)
                            state = self._state
                            continue
                    elif c in _WS:
                        i = _skip_ws(s, i).end()
                        continue
                    elif c in _NUMBER_START:
                        m = _full_number(s, i)
                        if m is not None and (j := m.end()) < n and s[j] not in _NUMBER_CHARS:
                            tok = m.group()
                            if m.lastindex:
                                v = float(tok)
                            else:
                                try:
                                    v = int(tok)
                                except ValueError:
                                    raise self._fail(
                                        "number out of range", base + i, state
                                    ) from None
                            i = j
                        else:
                            self._state = state
                            i = self._number_start(s, i, base)
                            state = self._state
                            changed = True
                            continue
                    elif c == "{":
                        self._open({}, base + i, state)
                        i += 1
                        m = _key_colon(s, i)
                        if m is not None:
                            keys[-1] = m.group(1)
                            i = m.end()
                            state = _VALUE
                        else:
                            state = _KEY_FIRST
                        continue
                    elif c == "[":
                        self._open([], base + i, state)
                        i += 1
                        state = _ARRAY_FIRST
                        continue
                    elif c in "tfn":
                        word, v = _LITERALS[c]
                        if s.startswith(word, i):
                            i += len(word)
                        elif n - i < len(word) and word.startswith(s[i:]):
                            self._carry = s[i:]
                            break
                        else:
                            k = i + 1
                            while s[k] == word[k - i]:
                                k += 1
                            raise self._fail(
                                f"invalid literal (expected {word!r})", base + k, state
                            )
                    elif c == "]" and state == _ARRAY_FIRST:
                        i += 1
                        state = self._close()
                        continue
                    else:
                        raise self._fail("expected a JSON value", base + i, state)
                    # a complete scalar `v`: store it in its parent
                    changed = True
                    if stack:
                        top = stack[-1]
                        if type(top) is list:
                            top.append(v)
                        else:
                            top[keys[-1]] = v
                        state = _AFTER
                    else:
                        self._root = v
                        state = _DONE
                    continue
                if state <= _KEY:  # a key is expected
                    m = _key_colon(s, i)
                    if m is not None:
                        keys[-1] = m.group(1)
                        i = m.end()
                        state = _VALUE
                        continue
                    i = _skip_ws(s, i).end()
                    if i == n:
                        break
                    c = s[i]
                    if c == '"':
                        self._state = state
                        i = self._string_start(s, i, base, True)
                        state = self._state
                        continue
                    if c == "}" and state == _KEY_FIRST:
                        i += 1
                        state = self._close()
                        continue
                    raise self._fail("expected a string object key", base + i, state)
                if state == _COLON:
                    i = _skip_ws(s, i).end()
                    if i == n:
                        break
                    if s[i] == ":":
                        i += 1
                        state = _VALUE
                        continue
                    raise self._fail("expected ':' after an object key", base + i, state)
                if state == _STRING:
                    self._state = state
                    i = self._scan_string(s, i, base)
                    state = self._state
                    continue
                if state == _NUMBER:
                    self._state = state
                    i = self._scan_number(s, i, base, False)
                    state = self._state
                    changed = True
                    continue
                # _DONE
                i = _skip_ws(s, i).end()
                if i < n:
                    raise self._fail(
                        "unexpected data after the end of the JSON value", base + i, state
                    )
            self._state = state
            if changed:
                self._version += 1
        except PartialJSONError as err:
            self._error = err
            self._version += 1  # `value` now shows what was parsed before the error
            raise

    def snapshot(self) -> Any:
        """Same as `value` (a method, for use as a callback)."""
        if self._snap_version == self._version:
            return self._snap
        snap = self._build()
        self._snap = snap
        self._snap_version = self._version
        return snap

    def finish(self) -> Any:
        """Declare the end of the input and return the final value.

        Returns:
            The complete top-level value (the same object on every call).

        Raises:
            PartialJSONError: the input is empty or ends inside a value.
        """
        if self._error is not None:
            raise self._error
        if not self._finished and not self._stack:
            state = self._state
            carry = self._carry
            if state == _VALUE and carry and carry[0] in _NUMBER_START:
                # A top-level number is only known to be complete at the end of input.
                m = _full_number(carry)
                if m is not None and m.end() == len(carry):
                    self._carry = ""
                    self._root = _number(carry, m)
                    self._state = _DONE
            elif state == _NUMBER and _TERMINAL[self._nphase]:
                self._end_number(self._fed)
        self._finished = True
        if self._state != _DONE:
            err = self._incomplete()
            self._error = err
            raise err
        return self._root

    # ------------------------------------------------------------------ internals

    def _fail(self, message: str, pos: int, state: int = -1) -> PartialJSONError:
        """Build the error for the character at ``pos``; ``state``: the parser state there
        when it is only held in a local variable of `feed`."""
        if state >= 0:
            self._state = state
        text = self.text
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        found = f"found {text[pos]!r}" if pos < len(text) else "found end of input"
        return PartialJSONError(
            f"invalid JSON at position {pos} (line {line}, column {column}): {message}, {found}",
            text=text,
            position=pos,
        )

    def _incomplete(self) -> PartialJSONError:
        state = self._state
        carry = self._carry
        if state == _STRING:
            where = "inside an object key" if self._str_key else "inside a string"
        elif state == _NUMBER:
            where = "inside a number"
        elif carry[:1] == '"':
            where = "inside a string" if state <= _ARRAY_FIRST else "inside an object key"
        elif carry[:1] in _NUMBER_START and carry:
            where = "inside a number"
        elif carry:
            where = f"inside a literal ({carry!r})"
        elif self._stack:
            kind = "an array" if type(self._stack[-1]) is list else "an object"
            where = f"inside {kind}"
        else:
            where = "before any JSON value"
        pos = self._fed
        return PartialJSONError(
            f"incomplete JSON: the input ended at position {pos} {where} "
            f"({len(self._stack)} unclosed arrays/objects)",
            text=self.text,
            position=pos,
        )

    def _build(self) -> Any:
        state = self._state
        if state == _DONE:
            return self._root
        cur: Any = _MISSING
        carry = self._carry
        if state <= _ARRAY_FIRST:
            if carry:  # a value cut short by the end of the last delta
                c = carry[0]
                if c == '"':
                    if self._partial_strings:
                        cur = carry[1:]
                elif c in _NUMBER_START:
                    m = _full_number(carry)
                    if m is not None and m.end() == len(carry):
                        cur = _number(carry, m)
                    elif m is not None and self._partial_numbers:
                        cur = _number(carry[: m.end()], m)  # its longest valid prefix
        elif state == _NUMBER:
            parts = self._nparts
            if _TERMINAL[self._nphase] and parts:
                if len(parts) > 1:
                    parts[:] = ["".join(parts)]
                cur = int(parts[0]) if self._nphase <= _N_INT else float(parts[0])
            elif self._partial_numbers and parts:
                if len(parts) > 1:
                    parts[:] = ["".join(parts)]
                m = _full_number(parts[0])
                if m is not None:
                    cur = _number(parts[0][: m.end()], m)
        elif state == _STRING:
            if self._partial_strings and not self._str_key:
                parts = self._sparts
                if len(parts) > 1:
                    parts[:] = ["".join(parts)]
                cur = parts[0] if parts else ""
        stack = self._stack
        keys = self._keys
        for d in range(len(stack) - 1, -1, -1):
            c = stack[d]
            if type(c) is list:
                cur = c.copy() if cur is _MISSING else [*c, cur]
            else:
                c = c.copy()
                if cur is not _MISSING:
                    c[keys[d]] = cur
                cur = c
        return None if cur is _MISSING else cur

    def _attach(self, v: Any) -> int:
        """Store a completed value in its parent; return the next state."""
        self._version += 1
        stack = self._stack
        if stack:
            top = stack[-1]
            if type(top) is list:
                top.append(v)
            else:
                top[self._keys[-1]] = v
            return _AFTER
        self._root = v
        return _DONE

    def _close(self) -> int:
        # Closing does not change the value: the container was already part of it.
        self._keys.pop()
        v = self._stack.pop()
        stack = self._stack
        if stack:
            top = stack[-1]
            if type(top) is list:
                top.append(v)
            else:
                top[self._keys[-1]] = v
            return _AFTER
        self._root = v
        return _DONE

    def _open(self, container: Any, pos: int, state: int) -> None:
        if len(self._stack) >= self._max_depth:
            raise self._fail(f"nesting deeper than max_depth={self._max_depth}", pos, state)
        self._version += 1
        self._stack.append(container)
        self._keys.append(None)

    def _string_start(self, s: str, i: int, base: int, key: bool) -> int:
        """A string starts at ``s[i]`` but does not end in this delta without escapes."""
        n = len(s)
        j = _str_run(s, i + 1).end()
        if self._partial_strings and not key:
            self._version += 1  # the partial text is part of the value
        if j == n and n - i <= _CARRY_MAX:
            self._carry = s[i:]  # scanned again, whole, with the next delta
            return n
        self._sparts = [s[i + 1 : j]] if j > i + 1 else []
        self._str_key = key
        self._hi = 0
        self._state = _STRING
        return self._scan_string(s, j, base)

    def _number_start(self, s: str, i: int, base: int) -> int:
        """A number starts at ``s[i]`` and is cut by the end of the delta or is invalid."""
        n = len(s)
        if (
            _number_run(s, i).end() == n
            and n - i <= _CARRY_MAX
            and _viable_number(s, i) is not None
        ):
            self._carry = s[i:]  # scanned again, whole, with the next delta
            return n
        # Stream it: long numbers, or find the exact position of an error.
        self._state = _NUMBER
        self._nparts = []
        self._nphase = _N_MINUS
        return self._scan_number(s, i, base, True)

    def _end_number(self, pos: int) -> None:
        """The streamed number ended before absolute position ``pos``."""
        parts = self._nparts
        tok = "".join(parts)
        if self._nphase <= _N_INT:
            try:
                v: Any = int(tok)
            except ValueError:
                parts.clear()
                raise self._fail("number out of range", pos - len(tok)) from None
        else:
            v = float(tok)
        parts.clear()
        self._state = self._attach(v)

    def _scan_number(self, s: str, i: int, base: int, first: bool) -> int:
        """Resume scanning a number at ``s[i]``; returns where the scan stopped."""
        n = len(s)
        start = i
        phase = self._nphase
        if first:
            # s[i] is '-' or a digit
            c = s[i]
            if c == "-":
                phase = _N_MINUS
                i += 1
            elif c == "0":
                phase = _N_ZERO
                i += 1
            else:
                phase = _N_INT
                i = _digit_run(s, i + 1).end()
        while i < n:
            c = s[i]
            if phase == _N_MINUS:
                if c == "0":
                    phase = _N_ZERO
                    i += 1
                elif c in _DIGITS:
                    phase = _N_INT
                    i = _digit_run(s, i + 1).end()
                else:
                    raise self._number_fail(
                        "invalid number (expected a digit after '-')", s, start, i, base, phase
                    )
            elif phase in (_N_ZERO, _N_INT):
                if c == ".":
                    phase = _N_DOT
                    i += 1
                elif c == "e" or c == "E":
                    phase = _N_E
                    i += 1
                elif c in _DIGITS:
                    if phase == _N_ZERO:
                        raise self._number_fail(
                            "invalid number (leading zero)", s, start, i, base, phase
                        )
                    i = _digit_run(s, i).end()
                else:
                    break
            elif phase == _N_DOT:
                if c in _DIGITS:
                    phase = _N_FRAC
                    i = _digit_run(s, i).end()
                else:
                    raise self._number_fail(
                        "invalid number (expected a digit after '.')", s, start, i, base, phase
                    )
            elif phase == _N_FRAC:
                if c == "e" or c == "E":
                    phase = _N_E
                    i += 1
                elif c in _DIGITS:
                    i = _digit_run(s, i).end()
                else:
                    break
            elif phase == _N_E and (c == "+" or c == "-"):
                phase = _N_ESIGN
                i += 1
            elif phase in (_N_E, _N_ESIGN):
                if c in _DIGITS:
                    phase = _N_EXP
                    i = _digit_run(s, i).end()
                else:
                    raise self._number_fail(
                        "invalid number (expected a digit in the exponent)",
                        s,
                        start,
                        i,
                        base,
                        phase,
                    )
            else:  # _N_EXP
                if c in _DIGITS:
                    i = _digit_run(s, i).end()
                else:
                    break
        self._nphase = phase
        if i > start:
            self._nparts.append(s[start:i])
            self._version += 1
        if i < n:
            # Something that cannot continue the number follows: it is complete.
            self._end_number(base + i)
        elif phase == _N_INT:
            self._check_int_size()
        return i

    def _number_fail(
        self, message: str, s: str, start: int, i: int, base: int, phase: int
    ) -> PartialJSONError:
        # Keep the valid part of the number, so that `value` shows it after the error.
        self._nphase = phase
        if i > start:
            self._nparts.append(s[start:i])
        return self._fail(message, base + i)

    def _check_int_size(self) -> None:
        """Reject an int too long for int() now, so that `value` never fails on it."""
        limit = sys.get_int_max_str_digits()
        parts = self._nparts
        if limit and sum(len(p) for p in parts) > limit:
            tok = "".join(parts)
            parts[:] = [tok]
            try:
                int(tok)
            except ValueError:
                parts.clear()
                raise self._fail("number out of range", self._fed - len(tok)) from None

    def _scan_string(self, s: str, i: int, base: int) -> int:
        """Resume scanning a string body at ``s[i]``; returns where the scan stopped."""
        n = len(s)
        parts = self._sparts
        hi = self._hi
        changed = False
        while True:
            j = _str_run(s, i).end()
            if j > i:
                if hi:
                    raise self._fail("lone surrogate in \\u escape", base + i)
                parts.append(s[i:j])
                changed = True
            if j >= n:
                i = n
                break
            c = s[j]
            if c == '"':
                if hi:
                    raise self._fail("lone surrogate in \\u escape", base + j)
                i = j + 1
                self._hi = 0
                self._end_string()
                return i
            if c != "\\":
                if c >= "\ud800":
                    # Only reachable from text that was not decoded from UTF-8.
                    raise self._fail("lone surrogate character in a string", base + j)
                raise self._fail("control character in a string (must be escaped)", base + j)
            if j + 1 >= n:
                self._carry = s[j:]
                i = n
                break
            e = s[j + 1]
            if e == "u":
                end = min(j + 6, n)
                for k in range(j + 2, end):
                    if s[k] not in _HEX:
                        raise self._fail("invalid \\u escape (expected 4 hex digits)", base + k)
                if end < j + 6:
                    self._carry = s[j:]
                    i = n
                    break
                cp = int(s[j + 2 : j + 6], 16)
                if 0xD800 <= cp < 0xDC00:
                    if hi:
                        raise self._fail("lone surrogate in \\u escape", base + j)
                    hi = cp
                elif 0xDC00 <= cp < 0xE000:
                    if not hi:
                        raise self._fail("lone surrogate in \\u escape", base + j)
                    parts.append(chr(0x10000 + ((hi - 0xD800) << 10) + (cp - 0xDC00)))
                    hi = 0
                    changed = True
                else:
                    if hi:
                        raise self._fail("lone surrogate in \\u escape", base + j)
                    parts.append(chr(cp))
                    changed = True
                i = j + 6
            else:
                if hi:
                    raise self._fail("lone surrogate in \\u escape", base + j)
                d = _ESCAPES.get(e)
                if d is None:
                    raise self._fail("invalid escape sequence", base + j + 1)
                parts.append(d)
                changed = True
                i = j + 2
        self._hi = hi
        if changed and self._partial_strings and not self._str_key:
            self._version += 1
        return i

    def _end_string(self) -> None:
        parts = self._sparts
        v = "".join(parts)
        self._sparts = []
        if self._str_key:
            self._keys[-1] = v
            self._state = _COLON
        else:
            self._state = self._attach(v)
