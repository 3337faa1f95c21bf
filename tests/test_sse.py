"""SSEDecoder: WHATWG "event stream interpretation", incremental.

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxchat import ServerSentEvent, SSEDecoder
from rxchat.errors import EventTooLargeError, RxChatError

Event = ServerSentEvent


def decode(reads: Iterable[bytes], **options: int) -> list[ServerSentEvent]:
    """Feed the reads one by one, then flush; all events in order."""
    decoder = SSEDecoder(**options)  # type: ignore[arg-type]
    events: list[ServerSentEvent] = []
    for read in reads:
        events.extend(decoder.feed(read))
    events.extend(decoder.flush())
    return events


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Split ``data`` at the given (sorted, unique) offsets."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def every_split(data: bytes) -> list[list[bytes]]:
    """Whole, one byte per read, and every split into two reads."""
    splits = [[data], [data[i : i + 1] for i in range(len(data))]]
    splits += [[data[:i], data[i:]] for i in range(1, len(data))]
    return splits


def assert_split_invariant(data: bytes, expected: list[ServerSentEvent]) -> None:
    for reads in every_split(data):
        assert decode(reads) == expected, reads


# -- the examples of the specification, one test each ---------------------------------------


def test_spec_intro_three_messages() -> None:
    stream = (
        b"data: This is the first message.\n"
        b"\n"
        b"data: This is the second message, it\n"
        b"data: has two lines.\n"
        b"\n"
        b"data: This is the third message.\n"
        b"\n"
    )
    expected = [
        Event("This is the first message."),
        Event("This is the second message, it\nhas two lines."),
        Event("This is the third message."),
    ]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


def test_spec_intro_event_types_add_and_remove() -> None:
    stream = (
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    )
    expected = [
        Event("73857293", event="add"),
        Event("2153", event="remove"),
        Event("113411", event="add"),
    ]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


def test_spec_stock_ticker_multiline_data() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    expected = [Event("YHOO\n+2\n10")]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


def test_spec_four_blocks_comment_ids_and_leading_space() -> None:
    # Block 1 is a comment only; block 2 sets id 1; block 3 resets the id with a bare "id";
    # block 4 keeps one of its two leading spaces.
    stream = (
        b": test stream\n"
        b"\n"
        b"data: first event\n"
        b"id: 1\n"
        b"\n"
        b"data:second event\n"
        b"id\n"
        b"\n"
        b"data:  third event\n"
        b"\n"
    )
    expected = [
        Event("first event", id="1"),
        Event("second event", id=""),
        Event(" third event", id=""),
    ]
    decoder = SSEDecoder()
    assert decoder.feed(stream) == expected
    assert decoder.comments == 1
    assert decoder.last_event_id == ""
    assert_split_invariant(stream, expected)


def test_spec_four_blocks_last_needs_blank_line() -> None:
    # "the end of the stream is not enough to trigger the dispatch of the last event"
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    assert decode([stream]) == [Event("first event", id="1"), Event("second event", id="")]


def test_spec_two_events_empty_data_and_newline() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"
    expected = [Event(""), Event("\n")]  # the last block is discarded: no blank line after it
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


def test_spec_two_identical_events() -> None:
    stream = b"data:test\n\ndata: test\n\n"
    expected = [Event("test"), Event("test")]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


# -- line ends -------------------------------------------------------------------------------

BODY_LINES = ["event: e", "id: 7", "data: a", ": note", "data: b", "", "data: c", "", ""]


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_ends_lf_cr_crlf_give_the_same_events(newline: str) -> None:
    stream = newline.join(BODY_LINES).encode()
    expected = [Event("a\nb", event="e", id="7"), Event("c", id="7")]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


def test_mixed_line_ends_in_one_stream() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode([stream]) == [Event("a\nb\nc"), Event("d")]


def test_cr_at_end_of_read_then_lf_at_start_of_next_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # Were "\r" + "\n" two line ends, the "\n" would be a blank line and dispatch "a" alone.
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [Event("a\nb")]
    assert decoder.feed(b"\n") == []


def test_cr_at_end_of_read_then_empty_reads_then_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\xe2") == []  # half a character decodes to nothing yet
    assert decoder.feed(b"\x82\xac") == []  # "€" after the CR: a new line (an unknown field)
    assert decoder.feed(b"\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []  # completes the CRLF after "€": still no blank line
    assert decoder.feed(b"\n") == [Event("a")]


def test_cr_at_end_of_read_followed_by_cr_is_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [Event("a")]


def test_lf_then_cr_is_two_line_ends() -> None:
    assert decode([b"data: a\n\rdata: b\n\n"]) == [Event("a"), Event("b")]


@pytest.mark.parametrize(
    "char", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
)
def test_other_unicode_line_breaks_are_not_line_ends(char: str) -> None:
    # str.splitlines() would split on these; the spec only knows CR and LF.
    stream = f"data: a{char}b\n\n".encode()
    expected = [Event(f"a{char}b")]
    assert decode([stream]) == expected
    assert_split_invariant(stream, expected)


# -- encoding --------------------------------------------------------------------------------


def test_bom_stripped_at_start() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert decode([stream]) == [Event("x")]
    assert_split_invariant(stream, [Event("x")])


def test_only_one_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert decode([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"]) == [Event("y")]


def test_bom_not_stripped_after_start() -> None:
    assert decode([b"data: a\n\n\xef\xbb\xbfdata: b\n\n"]) == [Event("a")]
    assert decode([b"data: \xef\xbb\xbfx\n\n"]) == [Event("\ufeffx")]
    decoder = SSEDecoder()
    assert decoder.feed(b"data: ") == []
    assert decoder.feed(b"\xef\xbb\xbfx\n\n") == [Event("\ufeffx")]


def test_multibyte_utf8_split_across_reads() -> None:
    stream = "data: héllo 世界 😀 ∑\n\nevent: ü\ndata: ß\n\n".encode()
    expected = [Event("héllo 世界 😀 ∑"), Event("ß", event="ü")]
    assert_split_invariant(stream, expected)


@pytest.mark.parametrize(
    "raw",
    [
        b"a\xffb",  # a byte that never starts a character
        b"a\xe4\xb8b",  # a truncated 3-byte sequence
        b"\xc0\xaf",  # an overlong encoding
        b"\xed\xa0\x80",  # an encoded surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\x80\x80x",  # lone continuation bytes
        b"\xf0\x9f\x98",  # a truncated 4-byte sequence at the end of the value
    ],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes) -> None:
    stream = b"data: " + raw + b"\n\n"
    [event] = decode([stream])
    assert "\ufffd" in event.data
    assert event.data == raw.decode("utf-8", errors="replace")
    assert_split_invariant(stream, [event])


def test_truncated_character_at_end_of_stream_is_counted_as_discarded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: \xe4\xb8") == [Event("a")]
    assert decoder.flush() == []
    assert decoder.discarded_chars == len("data: ") + 1  # the U+FFFD of the cut character


# -- fields ----------------------------------------------------------------------------------


def test_comments_are_ignored_and_counted() -> None:
    decoder = SSEDecoder()
    stream = b": keep-alive\n:\ndata: a\n: between data lines\ndata: b\n\n:\n\n"
    assert decoder.feed(stream) == [Event("a\nb")]
    assert decoder.comments == 4


def test_field_without_colon_has_empty_value() -> None:
    assert decode([b"data\n\n"]) == [Event("")]
    # "event" without a value leaves the type empty, which dispatches as "message".
    assert decode([b"event: x\nevent\ndata: a\n\n"]) == [Event("a")]
    # "id" without a value resets the last event ID.
    assert decode([b"id: 3\ndata: a\n\nid\ndata: b\n\n"]) == [Event("a", id="3"), Event("b")]


def test_only_one_space_after_colon_is_removed() -> None:
    assert decode([b"data:  two\n\n"]) == [Event(" two")]
    assert decode([b"data:   three\n\n"]) == [Event("  three")]
    assert decode([b"data:\ttab\n\n"]) == [Event("\ttab")]
    assert decode([b"data:no space\n\n"]) == [Event("no space")]
    assert decode([b"data: \n\n"]) == [Event("")]
    assert decode([b"event:  spaced\ndata: x\n\n"]) == [Event("x", event=" spaced")]
    assert decode([b"id:  9\ndata: x\n\n"]) == [Event("x", id=" 9")]


def test_value_after_first_colon_keeps_later_colons() -> None:
    assert decode([b"data: a: b:c\n\n"]) == [Event("a: b:c")]
    assert decode([b'data:{"k":"v"}\n\n']) == [Event('{"k":"v"}')]


def test_multiline_data_joined_with_lf() -> None:
    assert decode([b"data: a\ndata: b\ndata:\ndata: c\n\n"]) == [Event("a\nb\n\nc")]
    # Only the one trailing LF the data buffer gets from its last line is removed.
    assert decode([b"data: a\ndata:\n\n"]) == [Event("a\n")]
    assert decode([b"data\ndata\ndata\n\n"]) == [Event("\n\n")]


def test_field_names_are_case_sensitive_and_unknown_fields_ignored() -> None:
    stream = b"Data: no\nDATA: no\ndata : no\nEvent: no\nfoo: bar\nretry_ms: 3\ndata: yes\n\n"
    assert decode([stream]) == [Event("yes")]


def test_event_type_applies_to_one_event_only() -> None:
    stream = b"event: first\ndata: 1\n\ndata: 2\n\nevent: a\nevent: b\ndata: 3\n\n"
    assert decode([stream]) == [Event("1", event="first"), Event("2"), Event("3", event="b")]


def test_event_type_of_a_block_without_data_is_reset() -> None:
    assert decode([b"event: ignored\n\ndata: x\n\n"]) == [Event("x")]


def test_id_persists_across_events() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\n"
    decoder = SSEDecoder()
    # A block with only an id dispatches nothing, but still sets the last event ID.
    assert decoder.feed(stream) == [Event("a", id="1"), Event("b", id="1"), Event("c", id="2")]
    assert decoder.last_event_id == "2"


def test_id_set_after_data_applies_to_that_event() -> None:
    assert decode([b"data: a\nid: 5\n\n"]) == [Event("a", id="5")]


def test_id_containing_nul_is_ignored() -> None:
    stream = b"id: 5\ndata: a\n\nid: 6\x00\ndata: b\n\nid: \x00\ndata: c\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == [Event("a", id="5"), Event("b", id="5"), Event("c", id="5")]
    assert decoder.last_event_id == "5"


def test_nul_elsewhere_is_kept() -> None:
    assert decode([b"data: a\x00b\n\n"]) == [Event("a\x00b")]


def test_retry_accepts_ascii_digits_only() -> None:
    assert decode([b"retry: 5000\ndata: a\n\n"]) == [Event("a", retry=5000)]
    assert decode([b"retry:0\ndata: a\n\n"]) == [Event("a", retry=0)]
    for bad in [b"1a", b"-1", b"+1", b"1.5", b"", b" 1", b"1 ", b"\xd9\xa1", b"\xc2\xb2", b"1e3"]:
        assert decode([b"retry: " + bad + b"\ndata: a\n\n"]) == [Event("a")], bad
    # An invalid retry does not undo a valid one in the same block.
    assert decode([b"retry: 250\nretry: x\ndata: a\n\n"]) == [Event("a", retry=250)]


def test_retry_belongs_to_its_block() -> None:
    assert decode([b"retry: 10\ndata: a\n\ndata: b\n\n"]) == [Event("a", retry=10), Event("b")]


def test_no_dispatch_for_empty_data_buffer_and_buffers_reset() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: x\nretry: 9\nid: 3\n\n") == []
    assert decoder.feed(b"\n\n\n") == []
    # Event type and retry were reset with the empty block; the id persists (as per the spec).
    assert decoder.feed(b"data: y\n\n") == [Event("y", id="3")]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert decode([b"\n\n\r\n\r\r\n"]) == []


def test_json_helper_parses_data() -> None:
    [event] = decode([b'data: {"a": [1, 2]}\n\n'])
    assert event.json() == {"a": [1, 2]}


# -- end of stream ---------------------------------------------------------------------------


def test_unterminated_final_event_is_discarded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: lost\n") == [Event("a")]
    assert decoder.flush() == []
    assert decoder.discarded_chars == len("lost") + 1


def test_unterminated_final_line_is_discarded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: partial") == [Event("a")]
    assert decoder.flush() == []
    assert decoder.discarded_chars == len("data: partial")


def test_flush_after_clean_end_discards_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\n") == [Event("a")]
    assert decoder.flush() == []
    assert decoder.discarded_chars == 0


def test_flush_with_only_a_pending_event_type_discards_no_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: x\n") == []
    assert decoder.flush() == []
    assert decoder.discarded_chars == 0


# -- size ------------------------------------------------------------------------------------


def test_ten_megabyte_single_event_in_small_reads() -> None:
    payload = b"x" * (10 * 1024 * 1024)
    stream = b"data: " + payload + b"\n\n"
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(stream), 65536):
        events.extend(decoder.feed(stream[start : start + 65536]))
    assert len(events) == 1
    assert len(events[0].data) == len(payload)
    assert events[0].data == payload.decode()


def test_ten_megabyte_single_event_in_one_read() -> None:
    payload = "é" * (5 * 1024 * 1024)  # 10 MiB of UTF-8
    [event] = decode([b"data: " + payload.encode() + b"\n\n"])
    assert event.data == payload


def test_max_event_bytes_raises_event_too_large() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLargeError) as info:
        decoder.feed(b"data: " + b"x" * 2000 + b"\n\n")
    assert info.value.limit == 1000
    assert isinstance(info.value, RxChatError)
    assert "1000" in str(info.value)


def test_max_event_bytes_trips_on_a_line_still_being_read() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: ")
    with pytest.raises(EventTooLargeError):
        for _ in range(100):
            decoder.feed(b"x" * 100)


def test_max_event_bytes_counts_all_data_lines_of_the_event() -> None:
    line = b"data: " + b"x" * 93 + b"\n"  # 100 characters with its line end
    assert len(decode([line * 10 + b"\n"], max_event_bytes=1000)) == 1
    with pytest.raises(EventTooLargeError):
        decode([line * 11 + b"\n"], max_event_bytes=1000)
    # The count restarts with each event.
    assert len(decode([(line * 10 + b"\n") * 5], max_event_bytes=1000)) == 5


def test_max_event_bytes_exact_boundary() -> None:
    stream = b"data: " + b"x" * 93 + b"\n\n"  # the data line is 100 characters with its LF
    assert decode([stream], max_event_bytes=100) == [Event("x" * 93)]
    with pytest.raises(EventTooLargeError):
        decode([stream], max_event_bytes=99)


def test_max_event_bytes_also_bounds_other_long_lines() -> None:
    with pytest.raises(EventTooLargeError):
        decode([b": " + b"c" * 5000 + b"\n"], max_event_bytes=1000)
    with pytest.raises(EventTooLargeError):
        decode([b"event: " + b"e" * 5000 + b"\ndata: x\n\n"], max_event_bytes=1000)


def test_events_before_an_oversized_one_in_the_same_read_are_delivered() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    stream = b"data: a\n\ndata: b\n\ndata: " + b"x" * 500 + b"\n\n"
    assert decoder.feed(stream) == [Event("a"), Event("b")]
    assert isinstance(decoder.error, EventTooLargeError)
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: c\n\n")
    with pytest.raises(EventTooLargeError):
        decoder.flush()


def test_oversized_event_outcome_does_not_depend_on_the_split() -> None:
    stream = b"data: a\n\ndata: " + b"x" * 150 + b"\n\ndata: b\n\n"
    for reads in every_split(stream):
        decoder = SSEDecoder(max_event_bytes=100)
        events: list[ServerSentEvent] = []
        with pytest.raises(EventTooLargeError):
            for read in reads:
                events.extend(decoder.feed(read))
            decoder.flush()
        assert events == [Event("a")], reads


# -- any split of the bytes gives the same events (property-based) ----------------------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"),
    max_size=12,
)
_name = st.sampled_from(["data", "event", "id", "retry", "foo", "dat", "Data", ""])
_line = st.one_of(
    st.builds(lambda n, v: f"{n}:{v}", _name, _text),
    st.builds(lambda n, v: f"{n}: {v}", _name, _text),
    st.builds(lambda v: f"data:{v}", _text),
    st.builds(lambda v: f"retry:{v}", st.from_regex(r"[0-9]{1,4}|[0-9a-]{1,3}", fullmatch=True)),
    st.builds(lambda v: f":{v}", _text),
    st.sampled_from(["", "", "data", "id", "event", "id: a\x00b", "\u2028", "\x85"]),
)
_newline = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line, max_size=25))
    parts = []
    for line in lines:
        parts.append(line)
        parts.append(draw(_newline))
    if draw(st.booleans()):
        parts.insert(0, "\ufeff")
    body = "".join(parts).encode()
    if draw(st.booleans()):  # sprinkle a few invalid UTF-8 bytes in
        junk = draw(
            st.binary(min_size=1, max_size=3).filter(lambda b: b"\r" not in b and b"\n" not in b)
        )
        at = draw(st.integers(0, len(body)))
        body = body[:at] + junk + body[at:]
    return body


@st.composite
def _stream_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    body = draw(_streams())
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=12))))
    return body, cuts


@settings(max_examples=400, deadline=None)
@given(_stream_and_cuts())
def test_any_split_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    body, cuts = case
    whole = SSEDecoder()
    expected = whole.feed(body)
    whole.flush()
    pieces = SSEDecoder()
    got: list[ServerSentEvent] = []
    for read in split_at(body, cuts):
        got.extend(pieces.feed(read))
    pieces.flush()
    assert got == expected
    assert pieces.last_event_id == whole.last_event_id
    assert pieces.comments == whole.comments
    assert pieces.discarded_chars == whole.discarded_chars


@settings(max_examples=200, deadline=None)
@given(_streams())
def test_one_byte_reads_give_the_same_events(body: bytes) -> None:
    assert decode([body[i : i + 1] for i in range(len(body))]) == decode([body])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "message", "update"]), st.lists(_text, min_size=1, max_size=4)
        ),
        max_size=8,
    ),
    _newline,
    st.data(),
)
def test_encoded_events_round_trip(
    events: list[tuple[str, list[str]]], newline: str, data: st.DataObject
) -> None:
    """Events written per the spec's grammar decode back to themselves, whatever the split."""
    out = []
    for kind, lines in events:
        if kind:
            out.append(f"event: {kind}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    body = "".join(out).encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=10))))
    expected = [Event("\n".join(lines), event=kind or "message") for kind, lines in events]
    assert decode(split_at(body, cuts)) == expected


@settings(max_examples=100, deadline=None)
@given(_stream_and_cuts(), st.integers(1, 60))
def test_size_limit_outcome_does_not_depend_on_the_split(
    case: tuple[bytes, list[int]], limit: int
) -> None:
    body, cuts = case

    def run(reads: list[bytes]) -> tuple[list[ServerSentEvent], bool]:
        decoder = SSEDecoder(max_event_bytes=limit)
        events: list[ServerSentEvent] = []
        try:
            for read in reads:
                events.extend(decoder.feed(read))
            decoder.flush()
        except EventTooLargeError:
            return events, True
        return events, False

    assert run(split_at(body, cuts)) == run([body])
