"""The stream log from three terminals: ``chat --publish``, ``tail``, ``cancel``."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from _redis_support import RedisServer

from rxchat.mock import MockServer

BOUND = 60.0  # functional bound: three interpreters start on a loaded machine


async def rxchat_cli(*args: str, redis: RedisServer) -> asyncio.subprocess.Process:
    env = {**os.environ, "REDIS_URL": redis.url}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxchat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_publish_tail_cancel_from_three_processes(
    redis_server: RedisServer, mock_server: MockServer
) -> None:
    chat = await rxchat_cli(
        "chat", "Hello", "--base-url", mock_server.url, "--api-key", "sk-unused",
        "--model", "mock?tokens=3000&delay=0.01", "--publish", "--plain",
        redis=redis_server,
    )  # fmt: skip
    assert chat.stderr is not None
    first = (await asyncio.wait_for(chat.stderr.readline(), BOUND)).decode()
    assert first.startswith("rxchat: stream ")
    stream_id = first.split()[-1]

    tail = await rxchat_cli("tail", stream_id, "--events", redis=redis_server)
    assert tail.stdout is not None
    events = []
    while len(events) < 20:
        line = await asyncio.wait_for(tail.stdout.readline(), BOUND)
        assert line, "tail ended early"
        events.append(json.loads(line))
    assert events[0]["type"] == "chunk"

    cancel = await rxchat_cli("cancel", stream_id, "--redis", redis_server.url, redis=redis_server)
    out, _ = await asyncio.wait_for(cancel.communicate(), BOUND)
    assert cancel.returncode == 0 and out.decode().strip() == f"cancelled {stream_id}"
    await mock_server.wait_for_disconnect(BOUND)

    tail_out, tail_err = await asyncio.wait_for(tail.communicate(), BOUND)
    assert tail.returncode == 1
    assert "StreamCancelledError" in tail_err.decode()
    chat_out, chat_err = await asyncio.wait_for(chat.communicate(), BOUND)
    assert chat.returncode == 1 and "StreamCancelledError" in chat_err.decode()
    # What chat showed is what tail saw: the partial answer.
    content = "".join(
        e["delta"]
        for e in events + [json.loads(x) for x in tail_out.decode().splitlines()]
        if e["type"] == "content.delta"
    )
    assert chat_out.decode().strip() == content.strip()

    again = await rxchat_cli("cancel", stream_id, redis=redis_server)
    out, _ = await asyncio.wait_for(again.communicate(), BOUND)
    assert again.returncode == 0 and "already ended (cancelled)" in out.decode()


async def test_tail_of_an_unknown_stream_is_an_error(redis_server: RedisServer) -> None:
    tail = await rxchat_cli("tail", "no-such-stream", redis=redis_server)
    _, err = await asyncio.wait_for(tail.communicate(), BOUND)
    assert tail.returncode == 1
    assert "StreamNotFoundError" in err.decode() and "no-such-stream" in err.decode()
