"""Plan -> SSE frames (byte-exact OpenAI wire format) and the streaming writer with faults."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ._plan import CREATED, SYSTEM_FINGERPRINT, ChoicePlan, Plan, logprob_entry
from ._providers import reshape_body, reshape_frames

if TYPE_CHECKING:
    from ._records import MockState, StreamRecord

__all__ = ["DONE", "FrameEncoder", "completion_body", "iter_frames", "write_stream"]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
_BATCH_BYTES = 256 * 1024
_POLL = 0.005


class FrameEncoder:
    """Encodes chunk frames of one response; token frames are cached per (choice, token)."""

    __slots__ = ("_cache", "_head", "_lp_content_first", "_tail", "_top")

    def __init__(self, plan: Plan) -> None:
        head = orjson.dumps(
            {
                "id": plan.id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": plan.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        )
        self._head = b"data: " + head[:-1] + b',"choices":['
        self._tail = b"]" + (b',"usage":null' if plan.include_usage else b"") + b"}\n\n"
        self._cache: dict[tuple[int, str, str], bytes] = {}
        self._top = plan.top_logprobs

    def choice(
        self, index: int, delta: dict[str, Any], logprobs: Any = None, finish: str | None = None
    ) -> bytes:
        body = orjson.dumps(
            {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        )
        return self._head + body + self._tail

    def token(self, index: int, field: str, tok: str) -> bytes:
        key = (index, field, tok)
        frame = self._cache.get(key)
        if frame is None:
            frame = self.choice(index, {field: tok})
            if len(self._cache) < 4096:
                self._cache[key] = frame
        return frame

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._head + b"]," + b'"usage":' + orjson.dumps(usage) + b"}\n\n"

    def raw(self, obj: Any) -> bytes:
        return b"data: " + orjson.dumps(obj) + b"\n\n"


def _choice_frames(c: ChoicePlan, enc: FrameEncoder, plan: Plan, finish: bool) -> Iterator[bytes]:
    i = c.index
    lp = plan.logprobs
    top = plan.top_logprobs
    if c.mode == "refusal":
        yield enc.choice(
            i,
            {"role": "assistant", "content": None, "refusal": ""},
            {"content": None, "refusal": []} if lp else None,
        )
    elif c.mode == "tools":
        first: dict[str, Any] = {"role": "assistant", "content": None}
        if c.tool_calls and not c.reasoning:
            t = c.tool_calls[0]
            first["tool_calls"] = [
                {
                    "index": 0,
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": ""},
                }
            ]
        first["refusal"] = None
        yield enc.choice(i, first)
    else:
        yield enc.choice(
            i,
            {"role": "assistant", "content": "", "refusal": None},
            {"content": [], "refusal": None} if lp else None,
        )
    for tok in c.reasoning:
        yield enc.token(i, "reasoning_content", tok)
    if c.mode == "tools":
        for k, t in enumerate(c.tool_calls):
            if k > 0 or c.reasoning:
                yield enc.choice(
                    i,
                    {
                        "tool_calls": [
                            {
                                "index": k,
                                "id": t.id,
                                "type": "function",
                                "function": {"name": t.name, "arguments": ""},
                            }
                        ]
                    },
                )
            for piece in t.pieces:
                yield enc.choice(
                    i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}
                )
    else:
        field = "refusal" if c.mode == "refusal" else "content"
        if lp:
            for pos, tok in enumerate(c.pieces):
                entry = [logprob_entry(tok, pos, top)]
                lpobj = (
                    {"content": None, "refusal": entry}
                    if field == "refusal"
                    else {"content": entry, "refusal": None}
                )
                yield enc.choice(i, {field: tok}, lpobj)
        else:
            for tok in c.pieces:
                yield enc.token(i, field, tok)
    if finish:
        yield enc.choice(i, {}, None, c.finish_reason)


def iter_frames(
    plan: Plan, enc: FrameEncoder | None = None, *, finish: bool = True
) -> Iterator[bytes]:
    """All ``data:`` chunk frames of the plan (choices interleaved round-robin), without ``[DONE]``.

    With ``finish=False`` the finish-reason and usage chunks are left out (the ``no_done`` fault).
    """
    enc = enc or FrameEncoder(plan)
    if len(plan.choices) == 1:
        yield from _choice_frames(plan.choices[0], enc, plan, finish)
    else:
        iters = [_choice_frames(c, enc, plan, finish) for c in plan.choices]
        while iters:
            alive = []
            for it in iters:
                frame = next(it, None)
                if frame is not None:
                    yield frame
                    alive.append(it)
            iters = alive
    if finish and plan.include_usage:
        yield enc.usage(plan.usage())


def completion_body(plan: Plan) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object for the plan."""
    choices = []
    for c in plan.choices:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        logprobs: Any = None
        if c.mode == "content":
            message["content"] = c.text
        elif c.mode == "refusal":
            message["refusal"] = c.text
        else:
            message["tool_calls"] = [
                {
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": "".join(t.pieces)},
                }
                for t in c.tool_calls
            ]
        if c.reasoning:
            message["reasoning_content"] = "".join(c.reasoning)
        if plan.logprobs:
            entries = [
                logprob_entry(tok, pos, plan.top_logprobs) for pos, tok in enumerate(c.pieces)
            ]
            if c.mode == "refusal":
                logprobs = {"content": None, "refusal": entries}
            else:
                logprobs = {"content": entries, "refusal": None}
        choices.append(
            {
                "index": c.index,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": c.finish_reason,
            }
        )
    body = {
        "id": plan.id,
        "object": "chat.completion",
        "created": CREATED,
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return reshape_body(plan.options.shape, body) if plan.options.shape else body


class ClientGone(Exception):
    """The client closed the connection while the server was streaming."""


class _Writer:
    """Per-frame writer: delays, stalls with keep-alives, drip, disconnect polling."""

    def __init__(
        self,
        request: web.BaseRequest,
        resp: web.StreamResponse,
        plan: Plan,
        rec: StreamRecord,
        state: MockState,
        delay: float,
    ) -> None:
        self.request = request
        self.resp = resp
        self.opts = plan.options
        self.rec = rec
        self.poll = not state.handler_cancellation
        self.delay = delay

    def gone(self) -> bool:
        t = self.request.transport
        return t is None or t.is_closing()

    async def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        end = now + seconds
        ka = self.opts.keepalive
        next_ka = now + ka if ka else math.inf
        while now < end:
            wake = min(end, next_ka)
            if self.poll:
                wake = min(wake, now + _POLL)
            await asyncio.sleep(wake - now)
            if self.gone():
                raise ClientGone
            now = loop.time()
            if now >= next_ka and now < end:
                await self.resp.write(KEEPALIVE)
                next_ka += ka or math.inf
                now = loop.time()

    async def emit(self, data: bytes) -> None:
        if self.opts.drip:
            for b in range(len(data)):
                await self.resp.write(data[b : b + 1])
                if self.opts.drip_delay > 0:
                    await self.pause(self.opts.drip_delay)
                else:
                    await asyncio.sleep(0)
                    if self.gone():
                        raise ClientGone
        else:
            await self.resp.write(data)


async def _drop(request: web.BaseRequest, rec: StreamRecord) -> None:
    transport = request.transport
    if transport is None:
        raise ClientGone
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    # close() (FIN) after the buffer drained rather than abort() (RST): an RST can make the
    # peer's kernel discard bytes it received but the client has not read yet.
    while transport.get_write_buffer_size() > 0 and loop.time() < deadline:
        await asyncio.sleep(0.001)
    rec.finish("dropped")
    transport.close()


def _error_payload(plan: Plan) -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing your request. (mock error_after fault)",
            "type": "server_error",
            "param": None,
            "code": "server_error",
        }
    }


