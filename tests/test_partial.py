"""Typed partial objects: Partial[Model] and the incremental PartialObjectParser."""

from __future__ import annotations

import contextlib
import json
import random
import re
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import rxchat
from rxchat import Partial, PartialObjectParser
from rxchat._partial_json import PartialJSONError, PartialJSONParser


class Point(BaseModel):
    x: float
    y: float


class Stop(BaseModel):
    name: str
    minutes: int
    at: Point | None = None


class Trip(BaseModel):
    city: str
    days: int
    budget: float
    units: Literal["eur", "usd"]
    stops: list[Stop]
    tags: list[str] = Field(default_factory=list)
    home: Point
    note: str | None = Field(default=None, alias="remark")


def _feed_all(parser: PartialObjectParser[Any], deltas: list[str]) -> list[Any]:
    out = []
    for d in deltas:
        value = parser.feed(d)
        if value is not None:
            out.append(value)
    return out


def test_partial_class_makes_every_field_optional_and_nested_partial() -> None:
    cls = Partial[Trip]
    assert cls is Partial[Trip]  # made once
    assert cls.__name__ == "PartialTrip"
    empty = cls()
    assert all(getattr(empty, name) is None for name in Trip.model_fields)
    built = cls.model_validate(
        {"city": "Rome", "stops": [{"name": "Forum"}], "home": {"x": 1}, "remark": "r"}
    )
    assert type(built.stops[0]).__name__ == "PartialStop" and built.stops[0].minutes is None
    assert type(built.home) is Partial[Point] and built.home.y is None
    assert built.note == "r"
    with pytest.raises(TypeError, match="pydantic model class"):
        Partial[int]
    with pytest.raises(TypeError):
        PartialObjectParser(dict)  # type: ignore[type-var]


def test_a_number_shows_its_longest_valid_prefix() -> None:
    class Weather(BaseModel):
        city: str
        temperature: float

    parser = PartialObjectParser(Weather)
    seen = [
        (delta, parser.feed(delta))
        for delta in ['{"city": "Par', 'is", "temperature": 5', "7", ".", "2", "3", "}"]
    ]
    shown = [(d, v.model_dump() if v is not None else None) for d, v in seen]
    assert shown == [
        ('{"city": "Par', {"city": "Par", "temperature": None}),
        ('is", "temperature": 5', {"city": "Paris", "temperature": 5.0}),
        ("7", {"city": "Paris", "temperature": 57.0}),
        (".", None),  # "57." is not a number: 57 stays (the plain partial dict drops the field)
        ("2", {"city": "Paris", "temperature": 57.2}),
        ("3", {"city": "Paris", "temperature": 57.23}),
        ("}", None),
    ]
    assert parser.value is not None and parser.value.temperature == 57.23
    # exponents: 1 while "1e" and "1e+" arrive
    p = PartialObjectParser(Weather)
    values = [p.feed(d) for d in ['{"temperature": 1', "e", "+", "2}"]]
    assert [v.temperature if v is not None else None for v in values] == [1.0, None, None, 100.0]


def test_values_that_do_not_validate_yet_wait() -> None:
    parser = PartialObjectParser(Trip)
    a = parser.feed('{"units": "eu')
    assert a is not None and a.units is None  # "eu" is not one of the literals yet
    b = parser.feed('r", "days": "x')
    assert b is not None and b.units == "eur" and b.days is None
    with pytest.raises(PartialJSONError):
        parser.feed('"}}')
    strings_off = PartialObjectParser(Trip, partial_strings=False)
    assert strings_off.feed('{"city": "Ro') is not None
    assert strings_off.value is not None and strings_off.value.city is None
    assert strings_off.feed('me"') is not None and strings_off.value.city == "Rome"


def _trip(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "city": rng.choice(["Rome", "Lima", "Oslo"]) * rng.randint(1, 3),
        "days": rng.randint(-5, 50000),
        "budget": round(rng.uniform(-1e4, 1e6), rng.randint(0, 6)),
        "units": rng.choice(["eur", "usd"]),
        "stops": [
            {
                "name": f"stop {i}",
                "minutes": rng.randint(0, 999),
                "at": {"x": rng.uniform(-90, 90), "y": rng.random() * 1e-7},
            }
            for i in range(rng.randint(0, 5))
        ],
        "tags": [rng.choice(["a", "bb", 'q"uote', "\\", "é"]) for _ in range(rng.randint(0, 4))],
        "home": {"x": rng.randint(-3, 3), "y": float(rng.randint(0, 9)) * 1.5e20},
        "remark": rng.choice([None, "fine", "x" * 40]),
    }


