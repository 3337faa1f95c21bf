"""What the mock server records (:class:`MockState`): request log, stream outcomes, fault
counters. Not the stream state of the client side (:mod:`rxchat._state`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DisconnectRecord", "MockState", "RequestRecord", "StreamRecord"]


@dataclass(slots=True)
class RequestRecord:
    """One request as the server received it (``Authorization`` and API-key headers removed)."""

    request_id: str
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass(slots=True)
class StreamRecord:
    """One streamed response and how it ended.

    ``outcome`` is ``None`` while streaming, then one of ``"completed"`` (``[DONE]`` written),
    ``"disconnected"`` (the client went away), ``"dropped"`` (``drop_after`` fault),
    ``"error_frame"`` (``error_after`` / ``event_error_after``), ``"no_done"``.
    ``ended_at`` is ``time.monotonic()`` when the server noticed the end.
    ``texts`` is the content (or refusal) text planned per choice (kept only while the
    state's ``record_texts`` is true).
    """

    request_id: str
    _choices: list[Any] | None = field(default=None, repr=False)
    chunks: int = 0
    outcome: str | None = None
    ended_at: float | None = None
    _state: MockState | None = field(default=None, repr=False)

    def finish(self, outcome: str) -> None:
        """Record the end of the stream (first call wins)."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        self.ended_at = time.monotonic()
        if self._state is not None:
            if not self._state.record_texts:
                self._choices = None
            self._state.notify()

    @property
    def texts(self) -> list[str]:
        """The planned content (or refusal) text of each choice.

        Raises:
            LookupError: texts were not recorded (``MockState(record_texts=False)``).
        """
        if self._choices is None:
            raise LookupError("texts are not recorded (MockState(record_texts=False))")
        return [c.text for c in self._choices]


@dataclass(frozen=True, slots=True)
class DisconnectRecord:
    """A stream whose client disconnected: request id, chunks written, monotonic time noticed."""

    request_id: str
    chunks: int
    at: float


class MockState:
    """Everything the mock server records; share one between apps or inspect it in tests.

    Args:
        record_texts: keep each stream's planned text after it ends (``StreamRecord.texts``);
            turn off for long load runs so memory does not grow with the total output.

    Example:
        >>> state = MockState()
        >>> state.completed
        0
    """

    def __init__(self, *, record_texts: bool = True) -> None:
        self.record_texts = record_texts
        self.requests: list[RequestRecord] = []
        self.streams: list[StreamRecord] = []
        self.active_streams = 0
        self.counters: dict[str, int] = {}
        self.handler_cancellation = False
        self._seq = 0
        self._waiters: list[asyncio.Future[None]] = []

    def next_request_id(self) -> str:
        """A new ``req_<n>`` id (sequential per state)."""
        self._seq += 1
        return f"req_{self._seq:06d}"

    def bump(self, key: str) -> int:
        """Count one more request for a ``fail_times`` key; returns the new count."""
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    @property
    def disconnects(self) -> list[DisconnectRecord]:
        """Streams the client abandoned, in the order the server noticed."""
        out = [
            DisconnectRecord(s.request_id, s.chunks, s.ended_at or 0.0)
            for s in self.streams
            if s.outcome == "disconnected"
        ]
        out.sort(key=lambda d: d.at)
        return out

    @property
    def completed(self) -> int:
        """Number of streams that ended normally with ``[DONE]``."""
        return sum(1 for s in self.streams if s.outcome == "completed")

    def stream(self, request_id: str) -> StreamRecord:
        """The stream record of a request id.

        Raises:
            KeyError: no stream with that id.
        """
        for s in self.streams:
            if s.request_id == request_id:
                return s
        raise KeyError(request_id)

    def add_request(self, record: RequestRecord) -> None:
        """Record a request (the app calls it for each request it receives)."""
        self.requests.append(record)
        self.notify()

    def start_stream(self, request_id: str, choices: list[Any] | None) -> StreamRecord:
        """Record a stream that begins (``choices``: the planned choices, for ``texts``)."""
        record = StreamRecord(request_id, choices, _state=self)
        self.streams.append(record)
        self.active_streams += 1
        self.notify()
        return record

    def end_stream(self, record: StreamRecord) -> None:
        """Record that the handler of a stream returned (its outcome is set by ``finish``)."""
        self.active_streams -= 1
        self.notify()

    def notify(self) -> None:
        """Wake the :meth:`wait_for` callers so they check their condition again (call it after
        changing the state outside the recording methods)."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; re-checked on every request and stream start or end.

        Raises:
            TimeoutError: still false after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"mock server condition not met within {timeout}s")
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, remaining)

    async def wait_for_disconnect(
        self, timeout: float = 5.0, *, count: int = 1
    ) -> DisconnectRecord:
        """Wait until at least ``count`` disconnects are recorded; returns the latest.

        Raises:
            TimeoutError: fewer than ``count`` after ``timeout`` seconds.
        """
        await self.wait_for(lambda: len(self.disconnects) >= count, timeout)
        return self.disconnects[-1]

    async def wait_for_idle(self, timeout: float = 5.0) -> None:
        """Wait until no stream is active.

        Raises:
            TimeoutError: streams still active after ``timeout`` seconds.
        """
        await self.wait_for(lambda: self.active_streams == 0, timeout)
