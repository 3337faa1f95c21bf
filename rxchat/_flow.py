"""Back-pressure from a bounded async bridge to the task that reads the socket.

reactivex observers are synchronous: ``on_next`` cannot make the source wait. rxchat's live
sources read the socket in a task created when they are subscribed, so the bridge subscribes with
a :class:`FlowGate` in a context variable; the reading task inherits it and, between two network
reads, waits while the gate is closed. Sources that do not read from rxchat's transport never see
the gate; ``ops.broadcast()`` clears it, so one slow consumer never pauses a shared stream.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

__all__ = ["FLOW_GATE", "FlowGate"]


class FlowGate:
    """Closed while the consumer's buffer is full; the reading task waits at the next read."""

    __slots__ = ("_waiter", "closed")

    def __init__(self) -> None:
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def close(self) -> None:
        self.closed = True

    def open(self) -> None:
        self.closed = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_open(self) -> None:
        while self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


FLOW_GATE: ContextVar[FlowGate | None] = ContextVar("rxchat_flow_gate", default=None)
