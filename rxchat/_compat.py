"""Every use of a dependency's internals (aiohttp, reactivex, pydantic), in one place.

rxchat needs a few things its dependencies have no public API for. Each one is a small function
or name here, and ``tests/test_compat.py`` exercises each against the installed version, so an
upgrade that renames or changes one fails that test loudly instead of breaking rxchat quietly.
:func:`self_check` builds real objects (a ``StreamReader`` and a ``ResponseHandler`` on a fresh
loop, an ``AsyncIOScheduler``, a pydantic model) and verifies each internal on them; cheap
enough to call at start-up; it is clean on the declared lower bounds (aiohttp 3.10.0, pydantic
2.5.0, reactivex 4.0.4) as on current releases. Nothing else in rxchat touches these internals
(reading ``__pydantic_extra__`` or ``model_fields_set``, documented pydantic attributes, is not
one).

aiohttp (declared lower bound 3.10):

* :func:`take_buffered` — the bytes a ``StreamReader`` received but has not handed out yet
  (``_buffer`` / ``_buffer_offset``, instance attributes): aiohttp raises a broken connection's
  error before those.
* :func:`fail_reader` — wake a reader blocked on a response body with an error
  (``StreamReader.set_exception``, used by aiohttp's own protocol; not documented).
* :func:`on_connection_lost` — call back when the TCP connection of a response is lost
  (``ResponseHandler.closed``, a future since aiohttp 3.12.x; before that the connection cannot
  be watched and the function says so by returning None — :func:`watches_connection_loss`):
  aiohttp drops a response's reader without waking it when the connection is closed under it
  (``ResponseHandler.close()`` sets ``_payload = None``) and, with the C parser, after a
  malformed chunked body.
* :func:`close_connector_now` — close a connector synchronously (``BaseConnector._close``), for
  a finalizer that cannot await ``ClientSession.close()``.
* :data:`HTTP_PROCESSING_ERRORS` — the parser's exceptions (``aiohttp.http_exceptions``), which
  the pure-Python parser lets escape from body reads although they are not ``ClientError``.

reactivex:

* :func:`scheduler_loop` — the event loop of an ``AsyncIOScheduler`` (``_loop``; the class has
  no accessor), for timers and tasks that must run on the scheduler's loop.
* :func:`direct_on_next` — the function an ``AutoDetachObserver`` (what ``Observable.subscribe``
  hands every source) wraps (``_on_next``), for a source that checks ``is_stopped`` itself once
  per chunk instead of paying a Python call more per chunk.

pydantic (v2). Instances keep their field values in ``__dict__``, the names of the fields that
were set in ``__pydantic_fields_set__`` (a set), unknown keys in ``__pydantic_extra__`` (a dict
or None) and private attributes in ``__pydantic_private__``. The stream state updates live
snapshot models in place, the events and the log build models without validation; both rely on
that layout:

* :func:`values_of`, :func:`fields_set_of`, :func:`extra_of` — the live containers, updated in
  place; :func:`set_field` writes one field without validation and marks it set.
* :func:`set_model_dict`, :func:`set_fields_set`, :func:`set_model_extra`,
  :func:`set_model_private` — the slot setters, for an instance made by ``object.__new__``.
* :func:`retype` — turn an instance into one of a subclass with the same fields, in place.
* :func:`set_fields_dump` — ``model_dump(exclude_unset=True)`` of one level, without the
  serializer.
* :func:`instance_state` — everything that makes two instances the same.
* :func:`plain_model_class` — a class whose instances are exactly its fields (no validators,
  serializers, private attributes, custom ``__init__``), as the C builder requires.
* :func:`json_validator` — a model class's ``validate_json``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import http_exceptions
from pydantic import BaseModel, ConfigDict
from reactivex import abc
from reactivex.observer import AutoDetachObserver
from reactivex.scheduler.eventloop import AsyncIOScheduler

__all__ = [
    "HTTP_PROCESSING_ERRORS",
    "close_connector_now",
    "direct_on_next",
    "extra_of",
    "fail_reader",
    "fields_set_of",
    "instance_state",
    "json_validator",
    "on_connection_lost",
    "plain_model_class",
    "retype",
    "scheduler_loop",
    "self_check",
    "set_field",
    "set_fields_dump",
    "set_fields_set",
    "set_model_dict",
    "set_model_extra",
    "set_model_private",
    "take_buffered",
    "values_of",
    "watches_connection_loss",
]

# -- aiohttp -------------------------------------------------------------------------------------

HTTP_PROCESSING_ERRORS: tuple[type[Exception], ...] = (http_exceptions.HttpProcessingError,)


def take_buffered(content: aiohttp.StreamReader) -> bytes:
    """The body bytes ``content`` received but had not handed out yet (empty when none)."""
    buffer = getattr(content, "_buffer", None)  # a deque of received bytes
    if not buffer:
        return b""
    offset: int = getattr(content, "_buffer_offset", 0)
    data = b"".join(buffer)[offset:]
    buffer.clear()
    if offset:
        content._buffer_offset = 0
    return data


def fail_reader(content: aiohttp.StreamReader, error: BaseException) -> None:
    """Make the current and every later read of ``content`` raise ``error`` (wakes a waiter)."""
    content.set_exception(error)


def on_connection_lost(
    resp: aiohttp.ClientResponse, callback: Callable[[], None]
) -> Callable[[], None] | None:
    """Call ``callback()`` (on the loop) once the TCP connection of ``resp`` is lost.

    Returns a function that removes the callback again (call it when the response is done
    with: a pooled connection outlives it), or None when the connection cannot be watched.
    """
    connection = resp.connection
    protocol = None if connection is None else connection.protocol
    closed: asyncio.Future[None] | None = getattr(protocol, "closed", None)
    if closed is None or not isinstance(closed, asyncio.Future):
        return None

    def done(fut: asyncio.Future[None]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved: a lost connection is not an unhandled error
        callback()

    def unwatch() -> None:
        closed.remove_done_callback(done)

    closed.add_done_callback(done)
    return unwatch


def close_connector_now(connector: Any) -> bool:
    """Close an aiohttp connector without awaiting; False when that is not possible."""
    close_now = getattr(connector, "_close", None)
    if close_now is None:
        return False
    close_now()
    return True


def watches_connection_loss() -> bool:
    """Whether :func:`on_connection_lost` can watch connections with the installed aiohttp
    (``ResponseHandler.closed`` exists from aiohttp 3.12.x on)."""
    loop = asyncio.new_event_loop()
    try:
        return _watches_connection_loss(loop)
    finally:
        loop.close()


def _watches_connection_loss(loop: asyncio.AbstractEventLoop) -> bool:
    from aiohttp.client_proto import ResponseHandler

    return isinstance(getattr(ResponseHandler(loop), "closed", None), asyncio.Future)


# -- reactivex -----------------------------------------------------------------------------------


def scheduler_loop(scheduler: AsyncIOScheduler) -> asyncio.AbstractEventLoop:
    """The event loop an ``AsyncIOScheduler`` (or ``AsyncIOThreadSafeScheduler``) runs on."""
    loop: asyncio.AbstractEventLoop = scheduler._loop
    return loop


def direct_on_next(
    observer: abc.ObserverBase[Any],
) -> tuple[Callable[[Any], None], AutoDetachObserver[Any] | None]:
    """``(on_next, detach)``: for an ``AutoDetachObserver`` the function it wraps and the observer
    itself, whose ``is_stopped`` the caller must check before each call; for any other observer
    its ``on_next`` and None."""
    if type(observer) is AutoDetachObserver:
        wrapped: Callable[[Any], None] = observer._on_next
        return wrapped, observer
    return observer.on_next, None


# -- pydantic ------------------------------------------------------------------------------------

_model_slots = BaseModel.__dict__
set_model_dict: Callable[[BaseModel, dict[str, Any]], None] = _model_slots["__dict__"].__set__
"""Replace an instance's field values (no validation)."""
set_fields_set: Callable[[BaseModel, set[str]], None] = _model_slots[
    "__pydantic_fields_set__"
].__set__
"""Replace the set of names of an instance's fields that were set."""
set_model_extra: Callable[[BaseModel, dict[str, Any] | None], None] = _model_slots[
    "__pydantic_extra__"
].__set__
"""Replace an instance's unknown fields (``extra="allow"``; None for none)."""
set_model_private: Callable[[BaseModel, dict[str, Any] | None], None] = _model_slots[
    "__pydantic_private__"
].__set__
"""Replace an instance's private attributes (None for a class without any)."""
_set_class = object.__setattr__


