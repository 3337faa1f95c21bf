"""ChunkDecoder: the OpenAI streaming conventions on top of the SSE decoder."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import pytest
from _c_reader import requires_c_reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxchat import ChatCompletionChunk, ChunkDecoder
from rxchat.errors import (
    APIError,
    APIResponseValidationError,
    EventTooLargeError,
    IncompleteStreamError,
    InvalidChunkError,
    RxChatError,
    StreamAPIError,
)


def frame(payload: Any) -> bytes:
    """One SSE event carrying ``payload`` as JSON (or as is, for str)."""
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {data}\n\n".encode()


def content(text: str, index: int = 0, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": finish_reason}],
    }


DONE = b"data: [DONE]\n\n"


def run(reads: Iterable[bytes]) -> tuple[list[ChatCompletionChunk], RxChatError | None]:
    """Feed every read, then close; the chunks delivered and the error raised (if any)."""
    decoder = ChunkDecoder()
    chunks: list[ChatCompletionChunk] = []
    try:
        for read in reads:
            chunks.extend(decoder.feed(read))
            if decoder.error is not None:
                raise decoder.error
        decoder.close()
    except RxChatError as err:
        return chunks, err
    return chunks, None


# -- the end of the stream -------------------------------------------------------------------


def test_done_ends_the_stream() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(frame(content("a")) + frame(content("b")) + DONE)
    assert [c.text for c in chunks] == ["a", "b"]
    assert decoder.done
    assert decoder.chunks_received == 2
    decoder.close()  # no error


def test_anything_after_done_is_ignored() -> None:
    decoder = ChunkDecoder()
    assert [c.text for c in decoder.feed(frame(content("a")) + DONE + frame(content("late")))] == [
        "a"
    ]
    assert decoder.feed(frame(content("later")) + b"data: {not json\n\n") == []
    decoder.close()
    assert decoder.error is None


def test_finish_reason_without_done_is_complete() -> None:
    chunks, error = run([frame(content("a")), frame(content("", finish_reason="stop"))])
    assert error is None
    assert [c.finish_reason for c in chunks] == [None, "stop"]


def test_finish_reason_of_any_choice_counts() -> None:
    # Every choice that appeared must finish (issue 10 item 5): choice 0 never did.
    chunks, error = run(
        [frame(content("a", index=0)), frame(content("", index=2, finish_reason="length"))]
    )
    assert isinstance(error, IncompleteStreamError)
    assert len(chunks) == 2
    chunks, error = run(
        [
            frame(content("a", index=0)),
            frame(content("", index=2, finish_reason="length")),
            frame(content("", index=0, finish_reason="stop")),
        ]
    )
    assert error is None
    assert len(chunks) == 3


def test_incomplete_stream_raises_incomplete_stream_error() -> None:
    chunks, error = run([frame(content("a")), frame(content("b"))])
    assert [c.text for c in chunks] == ["a", "b"]
    assert isinstance(error, IncompleteStreamError)
    assert error.chunks_received == 2
    assert "without [DONE]" in str(error)
    assert "after 2 chunks" in str(error)


def test_incomplete_stream_reports_a_discarded_unterminated_event() -> None:
    chunks, error = run([frame(content("a")), b'data: {"choices": [{"index": 0, "del'])
    assert [c.text for c in chunks] == ["a"]
    assert isinstance(error, IncompleteStreamError)
    assert "discarded" in str(error)
    assert str(len('data: {"choices": [{"index": 0, "del')) in str(error)


def test_empty_body_is_incomplete() -> None:
    chunks, error = run([])
    assert chunks == []
    assert isinstance(error, IncompleteStreamError)
    assert error.chunks_received == 0


def test_only_comments_is_incomplete() -> None:
    decoder = ChunkDecoder()
    assert decoder.feed(b": keep-alive\n\n: keep-alive\n\n") == []
    assert decoder.comments == 2
    with pytest.raises(IncompleteStreamError):
        decoder.close()


def test_close_raises_the_same_error_again() -> None:
    decoder = ChunkDecoder()
    decoder.feed(frame(content("a")))
    with pytest.raises(IncompleteStreamError) as first:
        decoder.close()
    with pytest.raises(IncompleteStreamError) as second:
        decoder.close()
    assert first.value is second.value


def test_usage_only_chunk_after_finish() -> None:
    usage = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    chunks, error = run([frame(content("a", finish_reason="length")), frame(usage), DONE])
    assert error is None
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6


# -- errors in the middle of a stream --------------------------------------------------------


def test_error_payload_mid_stream_raises_stream_api_error() -> None:
    error_body = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "internal",
        }
    }
    decoder = ChunkDecoder()
    chunks = decoder.feed(
        frame(content("a")) + frame(content("b")) + frame(error_body) + frame(content("c"))
    )
    # The chunks before the error are delivered; the error waits on the decoder.
    assert [c.text for c in chunks] == ["a", "b"]
    error = decoder.error
    assert isinstance(error, StreamAPIError)
    assert isinstance(error, APIError)
    assert error.message == "The server had an error while processing your request."
    assert error.body == error_body
    assert (error.type, error.code) == ("server_error", "internal")
    assert error.chunks_received == 2
    with pytest.raises(StreamAPIError) as again:
        decoder.feed(frame(content("d")))
    assert again.value is error
    with pytest.raises(StreamAPIError):
        decoder.close()


def test_error_payload_without_message() -> None:
    _, error = run([frame({"error": {"code": 42}})])
    assert isinstance(error, StreamAPIError)
    assert "42" in error.message


def test_error_payload_as_a_string() -> None:
    _, error = run([frame({"error": "overloaded"})])
    assert isinstance(error, StreamAPIError)
    assert error.message == "overloaded"


def test_event_error_block_raises_stream_api_error() -> None:
    body = b'event: error\ndata: {"message": "rate limited mid-stream", "type": "rate_limit"}\n\n'
    chunks, error = run([frame(content("a")) + body])
    assert [c.text for c in chunks] == ["a"]
    assert isinstance(error, StreamAPIError)
    assert "rate limited mid-stream" in error.message
    assert error.chunks_received == 1


def test_event_error_with_text_data_raises_stream_api_error() -> None:
    _, error = run([b"event: error\ndata: upstream went away\n\n"])
    assert isinstance(error, StreamAPIError)
    assert "upstream went away" in error.message


def test_non_json_data_raises_invalid_chunk_error_with_raw_text() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(frame(content("a")) + b"data: {not json\n\n" + frame(content("b")))
    assert [c.text for c in chunks] == ["a"]
    error = decoder.error
    assert isinstance(error, InvalidChunkError)
    assert isinstance(error, APIResponseValidationError)
    assert error.raw == "{not json"
    assert "{not json" in str(error)
    assert error.chunks_received == 1
    with pytest.raises(InvalidChunkError):
        decoder.close()


def test_non_json_in_a_later_read_delivers_everything_before() -> None:
    chunks, error = run([frame(content("a")), frame(content("b")) + b"data: oops\n\n"])
    assert [c.text for c in chunks] == ["a", "b"]
    assert isinstance(error, InvalidChunkError)
    assert error.raw == "oops"
    assert error.chunks_received == 2


def test_long_raw_payload_is_shortened_in_the_message_but_kept_whole() -> None:
    raw = "x" * 10_000
    _, error = run([frame(raw)])
    assert isinstance(error, InvalidChunkError)
    assert error.raw == raw
    assert len(str(error)) < 1000
    assert "10000 chars" in str(error)


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "42", "null", "true", "[]"])
def test_non_object_json_raises_invalid_chunk_error(payload: str) -> None:
    _, error = run([frame(payload)])
    assert isinstance(error, InvalidChunkError)
    assert error.raw == payload
    assert "not a JSON object" in str(error)


@pytest.mark.parametrize(
    "payload",
    [
        {"foo": 1},
        {},
        {"choices": "x"},
        {"choices": [{"delta": {"content": 5}}]},  # ({"delta": {}} alone is a choice 0 now)
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"id": "c", "choices": [{"index": "zero", "delta": {}}]},
    ],
)
def test_unknown_shape_raises_invalid_chunk_error(payload: dict[str, Any]) -> None:
    _, error = run([frame(content("a")) + frame(payload)])
    assert isinstance(error, InvalidChunkError)
    assert error.raw == orjson.dumps(payload).decode()
    assert "not a chat-completion chunk" in str(error)
    assert error.chunks_received == 1


def test_invalid_chunk_message_names_the_field() -> None:
    _, error = run([frame({"choices": [{"index": 0, "delta": {"content": 5}}]})])
    assert isinstance(error, InvalidChunkError)
    assert "choices.0.delta.content" in str(error)


def test_unknown_fields_are_kept_not_rejected() -> None:
    payload = content("a") | {"x_gateway": {"region": "eu"}}
    payload["choices"][0]["delta"]["x_audio"] = "…"
    chunks, error = run([frame(payload), DONE])
    assert error is None
    assert chunks[0].model_extra == {"x_gateway": {"region": "eu"}}
    assert chunks[0].choices[0].delta.model_extra == {"x_audio": "…"}


def test_invalid_utf8_inside_a_json_string_becomes_replacement_character() -> None:
    body = b'data: {"choices":[{"index":0,"delta":{"content":"a\xffb"}}]}\n\n' + DONE
    chunks, error = run([body])
    assert error is None
    assert chunks[0].text == "a\ufffdb"


def test_event_too_large_through_the_decoder() -> None:
    decoder = ChunkDecoder(max_event_bytes=500)
    chunks = decoder.feed(frame(content("a")) + frame(content("x" * 1000)))
    assert [c.text for c in chunks] == ["a"]
    assert isinstance(decoder.error, EventTooLargeError)
    assert decoder.error.chunks_received == 1
    with pytest.raises(EventTooLargeError):
        decoder.feed(DONE)


def test_event_too_large_in_its_own_read() -> None:
    decoder = ChunkDecoder(max_event_bytes=500)
    assert [c.text for c in decoder.feed(frame(content("a")))] == ["a"]
    assert decoder.feed(b"data: " + b"x" * 1000) == []
    assert isinstance(decoder.error, EventTooLargeError)
    with pytest.raises(EventTooLargeError):
        decoder.close()


def test_keep_alive_comments_are_not_chunks() -> None:
    decoder = ChunkDecoder()
    chunks = decoder.feed(b": ping\n\n" + frame(content("a")) + b": ping\n\n" + DONE)
    assert [c.text for c in chunks] == ["a"]
    assert decoder.comments == 2


def test_crlf_body() -> None:
    body = (frame(content("a")) + frame(content("b")) + DONE).replace(b"\n", b"\r\n")
    chunks, error = run([body[i : i + 7] for i in range(0, len(body), 7)])
    assert error is None
    assert [c.text for c in chunks] == ["a", "b"]


def test_any_split_gives_the_same_chunks_and_errors() -> None:
    body = (
        frame(content("héllo")) + b": ka\n\n" + frame(content("wörld")) + b"data: {bad\n\n" + DONE
    )
    expected_chunks, expected_error = run([body])
    assert [c.text for c in expected_chunks] == ["héllo", "wörld"]
    assert isinstance(expected_error, InvalidChunkError)
    for cut in range(len(body) + 1):
        chunks, error = run([body[:cut], body[cut:]])
        assert chunks == expected_chunks, cut
        assert type(error) is type(expected_error)
        assert error is not None and error.chunks_received == 2


# -- property: the decoder against a one-event-at-a-time reference ----------------------------

_FRAMES = st.one_of(
    st.builds(lambda t: frame(content(t)), st.text(max_size=6)),
    st.builds(lambda t: frame(content(t)), st.text(max_size=6)),
    st.builds(lambda t: frame(content(t, finish_reason="stop")), st.text(max_size=3)),
    st.just(frame({"id": "u", "choices": [], "usage": {"prompt_tokens": 1}})),
    st.just(b"data: {bad\n\n"),
    st.just(b"data: [1, 2]\n\n"),
    st.just(frame({"choices": "nope"})),
    st.just(frame({"error": {"message": "boom"}})),
    st.just(b"event: error\ndata: {}\n\n"),
    st.just(b"event: message\ndata: " + frame(content("typed"))[6:]),
    st.just(b": keep-alive\n\n"),
    st.just(b"data:" + frame(content("nospace"))[6:]),
    st.just(DONE),
)


def reference(body: bytes) -> tuple[list[ChatCompletionChunk], type[RxChatError] | None, int]:
    """What the stream means, decoded one SSE event at a time with the public pieces."""
    from rxchat import SSEDecoder

    chunks: list[ChatCompletionChunk] = []
    finished = False
    for event in SSEDecoder().feed(body):
        if event.data == "[DONE]":
            return chunks, None, len(chunks)
        try:
            if event.event == "error" or "error" in (orjson.loads(event.data) or {}):
                return chunks, StreamAPIError, len(chunks)
        except (orjson.JSONDecodeError, TypeError):
            return chunks, InvalidChunkError, len(chunks)
        try:
            chunk = ChatCompletionChunk.model_validate_json(event.data)
        except ValueError:
            return chunks, InvalidChunkError, len(chunks)
        finished = finished or any(c.finish_reason is not None for c in chunk.choices)
        chunks.append(chunk)
    return chunks, (None if finished else IncompleteStreamError), len(chunks)


@pytest.fixture(params=[pytest.param("C reader", marks=requires_c_reader), "pydantic only"])
def builder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C reader (when built) and with pydantic building every chunk."""
    import rxchat._decode as decode

    if request.param == "pydantic only":
        monkeypatch.setattr(decode, "_build_all", decode._build_with_pydantic)
    else:  # whatever RXCHAT_NO_SPEEDUPS says
        from rxchat._fastbuild import c_builder

        monkeypatch.setattr(decode, "build_chunks", c_builder())
        monkeypatch.setattr(decode, "_build_all", decode._build_fast)
        assert decode.build_chunks is not None
    return str(request.param)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_FRAMES, max_size=40), st.data())
def test_decoder_matches_a_per_event_reference_for_any_split(
    builder: str, frames: list[bytes], data: st.DataObject
) -> None:
    body = b"".join(frames)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=6))))
    reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    want_chunks, want_error, want_count = reference(body)
    chunks, error = run(reads)
    assert chunks == want_chunks
    assert type(error) is (want_error or type(None))
    if error is not None:
        assert error.chunks_received == want_count
