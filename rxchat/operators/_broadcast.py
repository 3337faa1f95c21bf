"""``broadcast``: one upstream subscription (one HTTP request) shared by every subscriber."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable

from .._flow import FLOW_GATE
from ..events import ChunkEvent
from ..types import ChatCompletionChunk

__all__ = ["broadcast"]

_T = TypeVar("_T")
# Generic over the Observable (not its items): mypy then chains it with generic operators.
_ObservableT = TypeVar("_ObservableT", bound=Observable[Any])
log = logging.getLogger("rxchat")


def _is_snapshot(item: object) -> bool:
    """A ``chunk`` event carrying the running snapshot (what ``ops.accumulate()`` emits).

    Decided by class, never by reading ``.snapshot``: reading it brings the snapshot up to date,
    work that a chunk nobody late asks for should not pay.
    """
    return isinstance(item, ChunkEvent)


class _Subscriber(Generic[_T]):
    __slots__ = ("active", "observer")

    def __init__(self, observer: abc.ObserverBase[_T]) -> None:
        self.observer = observer
        self.active = True


class _Shared(Generic[_T]):
    """The state of one broadcast: subscribers, history for late ones, the upstream link."""

    def __init__(self, source: Observable[_T]) -> None:
        self.source = source
        self.lock = threading.RLock()
        self.subscribers: list[_Subscriber[_T]] = []
        # What a late subscriber is replayed. From a network chunk source (one with
        # ``subscribe_batches``), the JSON texts of the chunks as received, where the decoder
        # kept them: strings are not tracked by the cyclic garbage collector, while thousands
        # of chunk models kept alive made every full collection walk them all (measured: the
        # broadcast cost 5x the source itself per chunk; with texts, about the same).
        self.history: list[Any] = []
        self.texts = False  # whether str items of history are chunk texts to rebuild
        self.upstream: SingleAssignmentDisposable | None = None
        self.generation = 0
        self.done = False
        self.error: Exception | None = None

    # -- downstream ---------------------------------------------------------------------------

    def subscribe(
        self, observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        with self.lock:
            sub = _Subscriber(observer)
            # The lock is held while replaying, so no live item can overtake the history.
            texts = self.texts
            for item in list(self.history):
                if texts and type(item) is str:
                    item = ChatCompletionChunk.from_json(item)
                if not self._deliver(sub, item):
                    return Disposable()
            if self.done:
                self._terminate(sub)
                return Disposable()
            self.subscribers.append(sub)
            if self.upstream is None:
                self._connect(scheduler)
        return Disposable(lambda: self._detach(sub))

    def _detach(self, sub: _Subscriber[_T]) -> None:
        with self.lock:
            if not sub.active:
                return
            sub.active = False
            self.subscribers.remove(sub)
            if not self.subscribers and not self.done:
                self._disconnect()

    # -- upstream -----------------------------------------------------------------------------

    def _connect(self, scheduler: abc.SchedulerBase | None) -> None:
        self.generation += 1
        generation = self.generation
        link = SingleAssignmentDisposable()
        self.upstream = link

        def on_next(item: _T) -> None:
            with self.lock:
                if generation != self.generation or self.done:
                    return
                if _is_snapshot(item):
                    self.history = [item]  # the snapshot holds everything before it
                else:
                    self.history.append(item)
                for sub in list(self.subscribers):
                    if sub.active:
                        self._deliver(sub, item)

        def on_error(err: Exception) -> None:
            with self.lock:
                if generation != self.generation or self.done:
                    return
                self.done = True
                self.error = err
                self._finish_all()

        def on_completed() -> None:
            with self.lock:
                if generation != self.generation or self.done:
                    return
                self.done = True
                self._finish_all()

        def on_batch(chunks: list[_T], payloads: list[str | None] | None) -> None:
            with self.lock:
                if generation != self.generation or self.done:
                    return
                if payloads is None:
                    self.history.extend(chunks)
                else:
                    self.history.extend(
                        chunk if text is None else text
                        for chunk, text in zip(chunks, payloads, strict=True)
                    )
                for chunk in chunks:
                    for sub in list(self.subscribers):
                        if sub.active:
                            self._deliver(sub, chunk)
                    if generation != self.generation:  # the last subscriber left meanwhile
                        return

        def subscribe_upstream() -> abc.DisposableBase:
            # A shared stream is never paused by one consumer's bounded bridge.
            FLOW_GATE.set(None)
            batches = getattr(self.source, "subscribe_batches", None)
            if batches is not None:  # a network chunk source: keep the texts, not the models
                self.texts = True
                return cast(
                    abc.DisposableBase,
                    batches(on_batch, on_error, on_completed, scheduler=scheduler),
                )
            self.texts = False
            return self.source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        link.disposable = contextvars.copy_context().run(subscribe_upstream)

    def _disconnect(self) -> None:
        """The last subscriber left before the end: cancel the upstream, forget its history."""
        link, self.upstream = self.upstream, None
        self.generation += 1
        self.history = []
        self.texts = False
        if link is not None:
            link.dispose()

    def _finish_all(self) -> None:
        subscribers, self.subscribers = self.subscribers, []
        self.upstream = None
        for sub in subscribers:
            if sub.active:
                self._terminate(sub)

    # -- delivery, isolating each subscriber's failures ------------------------------------------

    def _deliver(self, sub: _Subscriber[_T], item: _T) -> bool:
        try:
            sub.observer.on_next(item)
        except Exception as err:
            self._drop(sub, err)
            return False
        return True

    def _drop(self, sub: _Subscriber[_T], err: Exception) -> None:
        """A subscriber's on_next raised: detach it and hand it the error, others go on."""
        sub.active = False
        listed = sub in self.subscribers
        if listed:
            self.subscribers.remove(sub)
        try:
            sub.observer.on_error(err)
        except Exception:
            log.error("a broadcast subscriber failed and has no error handler", exc_info=err)
        if listed and not self.subscribers and not self.done:
            self._disconnect()

    def _terminate(self, sub: _Subscriber[_T]) -> None:
        sub.active = False
        try:
            if self.error is not None:
                sub.observer.on_error(self.error)
            else:
                sub.observer.on_completed()
        except Exception as err:
            log.error("a broadcast subscriber's end handler raised", exc_info=err)


