"""Typed partial objects: ``Partial[Model]`` and an incremental builder of them from JSON text.

``Partial[City]`` is a pydantic model with City's fields, each optional (``None`` until it has
been seen); nested models are partial too, lists of models lists of partial models. The
builder turns the content's text deltas into a sequence of ``Partial[City]`` instances where:

* a field, once shown, never disappears (a list never gets shorter);
* a number shows its longest valid prefix: ``57`` stays ``57`` while ``57.`` arrives, then
  becomes ``57.2`` (the plain partial JSON value drops the field in between);
* strings show their text so far (``partial_strings=True``, the default, as instructor's
  ``Partial``); a value that does not validate as its field's type yet (a partial ``Literal``,
  an unfinished date) is not shown until it does.

Cost. The text is parsed by :class:`~rxchat._partial_json.PartialJSONParser` (work proportional
to each delta), and the object is built incrementally: containers the parser has closed are
shared between its snapshots, so their partial objects are built once and reused; only the open
path (the containers still being written) is rebuilt per delta. Per delta that costs the width of
the open containers, not the length of the answer (see ``benchmarks/bench_partial_objects.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Optional, TypeVar, Union, cast

import pydantic
from pydantic import BaseModel, TypeAdapter

from ._partial_json import PartialJSONError, PartialJSONParser

__all__ = ["Partial", "PartialObjectParser"]

ModelT = TypeVar("ModelT", bound=BaseModel)

_CACHE: dict[type[BaseModel], type[BaseModel]] = {}
_MISSING: Any = object()


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _partial_annotation(tp: Any) -> Any:
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if _is_model(tp):
        return partial_model(tp)
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):  # noqa: UP006
        (item,) = typing.get_args(tp) or (Any,)
        return list[_partial_annotation(item)]  # type: ignore[misc]
    if origin in (dict, typing.Dict):  # noqa: UP006
        key, value = typing.get_args(tp) or (str, Any)
        return dict[key, _partial_annotation(value)]  # type: ignore[misc, valid-type]
    return tp


def partial_model(model: type[BaseModel]) -> type[BaseModel]:
    """The partial model class of ``model`` (cached: the same class every time)."""
    cached = _CACHE.get(model)
    if cached is not None:
        return cached
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _partial_annotation(info.annotation)
        fields[name] = (
            Optional[annotation],  # noqa: UP045 - annotation may be a typing special form
            pydantic.Field(
                default=None,
                alias=info.alias,
                description=info.description,
            ),
        )
    partial = pydantic.create_model(
        f"Partial{model.__name__}",
        __config__=pydantic.ConfigDict(populate_by_name=True, extra="allow"),
        __doc__=f"{model.__name__} as it streams: every field optional.",
        __module__=model.__module__,
        **fields,
    )
    partial.__rxchat_model__ = model  # type: ignore[attr-defined]
    _CACHE[model] = cast(type[BaseModel], partial)
    return cast(type[BaseModel], partial)


if TYPE_CHECKING:

    class Partial(BaseModel, Generic[ModelT]):
        """``Partial[City]``: City's fields, each optional (``Any`` to a type checker)."""

        def __getattr__(self, name: str) -> Any: ...

else:

    class Partial(Generic[ModelT]):
        """``Partial[City]`` is City with every field optional, nested models partial too.

        ``Partial[City]`` returns the partial model class (a pydantic model, made once per
        model): ``Partial[City](name="Pa")`` builds one; ``Partial[City].model_fields`` lists
        the fields. Instances are what :class:`PartialObjectParser` and
        ``ops.partial_objects(City)`` produce. (A type checker sees the fields as ``Any``.)

        >>> from pydantic import BaseModel
        >>> class City(BaseModel):
        ...     name: str
        ...     population: int
        >>> Partial[City](name="Pa")
        PartialCity(name='Pa', population=None)
        """

        def __class_getitem__(cls, model: Any) -> Any:
            if isinstance(model, TypeVar):
                return super().__class_getitem__(model)  # type: ignore[misc]
            if not _is_model(model):
                raise TypeError(f"Partial[...] takes a pydantic model class, got {model!r}")
            return partial_model(model)


# -- the incremental builder ------------------------------------------------------------------


