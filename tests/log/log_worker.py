"""A separate process for the multi-process stream log tests (and the benchmark).

    python log_worker.py produce REDIS PREFIX STREAM_ID BASE_URL MODEL [LEASE]
    python log_worker.py read REDIS PREFIX STREAM_ID AFTER [LEASE]
    python log_worker.py cancel REDIS PREFIX STREAM_ID

Each prints ``{"ready": true}`` and waits for a line on stdin, then prints JSON lines on stdout, flushed: ``{"published": id}`` / ``{"p": position, "t": text}``
per chunk / ``{"end": "completed" | error class, ...}`` / ``{"cancelled": bool, "at": monotonic}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import rxchat
import rxchat.redis

USER = [{"role": "user", "content": "Hello"}]


def emit(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def produce(
    url: str, prefix: str, stream_id: str, base_url: str, model: str, lease: float
) -> None:
    async with rxchat.redis.RedisStreamLog(
        url, prefix=prefix, lease=lease, flush_interval=0.005, give_up_after=20.0
    ) as log:
        source = rxchat.chat_completion_stream(
            model=model, messages=USER, base_url=base_url, api_key="unused"
        )
        handle = await log.publish(source, stream_id=stream_id)
        emit(published=handle.stream_id)
        try:
            info = await handle.wait()
        except rxchat.RxChatError as err:
            emit(end=type(err).__name__, message=str(err))
            return
        emit(end=info.status, chunks=info.chunks)


async def read(url: str, prefix: str, stream_id: str, after: int, lease: float) -> None:
    async with rxchat.redis.RedisStreamLog(
        url, prefix=prefix, lease=lease, give_up_after=20.0
    ) as log:
        try:
            async for chunk in log.read(stream_id, after=after):
                emit(p=chunk.position, t=chunk.text)
        except rxchat.RxChatError as err:
            completion = err.completion
            emit(
                end=type(err).__name__,
                at=time.monotonic(),
                message=str(err),
                content=None if completion is None else completion.choices[0].message.content,
            )
            return
        emit(end="completed", at=time.monotonic())


async def cancel(url: str, prefix: str, stream_id: str) -> None:
    async with rxchat.redis.RedisStreamLog(url, prefix=prefix) as log:
        at = time.monotonic()
        emit(cancelled=await log.cancel(stream_id), at=at)


def main() -> None:
    mode, url, prefix, stream_id, *rest = sys.argv[1:]
    # Imports are done: say so, then wait for the go (a loaded machine takes seconds to import,
    # which must not count in what a test observes).
    emit(ready=True)
    sys.stdin.readline()
    if mode == "produce":
        lease = float(rest[2]) if len(rest) > 2 else 1.0
        asyncio.run(produce(url, prefix, stream_id, rest[0], rest[1], lease))
    elif mode == "read":
        lease = float(rest[1]) if len(rest) > 1 else 1.0
        asyncio.run(read(url, prefix, stream_id, int(rest[0]), lease))
    elif mode == "cancel":
        asyncio.run(cancel(url, prefix, stream_id))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
