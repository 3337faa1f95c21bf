"""``rxchat.mock.run`` serves until interrupted (what ``rxchat serve`` uses)."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp


async def test_run_prints_url_serves_and_exits_on_sigint() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from rxchat.mock import run; run(port=0, api_key='k')",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("rxchat mock server listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        assert url.endswith("/v1")
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/models", headers={"Authorization": "Bearer k"}) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["object"] == "list"
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
        assert proc.stderr is not None
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
