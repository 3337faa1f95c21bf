"""Helpers shared by the mock-server tests (imported by conftest and the test modules)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

USER = [{"role": "user", "content": "Tell me about streams"}]


@dataclass
class Result:
    status: int
    headers: Any
    raw: bytes
    error: BaseException | None = None
    frames: list[bytes] = field(default_factory=list)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """Parsed ``data:`` JSON chunks (the ``[DONE]`` sentinel excluded)."""
        out = []
        for f in self.frames:
            assert f.startswith(b"data: "), f
            payload = f[len(b"data: ") :]
            if payload != b"[DONE]":
                out.append(orjson.loads(payload))
        return out

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)

    def content(self, index: int = 0, field_name: str = "content") -> str:
        return "".join(
            c["choices"][0]["delta"].get(field_name) or ""
            for c in self.chunks
            if c["choices"] and c["choices"][0]["index"] == index
        )


def split_frames(raw: bytes) -> list[bytes]:
    assert raw == b"" or raw.endswith(b"\n\n"), raw[-200:]
    return [f for f in raw.split(b"\n\n") if f]


Post = Callable[..., Awaitable[Result]]


def make_post(base_url: str, http: aiohttp.ClientSession) -> Post:
    """``await post(model="mock", stream=True, **body)`` -> ``Result`` (raw bytes kept).

    ``tokens=N`` is appended to the model name as the ``tokens`` mock option.

    Keyword ``headers=`` adds request headers; ``body=`` replaces the JSON body entirely;
    ``path=`` changes the route. A transport error while reading is kept in ``Result.error``.
    """

    async def _post(
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        path: str = "/chat/completions",
        raw_body: bytes | None = None,
        tokens: int | None = None,
        **params: Any,
    ) -> Result:
        if body is None and raw_body is None:
            body = {"model": "mock", "messages": USER, **params}
            if tokens is not None:
                sep = "&" if "?" in body["model"] else "?"
                body["model"] = f"{body['model']}{sep}tokens={tokens}"
        data = raw_body if raw_body is not None else orjson.dumps(body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        async with http.post(base_url + path, data=data, headers=hdrs) as resp:
            raw = b""
            error: BaseException | None = None
            try:
                async for piece in resp.content.iter_any():
                    raw += piece
            except aiohttp.ClientError as err:
                error = err
            result = Result(resp.status, resp.headers, raw, error)
            if (
                resp.headers.get("Content-Type", "").startswith("text/event-stream")
                and error is None
            ):
                result.frames = split_frames(raw)
            return result

    return _post