def values_of(model: BaseModel) -> dict[str, Any]:
    """The live dict of an instance's field values (writes change the instance, unvalidated)."""
    return model.__dict__


def fields_set_of(model: BaseModel) -> set[str]:
    """The live set of names of the fields that were set (``model_fields_set``, mutable)."""
    return model.__pydantic_fields_set__


def extra_of(model: BaseModel) -> dict[str, Any]:
    """The live dict of an instance's unknown fields, created (empty) when it has none."""
    extra = model.__pydantic_extra__
    if extra is None:
        extra = {}
        set_model_extra(model, extra)
    return extra


def set_field(model: BaseModel, name: str, value: Any) -> None:
    """Set a field (or, on an ``extra="allow"`` model, any key) without validation."""
    model.__dict__[name] = value
    model.__pydantic_fields_set__.add(name)


def retype(model: BaseModel, cls: type[BaseModel], private: dict[str, Any] | None) -> None:
    """Make ``model`` an instance of ``cls`` in place: a subclass of its class that adds no
    fields; ``private`` becomes its private attributes."""
    _set_class(model, "__class__", cls)
    set_model_private(model, private)


def set_fields_dump(model: Any) -> dict[str, Any]:
    """The fields that were set, then the unknown ones; values as they are (one level).

    Raises:
        AttributeError: ``model`` is not a pydantic model instance.
    """
    fields_set = model.__pydantic_fields_set__
    values = model.__dict__
    out = {k: values[k] for k in fields_set if k in values}
    extra = model.__pydantic_extra__
    if extra:
        out.update(extra)
    return out