async def write_stream(
    request: web.BaseRequest,
    resp: web.StreamResponse,
    plan: Plan,
    rec: StreamRecord,
    state: MockState,
    delay: float,
) -> None:
    """Write the whole SSE body of ``plan`` to the prepared ``resp``, applying the faults.

    Raises:
        ClientGone: the client disconnected (also surfaces as ConnectionError / CancelledError).
    """
    opts = plan.options
    enc = FrameEncoder(plan)
    frames = iter_frames(plan, enc, finish=not opts.no_done)
    if opts.shape:
        frames = reshape_frames(opts.shape, plan.id, frames)
    if delay <= 0 and not opts.has_stream_faults:
        # Fast path: batch frames into large writes; aiohttp drains once per batch.
        buf: list[bytes] = []
        size = 0
        count = 0
        for frame in frames:
            buf.append(frame)
            size += len(frame)
            count += 1
            if size >= _BATCH_BYTES:
                await resp.write(b"".join(buf))
                rec.chunks = count
                buf.clear()
                size = 0
        buf.append(DONE)
        await resp.write(b"".join(buf))
        rec.chunks = count
        rec.finish("completed")
        return

    w = _Writer(request, resp, plan, rec, state, delay)
    pending = {
        "bad_json": opts.bad_json_after,
        "unknown_shape": opts.unknown_shape_after,
        "invalid_utf8": opts.invalid_utf8_after,
        "error": opts.error_after,
        "event_error": opts.event_error_after,
        "drop": opts.drop_after,
    }

    async def fire(count: int, final: bool) -> bool:
        """Inject the faults due at ``count`` chunks; True when the body must end now."""
        for name in ("bad_json", "unknown_shape", "invalid_utf8", "error", "event_error", "drop"):
            at = pending[name]
            if at is None or (at != count and not (final and at > count)):
                continue
            pending[name] = None
            if name == "bad_json":
                await w.emit(b"data: {not json\n\n")
            elif name == "unknown_shape":
                await w.emit(enc.raw({"foo": 1, "choices": {"index": 0}}))
            elif name == "invalid_utf8":
                await w.emit(
                    b'data: {"id":"'
                    + plan.id.encode()
                    + b'","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\xff\xfe bad \xc3"},"logprobs":null,"finish_reason":null}]}\n\n'
                )
            elif name == "error":
                await w.emit(enc.raw(_error_payload(plan)))
                rec.finish("error_frame")
                return True
            elif name == "event_error":
                await w.emit(b"event: error\n" + enc.raw(_error_payload(plan)))
                rec.finish("error_frame")
                return True
            else:
                await _drop(request, rec)
                return True
        return False

    await w.pause(opts.stall_first)
    count = 0
    if await fire(0, False):
        return
    for frame in frames:
        if count > 0:
            gap = delay
            if opts.stall_between > 0 and (opts.stall_after is None or opts.stall_after == count):
                gap += opts.stall_between
            await w.pause(gap)
        await w.emit(frame)
        count += 1
        rec.chunks = count
        if await fire(count, False):
            return
    if await fire(count, True):
        return
    if not opts.no_done:
        await w.emit(DONE)
        rec.finish("completed")
    else:
        rec.finish("no_done")


def monotonic() -> float:
    """The clock used in records."""
    return time.monotonic()
