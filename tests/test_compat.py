"""rxchat._compat: every aiohttp, reactivex and pydantic internal rxchat relies on, checked
against the installed versions.

If one of these fails after an upgrade, the matching function in ``rxchat/_compat.py`` needs a
new implementation; nothing else in rxchat touches those internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rxchat import _compat


def test_self_check_finds_every_internal() -> None:
    assert _compat.self_check() == []


def test_self_check_reads_instance_attributes() -> None:
    # aiohttp 3.10 keeps StreamReader._buffer in __dict__ (3.11+ in __slots__): the check
    # must look at an instance, not at the class.
    from aiohttp.client_proto import ResponseHandler

    loop = asyncio.new_event_loop()
    try:
        reader = aiohttp.StreamReader(ResponseHandler(loop), 2**16, loop=loop)
        reader.feed_data(b"xyz")
        assert _compat.take_buffered(reader) == b"xyz"
    finally:
        loop.close()


def test_connection_loss_is_watched_on_this_aiohttp() -> None:
    # ResponseHandler.closed exists from aiohttp 3.12.x on; the test extra installs a newer one.
    assert _compat.watches_connection_loss()


def test_scheduler_loop_is_the_schedulers_loop() -> None:
    from reactivex.scheduler.eventloop import AsyncIOScheduler, AsyncIOThreadSafeScheduler

    loop = asyncio.new_event_loop()
    try:
        assert _compat.scheduler_loop(AsyncIOScheduler(loop)) is loop
        assert _compat.scheduler_loop(AsyncIOThreadSafeScheduler(loop)) is loop
    finally:
        loop.close()


def test_direct_on_next_is_the_wrapped_function() -> None:
    import reactivex
    from reactivex.observer import AutoDetachObserver

    seen: list[int] = []
    observer: AutoDetachObserver[int] = AutoDetachObserver(seen.append)
    on_next, detach = _compat.direct_on_next(observer)
    assert detach is observer and not detach.is_stopped
    on_next(1)
    observer.dispose()
    assert detach.is_stopped  # the caller's check before each call
    assert seen == [1]
    # What subscribe hands a source is an AutoDetachObserver: the fast path is really taken.
    handed: list[object] = []
    reactivex.create(lambda obs, _: handed.append(obs)).subscribe(print)  # type: ignore[arg-type,func-returns-value]
    assert type(handed[0]) is AutoDetachObserver
    plain = reactivex.Subject[int]()
    assert _compat.direct_on_next(plain) == (plain.on_next, None)


def test_pydantic_instance_layout() -> None:
    from rxchat.types import ChatCompletionChunk, ChoiceDelta

    chunk = ChatCompletionChunk.from_wire(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "a", "odd": 1}}], "x": 2}
    )
    delta = chunk.choices[0].delta
    assert _compat.values_of(delta)["content"] == "a"
    assert _compat.fields_set_of(delta) == {"content", "odd"}
    assert _compat.set_fields_dump(delta) == delta.model_dump(exclude_unset=True)
    _compat.set_field(delta, "refusal", "no")
    _compat.extra_of(delta)["more"] = [1]
    _compat.fields_set_of(delta).add("more")
    assert delta.model_dump(exclude_unset=True) == {
        "content": "a",
        "refusal": "no",
        "odd": 1,
        "more": [1],
    }
    fresh = ChoiceDelta.model_construct()
    assert fresh.__pydantic_extra__ is None or fresh.__pydantic_extra__ == {}
    _compat.extra_of(fresh)["k"] = "v"
    assert fresh.__pydantic_extra__ == {"k": "v"}
    a, b = _compat.instance_state(chunk), _compat.instance_state(chunk.model_copy())
    assert a[1:] == b[1:] and a[0] == b[0]


def test_pydantic_slot_setters_build_an_unvalidated_instance() -> None:
    from rxchat.types import ChoiceDelta

    built = object.__new__(ChoiceDelta)
    _compat.set_model_dict(built, {**ChoiceDelta().__dict__, "content": "hi"})
    _compat.set_fields_set(built, {"content"})
    _compat.set_model_extra(built, {})
    _compat.set_model_private(built, None)
    assert built == ChoiceDelta(content="hi")
    assert built.model_dump(exclude_unset=True) == {"content": "hi"}


def test_pydantic_retype_and_class_checks() -> None:
    from pydantic import BaseModel, field_validator

    from rxchat.types import ChatCompletionChunk

    class Logged(ChatCompletionChunk):
        pass

    class Checked(BaseModel):
        a: int

        @field_validator("a")
        @classmethod
        def positive(cls, value: int) -> int:
            return value

    chunk = ChatCompletionChunk.from_wire({"id": "c", "choices": []})
    _compat.retype(chunk, Logged, None)
    assert type(chunk) is Logged and chunk.model_copy().id == "c"
    assert _compat.plain_model_class(ChatCompletionChunk)
    assert not _compat.plain_model_class(Checked)
    assert _compat.json_validator(ChatCompletionChunk)('{"id":"c","choices":[]}').id == "c"


@pytest.fixture
async def slow_body() -> AsyncIterator[str]:
    """A server that sends two parts of a body and then waits (the connection stays open)."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"part one;")
        await resp.write(b"part two;")
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        release.set()
        await runner.cleanup()