def instance_state(model: BaseModel) -> tuple[Any, ...]:
    """Field values, fields set, unknown fields and private attributes of an instance."""
    return (
        model.__dict__,
        model.__pydantic_fields_set__,
        model.__pydantic_extra__,
        model.__pydantic_private__,
    )


_DECORATOR_KINDS = (
    "validators",
    "field_validators",
    "root_validators",
    "model_validators",
    "field_serializers",
    "model_serializers",
    "computed_fields",
)


def plain_model_class(cls: type[BaseModel]) -> bool:
    """True when an instance of ``cls`` is exactly its validated fields: no validators or
    serializers, no root model, no private attributes, pydantic's own ``__init__`` and
    ``model_post_init``."""
    decorators = cls.__pydantic_decorators__
    return not (
        cls.__pydantic_root_model__
        or cls.__private_attributes__
        or cls.model_post_init is not BaseModel.model_post_init
        or cls.__init__ is not BaseModel.__init__
        or any(getattr(decorators, kind) for kind in _DECORATOR_KINDS)
    )


def json_validator(cls: type[BaseModel]) -> Callable[..., Any]:
    """``cls``'s pydantic-core ``validate_json`` (no ``model_validate_json`` wrapper)."""
    validate: Callable[..., Any] = cls.__pydantic_validator__.validate_json
    return validate


# -- the check -----------------------------------------------------------------------------------


