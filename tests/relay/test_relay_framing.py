"""SSE framing: what any parser reads back is exactly what was framed (adversarial payloads)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from relay_support import data_events, parse_with_httpx_sse
from sse_starlette import ServerSentEvent as StarletteEvent

from rxchat.relay import RelayError, comment, frame

ADVERSARIAL = [
    "",
    " ",
    "  leading spaces",
    "line one\n\nline two",
    "cr\ronly",
    "crlf\r\nend",
    "\n",
    "\r\n\r\n",
    "trailing\n",
    "data: inside",
    ": a comment?",
    "id: 5",
    "naïve — ☃ 日本語 🎉",
    "\u2028 is not a line break \u2029",
    "tab\tand\x0bvertical",
    "nul\0inside",
    "x" * 1_000_000,
    ("a\n" * 1000) + "1 MB of lines " + "y" * 1_000_000,
]


def _sse_newlines(text: str) -> str:
    # The event stream format carries LF only: CR and CRLF inside a payload arrive as LF.
    return text.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize("payload", ADVERSARIAL, ids=lambda p: repr(p[:24]))
def test_adversarial_payload_reads_back(payload: str) -> None:
    body = frame(payload, event="content.delta", id=42)
    [(event_id, event, data)] = data_events(body)
    assert (event_id, event, data) == ("42", "content.delta", _sse_newlines(payload))


@pytest.mark.parametrize("payload", ADVERSARIAL[:16], ids=lambda p: repr(p[:24]))
def test_same_events_as_sse_starlette(payload: str) -> None:
    # sse-starlette frames the same event independently; both read back the same.
    theirs = StarletteEvent(data=payload, event="message", id="7").encode()
    ours = frame(payload, event="message", id=7)
    assert data_events(ours) == data_events(theirs)


def test_the_recipe_bug_is_gone() -> None:
    # f"data: {text}\n\n" sends 'line one\n\nline two' as two events, the second lost as garbage
    naive = b"data: line one\n\nline two\n\n"
    assert [e.data for e in parse_with_httpx_sse(naive)] == ["line one"]
    assert [e.data for e in parse_with_httpx_sse(frame("line one\n\nline two"))] == [
        "line one\n\nline two"
    ]


@given(st.lists(st.text(), min_size=1, max_size=5), st.integers(min_value=1, max_value=7))
def test_any_text_any_split(payloads: list[str], split: int) -> None:
    body = b"".join(frame(p, id=i) for i, p in enumerate(payloads))
    events = parse_with_httpx_sse(body, split=split)
    assert [e.data for e in events] == [_sse_newlines(p) for p in payloads]
    assert [e.id for e in events] == [str(i) for i in range(len(payloads))]


def test_retry_and_comment() -> None:
    body = comment("keep-alive") + frame("x", retry=3000) + comment("two\nlines")
    [event] = parse_with_httpx_sse(body)
    assert (event.data, event.retry) == ("x", 3000)
    assert comment() == b":\n\n"
    assert parse_with_httpx_sse(comment("a\r\nb")) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"event": "a\rb"},
        {"id": "1\n2"},
        {"id": "nul\0"},
        {"retry": -1},
        {"retry": True},
    ],
)
def test_fields_that_cannot_be_framed(kwargs: dict[str, object]) -> None:
    with pytest.raises(RelayError):
        frame("x", **kwargs)  # type: ignore[arg-type]
