"""The stream log on Redis Streams (or Valkey): any number of processes, one stream.

Needs the ``redis`` extra: ``pip install 'rxchat[redis]'`` (redis-py's asyncio client).

Keys of a stream share the Cluster hash tag ``{<stream id>}`` (default prefix ``rxchat``)::

    rxchat:{ID}:log      Redis stream: chunk entries (id "N-0", N = position of the last chunk)
                         and one terminal entry (id "total+1-0")
    rxchat:{ID}:meta     hash: status, created, ended, chunks, metadata, conversation, cancel
    rxchat:{ID}:lease    the producer's lease (PX lease; renewed every lease / 3)
    rxchat:{ID}:cancel   pub/sub channel: a cancel request for the producer
    rxchat:conv:{CID}    the running stream of conversation CID (PX lease)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any, cast

from typing_extensions import Unpack

from ._log._backend import AppendResult, Backend
from ._log._codec import Fields
from ._log._core import LogOptions, StreamLog
from ._log._errors import StreamLogError

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as err:  # pragma: no cover - exercised without the extra
    raise ImportError("rxchat.redis needs redis-py: pip install 'rxchat[redis]'") from err

__all__ = ["DEFAULT_URL", "RedisStreamLog"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
log = logging.getLogger("rxchat")

# Create a stream if it does not exist: meta hash and lease, atomically (both in one slot).
_CREATE = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
"""
# Append an entry under its explicit id, in one round trip: "added"; "duplicate" when the id is
# not newer than the last entry (a retried write that had gone through); "lost" when it was added
# but the stream's meta is gone (a restart lost the stream).
_APPEND = """
local added = redis.pcall('XADD', KEYS[1], ARGV[1], unpack(ARGV, 2))
if type(added) == 'table' and added.err then
  if string.find(added.err, 'equal or smaller', 1, true) then return 'duplicate' end
  return added
end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'lost' end
return 'added'
"""
# Catch-up: the entries from ARGV[1] on (at most ARGV[2] of them, and about ARGV[3] bytes of chunk
# data), with every run of consecutive chunk entries merged into one, so that the reply is a few
# large strings instead of ~9 RESP items per entry (redis-py parses each one in Python). A chunk
# run is {'c', first position, last position, the lines}; any other entry comes as it is stored,
# {'x', id, field, value, ...}. A gap between two chunk entries starts a new run, so the reader's
# gap check sees it.
_RANGE = r"""
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local limit = tonumber(ARGV[3])
local out, parts, np, first, last, size = {}, nil, 0, 0, 0, 0
for i = 1, #entries do
  local id, fields = entries[i][1], entries[i][2]
  local f = nil
  -- A chunk entry as rxchat writes it: t=c f=FIRST d=LINES, in this order, id "LAST-0".
  if #fields == 6 and fields[2] == 'c' and fields[1] == 't' and fields[3] == 'f'
      and fields[5] == 'd' and string.byte(id, -2) == 45 and string.byte(id, -1) == 48 then
    f = tonumber(fields[4])
  end
  if f then
    if parts and f ~= last + 1 then
      out[#out + 1] = {'c', first, last, table.concat(parts, '\n', 1, np)}
      parts = nil
    end
    if not parts then parts, np, first, size = {}, 0, f, 0 end
    local d = fields[6]
    np = np + 1
    parts[np] = d
    last = tonumber(string.sub(id, 1, -3))
    size = size + #d
    if size >= limit then break end
  else
    if parts then
      out[#out + 1] = {'c', first, last, table.concat(parts, '\n', 1, np)}
      parts = nil
    end
    out[#out + 1] = {'x', id, unpack(fields)}
  end
end
if parts then out[#out + 1] = {'c', first, last, table.concat(parts, '\n', 1, np)} end
return out
"""
_RANGE_BYTES = 1 << 20  # chunk data per catch-up reply, about
_PIPELINE_COMMANDS = 512  # appends per pipeline at most
_PIPELINE_BYTES = 4 << 20  # and about this much data
# Drop a conversation's pointer only if it still points at this stream.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Record a cancel request on a stream that exists, then notify its producer.
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _entry_id(raw: bytes | str) -> int:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, _ = text.partition("-")
    return int(ms)


def _closed(stream_id: str | None) -> StreamLogError:
    return StreamLogError(
        "the stream log was closed" + (f" while stream {stream_id!r} was read" if stream_id else ""),
        stream_id=stream_id or "",
    )


def _ranged(item: list[Any]) -> tuple[int, dict[bytes, bytes]]:
    """One item of the catch-up script's reply, as an entry."""
    if item[0] == b"c":
        return int(item[2]), {b"t": b"c", b"f": b"%d" % int(item[1]), b"d": item[3]}
    fields = item[2:]
    return _entry_id(item[1]), dict(zip(fields[::2], fields[1::2], strict=True))


