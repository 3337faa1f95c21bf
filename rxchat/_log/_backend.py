"""What a stream log needs from its storage: a handful of primitives, written once per engine.

The producer and reader logic (``_core.py``) is written once over these; the in-memory and the
Redis backends implement them with the same semantics. Entry ids are positive integers, strictly
increasing within a stream (in Redis, the stream entry id ``N-0``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

from ._codec import Fields

__all__ = ["AppendResult", "Backend"]

AppendResult = Literal["added", "duplicate", "lost"]


class Backend(ABC):
    """Storage primitives of a stream log."""

    connection_errors: tuple[type[BaseException], ...] = ()
    """Exceptions that mean "the server is unreachable for now": retried with backoff."""

    @abstractmethod
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
        """Create a running stream (meta, lease); False when it exists (and not ``replace``)."""

    @abstractmethod
    async def append(self, stream_id: str, entry_id: int, fields: Fields) -> AppendResult:
        """Add an entry: ``added``; ``duplicate`` when an entry with this id or a later one is
        there already (a retried write that had gone through); ``lost`` when it was added but the
        stream's meta is gone (the server lost the stream's data)."""

    @abstractmethod
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
        """Add the terminal entry, update the meta, drop the lease and the conversation's pointer,
        and let every key of the stream expire after ``ttl`` seconds; atomically."""

    @abstractmethod
    async def read(
        self, stream_id: str, after: int, count: int, block: float | None
    ) -> list[tuple[int, dict[bytes, bytes]]]:
        """Up to ``count`` entries with id > ``after``; when there are none, wait up to ``block``
        seconds for one (``None``: do not wait). A backend may return consecutive chunk entries
        merged into one (``f`` = the first's first position, id = the last's id, ``d`` = their
        lines), as the catch-up of Redis does."""

    @abstractmethod
    async def last_entry(self, stream_id: str) -> int | None:
        """The id of the stream's last entry; None when it has none (or does not exist)."""

    @abstractmethod
    async def meta(self, stream_id: str) -> dict[str, str] | None:
        """The stream's meta fields; None when the stream does not exist."""

    @abstractmethod
    async def lease_alive(self, stream_id: str) -> bool:
        """Whether the producer's lease is current."""

    @abstractmethod
    async def heartbeat(
        self,
        stream_ids: list[str],
        conversations: dict[str, str],
        *,
        lease: float,
        ttl: float,
    ) -> set[str]:
        """Renew the leases (and the running TTL) of the given streams in one round trip;
        return those for which a cancel was requested."""

    @abstractmethod
    async def request_cancel(self, stream_id: str) -> None:
        """Record a cancel request and notify the producer, wherever it runs."""

    @abstractmethod
    async def watch_cancels(self, stream_id: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(stream_id)`` (on this loop) when a cancel is requested."""

    @abstractmethod
    async def unwatch_cancels(self, stream_id: str) -> None:
        """Stop watching ``stream_id``."""

    @abstractmethod
    async def find_active(self, conversation_id: str) -> str | None:
        """The running stream that answers a conversation, if any."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to close by default
        """Release connections."""