def broadcast() -> Callable[[_ObservableT], _ObservableT]:
    """Share one upstream subscription — one HTTP request — between all subscribers.

    Hot and reference-counted: the first subscriber starts the upstream; later ones join the
    running stream; when the last one leaves before the end, the upstream is disposed (the
    request cancelled, the connection closed) and a new subscriber would start afresh.

    Late subscribers first receive what they missed, then the live items:

    * for event streams (``ops.accumulate()`` and the operators after it), the latest ``chunk``
      event — its ``snapshot`` holds everything so far — and the events that followed it
      (those of the same chunk); memory stays constant;
    * for anything else (raw chunks, ``str`` deltas), every item so far, so that nothing is
      missing; memory grows with the answer, as an accumulated answer would. The chunks of a
      network source (``chat_completion_stream``, ``observe()``) are kept as the JSON texts the
      server sent and rebuilt for the late subscriber: thousands of chunk models kept alive
      would make every full garbage collection walk them (5x the source's own CPU per chunk).

    Once the upstream has ended, new subscribers get the same replay and the same end
    (completion or error): a finished answer is never requested twice.

    An exception raised in one subscriber's ``on_next`` detaches that subscriber and is sent to
    its ``on_error`` (logged on the ``rxchat`` logger when it has none); the others go on.

    ::

        upstream:     --c1--c2--c3--c4--|
        subscriber A: --c1--c2--c3--c4--|          (subscribed first: starts the request)
        subscriber B:         (c1 c2)c3--c4--|     (joined after c2: gets c1, c2 at once)

        with events:  --e1--e2--e3--|              (e = chunk event with .snapshot)
        subscriber B:         (e2)e3--|            (joined after e2: gets e2's snapshot)

    Returns:
        An operator ``Observable[T] -> Observable[T]``; subscribe to its result several times
        (not to a new ``pipe`` each time, which would create a new broadcast).

    >>> shared = rxchat.chat_completion_stream(model=m, messages=msgs).pipe(
    ...     ops.accumulate(), ops.broadcast())             # doctest: +SKIP
    >>> shared.pipe(ops.text()).subscribe(print)           # doctest: +SKIP
    >>> shared.pipe(ops.final_completion()).subscribe(save)  # same request  # doctest: +SKIP
    """

    def operator(source: Observable[_T]) -> Observable[_T]:
        shared: _Shared[_T] = _Shared(source)
        return Observable(shared.subscribe)

    return cast(Callable[[_ObservableT], _ObservableT], operator)
