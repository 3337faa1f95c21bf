"""The in-memory stream log: one process, the same semantics as Redis."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from typing_extensions import Unpack

from ._backend import AppendResult, Backend
from ._codec import Fields
from ._core import LogOptions, StreamLog

__all__ = ["MemoryStreamLog"]


class _Stream:
    __slots__ = ("cancel", "entries", "expires", "lease_until", "meta", "waiters")

    def __init__(self, meta: dict[str, str], lease_until: float, expires: float) -> None:
        self.meta = meta
        self.entries: list[tuple[int, Fields]] = []
        self.lease_until = lease_until
        self.expires = expires
        self.cancel = False
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, future in waiters:
        if loop.is_closed():
            continue
        loop.call_soon_threadsafe(_resolve, future)
    waiters.clear()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _MemoryBackend(Backend):
    """Streams in dicts, guarded by one lock; times on the monotonic clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._conversations: dict[str, tuple[str, float]] = {}
        self._watchers: dict[str, tuple[asyncio.AbstractEventLoop, Callable[[str], None]]] = {}

    def _get(self, stream_id: str) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires <= time.monotonic():
            del self._streams[stream_id]
            return None
        return stream

    async def create(
        self,
        stream_id: str,
        meta: dict[str, str],
        *,
        conversation_id: str | None,
        lease: float,
        ttl: float,
        replace: bool = False,
    ) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._get(stream_id) is not None and not replace:
                return False
            self._streams[stream_id] = _Stream(dict(meta), now + lease, now + ttl)
            if conversation_id is not None:
                self._conversations[conversation_id] = (stream_id, now + lease)
        return True

    async def append(self, stream_id: str, entry_id: int, fields: Fields) -> AppendResult:
        with self._lock:
            stream = self._get(stream_id)
            lost = stream is None or not stream.meta
            if stream is None:  # as XADD does: the log springs into existence
                stream = _Stream({}, 0.0, time.monotonic() + 3600.0)
                self._streams[stream_id] = stream
            if stream.entries and stream.entries[-1][0] >= entry_id:
                return "duplicate"
            stream.entries.append((entry_id, dict(fields)))
            _wake(stream.waiters)
        return "lost" if lost else "added"

    async def finish(
        self,
        stream_id: str,
        entry_id: int,
        fields: Fields,
        meta: dict[str, str],
        *,
        conversation_id: str | None,
        ttl: float,
    ) -> None:
        with self._lock:
            stream = self._get(stream_id)
            if stream is None:
                stream = _Stream({}, 0.0, 0.0)
                self._streams[stream_id] = stream
            if not stream.entries or stream.entries[-1][0] < entry_id:
                stream.entries.append((entry_id, dict(fields)))
            stream.meta.update(meta)
            stream.lease_until = 0.0
            stream.expires = time.monotonic() + ttl
            if conversation_id is not None:
                current = self._conversations.get(conversation_id)
                if current is not None and current[0] == stream_id:
                    del self._conversations[conversation_id]
            _wake(stream.waiters)

    def _after(self, stream: _Stream, after: int, count: int) -> list[tuple[int, Fields]]:
        entries = stream.entries
        # Entry ids are increasing: bisect on them.
        lo, hi = 0, len(entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if entries[mid][0] <= after:
                lo = mid + 1
            else:
                hi = mid
        return [(i, dict(f)) for i, f in entries[lo : lo + count]]

    async def read(
        self, stream_id: str, after: int, count: int, block: float | None
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        loop = asyncio.get_running_loop()
        with self._lock:
            stream = self._get(stream_id)
            if stream is None:
                return []
            found = self._after(stream, after, count)
            if found or block is None:
                return found
            future: asyncio.Future[None] = loop.create_future()
            stream.waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, block)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiters = stream.waiters
                if (loop, future) in waiters:
                    waiters.remove((loop, future))
        with self._lock:
            current = self._get(stream_id)
            return [] if current is None else self._after(current, after, count)

    async def last_entry(self, stream_id: str) -> int | None:
        with self._lock:
            stream = self._get(stream_id)
            return stream.entries[-1][0] if stream is not None and stream.entries else None

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        with self._lock:
            stream = self._get(stream_id)
            return None if stream is None or not stream.meta else dict(stream.meta)

    async def lease_alive(self, stream_id: str) -> bool:
        with self._lock:
            stream = self._get(stream_id)
            return stream is not None and stream.lease_until > time.monotonic()

    async def heartbeat(
        self,
        stream_ids: list[str],
        conversations: dict[str, str],
        *,
        lease: float,
        ttl: float,
    ) -> set[str]:
        now = time.monotonic()
        cancelled: set[str] = set()
        with self._lock:
            for stream_id in stream_ids:
                stream = self._get(stream_id)
                if stream is None:
                    continue
                stream.lease_until = now + lease
                stream.expires = now + ttl
                if stream.cancel:
                    cancelled.add(stream_id)
            for stream_id, conversation_id in conversations.items():
                self._conversations[conversation_id] = (stream_id, now + lease)
        return cancelled

    async def request_cancel(self, stream_id: str) -> None:
        with self._lock:
            stream = self._get(stream_id)
            if stream is not None:
                stream.cancel = True
            watcher = self._watchers.get(stream_id)
        if watcher is not None:
            loop, callback = watcher
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, stream_id)

    async def watch_cancels(self, stream_id: str, callback: Callable[[str], None]) -> None:
        with self._lock:
            self._watchers[stream_id] = (asyncio.get_running_loop(), callback)

    async def unwatch_cancels(self, stream_id: str) -> None:
        with self._lock:
            self._watchers.pop(stream_id, None)

    async def find_active(self, conversation_id: str) -> str | None:
        with self._lock:
            found = self._conversations.get(conversation_id)
            if found is None:
                return None
            if found[1] <= time.monotonic():
                del self._conversations[conversation_id]
                return None
            return found[0]

    def expire_now(self, stream_id: str) -> None:
        with self._lock:
            self._streams.pop(stream_id, None)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"streams": len(self._streams)}


class MemoryStreamLog(StreamLog):
    """A stream log in this process's memory: the embedded default, for one process and tests.

    Same methods, entries and guarantees as :class:`rxchat.redis.RedisStreamLog`; streams live
    as long as the object (and their TTL). Several ``MemoryStreamLog`` objects share nothing.

    Args:
        **options: see :class:`rxchat.LogOptions` (``flush_interval``, ``batch_size``, ``lease``,
            ``ttl``, ``max_chunks``, ``max_bytes``, ``max_buffered``, ``give_up_after``).

    >>> log = rxchat.MemoryStreamLog()                       # doctest: +SKIP
    >>> handle = await log.publish(client.chat.completions.observe(...))  # doctest: +SKIP
    >>> async for chunk in log.read(handle.stream_id):      # doctest: +SKIP
    ...     print(chunk.position, chunk.text)
    """

    def __init__(self, **options: Unpack[LogOptions]) -> None:
        super().__init__(_MemoryBackend(), **options)
