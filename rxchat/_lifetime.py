"""What happens to rxchat's connections at ``fork()`` and at interpreter exit.

Each transport registers here, with the event loop its aiohttp session is bound to, when it
creates that session. Two events use the registry:

* **Interpreter exit.** The synchronous ``Client`` runs its sessions on the background loop of
  :mod:`rxchat._portal`, which lives in a daemon thread. At exit that thread is frozen before the
  module globals are torn down, so anything left to close then would wait for it forever. The
  portal therefore closes what is bound to its loop from an ``atexit`` handler, while the thread
  still runs (:func:`sessions_of`).
* **fork().** A forked child inherits copies of the parent's loop, sessions and sockets, not the
  thread that ran them. Closing those copies in the child would act on the parent's connections:
  the epoll instance is shared by both processes (unregistering a socket in the child
  unregisters it in the parent) and a TLS close would send ``close_notify`` on the parent's
  connection. So, right after ``fork()``, every registered holder forgets its session in the
  child without closing it (:func:`abandon_session`), and creates a fresh one on first use.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any, Protocol

__all__ = [
    "SessionHolder",
    "abandon_session",
    "exiting_loops",
    "sessions_of",
    "track_session",
]


class SessionHolder(Protocol):
    """What a transport offers the registry (``HTTPTransport`` is one)."""

    async def aclose(self) -> None:
        """Close the session and its connections (at interpreter exit)."""

    def forget_inherited_session(self) -> None:
        """In a forked child: drop the parent's session unclosed (see :func:`abandon_session`)."""


_holders: weakref.WeakKeyDictionary[SessionHolder, asyncio.AbstractEventLoop] = (
    weakref.WeakKeyDictionary()
)
# Loops whose portal shuts down at interpreter exit. Closing a session there must not wake its
# readers with an error: only daemon threads are left, and they stay blocked, quietly, as in any
# other I/O, until the interpreter stops them (the portal's shutdown() and the transport's close).
exiting_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
# The parent's objects, kept alive in the child so that their finalizers never run early.
_inherited: list[Any] = []


def track_session(holder: SessionHolder, loop: asyncio.AbstractEventLoop) -> None:
    """Register ``holder``, whose session was just created on ``loop``."""
    _holders[holder] = loop


def sessions_of(loop: asyncio.AbstractEventLoop) -> list[SessionHolder]:
    """The live holders whose session is bound to ``loop``."""
    return [holder for holder, bound in list(_holders.items()) if bound is loop]


def abandon_session(session: Any) -> None:
    """Make an inherited aiohttp session inert in a forked child, without any I/O.

    ``ClientSession.detach()`` (public) marks the session closed; the connector is marked closed
    through its ``_closed`` flag (aiohttp private: ``BaseConnector.__del__`` and ``_close()``
    return early on it, instead of closing the parent's connections; checked by
    ``tests/test_lifetime.py::test_aiohttp_connector_closed_flag``). The objects stay referenced
    until the child exits.
    """
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._closed = True
    _inherited.append((session, connector))


def inherit(obj: Any) -> None:
    """Keep one of the parent's objects (a loop, a portal) alive in the child."""
    _inherited.append(obj)


def _after_fork_in_child() -> None:
    holders = list(_holders.keys())
    _holders.clear()
    for holder in holders:
        holder.forget_inherited_session()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