def _walk(value: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Leaf paths of a dumped partial object -> their values (None fields left out)."""
    out: dict[tuple[Any, ...], Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_walk(v, (*path, k)))
    elif isinstance(value, list):
        out[(*path, "len")] = len(value)
        for i, v in enumerate(value):
            out.update(_walk(v, (*path, i)))
    elif value is not None:
        out[path] = value
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(1, 7), min_size=1, max_size=40))
def test_fields_never_disappear_and_numbers_only_grow_their_prefix(
    seed: int, cuts: list[int]
) -> None:
    doc = _trip(seed)
    text = json.dumps(doc, ensure_ascii=seed % 2 == 0, indent=seed % 3 or None)
    deltas, i, k = [], 0, 0
    while i < len(text):
        n = cuts[k % len(cuts)]
        deltas.append(text[i : i + n])
        i, k = i + n, k + 1
    parser = PartialObjectParser(Trip)
    previous: dict[tuple[Any, ...], Any] = {}
    for value in _feed_all(parser, deltas):
        leaves = _walk(value.model_dump())
        for path, old in previous.items():
            assert path in leaves, f"{path} disappeared"
            new = leaves[path]
            if path[-1] == "len":
                assert new >= old
            elif isinstance(old, str):
                assert new.startswith(old)
            elif isinstance(old, int | float) and not isinstance(old, bool):
                final = _final_number(text, path, doc)
                # every number shown is the value of a prefix of the number's text
                assert old in final, (path, old, final)
        previous = leaves
    final = Trip.model_validate(doc)
    assert parser.value is not None
    assert (
        parser.value.model_dump() == Partial[Trip].model_validate(final.model_dump()).model_dump()
    )


def _final_number(text: str, path: tuple[Any, ...], doc: dict[str, Any]) -> set[float]:
    """The values of every prefix of the number at ``path`` (as JSON text) that is a number."""
    value: Any = doc
    for p in path:
        value = value["remark" if p == "note" else p]
    raw = json.dumps(value)
    prefixes = set()
    for n in range(1, len(raw) + 1):
        with contextlib.suppress(ValueError):
            prefixes.add(float(json.loads(raw[:n])))
    return prefixes


def test_closed_objects_are_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work per delta does not grow with the answer: closed items are reused, not rebuilt."""
    stop_cls = Partial[Stop]
    built = {"n": 0}
    original = stop_cls.model_construct.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, *args: Any, **kwargs: Any) -> Any:
        built["n"] += 1
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(stop_cls, "model_construct", classmethod(counting))
    stops = [{"name": f"s{i}", "minutes": i} for i in range(300)]
    text = json.dumps({"stops": stops})
    parser = PartialObjectParser(Trip)
    deltas = [text[i : i + 4] for i in range(0, len(text), 4)]
    values = _feed_all(parser, deltas)
    assert parser.value is not None and len(parser.value.stops) == 300
    # Each stop is rebuilt only while it is open (a few deltas each), never once per delta.
    assert built["n"] <= len(deltas) + len(stops)
    first = values[-1].stops[0]
    assert all(v.stops[0] is first for v in values if v.stops and v.stops[0].minutes == 0)


def test_top_level_exports() -> None:
    assert rxchat.Partial is Partial and rxchat.PartialObjectParser is PartialObjectParser
    assert "partial_objects" in rxchat.operators.__all__


_FULL_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@pytest.mark.parametrize("number", ["0", "-0.5", "57.23", "1e5", "-12.5E-3", "9" * 40, "3.0e+10"])
def test_partial_numbers_option_shows_the_longest_valid_prefix(number: str) -> None:
    """``PartialJSONParser(partial_numbers=True)``: every prefix of a number, in any split."""
    for cut in range(1, len(number) + 1):
        prefix = number[:cut]
        m = _FULL_NUMBER.match(prefix)
        expected = None if m is None else (float if m.lastindex else int)(prefix[: m.end()])
        for split in range(cut + 1):
            for doc, empty in ((f'{{"n": {prefix}', {}), (f"[{prefix}", [])):
                p = PartialJSONParser(partial_numbers=True)
                head = len(doc) - len(prefix) + split
                p.feed(doc[:head])
                p.feed(doc[head:])
                got = p.value
                if expected is None:
                    assert got == empty, (doc, got)
                    continue
                value = got["n"] if isinstance(got, dict) else got[0]
                assert value == expected and type(value) is type(expected), (doc, got)
    plain = PartialJSONParser()
    plain.feed('{"n": 57.')
    assert plain.value == {}  # the default stays jiter's