class _Node:
    """Builds the partial value of one place in the document; remembers its last result."""

    __slots__ = ("last", "raw")

    def __init__(self) -> None:
        self.raw: Any = _MISSING
        self.last: Any = _MISSING

    def build(self, raw: Any) -> Any:
        raise NotImplementedError


class _Scalar(_Node):
    """A leaf: validated as its field's type; a value that does not validate yet keeps the last."""

    __slots__ = ("adapter",)

    def __init__(self, adapter: TypeAdapter[Any] | None) -> None:
        super().__init__()
        self.adapter = adapter

    def build(self, raw: Any) -> Any:
        if raw is self.raw or (type(raw) is type(self.raw) and raw == self.raw):
            return self.last
        self.raw = raw
        if self.adapter is None:
            self.last = raw
            return raw
        # Not valid yet (a partial Literal, an unfinished date): keep what was shown.
        with contextlib.suppress(pydantic.ValidationError):
            self.last = self.adapter.validate_python(raw)
        return self.last


def _node_for(tp: Any) -> _Node:
    tp = _strip_optional(tp)
    bare = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
    if _is_model(bare):
        return _Object(bare)
    origin = typing.get_origin(bare)
    if origin in (list, typing.List):  # noqa: UP006
        args = typing.get_args(bare)
        return _Array(args[0] if args else Any)
    if origin in (dict, typing.Dict):  # noqa: UP006
        args = typing.get_args(bare)
        return _Map(args[1] if args else Any)
    if tp is Any:
        return _Scalar(None)
    fast = _FAST.get(tp) if isinstance(tp, type) else None
    if fast is not None:
        return _Fast(fast)
    try:
        adapter = _ADAPTERS.get(tp)
    except TypeError:  # an unhashable annotation
        return _Scalar(TypeAdapter(tp))
    if adapter is None:
        adapter = _ADAPTERS[tp] = TypeAdapter(tp)
    return _Scalar(adapter)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _as_str(raw: Any) -> Any:
    return raw if type(raw) is str else _MISSING


def _as_int(raw: Any) -> Any:
    if type(raw) is int:
        return raw
    if type(raw) is float and raw.is_integer():
        return int(raw)
    return _MISSING


def _as_float(raw: Any) -> Any:
    return float(raw) if type(raw) is int or type(raw) is float else _MISSING


def _as_bool(raw: Any) -> Any:
    return raw if type(raw) is bool else _MISSING


# JSON values of the common field types, checked without a pydantic round trip (same result
# as pydantic's lax mode on JSON input for these types).
_FAST: dict[type, Callable[[Any], Any]] = {
    str: _as_str,
    int: _as_int,
    float: _as_float,
    bool: _as_bool,
}


class _Fast(_Node):
    __slots__ = ("convert",)

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__()
        self.convert = convert

    def build(self, raw: Any) -> Any:
        if raw is self.raw or (type(raw) is type(self.raw) and raw == self.raw):
            return self.last
        self.raw = raw
        value = self.convert(raw)
        if value is not _MISSING:
            self.last = value
        return self.last


class _Object(_Node):
    """A model: its fields' nodes, and the partial instance built from them."""

    __slots__ = ("aliases", "children", "fields", "partial", "values")

    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.partial = partial_model(model)
        self.fields = model.model_fields
        self.aliases: dict[str, str] = {}
        for name, info in self.fields.items():
            self.aliases[name] = name
            if isinstance(info.alias, str):
                self.aliases[info.alias] = name
        self.children: dict[str, _Node] = {}
        self.values: dict[str, Any] = {}

    def build(self, raw: Any) -> Any:
        if raw is self.raw:
            return self.last
        if not isinstance(raw, Mapping):
            return self.last if self.last is not _MISSING else None
        self.raw = raw
        changed = self.last is _MISSING
        values = self.values
        for key, value in raw.items():
            name = self.aliases.get(key)
            if name is None:
                continue  # not a field (extra keys are dropped, as the model would)
            child = self.children.get(name)
            if child is None:
                child = self.children[name] = _node_for(self.fields[name].annotation)
            built = child.build(value)
            if built is _MISSING:
                continue
            if values.get(name, _MISSING) is not built:
                values[name] = built
                changed = True
        if changed:
            self.last = self.partial.model_construct(_fields_set=set(values), **values)
        return self.last


