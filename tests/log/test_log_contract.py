"""The stream log's contract, on every backend: publish, read, resume, end, cancel, find."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import reactivex
from reactivex import operators as rops

import rxchat
from rxchat import operators as ops
from rxchat.mock import MockServer

USER = [{"role": "user", "content": "Hello"}]
# Functional bound (hang detection), not a timing target.
BOUND = 2.0


def observe(server: MockServer, model: str) -> Any:
    return rxchat.chat_completion_stream(
        model=model, messages=USER, base_url=server.url, api_key="unused"
    )


async def direct_chunks(server: MockServer, model: str) -> list[dict[str, Any]]:
    chunks = await observe(server, model).pipe(rops.to_list())
    return [c.to_dict() for c in chunks]


async def test_read_gets_the_chunks_exactly_with_positions(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    model = "mock?tokens=40&delay=0.001"
    handle = await stream_log.publish(observe(mock_server, model))
    got = [c async for c in stream_log.read(handle.stream_id)]
    assert [c.position for c in got] == list(range(1, len(got) + 1))
    assert all(isinstance(c, rxchat.ChatCompletionChunk) for c in got)
    assert all(c.stream_id == handle.stream_id for c in got)
    assert [c.to_dict() for c in got] == await direct_chunks(mock_server, model)
    info = await handle.wait()
    assert info.status == "completed" and info.chunks == len(got)


async def test_operators_work_on_the_reading_side(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    model = "mock?tokens=30"
    handle = await stream_log.publish(observe(mock_server, model))
    final = await stream_log.read(handle.stream_id).pipe(ops.accumulate(), ops.final_completion())
    direct = await observe(mock_server, model).pipe(ops.accumulate(), ops.final_completion())
    assert final.choices[0].message.content == direct.choices[0].message.content


async def test_resume_after_any_position_no_gap_no_duplicate(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=60&delay=0.001"))
    first: list[int] = []
    async for chunk in stream_log.read(handle.stream_id):  # a reader that goes away mid-stream
        first.append(chunk.position)
        if len(first) == 17:
            break
    rest = [c.position async for c in stream_log.read(handle.stream_id, after=first[-1])]
    assert first + rest == list(range(1, len(first) + len(rest) + 1))
    # After the end, any position resumes too, also given as a Last-Event-ID string.
    again = [c.position async for c in stream_log.read(handle.stream_id, after="30")]
    assert again == list(range(31, len(first) + len(rest) + 1))


async def test_late_reader_after_the_end_gets_everything(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=20"))
    await handle.wait()
    texts = await stream_log.read(handle.stream_id).pipe(
        ops.accumulate(), ops.text(), rops.to_list()
    )
    assert "".join(texts) == mock_server.streams[0].texts[0]


async def test_many_readers_same_stream_one_request(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=50&delay=0.001"))

    async def read_all() -> list[int]:
        return [c.position async for c in stream_log.read(handle.stream_id)]

    results = await asyncio.gather(*(read_all() for _ in range(10)))
    assert all(r == results[0] for r in results) and len(results[0]) > 50
    assert len(mock_server.requests) == 1


async def test_upstream_error_is_reraised_as_the_same_class_with_completion(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=20&error_after=5"))
    got: list[rxchat.LoggedChunk] = []
    with pytest.raises(rxchat.StreamAPIError) as caught:
        async for chunk in stream_log.read(handle.stream_id):
            got.append(chunk)
    assert len(got) == 5
    assert caught.value.chunks_received == 5
    assert caught.value.completion is not None
    expected = "".join(c.text or "" for c in got)
    assert caught.value.completion.choices[0].message.content == expected
    info = await handle.wait()
    assert info.status == "error" and info.error_type == "StreamAPIError"


async def test_status_error_keeps_status_code(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?status=400"))
    with pytest.raises(rxchat.BadRequestError) as caught:
        await stream_log.read(handle.stream_id).pipe(rops.to_list())
    assert caught.value.status_code == 400
    assert caught.value.completion is None


async def test_incomplete_stream_error_is_typed(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=10&no_done=1"))
    with pytest.raises(rxchat.IncompleteStreamError):
        await stream_log.read(handle.stream_id).pipe(rops.to_list())


async def test_a_non_rxchat_error_becomes_remote_stream_error(
    stream_log: rxchat.StreamLog,
) -> None:
    handle = await stream_log.publish(reactivex.throw(KeyError("boom")))
    with pytest.raises(rxchat.RemoteStreamError) as caught:
        await stream_log.read(handle.stream_id).pipe(rops.to_list())
    assert caught.value.error_type == "builtins.KeyError"
    assert "boom" in str(caught.value)


async def test_items_that_are_not_chunks_end_the_stream_with_an_error(
    stream_log: rxchat.StreamLog,
) -> None:
    handle = await stream_log.publish(reactivex.of(1, 2))
    with pytest.raises(rxchat.RemoteStreamError, match="ChatCompletionChunk"):
        await stream_log.read(handle.stream_id).pipe(rops.to_list())


async def test_cancel_stops_the_upstream_and_every_reader(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=2000&delay=0.005"))
    readers_got: list[list[rxchat.LoggedChunk]] = [[], []]
    errors: list[BaseException] = []

    async def read(into: list[rxchat.LoggedChunk]) -> None:
        try:
            async for chunk in stream_log.read(handle.stream_id):
                into.append(chunk)
        except rxchat.StreamCancelledError as err:
            errors.append(err)

    tasks = [asyncio.create_task(read(into)) for into in readers_got]
    while len(readers_got[0]) < 5:
        await asyncio.sleep(0.01)
    assert await stream_log.cancel(handle.stream_id) is True
    await mock_server.wait_for_disconnect(BOUND)
    await asyncio.wait_for(asyncio.gather(*tasks), BOUND)
    assert len(errors) == 2
    assert readers_got[0] == readers_got[1] or [c.to_dict() for c in readers_got[0]] == [
        c.to_dict() for c in readers_got[1]
    ]
    err = errors[0]
    assert isinstance(err, rxchat.StreamCancelledError) and err.completion is not None
    assert err.completion.choices[0].message.content == "".join(
        c.text or "" for c in readers_got[0]
    )
    assert (await handle.wait()).status == "cancelled"
    assert await stream_log.cancel(handle.stream_id) is False  # already ended


async def test_not_found(stream_log: rxchat.StreamLog) -> None:
    with pytest.raises(rxchat.StreamNotFoundError):
        await stream_log.read("no-such-stream").pipe(rops.to_list())
    with pytest.raises(rxchat.StreamNotFoundError):
        await stream_log.info("no-such-stream")
    with pytest.raises(rxchat.StreamNotFoundError):
        await stream_log.cancel("no-such-stream")


async def test_stream_id_conflict_and_validation(stream_log: rxchat.StreamLog) -> None:
    await stream_log.publish(reactivex.empty(), stream_id="fixed-id")
    with pytest.raises(rxchat.StreamExistsError):
        await stream_log.publish(reactivex.empty(), stream_id="fixed-id")
    with pytest.raises(ValueError, match="stream id"):
        await stream_log.publish(reactivex.empty(), stream_id="has{brace}")
    with pytest.raises(ValueError, match="position"):
        stream_log.read("fixed-id", after=-1)


async def test_position_past_the_end_is_an_error(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(observe(mock_server, "mock?tokens=3"))
    await handle.wait()
    with pytest.raises(rxchat.StreamLogError, match="past the end"):
        await stream_log.read(handle.stream_id, after=500).pipe(rops.to_list())


async def test_metadata_and_find_active_conversation(
    stream_log: rxchat.StreamLog, mock_server: MockServer
) -> None:
    handle = await stream_log.publish(
        observe(mock_server, "mock?tokens=200&delay=0.005"),
        conversation_id="conv-1",
        metadata={"user": "u42"},
    )
    found = await stream_log.find_active("conv-1")
    assert found is not None and found.stream_id == handle.stream_id
    assert found.metadata == {"user": "u42"} and found.conversation_id == "conv-1"
    assert await stream_log.find_active("conv-2") is None
    await handle.cancel()
    await handle.wait()
    assert await stream_log.find_active("conv-1") is None


async def test_producer_lost_within_the_lease(stream_log: rxchat.StreamLog) -> None:
    # A source that never ends, and a producer that stops heartbeating (as a killed process).
    handle = await stream_log.publish(reactivex.never())
    heartbeat = stream_log._heartbeat
    assert heartbeat is not None
    heartbeat.cancel()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(rxchat.ProducerLostError):
        await asyncio.wait_for(stream_log.read(handle.stream_id).pipe(rops.to_list()), 5.0)
    lease = stream_log.options["lease"]
    assert loop.time() - started <= lease * 1.5 + 0.5  # within the lease, plus one poll
    assert (await stream_log.info(handle.stream_id)).status == "lost"
    handle._producer.cancel()


async def test_max_chunks_ends_the_stream_with_a_limit_error(mock_server: MockServer) -> None:
    async with rxchat.MemoryStreamLog(max_chunks=10) as log:
        handle = await log.publish(observe(mock_server, "mock?tokens=500&delay=0.002"))
        got: list[int] = []
        with pytest.raises(rxchat.StreamLimitError):
            async for chunk in log.read(handle.stream_id):
                got.append(chunk.position)
        assert got == list(range(1, 11))
        await mock_server.wait_for_disconnect(BOUND)


async def test_coalescing_writes_fewer_entries_than_chunks(mock_server: MockServer) -> None:
    async with rxchat.MemoryStreamLog(flush_interval=0.05, batch_size=1000) as log:
        handle = await log.publish(observe(mock_server, "mock?tokens=100"))
        await handle.wait()
        entries = await log._backend.read(handle.stream_id, 0, 10_000, None)
        assert 2 <= len(entries) < 20  # chunk entries + the terminal entry
        positions = [c.position async for c in log.read(handle.stream_id)]
        assert positions == list(range(1, len(positions) + 1))


async def test_options_are_checked() -> None:
    with pytest.raises(TypeError, match="unknown"):
        rxchat.MemoryStreamLog(flush_intervall=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="lease"):
        rxchat.MemoryStreamLog(lease=0)
    with pytest.raises(TypeError, match="batch_size"):
        rxchat.MemoryStreamLog(batch_size=1.5)  # type: ignore[arg-type]


async def test_ttl_after_the_end_expires_the_stream(mock_server: MockServer) -> None:
    async with rxchat.MemoryStreamLog(ttl=0.2) as log:
        handle = await log.publish(observe(mock_server, "mock?tokens=3"))
        await handle.wait()
        assert (await log.info(handle.stream_id)).status == "completed"
        await asyncio.sleep(0.3)
        with pytest.raises(rxchat.StreamNotFoundError):
            await log.info(handle.stream_id)