class _Probe(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int = 0
    b: str = ""


class _ProbeChild(_Probe):
    pass


def self_check() -> list[str]:
    """What is missing or changed in the installed dependencies (empty when all is there)."""
    loop = asyncio.new_event_loop()
    try:
        return _check_aiohttp(loop) + _check_reactivex(loop) + _check_pydantic()
    finally:
        loop.close()


def _check_aiohttp(loop: asyncio.AbstractEventLoop) -> list[str]:
    from aiohttp.client_proto import ResponseHandler

    problems: list[str] = []
    reader = aiohttp.StreamReader(ResponseHandler(loop), 2**16, loop=loop)
    for name in ("_buffer", "_buffer_offset"):
        if not hasattr(reader, name):
            problems.append(f"aiohttp.StreamReader.{name}")
    if not problems:
        reader.feed_data(b"abc")
        reader._buffer_offset = 1  # as a partial read leaves it
        if take_buffered(reader) != b"bc" or take_buffered(reader) != b"":
            problems.append("aiohttp.StreamReader._buffer (layout changed)")
    if not callable(getattr(reader, "set_exception", None)):
        problems.append("aiohttp.StreamReader.set_exception")
    if not callable(getattr(aiohttp.BaseConnector, "_close", None)):
        problems.append("aiohttp.BaseConnector._close")
    if not issubclass(http_exceptions.TransferEncodingError, http_exceptions.HttpProcessingError):
        problems.append("aiohttp.http_exceptions.TransferEncodingError")
    return problems


def _check_reactivex(loop: asyncio.AbstractEventLoop) -> list[str]:
    problems: list[str] = []
    try:
        if scheduler_loop(AsyncIOScheduler(loop)) is not loop:
            problems.append("reactivex AsyncIOScheduler._loop")
    except AttributeError:
        problems.append("reactivex AsyncIOScheduler._loop")
    seen: list[Any] = []
    observer: AutoDetachObserver[Any] = AutoDetachObserver(seen.append)
    try:
        on_next, detach = direct_on_next(observer)
        on_next(1)
        stopped_before = detach is not None and detach.is_stopped
        observer.on_completed()
        if seen != [1] or stopped_before or detach is None or not detach.is_stopped:
            problems.append("reactivex AutoDetachObserver._on_next / is_stopped")
    except AttributeError:
        problems.append("reactivex AutoDetachObserver._on_next / is_stopped")
    return problems


def _check_pydantic() -> list[str]:
    problems: list[str] = []
    model = _Probe.model_validate({"a": 1, "x": 2})
    if values_of(model) != {"a": 1, "b": ""}:
        problems.append("pydantic BaseModel.__dict__ (field values)")
    if not isinstance(model.__pydantic_fields_set__, set) or fields_set_of(model) != {"a", "x"}:
        problems.append("pydantic BaseModel.__pydantic_fields_set__")
    if model.__pydantic_extra__ != {"x": 2}:
        problems.append("pydantic BaseModel.__pydantic_extra__")
    if set_fields_dump(model) != model.model_dump(exclude_unset=True):
        problems.append("pydantic exclude_unset layout")
    set_field(model, "b", "set")
    extra_of(model)["y"] = 3
    fields_set_of(model).add("y")
    updated = {"a": 1, "b": "set", "x": 2, "y": 3}
    if model.b != "set" or model.model_dump(exclude_unset=True) != updated:
        problems.append("pydantic in-place field updates")
    built = object.__new__(_Probe)
    set_model_dict(built, {"a": 5, "b": "c"})
    set_fields_set(built, {"a"})
    set_model_extra(built, {})  # {} on an extra="allow" model (None only without extras)
    set_model_private(built, None)
    if built != _Probe(a=5, b="c") or built.model_dump(exclude_unset=True) != {"a": 5}:
        problems.append("pydantic slot setters")
    retype(built, _ProbeChild, None)
    if type(built) is not _ProbeChild or built.model_copy() != _ProbeChild(a=5, b="c"):
        problems.append("pydantic retype")
    if instance_state(model)[0] is not model.__dict__:
        problems.append("pydantic instance state")
    if not plain_model_class(_Probe):
        problems.append("pydantic __pydantic_decorators__ / __pydantic_root_model__")
    if json_validator(_Probe)('{"a":2}') != _Probe(a=2):
        problems.append("pydantic __pydantic_validator__.validate_json")
    return problems
