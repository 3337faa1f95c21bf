"""SSEDecoder.feed_payloads: the cheap form of feed used by the chunk decoder.

It must say exactly what feed says, whatever the bytes and however they are split: an event
that is one data line of the default type without retry comes as its data string, any other
event as the ServerSentEvent feed would give, and the decoder's state (last id, comments,
discarded characters, size limit) ends up the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxchat import ServerSentEvent, SSEDecoder
from rxchat.errors import EventTooLargeError

Item = str | ServerSentEvent


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def run_feed(
    reads: list[bytes], limit: int | None
) -> tuple[list[ServerSentEvent], bool, tuple[str, int, int]]:
    decoder = SSEDecoder(max_event_bytes=limit)
    events: list[ServerSentEvent] = []
    failed = False
    try:
        for read in reads:
            events.extend(decoder.feed(read))
        decoder.flush()
    except EventTooLargeError:
        failed = True
    return events, failed, (decoder.last_event_id, decoder.comments, decoder.discarded_chars)


def run_payloads(
    reads: list[bytes], limit: int | None
) -> tuple[list[Item], bool, tuple[str, int, int]]:
    decoder = SSEDecoder(max_event_bytes=limit)
    items: list[Item] = []
    failed = False
    try:
        for read in reads:
            got = decoder.feed_payloads(read)
            assert decoder.all_payloads == all(isinstance(i, str) for i in got), got
            items.extend(got)
        decoder.flush()
    except EventTooLargeError:
        failed = True
    return items, failed, (decoder.last_event_id, decoder.comments, decoder.discarded_chars)


def assert_same(items: list[Item], events: list[ServerSentEvent]) -> None:
    assert len(items) == len(events)
    for item, event in zip(items, events, strict=True):
        if isinstance(item, str):
            assert event.event == "message" and event.retry is None, event
            assert item == event.data
        else:
            assert item == event


# LLM-server-like bodies: mostly "data: <json-ish>\n\n", sometimes anything else the spec allows.
_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=10
)
_plain_block = st.builds(lambda v: f"data: {v}\n\n", _value)
_odd_block = st.one_of(
    st.builds(lambda v: f"data:{v}\n\n", _value),
    st.builds(lambda v: f"data: {v}\ndata: {v}\n\n", _value),
    st.builds(lambda v: f"event: error\ndata: {v}\n\n", _value),
    st.builds(lambda v: f"event: message\ndata: {v}\n\n", _value),
    st.builds(lambda v: f"id: {v}\ndata: x\n\n", _value),
    st.builds(lambda v: f"data: {v}\nretry: 5\n\n", _value),
    st.builds(lambda v: f": {v}\n", _value),
    st.builds(lambda v: f"data: {v}\r\n\r\n", _value),
    st.builds(lambda v: f"data: {v}\r\r", _value),
    st.sampled_from(["\n", "\n\n", "data\n\n", "data:\n\n", "data: \n\n", "\ufeff", "dat: x\n\n"]),
)
_block = st.one_of(_plain_block, _plain_block, _plain_block, _odd_block)


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    body = "".join(draw(st.lists(_block, max_size=30))).encode()
    if draw(st.booleans()):
        body += draw(st.sampled_from([b"data: unfinished", b"data: line\n", b"\r", b"\xe2\x82"]))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=8))))
    return body, cuts


@settings(max_examples=600, deadline=None)
@given(_bodies(), st.sampled_from([None, None, 8, 20, 60]))
def test_feed_payloads_says_what_feed_says(case: tuple[bytes, list[int]], limit: int | None) -> None:
    body, cuts = case
    reads = split_at(body, cuts)
    events, failed, state = run_feed(reads, limit)
    items, failed_p, state_p = run_payloads(reads, limit)
    assert failed_p == failed
    assert state_p == state
    assert_same(items, events)


@settings(max_examples=300, deadline=None)
@given(_bodies())
def test_feed_payloads_does_not_depend_on_the_split(case: tuple[bytes, list[int]]) -> None:
    body, cuts = case
    assert run_payloads(split_at(body, cuts), None) == run_payloads([body], None)


def test_plain_read_is_all_payloads() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_payloads(b"data: a\n\ndata: b\n\ndata: c") == ["a", "b"]
    assert decoder.all_payloads
    assert decoder.feed_payloads(b"\n\n") == ["c"]
    assert decoder.all_payloads


def test_a_typed_event_in_the_read_is_an_event() -> None:
    decoder = SSEDecoder()
    got = decoder.feed_payloads(b"data: a\n\nevent: error\ndata: b\n\ndata: c\n\n")
    assert got[0] == "a" and got[2] == "c"
    assert got[1] == ServerSentEvent("b", event="error")
    assert not decoder.all_payloads


def test_data_lines_that_only_look_alike_are_not_taken_as_payloads() -> None:
    # "data:!" sorts just above every "data: ..." line: it must not pass as one.
    decoder = SSEDecoder()
    assert decoder.feed_payloads(b"data: a\n\ndata:!b\n\n") == ["a", "!b"]
    decoder = SSEDecoder()
    assert decoder.feed_payloads(b"data: a\n\ndat: b\n\ndata: c\n\n") == ["a", "c"]
    decoder = SSEDecoder()
    assert decoder.feed_payloads(b"data: a\n\n\n\ndata: c\n\n") == ["a", "c"]


def test_size_limit_still_applies_to_plain_reads() -> None:
    decoder = SSEDecoder(max_event_bytes=10)
    assert decoder.feed_payloads(b"data: ok\n\n") == ["ok"]
    with pytest.raises(EventTooLargeError):
        decoder.feed_payloads(b"data: far too long\n\n")
