"""A second worker process for the resume tests: the chat app on its own port, over the same
Redis stream log. Usage: python relay_worker.py REDIS_URL PREFIX MOCK_URL; prints its base URL."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

import rxchat.redis
from rxchat import relay


async def main(redis_url: str, prefix: str, mock_url: str) -> None:
    async with rxchat.redis.RedisStreamLog(redis_url, prefix=prefix, flush_interval=0.005) as log:
        app = relay.chat_app(base_url=mock_url, log=log)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