class _Tail:
    """The waiting readers of one stream in this process share one ``XREAD BLOCK``: one
    connection per followed stream, not per reader, and each new entry read once for all of
    them. A reader whose position is the tail's gets the entries themselves; one elsewhere
    (behind, after a reconnect) reads on its own. A waiting read whose reader left still ends
    within ``block``; the waiters that are left get its result."""

    __slots__ = ("backend", "key", "position", "stream_id", "task", "waiters")

    def __init__(self, backend: _RedisBackend, stream_id: str, key: str) -> None:
        self.backend = backend
        self.stream_id = stream_id
        self.key = key
        self.position = -1  # the entry id the running XREAD reads after
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[list[tuple[int, dict[bytes, bytes]]]]]] = []

    async def wait(
        self, after: int, count: int, block: float
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        if self.task is not None and after < self.position:
            # Behind the running read: entries are there already, this read does not wait.
            return await self.backend.xread(self.key, after, count, block)
        future: asyncio.Future[list[tuple[int, dict[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiters.append((after, future))
        if self.task is None:
            self.position = after
            self.task = asyncio.get_running_loop().create_task(self._run(count, block))
        try:
            return await future
        finally:
            if not future.done():  # this reader was cancelled
                self.waiters = [w for w in self.waiters if w[1] is not future]

    async def _run(self, count: int, block: float) -> None:
        """XREAD after ``position`` while readers wait: each round's entries (or its error, or
        nothing after ``block``) go to the waiters; a waiter ahead of the round's position
        gets the entries past its own, or waits for the next round."""
        try:
            while self.waiters:
                try:
                    entries = await self.backend.xread(self.key, self.position, count, block)
                except Exception as err:  # a connection error: each waiter retries (and backs off)
                    self._resolve(None, err)
                    return
                self._resolve(entries, None)
                if entries:
                    self.position = entries[-1][0]
        finally:
            self.task = None
            if not self.waiters:
                self.backend.forget_tail(self)

    def _resolve(
        self, entries: list[tuple[int, dict[bytes, bytes]]] | None, error: BaseException | None
    ) -> None:
        still: list[tuple[int, asyncio.Future[list[tuple[int, dict[bytes, bytes]]]]]] = []
        for after, future in self.waiters:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif not entries or after <= self.position:
                future.set_result(list(entries or []))
            elif mine := [entry for entry in entries if entry[0] > after]:
                future.set_result(mine)
            else:
                still.append((after, future))
        self.waiters = still

    async def aclose(self) -> None:
        task = self.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        waiters, self.waiters = self.waiters, []
        for _, future in waiters:  # readers still following end with a typed error
            if not future.done():
                future.set_exception(_closed(self.stream_id))


class _RedisBackend(Backend):
    connection_errors = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

    def __init__(self, client: aioredis.Redis, prefix: str, owned: bool) -> None:
        self.client = client
        self.prefix = prefix
        self.owned = owned
        self._create = client.register_script(_CREATE)
        self._append = client.register_script(_APPEND)
        self._release = client.register_script(_RELEASE)
        self._range = client.register_script(_RANGE)
        self._cancel = client.register_script(_CANCEL)
        self._watchers: dict[str, Callable[[str], None]] = {}
        self._tails: dict[str, _Tail] = {}
        self._appends: collections.deque[tuple[list[bytes | str], asyncio.Future[Any]]] = (
            collections.deque()
        )
        self._appender: asyncio.Task[None] | None = None
        self._sending: list[tuple[list[bytes | str], asyncio.Future[Any]]] = []
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None

    # -- keys -------------------------------------------------------------------------------------

    def _key(self, stream_id: str, part: str) -> str:
        return f"{self.prefix}:{{{stream_id}}}:{part}"

    def _conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{{{conversation_id}}}"

    # -- primitives -------------------------------------------------------------------------------

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
        flat: list[str] = []
        for key, value in meta.items():
            flat += [key, value]
        created = await self._create(
            keys=[self._key(stream_id, "meta"), self._key(stream_id, "lease")],
            args=["1" if replace else "0", _ms(lease), _ms(ttl), *flat],
        )
        if created and conversation_id is not None:
            await self.client.set(self._conversation(conversation_id), stream_id, px=_ms(lease))
        return bool(created)

    async def append(self, stream_id: str, entry_id: int, fields: Fields) -> AppendResult:
        """Queued: the appends of every stream of this log object that are due together go to
        Redis in one pipeline (one round trip for hundreds of streams, not one each)."""
        args: list[bytes | str] = [
            self._key(stream_id, "log"), self._key(stream_id, "meta"), f"{entry_id}-0"
        ]  # fmt: skip
        for key, value in fields.items():
            args += [key, value]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._appends.append((args, future))
        if self._appender is None:
            self._appender = asyncio.get_running_loop().create_task(self._send_appends())
        result = await future
        status = result.decode() if isinstance(result, bytes) else str(result)
        if status not in ("added", "duplicate", "lost"):
            raise ResponseError(f"unexpected reply to an append: {status!r}")
        return cast(AppendResult, status)

    async def _send_appends(self) -> None:
        """Send the queued appends, a pipeline at a time (those queued meanwhile go in the
        next one); each reply, or the pipeline's error, goes to its own append."""
        try:
            while self._appends:
                batch: list[tuple[list[bytes | str], asyncio.Future[Any]]] = []
                size = 0
                while self._appends and len(batch) < _PIPELINE_COMMANDS and size < _PIPELINE_BYTES:
                    item = self._appends.popleft()
                    if not item[1].done():  # its producer was cancelled meanwhile
                        batch.append(item)
                        size += sum(len(a) for a in item[0])
                self._sending = batch
                try:
                    results = await self._pipeline_appends([args for args, _ in batch])
                except Exception as err:  # a connection error: each producer retries
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._appender = None
            self._sending = []

    async def _pipeline_appends(self, batch: list[list[bytes | str]]) -> list[Any]:
        sha = self._append.sha
        results: list[Any] = [None] * len(batch)
        todo = list(range(len(batch)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                pipe.evalsha(sha, 2, *batch[i])
            replies = await pipe.execute(raise_on_error=False)
            missing = []
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(i)  # a server without the script (restarted): load it
                else:
                    results[i] = reply
            if not missing:
                break
            await self.client.script_load(_APPEND)
            todo = missing
        return results

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
        log_key = self._key(stream_id, "log")
        meta_key = self._key(stream_id, "meta")
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(log_key, fields, id=f"{entry_id}-0")  # type: ignore[arg-type]
        pipe.hset(meta_key, mapping=meta)  # type: ignore[arg-type]
        pipe.delete(self._key(stream_id, "lease"))
        pipe.pexpire(log_key, _ms(ttl))
        pipe.pexpire(meta_key, _ms(ttl))
        results = await pipe.execute(raise_on_error=False)
        added = results[0]
        if isinstance(added, ResponseError) and "equal or smaller" not in str(added):
            raise added
        for result in results[1:]:
            if isinstance(result, BaseException):
                raise result
        if conversation_id is not None:
            await self._release(keys=[self._conversation(conversation_id)], args=[stream_id])

    async def read(
        self, stream_id: str, after: int, count: int, block: float | None
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        if self._closed:
            raise _closed(stream_id)
        key = self._key(stream_id, "log")
        if block is None:
            # Entry ids are "N-0": the entries after N are those from N+1 on.
            reply: Any = await self._range(keys=[key], args=[f"{after + 1}-0", count, _RANGE_BYTES])
            return [_ranged(item) for item in reply]
        tail = self._tails.get(stream_id)
        if tail is None:
            tail = self._tails[stream_id] = _Tail(self, stream_id, key)
        return await tail.wait(after, count, block)

    async def xread(
        self, key: str, after: int, count: int, block: float
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        """One ``XREAD BLOCK`` of the entries after ``after`` (up to ``block`` seconds)."""
        reply: Any = await self.client.xread({key: f"{after}-0"}, count=count, block=_ms(block))
        if not reply:
            return []
        # RESP2: [[key, [(id, fields), ...]]]; RESP3: {key: [[(id, fields), ...]]}
        if isinstance(reply, dict):
            items = next(iter(reply.values()))
            items = items[0] if items and isinstance(items[0], list) else items
        else:
            items = reply[0][1]
        return [(_entry_id(entry_id), fields) for entry_id, fields in items]

    def forget_tail(self, tail: _Tail) -> None:
        if self._tails.get(tail.stream_id) is tail:
            del self._tails[tail.stream_id]

    async def last_entry(self, stream_id: str) -> int | None:
        found: Any = await self.client.xrevrange(self._key(stream_id, "log"), count=1)
        return _entry_id(found[0][0]) if found else None

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        raw = cast("dict[bytes, bytes]", await self.client.hgetall(self._key(stream_id, "meta")))
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def lease_alive(self, stream_id: str) -> bool:
        return bool(await self.client.exists(self._key(stream_id, "lease")))

    async def heartbeat(
        self,
        stream_ids: list[str],
        conversations: dict[str, str],
        *,
        lease: float,
        ttl: float,
    ) -> set[str]:
        pipe = self.client.pipeline(transaction=False)
        lease_ms, ttl_ms = _ms(lease), _ms(ttl)
        for stream_id in stream_ids:
            pipe.set(self._key(stream_id, "lease"), "1", px=lease_ms)
            pipe.pexpire(self._key(stream_id, "meta"), ttl_ms)
            pipe.pexpire(self._key(stream_id, "log"), ttl_ms)
            pipe.hget(self._key(stream_id, "meta"), "cancel")
        for stream_id, conversation_id in conversations.items():
            pipe.set(self._conversation(conversation_id), stream_id, px=lease_ms)
        results = await pipe.execute()
        return {
            stream_id for i, stream_id in enumerate(stream_ids) if results[4 * i + 3] is not None
        }

    async def request_cancel(self, stream_id: str) -> None:
        await self._cancel(
            keys=[self._key(stream_id, "meta")],
            args=[self._key(stream_id, "cancel"), stream_id],
        )

    async def watch_cancels(self, stream_id: str, callback: Callable[[str], None]) -> None:
        self._watchers[stream_id] = callback
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        assert self._subscribed is not None
        # Until the pattern subscription is in place a cancel is still seen, by the heartbeat.
        await asyncio.wait(
            {asyncio.ensure_future(self._subscribed.wait()), self._listener},
            return_when=asyncio.FIRST_COMPLETED,
        )

    async def unwatch_cancels(self, stream_id: str) -> None:
        self._watchers.pop(stream_id, None)

    async def _listen(self) -> None:
        """One pattern subscription per log object for the cancels of all its producers."""
        pattern = f"{self.prefix}:*:cancel"
        delay = 0.05
        warned = False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                assert self._subscribed is not None
                self._subscribed.set()
                delay, warned = 0.05, False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    data = message["data"]
                    stream_id = data.decode() if isinstance(data, bytes) else str(data)
                    callback = self._watchers.get(stream_id)
                    if callback is not None:
                        callback(stream_id)
            except self.connection_errors as err:
                # Cancels sent meanwhile are picked up by the heartbeat (the meta's flag).
                if not warned:
                    log.warning("stream log cancel listener lost Redis, reconnecting: %s", err)
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception as err:  # the connection is gone already
                    log.debug("closing the cancel listener failed: %s", err)

    async def find_active(self, conversation_id: str) -> str | None:
        found = cast("bytes | None", await self.client.get(self._conversation(conversation_id)))
        return None if found is None else found.decode()

    async def aclose(self) -> None:
        self._closed = True
        appender, unsent = self._appender, [*self._sending, *self._appends]
        self._appends.clear()
        if appender is not None:  # the producers have written their ends: nothing is queued
            appender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await appender
        for _, future in unsent:
            if not future.done():
                future.set_exception(_closed(None))
        for tail in list(self._tails.values()):
            await tail.aclose()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self.owned:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


class RedisStreamLog(StreamLog):
    """A stream log on Redis Streams: publish in one process, read, resume and cancel in any.

    Args:
        url: a ``redis://`` / ``rediss://`` / ``unix://`` URL, or a ``redis.asyncio.Redis``
            client (``decode_responses`` must be off; it is not closed by ``aclose``). Default:
            ``$REDIS_URL``, else ``redis://127.0.0.1:6379/0``.
        prefix: the first part of every key (default ``rxchat``).
        max_connections: connections to Redis this log object opens at most (default 256, for a
            URL). The following readers of one stream share one connection while they wait for
            its next entry (up to a second); readers of different streams wait on one each.
            Past this many, round trips wait for a free connection.
        **options: see :class:`rxchat.LogOptions`.

    Raises:
        ValueError: a client that decodes responses, or a prefix with braces.

    >>> log = rxchat.redis.RedisStreamLog("redis://127.0.0.1:6379/0")   # doctest: +SKIP
    >>> handle = await log.publish(client.chat.completions.observe(...))  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str | aioredis.Redis | None = None,
        *,
        prefix: str = "rxchat",
        max_connections: int = 256,
        **options: Unpack[LogOptions],
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces, not {prefix!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be an integer, not {max_connections!r}")
        if max_connections < 2:
            raise ValueError(f"max_connections must be >= 2, not {max_connections}")
        if url is None or isinstance(url, str):
            # A blocking pool: a burst of streams waits for a connection instead of failing
            # (redis-py's default pool raises past 100 connections).
            pool = aioredis.BlockingConnectionPool.from_url(
                url or os.environ.get("REDIS_URL") or DEFAULT_URL,
                max_connections=max_connections,
                timeout=None,
                socket_connect_timeout=5.0,
                socket_timeout=10.0,  # longer than any blocking read (at most 1 s)
                retry=Retry(NoBackoff(), 1),  # one quick retry; the log's own loop backs off
            )
            client = aioredis.Redis(connection_pool=pool)
            owned = True
        else:
            kwargs: dict[str, Any] = url.connection_pool.connection_kwargs
            if kwargs.get("decode_responses"):
                raise ValueError("the Redis client must not decode responses (decode_responses)")
            client = url
            owned = False
        self.client = client
        super().__init__(_RedisBackend(client, prefix, owned), **options)