async def test_take_buffered_returns_unread_bytes(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        for _ in range(100):
            if len(_compat.take_buffered(resp.content)) or resp.content.is_eof():
                break
            await asyncio.sleep(0.01)
        # Taken once: the buffer is empty afterwards.
        assert _compat.take_buffered(resp.content) == b""
        resp.close()


async def test_take_buffered_honours_a_partial_read(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        first = await resp.content.readexactly(5)  # leaves an offset inside the first part
        for _ in range(100):
            if resp.content._size >= 13:  # the rest of both parts has arrived
                break
            await asyncio.sleep(0.01)
        rest = _compat.take_buffered(resp.content)
        assert first + rest == b"part one;part two;"
        resp.close()


async def test_fail_reader_wakes_a_waiting_read(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(slow_body) as resp:
        await resp.content.readexactly(len(b"part one;part two;"))
        waiting = asyncio.ensure_future(resp.content.readany())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        error = RuntimeError("woken")
        _compat.fail_reader(resp.content, error)
        with pytest.raises(RuntimeError, match="woken"):
            await asyncio.wait_for(waiting, 2)
        resp.close()


async def test_on_connection_lost_fires_and_can_be_removed(slow_body: str) -> None:
    async with aiohttp.ClientSession() as session:
        fired: list[str] = []
        async with session.get(slow_body) as resp:
            unwatch = _compat.on_connection_lost(resp, lambda: fired.append("lost"))
            assert unwatch is not None
            resp.close()  # closes the TCP connection
            for _ in range(100):
                if fired:
                    break
                await asyncio.sleep(0.01)
        assert fired == ["lost"]
        async with session.get(slow_body) as resp:
            unwatch = _compat.on_connection_lost(resp, lambda: fired.append("again"))
            assert unwatch is not None
            unwatch()
            resp.close()
            await asyncio.sleep(0.05)
        assert fired == ["lost"]


async def test_close_connector_now_closes_without_awaiting() -> None:
    connector = aiohttp.TCPConnector()
    assert _compat.close_connector_now(connector)
    assert connector.closed
    await connector.close()  # idempotent, no warning


def test_parser_errors_are_known() -> None:
    from aiohttp import http_exceptions

    for cls in (
        http_exceptions.TransferEncodingError,
        http_exceptions.ContentLengthError,
        http_exceptions.BadStatusLine,
        http_exceptions.LineTooLong,
    ):
        assert issubclass(cls, _compat.HTTP_PROCESSING_ERRORS)
        assert not issubclass(cls, aiohttp.ClientError)  # why rxchat must catch them itself