class _Array(_Node):
    __slots__ = ("children", "item", "items")

    def __init__(self, item: Any) -> None:
        super().__init__()
        self.item = item
        self.children: list[_Node] = []
        self.items: list[Any] = []

    def build(self, raw: Any) -> Any:
        if raw is self.raw:
            return self.last
        if not isinstance(raw, list):
            return self.last if self.last is not _MISSING else None
        self.raw = raw
        items = self.items
        changed = self.last is _MISSING
        # Closed elements are shared objects: only the last (open) one and new ones are rebuilt.
        start = max(0, min(len(items), len(raw)) - 1)
        for i in range(start, len(raw)):
            if i == len(self.children):
                self.children.append(_node_for(self.item))
            built = self.children[i].build(raw[i])
            if built is _MISSING:
                break
            if i < len(items):
                if items[i] is not built:
                    items[i] = built
                    changed = True
            else:
                items.append(built)
                changed = True
        if changed:
            self.last = list(items)
        return self.last


class _Map(_Node):
    __slots__ = ("children", "entries", "value_type")

    def __init__(self, value_type: Any) -> None:
        super().__init__()
        self.value_type = value_type
        self.children: dict[str, _Node] = {}
        self.entries: dict[str, Any] = {}

    def build(self, raw: Any) -> Any:
        if raw is self.raw:
            return self.last
        if not isinstance(raw, Mapping):
            return self.last if self.last is not _MISSING else None
        self.raw = raw
        changed = self.last is _MISSING
        for key, value in raw.items():
            child = self.children.get(key)
            if child is None:
                child = self.children[key] = _node_for(self.value_type)
            built = child.build(value)
            if built is not _MISSING and self.entries.get(key, _MISSING) is not built:
                self.entries[key] = built
                changed = True
        if changed:
            self.last = dict(self.entries)
        return self.last


class PartialObjectParser(Generic[ModelT]):
    """Text deltas of a JSON answer in, typed ``Partial[Model]`` objects out (sans-I/O).

    Args:
        model: the pydantic model of the answer.
        partial_strings: show strings while they are written (default ``True``).

    Raises:
        TypeError: ``model`` is not a pydantic model class.

    >>> from pydantic import BaseModel
    >>> class Weather(BaseModel):
    ...     city: str
    ...     temperature: float
    >>> parser = PartialObjectParser(Weather)
    >>> for delta in ('{"city": "Pa', 'ris", "temperature": 57', '.', '23}'):
    ...     print(repr(parser.feed(delta)))
    PartialWeather(city='Pa', temperature=None)
    PartialWeather(city='Paris', temperature=57.0)
    None
    PartialWeather(city='Paris', temperature=57.23)
    """

    __slots__ = ("_json", "_model", "_root", "_value")

    def __init__(self, model: type[ModelT], *, partial_strings: bool = True) -> None:
        if not _is_model(model):
            raise TypeError(f"expected a pydantic model class, got {model!r}")
        self._model = model
        self._json = PartialJSONParser(partial_strings=partial_strings, partial_numbers=True)
        self._root = _Object(model)
        self._value: Partial[ModelT] | None = None

    @property
    def value(self) -> Partial[ModelT] | None:
        """The partial object so far (``None`` before the first ``{``)."""
        return self._value

    def feed(self, delta: str) -> Partial[ModelT] | None:
        """Feed a text delta.

        Returns:
            A new partial object when something became visible, else ``None`` (nothing new:
            whitespace, half a key, a number's ``.``).

        Raises:
            PartialJSONError: the text can no longer be JSON (``value`` then shows what was
                parsed before the offending character).
        """
        try:
            self._json.feed(delta)
        except PartialJSONError:
            self._update()  # `value` shows what was parsed before the offending character
            raise
        return self._update()

    def _update(self) -> Partial[ModelT] | None:
        raw = self._json.value
        if raw is None:
            return None
        built = self._root.build(raw)
        if built is None or built is self._value:
            return None
        self._value = built
        return cast("Partial[ModelT]", built)
