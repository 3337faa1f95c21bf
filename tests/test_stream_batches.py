"""``iter_batches()`` of the chunk streams: per-read batches, read once, closed at the end."""

from __future__ import annotations

import pytest

import rxchat
from rxchat.mock import MockServer, ThreadedMockServer

MESSAGES = [{"role": "user", "content": "hello"}]


async def test_async_batches_hold_every_chunk_once(mock_server: MockServer) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url, api_key="sk-test") as client:
        whole = await client.chat.completions.create(model="m?tokens=20", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="m?tokens=20", messages=MESSAGES, stream=True
        )
        batches = [batch async for batch in stream.iter_batches()]
        assert batches and all(isinstance(batch, list) and batch for batch in batches)
        chunks = [chunk for batch in batches for chunk in batch]
        assert "".join(c.text or "" for c in chunks) == whole.choices[0].message.content
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert stream.closed
        with pytest.raises(rxchat.StreamConsumedError):
            stream.iter_batches()
        with pytest.raises(rxchat.StreamConsumedError):
            async for _ in stream:
                pass


async def test_async_break_out_of_batches_closes(mock_server: MockServer) -> None:
    async with rxchat.AsyncClient(base_url=mock_server.url, api_key="sk-test") as client:
        stream = await client.chat.completions.create(
            model="m?tokens=2000", messages=MESSAGES, stream=True
        )
        batches = stream.iter_batches()
        async for _ in batches:
            break
        await batches.aclose()
        assert stream.closed
        await mock_server.state.wait_for(lambda: mock_server.state.active_streams == 0)


def test_sync_batches_and_event_streams() -> None:
    with ThreadedMockServer() as mock, rxchat.Client(base_url=mock.url, api_key="sk-t") as client:
        stream = client.chat.completions.create(model="m?tokens=20", messages=MESSAGES, stream=True)
        with stream:
            text = "".join(c.text or "" for batch in stream.iter_batches() for c in batch)
        assert text == mock.streams[-1].texts[0]
        with pytest.raises(rxchat.StreamConsumedError):
            stream.iter_batches()
        with client.chat.completions.stream(model="m?tokens=20", messages=MESSAGES) as events:
            assert events.get_final_completion().choices[0].message.content
        with client.chat.completions.stream(model="m?tokens=20", messages=MESSAGES) as events:
            for _ in events:
                break
            with pytest.raises(rxchat.IncompleteStreamError):
                events.until_done()
